"""The documentation site: the API reference covers every public name, and ``mkdocs build --strict`` passes.

Public names are those in ``jaxspec.__all__`` and in the ``__all__`` of every public submodule (a dotted path
with no component starting with an underscore). The API reference is the set of ``::: module`` directives in
``docs/api/*.md``; mkdocstrings renders each module with ``filters: public``, i.e. exactly its ``__all__``. A
name is covered when its module has a directive, or when it is the same object as a name of a documented
module (a re-export such as ``jaxspec.lyapunov_spectrum`` is ``jaxspec.engine.lyapunov_spectrum``). The strict
build then checks that every covered name really has an anchor in the rendered HTML.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import jaxspec

ROOT = Path(__file__).resolve().parents[2]
API_DIR = ROOT / "docs" / "api"
# A directive and its indented options block.
DIRECTIVE = re.compile(r"^:::\s+([\w.]+)[ \t]*\n((?:[ \t]+.*\n)*)", re.MULTILINE)


def public_modules() -> dict[str, types.ModuleType]:
    """``jaxspec`` and every public submodule that declares ``__all__``, by dotted name."""
    names = ["jaxspec"] + [info.name for info in pkgutil.walk_packages(jaxspec.__path__, "jaxspec.")
                           if not any(part.startswith("_") for part in info.name.split("."))]
    modules = {}
    for name in names:
        module = importlib.import_module(name)
        if hasattr(module, "__all__"):
            modules[name] = module
    return modules


def _submodules(package: str) -> list[str]:
    module = importlib.import_module(package)
    if not hasattr(module, "__path__"):
        return []
    return [info.name for info in pkgutil.walk_packages(module.__path__, package + ".")
            if not any(part.startswith("_") for part in info.name.split("."))]


def api_directives() -> dict[str, bool]:
    """``{identifier: renders_members}`` for every ``::: identifier`` in docs/api.

    ``members: false`` renders the docstring only; ``show_submodules: true`` also renders every public
    submodule (with its members), as if each had its own directive.
    """
    found: dict[str, bool] = {}
    for page in sorted(API_DIR.glob("*.md")):
        for ident, options in DIRECTIVE.findall(page.read_text(encoding="utf-8") + "\n"):
            with_members = not re.search(r"^\s*members:\s*false\s*$", options, re.MULTILINE)
            found[ident] = found.get(ident, False) or with_members
            if with_members and re.search(r"^\s*show_submodules:\s*true\s*$", options, re.MULTILINE):
                for sub in _submodules(ident):
                    found[sub] = True
    return found


def _resolve(identifier: str):
    """Import ``a.b.c`` as a module, or as attribute ``c`` of module ``a.b``."""
    try:
        return importlib.import_module(identifier)
    except ModuleNotFoundError:
        module, _, attr = identifier.rpartition(".")
        return getattr(importlib.import_module(module), attr)


def documented_objects(directives: dict[str, bool]) -> tuple[set[str], list[object]]:
    """Fully qualified names rendered by the reference, and the objects behind them."""
    names, objects = set(), []
    for ident, with_members in directives.items():
        target = _resolve(ident)
        names.add(ident)
        objects.append(target)
        if isinstance(target, types.ModuleType) and with_members:
            for member in getattr(target, "__all__", ()):
                names.add(f"{ident}.{member}")
                objects.append(getattr(target, member))
    return names, objects


def test_api_directives_resolve():
    directives = api_directives()
    assert directives, "docs/api holds no ::: directives"
    unresolved = []
    for ident in directives:
        try:
            _resolve(ident)
        except (ImportError, AttributeError) as error:
            unresolved.append(f"{ident} ({error})")
    assert not unresolved, f"API pages name objects that do not exist: {unresolved}"


def test_every_public_name_is_in_the_api_reference():
    directives = api_directives()
    names, objects = documented_objects(directives)
    object_ids = {id(obj) for obj in objects}
    missing = []
    for module_name, module in public_modules().items():
        for member in module.__all__:
            obj = getattr(module, member)
            if f"{module_name}.{member}" in names or id(obj) in object_ids:
                continue
            missing.append(f"{module_name}.{member}")
    assert not missing, ("public names missing from the API reference (add `::: <module>` to a page in "
                         f"docs/api and that page to the nav of mkdocs.yml): {missing}")


def test_every_api_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(f"api/{p.name}" for p in API_DIR.glob("*.md"))
    assert [p for p in pages if p not in nav] == []


def _mkdocs_missing() -> str | None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except ModuleNotFoundError:
            return module
    return None


def test_mkdocs_build_strict(tmp_path):
    missing = _mkdocs_missing()
    if missing:
        pytest.skip(f"{missing} is not installed: pip install mkdocs-material 'mkdocstrings[python]' "
                    "to build the docs")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert proc.returncode == 0, "mkdocs build --strict failed:\n" + ("\n".join(warnings) or log[-4000:])

    # Every documented public name has an anchor in the rendered reference.
    html = "".join(p.read_text(encoding="utf-8") for p in (site / "api").rglob("*.html"))
    anchors = set(re.findall(r'id="(jaxspec[\w.]*)"', html))
    directives = api_directives()
    names, _ = documented_objects(directives)
    # Module headings may be hidden (show_root_heading: false); members never are.
    members = names - set(directives)
    assert sorted(members - anchors) == []


# Pages whose ```python blocks are complete programs (the capability pages may show fragments).
RUNNABLE_PAGES = ("index.md", "spectra.md", "concepts.md")


def _python_blocks():
    for name in RUNNABLE_PAGES:
        text = (ROOT / "docs" / name).read_text(encoding="utf-8")
        for number, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.DOTALL)):
            yield pytest.param(block, id=f"{name}-{number}")


@pytest.mark.slow
@pytest.mark.parametrize("source", list(_python_blocks()))
def test_documentation_examples_run(source, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", source], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
