"""The package's import graph: no circles, and no arrow that runs up the layers of docs/design.md.

Every `import` counts, also those inside functions (a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import gato

ROOT = Path(gato.__file__).parent

# docs/design.md "Layers", bottom first: a module may import its own layer and those below.
LAYERS = [
    ("gato.tokenization", "gato.io", "gato.device"),
    ("gato.data", "gato.model", "gato.config", "gato.envs.scores"),  # the reference scores file
    ("gato.envs", "gato.experts", "gato.suites"),
    ("gato.rollout",),
    ("gato.experts.ars_training", "gato.collection", "gato.evaluation.reference"),  # recipes over the loop
    ("gato.training",),
    ("gato.agent", "gato.evaluation", "gato.dagger", "gato.prompts", "gato.generation", "gato.gym",
     "gato.inspection", "gato.model_card", "gato.scaling"),
    ("gato.commands", "gato.cli", "gato.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Module -> the gato modules it imports (`from a import b` counts b when b is a module)."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        out = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                        for a in node.names}
        graph[name] = {m for m in out if m in modules and m != name and not name.startswith(m + ".")}
    return graph


def layer(module: str) -> int:
    best = max(((i, p) for i, group in enumerate(LAYERS) for p in group
                if module == p or module.startswith(p + ".")), key=lambda x: len(x[1]), default=None)
    assert best is not None, f"{module} is in no layer of LAYERS (docs/design.md)"
    return best[0]


def test_no_import_circles():
    graph, state, cycles = imports(), {}, []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, stack + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_import_runs_up_the_layers():
    graph = imports()
    up = [f"{m} -> {n}" for m, targets in sorted(graph.items()) for n in sorted(targets) if layer(n) > layer(m)]
    assert not up, "imports that run up the layers: " + ", ".join(up)


def test_the_graph_sees_lazy_imports():
    """The check would pass vacuously if imports inside functions were missed."""
    assert "gato.commands.train" in imports()["gato.cli"] or any(
        m.startswith("gato.commands") for m in imports()["gato.commands.demo"])
