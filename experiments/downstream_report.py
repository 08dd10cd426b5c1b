"""The markdown section of docs/results.md from the results document of downstream_results.py;
every verdict is computed from the numbers, none is written by hand."""

from __future__ import annotations

from typing import Any

from geolip.solvers.intervals import (
    at_least,
    combine,
    difference_interval,
    spearman_interval,
    within,
)

WITHIN_PP = 2.0
TRAIN_SIZE = 64
METHOD_NAMES = {
    "validity": "validity (codebook distance)",
    "mse_ratio": "MSE ratio",
    "mahalanobis": "Mahalanobis",
    "knn": "kNN",
}


def _acc_table(res: dict[str, Any]) -> list[str]:
    sizes = sorted(int(s) for s in next(iter(res["accuracy"].values())))
    head = "| method | parameters | " + " | ".join(f"{s}²" for s in sizes)
    lines = [head + f" | {sizes[-1]}² − {sizes[0]}² |", "|---|---:|" + "---:|" * (len(sizes) + 1)]
    for method, by_size in res["accuracy"].items():
        acc = [by_size[s] if s in by_size else by_size[str(s)] for s in sizes]
        cells = " | ".join(f"{100 * a:.1f} %" for a in acc)
        delta = 100 * (acc[-1] - acc[0])
        lines.append(f"| {method} | {res['parameters'][method]:,} | {cells} | {delta:+.1f} pp |")
    return lines


def _transfer_verdict(res: dict[str, Any]) -> str:
    """Per codebook head: the 95 % interval of each size's change from 64² (Newcombe, from the
    counts of correct test images) against ±2 pp; holds only if every interval lies inside."""
    n = res["n_test"]
    parts = []
    for method, by_size in res["accuracy"].items():
        if not method.startswith("codebook") or "resized" in method:
            continue
        values = list(by_size.values())
        base = round(values[0] * n)
        changes = [difference_interval(base, n, round(v * n), n) for v in values[1:]]
        word = combine([within(c, WITHIN_PP / 100) for c in changes])
        worst = max(range(len(changes)), key=lambda i: abs(values[i + 1] - values[0]))
        lo, hi = changes[worst]
        above = 100 * (values[0] - 1 / len(res["classes"]))
        parts.append(
            f"{method}: largest change {100 * (values[worst + 1] - values[0]):+.1f} pp "
            f"(95 % interval {100 * lo:+.1f} to {100 * hi:+.1f} pp) → {word} "
            f"(at {TRAIN_SIZE}² it is {above:.1f} pp above chance)"
        )
    return "; ".join(parts)


def _best(res: dict[str, Any], prefix: str, size: Any) -> tuple[str, float]:
    cands = {
        m: v for m, v in res["accuracy"].items() if m.startswith(prefix) and "resized" not in m
    }
    method = max(cands, key=lambda m: cands[m][size])
    return method, cands[method][size]


def _ood_table(ood: dict[str, Any]) -> list[str]:
    methods = ood["methods"]
    lines = [
        "| OOD set | n | "
        + " | ".join(f"{METHOD_NAMES[m]} AUROC / FPR@95" for m in methods)
        + " |",
        "|---|---:|" + "---|" * len(methods),
    ]
    for group, per in ood["metrics"].items():
        cells = " | ".join(f"{per[m]['auroc']:.3f} / {per[m]['fpr95']:.3f}" for m in methods)
        lines.append(f"| {group} | {ood['groups'][group]} | {cells} |")
    return lines


def _batch_table(ood: dict[str, Any]) -> list[str]:
    lines = ["| batch | group | distance | z | MSE / floor |", "|---|---|---:|---:|---:|"]
    for p in sorted(ood["batches"], key=lambda p: p["distance"]):
        z = "—" if p["z_score"] is None else f"{p['z_score']:+.1f}"
        lines.append(
            f"| {p['kind']} | {p['group']} | {p['distance']:.3f} | {z} | {p['mse_ratio']:.2f} |"
        )
    return lines


def markdown(doc: dict[str, Any]) -> str:
    run = doc["run"]
    out = [
        "## Downstream: frozen-codebook features",
        "",
        f"Measured {run['date']} on {run['machine']}: `{run['command']}` (seed {run['seed']}, "
        f"{run['minutes']:.1f} min). Producer: {run['producer']}. Codebook: K = "
        f"{run['codebook']['K']} axes in D = {run['codebook']['D']} (id "
        f"`{run['codebook']['id'][:12]}`), extracted from 256 gaussian 64 × 64 calibration "
        "images. All numbers: `experiments/out/downstream/results.json`.",
        "",
        "### Resolution transfer",
        "",
        "Prediction (from the project's seed plan): a head trained on frozen codebook features "
        f"at {TRAIN_SIZE}² keeps its accuracy within 2 percentage points at any test size. A "
        "verdict is read off the 95 % interval of each change (Newcombe's score interval from "
        "the counts of correct test images): it holds when every interval lies inside ±2 pp, "
        "fails when one lies wholly outside, and is inconclusive otherwise — with 300 test "
        "images an interval spans about ±7 pp, so this test set cannot show that it holds.",
        "",
        f"Every method is trained once at {TRAIN_SIZE}² and applied unchanged at each size. "
        "Codebook heads read patch-mean |activations| (`mean`, V × K) or the quantised-axis "
        "histogram (`hist`, K); the `(resized)` rows and the pixel probe get test images "
        "resized to 64² (and standardised again); `CNN (native)` (global average pool) gets "
        "them as they are. Images are standardised per image. Shapes are rendered natively at "
        "every size from the same scenes; digits "
        "are upsampled bilinearly from their source resolution.",
        "",
    ]
    for res in doc["transfer"]:
        out += [
            f"**{res['dataset']}** ({res['n_train']} training images, {res['n_test']} test "
            f"images, {len(res['classes'])} classes, chance {100 / len(res['classes']):.1f} %):",
            "",
            *_acc_table(res),
            "",
        ]
        sizes = list(next(iter(res["accuracy"].values())))
        lo, hi = sizes[0], sizes[-1]
        cb_lo, cnn_lo = _best(res, "codebook", lo), res["accuracy"]["CNN (native)"][lo]
        cb_hi, cnn_hi = _best(res, "codebook", hi), res["accuracy"]["CNN (native)"][hi]
        resized = res["accuracy"].get("codebook mean/mlp (resized)")
        native = res["accuracy"]["codebook mean/mlp"]
        out += [
            f"- Verdict: {_transfer_verdict(res)}.",
            f"- The same mean/mlp head at {hi}²: {100 * native[hi]:.1f} % on the native "
            f"images, {100 * resized[hi]:.1f} % on them resized to {lo}² first (its {lo}² "
            f"accuracy: {100 * native[lo]:.1f} %). The head and codebook are unchanged; what "
            "changes with the size is the content of a patch.",
            f"- Frozen features against an end-to-end model of similar size: best codebook "
            f"head {100 * cb_lo[1]:.1f} % vs CNN {100 * cnn_lo:.1f} % at {lo}², "
            f"{100 * cb_hi[1]:.1f} % vs {100 * cnn_hi:.1f} % (native) at {hi}².",
            "",
        ]
    out += [
        "![accuracy against test resolution](figures/downstream_resolution.png)",
        "",
        "### OOD validity",
        "",
        "Predictions (from the project's seed plan): a batch whose own codebook lies more "
        "than 0.5 from the reference reconstructs with more than 5 × the native MSE, and the "
        "codebook distance is useful as a validity score (Spearman correlation with the MSE "
        "ratio at least 0.5; decided by its 95 % interval, Fisher z with the Bonett–Wright "
        "standard error).",
        "",
        "Per-image scores, OOD = positive class, OpenOOD v1.5 definitions "
        "(`geolip.downstream.ood_metrics`). Validity = distance of the image's own codebook "
        "(the mean of its 256 patches' rows, antipodally collapsed) to the reference; "
        "Mahalanobis (Ledoit–Wolf, one class) and kNN (k = 5, cosine) read the same frozen "
        "`mean` features; MSE ratio = per-image reconstruction MSE over the native floor. "
        "Natural and drawn images are standardised per image; noise is used as generated.",
        "",
    ]
    for ood in doc["ood"]:
        out += _ood_section(ood)
    return "\n".join(out) + "\n"


def _ood_section(ood: dict[str, Any]) -> list[str]:
    pred = ood["prediction"]
    rho_lo, rho_hi = spearman_interval(pred["spearman"], pred["n_batches"])
    family = ood["id_family"]
    named = ", ".join(family) if len(family) <= 3 else f"the {len(family)} training noises"
    if pred["implication_holds"] is None:
        implication = "untested (no batch above 0.5)"
    else:
        implication = "holds" if pred["implication_holds"] else "fails"
    return [
        f"**{ood['producer']}** (codebook K = {ood['codebook']['K']}): in-distribution "
        f"{named}, {ood['n_id_fit']} images to fit every detector and {ood['n_id_test']} held "
        f"out; native floor (median per-image MSE) {ood['native_mse']:.3g}.",
        "",
        *_ood_table(ood),
        "",
        f"Batch codebooks (32 images of one family each, {pred['n_batches']} batches): "
        f"{pred['n_above_threshold']} have distance > 0.5, of which "
        f"{pred['n_above_threshold_with_mse_over_5x']} have MSE > 5 × floor "
        f"({pred['n_mse_over_5x']} batches exceed 5 × overall). Correlation of distance with "
        f"MSE ratio: Pearson {pred['pearson']:.3f}, "
        f"with log MSE ratio {pred['pearson_log_mse']:.3f}, "
        f"Spearman {pred['spearman']:.3f}.",
        "",
        f"- Implication (distance > 0.5 ⇒ MSE > 5 × floor): {implication}; the largest "
        f"batch distance measured is {max(p['distance'] for p in ood['batches']):.3f}.",
        f"- Usefulness (Spearman ≥ 0.5): {pred['spearman']:.3f}, 95 % interval "
        f"{rho_lo:.3f} to {rho_hi:.3f} over {pred['n_batches']} batches → "
        f"{at_least((rho_lo, rho_hi), 0.5)}.",
        "",
        f"![batch distance against MSE ratio]({ood['figure']})",
        "",
        "<details><summary>every batch</summary>",
        "",
        "z: the batch distance against random codebooks of the same size. Every real input "
        "beats that null, in or out of distribution (z −5 to −14), so it does not separate "
        "them; `geolip ood score --id-dataset` places a batch among held-out "
        "in-distribution batches instead.",
        "",
        *_batch_table(ood),
        "",
        "</details>",
        "",
    ]
