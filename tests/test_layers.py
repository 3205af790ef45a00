"""The layer map of docs/design.md section 2, checked on the source: which way imports go.

Every module under ``src/sparsesim`` belongs to one layer, bottom to top::

    core < workloads < hardware < sparsity < mapping < dataflows < simulation < app

A module imports only its own layer or lower ones. The rule binds the imports a module runs
when it is imported (module level, class bodies and top-level ``if``/``try`` blocks included;
``if TYPE_CHECKING:`` blocks too, since a type a module names is a dependency all the same);
an import inside a function runs later and is allowed for optional heavy dependencies only,
which this test cannot judge. Module-level imports must also have no cycle between packages
(folders; a sub-package counts as part of its parent), so no package needs another that needs it
back, and none between modules.

The checker works on the parsed source (``ast``), never by importing, so it needs neither
torch nor Numba and sees every module. Its own tests plant a violation in a synthetic graph
and in a copy of the tree, so a checker that finds nothing is known to be able to find
something.
"""

from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS = ("core", "workloads", "hardware", "sparsity", "mapping", "dataflows", "simulation", "app")
"""Bottom to top: a module may import its own layer and those before it."""

APP = frozenset({"api", "cli", "quality", "sweeps", "studies", "plots", "report", "demo", "validate", "references", "workload_args",
                 "progress", "__init__", "__main__"})
"""The names directly under ``sparsesim`` that make up the application (the top layer)."""

ALLOWED: dict[tuple[str, str], str] = {}
"""Known violations, ``(importing module, imported module): reason``, each to be removed when
the work that fixes it lands. Empty: every module-level import keeps to the layer map."""


@dataclass(frozen=True, slots=True)
class Edge:
    """One module-level import: ``source`` imports ``target`` (both dotted module names)."""

    source: str
    target: str
    line: int
    typing_only: bool = False  # inside `if TYPE_CHECKING:`: never runs, so it can close no cycle


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str, path: Path) -> str:
    """The package (folder) a module lives in: itself for an ``__init__.py``. The modules
    directly under ``sparsesim`` (``api``, ``plots``, ``progress``, ...) each count as their own:
    the root folder is the application's namespace, not one package with one job."""
    if path.name == "__init__.py":
        return module
    package = module.rpartition(".")[0]
    return module if package == "sparsesim" else package


def layer_of(module: str) -> str | None:
    """The layer of a ``sparsesim`` module, ``None`` for a name outside the package."""
    parts = module.split(".")
    if parts[0] != "sparsesim":
        return None
    if len(parts) == 1:
        return "app"  # the package's own __init__
    head = parts[1]
    if head in LAYERS and head != "app":
        return head
    if head in APP:
        return "app"
    raise AssertionError(f"{module}: in no layer; add it to LAYERS or APP in tests/test_layers.py "
                         "(and to the drawing in docs/design.md section 2)")


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _module_level_imports(tree: ast.Module):
    """``(import node, typing_only)`` of the imports that run when the module is imported (not
    inside a function), or that name its types (``if TYPE_CHECKING:``)."""
    todo = [(n, False) for n in tree.body]
    while todo:
        node, typing_only = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, typing_only
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        else:
            inner = typing_only or _is_type_checking(node)
            todo.extend((child, inner) for child in ast.iter_child_nodes(node))


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    # `from pkg import name` imports the submodule pkg.name when there is one
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]


def import_graph(root: Path) -> tuple[list[Edge], dict[str, str]]:
    """Module-level imports between ``sparsesim`` modules under ``root``, and each module's package."""
    paths = {module_name(p, root): p for p in sorted((root / "sparsesim").rglob("*.py"))}
    known = set(paths)
    edges, packages = [], {}
    for module, path in paths.items():
        packages[module] = package_of(module, path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, typing_only in _module_level_imports(tree):
            for target in _targets(node, module, path.name == "__init__.py", known):
                if target.split(".")[0] == "sparsesim" and target != module:
                    edges.append(Edge(module, target, node.lineno, typing_only))
    return edges, packages


def upward(edges: list[Edge]) -> list[str]:
    """Imports that go up the layer map, as ``source:line imports target (layer -> layer)``."""
    found = []
    for e in edges:
        low, high = layer_of(e.source), layer_of(e.target)
        if high is not None and LAYERS.index(high) > LAYERS.index(low) and (e.source, e.target) not in ALLOWED:
            found.append(f"{e.source}:{e.line} imports {e.target} ({low} -> {high})")
    return found


def package_cycles(edges: list[Edge], packages: dict[str, str]) -> list[list[str]]:
    """Strongly connected sets of more than one package in the package import graph (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        if (e.source, e.target) in ALLOWED:
            continue
        a = packages[e.source]
        b = packages[e.target] if e.target in packages else e.target.rpartition(".")[0]
        # a sub-package is part of its parent (hardware.memory of hardware): the two may use
        # each other; a cycle through a sibling or another layer still counts
        if a != b and not (a.startswith(b + ".") or b.startswith(a + ".")):
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# ---------------------------------------------------------------------------------------------
# the tree


def test_no_module_level_import_goes_up_the_layers():
    edges, _ = import_graph(SRC)
    assert edges, "no imports found: is SRC right?"
    assert upward(edges) == []


def test_module_level_imports_have_no_cycle_between_packages():
    edges, packages = import_graph(SRC)
    assert package_cycles(edges, packages) == []


def test_module_level_imports_have_no_cycle_between_modules():
    edges, packages = import_graph(SRC)
    assert package_cycles([e for e in edges if not e.typing_only], {m: m for m in packages}) == []


def test_the_module_cycle_check_finds_a_cycle_and_skips_type_checking_imports():
    mods = {"sparsesim.sparsity.a": "sparsesim.sparsity", "sparsesim.sparsity.b": "sparsesim.sparsity"}
    ab = Edge("sparsesim.sparsity.a", "sparsesim.sparsity.b", 1)
    ba = Edge("sparsesim.sparsity.b", "sparsesim.sparsity.a", 1)
    assert package_cycles([ab, ba], {m: m for m in mods}) == [sorted(mods)]
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sparsesim.sparsity import a\n")
    assert sorted(flag for _, flag in _module_level_imports(tree)) == [False, True]


def test_every_module_is_in_a_layer():
    edges, packages = import_graph(SRC)
    assert {layer_of(m) for m in packages} <= set(LAYERS)


def test_allowed_violations_are_still_real():
    # an allow-list entry whose import is gone must be deleted, so the list only shrinks
    edges, _ = import_graph(SRC)
    present = {(e.source, e.target) for e in edges}
    assert [pair for pair in ALLOWED if pair not in present] == []


# ---------------------------------------------------------------------------------------------
# the checker can fail


def test_checker_finds_an_upward_import_and_a_cycle_in_a_synthetic_graph():
    edges = [Edge("sparsesim.hardware.energy", "sparsesim.api", 3),  # hardware importing the app
             Edge("sparsesim.workloads.ops", "sparsesim.core.errors", 1),  # downward: fine
             Edge("sparsesim.studies.a", "sparsesim.sweeps.b", 1), Edge("sparsesim.sweeps.b", "sparsesim.studies.a", 2)]
    packages = {"sparsesim.hardware.energy": "sparsesim.hardware", "sparsesim.workloads.ops": "sparsesim.workloads",
                "sparsesim.studies.a": "sparsesim.studies", "sparsesim.sweeps.b": "sparsesim.sweeps",
                "sparsesim.api": "sparsesim", "sparsesim.core.errors": "sparsesim.core"}
    assert upward(edges) == ["sparsesim.hardware.energy:3 imports sparsesim.api (hardware -> app)"]
    assert package_cycles(edges, packages) == [["sparsesim.studies", "sparsesim.sweeps"]]


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """A copy of the source tree with three planted faults: an upward import in a class body,
    a relative upward import, and a two-package cycle inside a top-level ``try``."""
    root = tmp_path_factory.mktemp("src")
    shutil.copytree(SRC / "sparsesim", root / "sparsesim", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "sparsesim" / "core" / "planted.py").write_text(
        '"""Planted."""\n\n\nclass Planted:\n    from sparsesim.simulation.run import simulate_rows\n')
    (root / "sparsesim" / "hardware" / "planted.py").write_text('"""Planted."""\nfrom ..sparsity import nm\n')
    (root / "sparsesim" / "workloads" / "trace" / "planted.py").write_text(
        '"""Planted."""\ntry:\n    from sparsesim.workloads.capture import zoo\nexcept ImportError:\n    pass\n')
    (root / "sparsesim" / "workloads" / "capture" / "planted.py").write_text(
        '"""Planted."""\nimport sparsesim.workloads.trace.planted\n\n\ndef later():\n'
        '    from sparsesim import api  # inside a function: not module level\n')
    return root


def test_checker_finds_faults_planted_in_a_copy_of_the_tree(planted):
    edges, packages = import_graph(planted)
    assert upward(edges) == ["sparsesim.core.planted:5 imports sparsesim.simulation.run (core -> simulation)",
                             "sparsesim.hardware.planted:2 imports sparsesim.sparsity.nm (hardware -> sparsity)"]
    assert ["sparsesim.workloads.capture", "sparsesim.workloads.trace"] in package_cycles(edges, packages)


def test_a_module_outside_every_layer_is_refused(tmp_path):
    (tmp_path / "sparsesim").mkdir()
    (tmp_path / "sparsesim" / "__init__.py").write_text('"""Planted."""\n')
    (tmp_path / "sparsesim" / "helpers.py").write_text('"""Planted."""\nfrom sparsesim import core\n')
    _, packages = import_graph(tmp_path)
    with pytest.raises(AssertionError, match=r"sparsesim\.helpers: in no layer"):
        [layer_of(m) for m in packages]
