"""The rooms of geolip and which way their doors open (shared/design/architecture.md):

    cli ──> downstream, hub ──> producers ──> codebook, data ──> solvers ──> (_files, _progress,
    errors)

Checked on the source, statically: every module-level import between geolip modules runs
down the layers (or stays inside its own package), no module-level imports form a cycle, and
the only imports that run upward are the late (function-level) ones into ``geolip.hub`` that
the codebook and producer Hub methods delegate through.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent / "geolip"
LAYER = {
    "cli": 5,
    "downstream": 4,
    "hub": 4,
    "producers": 3,
    "codebook": 2,
    "data": 2,
    "solvers": 1,
    "_safetensors": 0,
    "_files": 0,
    "_progress": 0,
    "errors": -1,
    "_version": -1,
}
LATE_UPWARD_ALLOWED = {("codebook", "hub"), ("producers", "hub")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(module-level geolip imports, function-level ones); TYPE_CHECKING blocks are skipped."""
    tree = ast.parse(path.read_text())
    top: set[str] = set()
    late: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                # ``from pkg import sub`` imports the submodule; ``from mod import f``, mod
                names = [f"{child.module}.{a.name}" for a in child.names]
            for name in names:
                if name.startswith("geolip.") and _resolve(name) is not None:
                    (late if inner else top).add(_resolve(name))  # type: ignore[arg-type]
            visit(child, inner)

    visit(tree, False)
    return top, late


def _resolve(name: str) -> str | None:
    """The geolip module a dotted import name refers to (a symbol resolves to its module)."""
    while name:
        base = ROOT.parent / Path(*name.split("."))
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return name
        name = name.rpartition(".")[0]
    return None


GRAPH = {_module_name(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}


def test_every_room_has_a_layer() -> None:
    rooms = {_room(m) for m in GRAPH} - {None}
    assert rooms <= set(LAYER), f"rooms without a layer: {rooms - set(LAYER)}"


Graph = dict[str, tuple[set[str], set[str]]]


def backward_imports(graph: Graph, module: str) -> list[str]:
    """The imports of ``module`` that run up the layers (and are no allowed late delegation)."""
    top, late = graph[module]
    here = _room(module)
    if here is None:  # geolip/__init__.py: the lazy top level may name anything
        return []
    wrong = []
    for target in sorted(top | late):
        there = _room(target)
        if there is None or there == here:
            continue
        allowed_late = target in late and (here, there) in LATE_UPWARD_ALLOWED
        if LAYER[there] >= LAYER[here] and not allowed_late:
            wrong.append(f"{module} imports {target}: {here} → {there} runs up")
    return wrong


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle of module-level imports, as a path that returns to its start, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, (set(), set()))[0] - {node}):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := walk(module)):
            return found
    return None


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_down_the_layers(module: str) -> None:
    assert backward_imports(GRAPH, module) == []


def test_no_import_cycles_at_module_level() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_checks_can_fail() -> None:
    bad: Graph = {
        "geolip.solvers.x": ({"geolip.codebook.core"}, set()),
        "geolip.codebook.core": ({"geolip.solvers.x"}, {"geolip.hub.publish"}),
        "geolip.data.y": (set(), {"geolip.hub.publish"}),
    }
    assert backward_imports(bad, "geolip.solvers.x") == [
        "geolip.solvers.x imports geolip.codebook.core: solvers → codebook runs up"
    ]
    assert backward_imports(bad, "geolip.codebook.core") == []  # the late Hub delegation
    assert backward_imports(bad, "geolip.data.y") != []  # data may not delegate to the Hub
    assert find_cycle(bad) == ["geolip.codebook.core", "geolip.solvers.x", "geolip.codebook.core"]
