"""The house rules of docs/architecture.md, checked on the source: imports run one way, without cycles.

The import graph is read from the source with ``ast`` (imports inside functions count), so the check does not
depend on what happens to be imported at run time. Oracle: the layer table of docs/architecture.md.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "jaxspec"

# docs/architecture.md, "Rules": a package may import from its own layer (without cycles) and from below.
LAYERS = {
    "_checks": 0,
    "_errors": 0,
    "_extras": 0,
    "_memory": 0,
    "theory": 1,
    "ensembles": 2,
    "engine": 3,
    "analysis": 4,
    "networks": 5,
    "data": 5,
    "": 5.5,  # the top-level facade (jaxspec/__init__.py): entry points, re-exported from below
    "training": 6,
    "hessian": 6,
    "ufm": 7,
    "bottleneck": 7,
    "saddle": 7,
    "sweeps": 8,
    "reproduce": 9,
    "figures": 10,
    "cli": 11,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str) -> str:
    """The module a dotted name refers to: itself if it is a module, else its parent (an attribute)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


class _Imports(ast.NodeVisitor):
    """Every jaxspec import of a module, with whether it sits inside a function."""

    def __init__(self) -> None:
        self.found: list[tuple[str, int, bool]] = []
        self._depth = 0

    def _function(self, node) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] == "jaxspec":
                self.found.append((_resolve(alias.name), node.lineno, self._depth > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module or node.module.split(".")[0] != "jaxspec":
            return
        for alias in node.names:
            # ``from jaxspec import theory`` imports a module;
            # ``from jaxspec.engine import make_config`` a name.
            self.found.append((_resolve(f"{node.module}.{alias.name}"), node.lineno, self._depth > 0))


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    visitor = _Imports()
    visitor.visit(ast.parse(path.read_text(), filename=str(path)))
    return visitor.found


GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_package_has_a_layer():
    assert {_package(m) for m in MODULES} <= set(LAYERS), (
        "add new packages to docs/architecture.md and LAYERS"
    )


def test_no_import_cycles():
    # Depth-first search for a back edge; report the whole cycle.
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target, _, _ in GRAPH[node]:
            if target == node:
                continue
            if state.get(target) == 1:
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for module in MODULES:
        if module not in state:
            visit(module)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_run_down_the_layers():
    upward = [
        f"{module}:{line} imports {target}"
        for module, imports in GRAPH.items()
        for target, line, _ in imports
        if LAYERS[_package(target)] > LAYERS[_package(module)]
    ]
    assert not upward, "imports against the layers: " + "; ".join(upward)


def test_no_jaxspec_imports_inside_functions():
    inside = [
        f"{module}:{line} imports {target}"
        for module, imports in GRAPH.items()
        for target, line, in_function in imports
        if in_function
    ]
    assert not inside, "function-level imports of jaxspec modules: " + "; ".join(inside)


SHARED_PRIVATE = (
    "_errors",
    "_checks",
    "_extras",
    "_memory",
)  # layer 0: the private modules every package may import


def test_packages_import_each_other_through_their_public_api():
    # Across packages only the package itself (its __init__) is imported, never its private _x.py modules;
    # jaxspec._errors, _checks and _extras are the shared private modules of layer 0.
    private = [
        f"{module}:{line} imports {target}"
        for module, imports in GRAPH.items()
        for target, line, _ in imports
        if _package(target) not in (*SHARED_PRIVATE, _package(module))
        and target.rpartition(".")[2].startswith("_")
    ]
    assert not private, "imports of another package's private modules: " + "; ".join(private)


@pytest.mark.parametrize("module", [m for m in MODULES if m.count(".") >= 2])
def test_implementation_modules_are_private_and_define_no_all(module):
    name = module.rpartition(".")[2]
    if MODULES[module].name == "__init__.py":
        return
    assert name.startswith("_"), f"{module}: implementation modules are _x.py, re-exported by their package"
    tree = ast.parse(MODULES[module].read_text())
    assigned = {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    assert "__all__" not in assigned, f"{module}: the package __init__ lists what is public, not the module"


@pytest.mark.parametrize("package", sorted(m for m, p in MODULES.items() if p.name == "__init__.py"))
def test_package_all_lists_only_real_names(package):
    module = importlib.import_module(package)
    public = getattr(module, "__all__", None)
    assert public is not None, f"{package}/__init__.py must list its public names in __all__"
    missing = [name for name in public if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names missing attributes: {missing}"


def test_nothing_points_outside_the_repository():
    shipped = list(PACKAGE.rglob("*.py")) + list((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
    offenders = [
        str(p.relative_to(ROOT))
        for p in shipped
        if "MATH.md" in p.read_text() or "../shared" in p.read_text()
    ]
    assert not offenders, f"cite docs/math.md instead: {offenders}"
