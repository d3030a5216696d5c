"""kltrain's house keeps its architecture: no import circles, nothing imports upward.

The layers, bottom first (``kltrain/__init__.py`` draws the same map). A module may import its
own layer or any layer below; imports inside functions and under ``TYPE_CHECKING`` count too,
since they are dependencies all the same. The checks read the source (an AST walk), so they
see every import, including ones a given run never executes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kltrain

PACKAGE = Path(kltrain.__file__).parent

LAYERS = (  # (name, module prefixes); the longest matching prefix places a module
    ("foundations", ("kltrain._checks", "kltrain._logspace", "kltrain._types", "kltrain._io", "kltrain._blas",
                     "kltrain.losses", "kltrain.noise", "kltrain.schedules", "kltrain.fastpath")),
    ("estimators", ("kltrain.estimators",)),
    ("algorithms", ("kltrain.regularized", "kltrain.variational", "kltrain.schemes")),
    ("gaussian", ("kltrain.gaussian",)),
    ("package façade", ("kltrain",)),
    ("adapters", ("kltrain.torch", "kltrain.jax")),   # your own model: on the estimators, below nets and studies
    ("networks", ("kltrain.nets", "kltrain.nets.mlp", "kltrain.nets.data")),
    ("kernels", ("kltrain.kernels",)),
    ("network losses", ("kltrain.nets.netloss", "kltrain.nets.projected")),
    ("studies", ("kltrain.studies",)),
    ("bench", ("kltrain.bench",)),
    ("cli", ("kltrain.cli", "kltrain.__main__")),
)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The kltrain modules a module's source imports (``from pkg import submodule`` names the submodule)."""
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "kltrain")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "kltrain":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known and m != name}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    known = set(paths)
    return {n: imported_modules(p.read_text(encoding="utf-8"), n, p.name == "__init__.py", known)
            for n, p in paths.items()}


def layer_of(module: str, layers=LAYERS) -> int:
    best = max(((len(prefix), i) for i, (_, prefixes) in enumerate(layers) for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), default=None)
    if best is None:
        raise LookupError(f"module {module!r} is in no layer of tests/test_layers.py: add it to LAYERS")
    return best[1]


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    return sorted(f"{a} ({layers[layer_of(a, layers)][0]}) imports {b} ({layers[layer_of(b, layers)][0]})"
                  for a, targets in graph.items() for b in targets if layer_of(b, layers) > layer_of(a, layers))


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), plus self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


GRAPH = import_graph()


def test_every_module_is_in_a_layer():
    for module in GRAPH:
        layer_of(module)


def test_no_module_imports_a_higher_layer():
    assert upward_imports(GRAPH) == []


def test_no_import_circles():
    assert circles(GRAPH) == []


def test_the_walk_sees_lazy_and_type_checking_imports():
    """Negative controls: the checks fire on an upward import hidden in a function, and on a circle."""
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .estimators import SGLD\n"
              "def f():\n    from .studies import training\n")
    known = {"kltrain.losses", "kltrain.estimators", "kltrain.studies", "kltrain.studies.training"}
    found = imported_modules(source, "kltrain.losses", False, known)
    assert found == {"kltrain.estimators", "kltrain.studies.training"}
    assert len(upward_imports({"kltrain.losses": found})) == 2
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"a"}}) == [["a"]]


def test_a_module_outside_every_layer_is_named():
    with pytest.raises(LookupError, match="'kltrain_extra.x'"):
        layer_of("kltrain_extra.x")
    assert layer_of("kltrain.nets.projected") > layer_of("kltrain.kernels.cpu") > layer_of("kltrain.nets.mlp")
    assert layer_of("kltrain.estimators.sgld") < layer_of("kltrain.torch.optim") < layer_of("kltrain.studies.flatness")
