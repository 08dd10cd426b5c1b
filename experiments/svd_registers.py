"""Registers, spills and stack of the fused SVD kernels for sm_90, compiled ahead of time.

No GPU needed: Triton compiles for an H100/H200 target and ``cuobjdump --dump-resource-usage``
(shipped with Triton) reads the cubin. Register pressure is what bounds the fused kernels
(docs/benchmarks.md), so this is the first check of any kernel change, at no device time.

Usage: python experiments/svd_registers.py [--shapes 48x4,48x5,64x8] [--jobs 2]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from geolip.solvers import _svd_triton as svd_triton

TARGET = GPUTarget("cuda", 90, 32)


def _compile(
    kernel: triton.JITFunction, runtime: dict[str, str], consts: dict, warps: int, **extra
):
    signature = {name: runtime.get(name, "constexpr") for name in kernel.arg_names}
    # what the JIT specialises for torch tensors and a batch divisible by 16
    aligned = {(i,): [["tt.divisibility", 16]] for i, name in enumerate(kernel.arg_names)
               if signature[name].startswith("*") or name == "n_matrices"}  # fmt: skip
    source = ASTSource(kernel, signature, constexprs=consts, attrs=aligned)
    return triton.compile(source, target=TARGET, options={"num_warps": warps, **extra})


def resource_usage(cubin: bytes) -> str:
    """The REG/STACK/SHARED line of cuobjdump for one cubin."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run(
            [str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True
        ).stdout
    found = re.search(r"REG:\d+.*", out)
    return found.group(0) if found else out.strip()


def kernel_usage(job: tuple[str, int, int, str]) -> str:
    which, v, d, dtype = job
    cfg = svd_triton.kernel_config(d)
    ptr = "*fp32" if dtype == "float32" else "*fp64"
    aux = "*fp32" if dtype == "float32" else "*fp64"
    if which == "backward":
        launch = cfg.backward
        runtime = {
            "m_ptr": ptr, "s_ptr": aux, "vt_ptr": aux, "gu_ptr": ptr, "gs_ptr": aux,
            "gvt_ptr": aux, "gm_ptr": ptr, "n_matrices": "i32", "floor_abs": "fp32",
            "degeneracy_eps": "fp32",
        }  # fmt: skip
        consts = {"V": v, "D": d, "DP": cfg.dp, "BLOCK": launch.block, "R": launch.rows,
                  "FLOOR_RTOL": 1e-12, "SPREAD": launch.spread}  # fmt: skip
        kernel = svd_triton.gram_svd_backward_kernel
    else:
        launch = cfg.forward if which == "fast" else cfg.robust
        runtime = {"m_ptr": ptr, "u_ptr": ptr, "s_ptr": aux, "vt_ptr": aux,
                   "ill_ptr": "*i8", "n_matrices": "i32"}  # fmt: skip
        consts = svd_triton.forward_constants(v, d, launch, 1e-12, robust=which == "robust")
        consts["ONLY_FLAGGED"] = which == "robust"
        kernel = svd_triton.gram_svd_forward_kernel
    compiled = _compile(kernel, runtime, consts, launch.warps)
    return f"{v}x{d} {dtype} {which:8s} {launch}: {resource_usage(compiled.asm['cubin'])}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="48x4,48x5,64x8")
    parser.add_argument("--kernels", default="fast,robust,backward")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    jobs = [
        (which, *map(int, shape.split("x")), args.dtype)
        for shape in args.shapes.split(",")
        for which in args.kernels.split(",")
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        for line in pool.map(kernel_usage, jobs):
            print(line, flush=True)


if __name__ == "__main__":
    main()
