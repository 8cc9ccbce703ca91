"""The documentation site follows the package layout, and ``mkdocs build --strict`` passes.

Public packages are ``jaxspec`` and every module under it whose dotted path has no component starting with
an underscore (``jaxspec.engine``, not ``jaxspec.engine._qr``); they are discovered with ``pkgutil`` at every
run, so a package added later is covered without an edit here. Their public names are their ``__all__``.

Each public package ``P`` has one API page, ``docs/api/<P without "jaxspec.">.md`` (``docs/api/jaxspec.md``
for the top level), listed in the nav of ``mkdocs.yml``, and every name of ``P.__all__`` is on that page:

* rendered by one of the page's mkdocstrings directives: ``::: P`` (every name of ``__all__``, also with
  ``group_by_module: true``, which ``scripts/docs_hooks.py`` expands into one directive per implementation
  module), ``::: P`` with a ``members: [...]`` list that names it, or ``::: P.name``;
* or, for a public subpackage that ``__all__`` names (``engine`` in ``jaxspec.__all__``), linked from the
  page.

The strict build then checks the rendered HTML: the page of ``P`` has an anchor ``P.name`` for every rendered
name and a link to the page of every subpackage it names. Every other page of ``docs/api`` (but ``index.md``)
must belong to a public package, so the pages of removed modules cannot linger.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import yaml

import jaxspec

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
API_DIR = DOCS / "api"
# A directive and its indented options block (blank lines inside the block allowed).
DIRECTIVE = re.compile(
    r"^:::[ \t]+(?P<ident>[\w.]+)[ \t]*\n"
    r"(?P<options>(?:[ \t]+.*\n|[ \t]*\n(?=[ \t]+\S))*)",
    re.MULTILINE,
)
# Pages of docs/api that document no single package.
OVERVIEW_PAGES = ("index.md",)


# ----------------------------------------------------------------------------------------------------------
# What the code exports, and where the reference renders it
# ----------------------------------------------------------------------------------------------------------


def public_packages() -> dict[str, types.ModuleType]:
    """``jaxspec`` and every public module below it, by dotted name."""
    names = ["jaxspec"] + [
        info.name
        for info in pkgutil.walk_packages(jaxspec.__path__, "jaxspec.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    return {name: importlib.import_module(name) for name in names}


def public_names(module: types.ModuleType) -> list[str]:
    return list(getattr(module, "__all__", ()))


def page_of(package: str) -> Path:
    """The API page of a public package: ``jaxspec.engine`` -> ``docs/api/engine.md``."""
    return API_DIR / (("jaxspec" if package == "jaxspec" else package.removeprefix("jaxspec.")) + ".md")


def directives(page: Path) -> list[tuple[str, dict]]:
    """``[(identifier, options)]`` for every ``::: identifier`` of a page."""
    found = []
    for match in DIRECTIVE.finditer(page.read_text(encoding="utf-8") + "\n"):
        block = match.group("options")
        parsed = yaml.safe_load(textwrap.dedent(block)) if block.strip() else None
        found.append((match.group("ident"), dict((parsed or {}).get("options") or {})))
    return found


def _resolve(identifier: str):
    """Import ``a.b.c`` as a module, or as attribute ``c`` of module ``a.b``."""
    try:
        return importlib.import_module(identifier)
    except ModuleNotFoundError:
        module, _, attr = identifier.rpartition(".")
        return getattr(importlib.import_module(module), attr)


def rendered_names(package: str, module: types.ModuleType, page: Path) -> set[str]:
    """The names of ``package.__all__`` that the directives of ``page`` render."""
    exported = public_names(module)
    found: set[str] = set()
    for ident, options in directives(page):
        if ident == package:
            members = options.get("members", True)
            if members is True or members is None:
                found.update(exported)
            elif isinstance(members, list):
                found.update(name for name in members if name in exported)
        elif ident.startswith(package + ".") and ident[len(package) + 1 :] in exported:
            found.add(ident[len(package) + 1 :])
    return found


def _subpackage_names(module: types.ModuleType) -> list[str]:
    """The names of ``__all__`` that are public subpackages (documented on pages of their own)."""
    return [name for name in public_names(module) if isinstance(getattr(module, name), types.ModuleType)]


def _links_to(page: Path, target: Path) -> bool:
    text = page.read_text(encoding="utf-8")
    grouped = any(options.get("group_by_module") for _, options in directives(page))
    return grouped or re.search(rf"\]\({re.escape(target.name)}(#[^)]*)?\)", text) is not None


# ----------------------------------------------------------------------------------------------------------
# The reference against the code
# ----------------------------------------------------------------------------------------------------------


def test_every_public_package_has_an_api_page():
    missing = [
        f"{name} -> {page_of(name).relative_to(ROOT)}"
        for name in public_packages()
        if not page_of(name).is_file()
    ]
    assert not missing, f"public packages without an API page (create the page, add it to the nav): {missing}"


def test_every_api_page_belongs_to_a_public_package():
    pages = {page_of(name) for name in public_packages()}
    stale = [p.name for p in sorted(API_DIR.glob("*.md")) if p not in pages and p.name not in OVERVIEW_PAGES]
    assert not stale, (
        f"API pages of modules that are not public packages (delete them and their nav entry): {stale}"
    )


def test_api_directives_resolve():
    unresolved = []
    for page in sorted(API_DIR.glob("*.md")):
        for ident, _ in directives(page):
            try:
                _resolve(ident)
            except (ImportError, AttributeError) as error:
                unresolved.append(f"{page.name}: {ident} ({error})")
    assert not unresolved, f"API pages name objects that do not exist: {unresolved}"


def test_every_public_name_is_on_its_package_page():
    missing = []
    for package, module in public_packages().items():
        page = page_of(package)
        if not page.is_file():
            continue  # reported by test_every_public_package_has_an_api_page
        subpackages = _subpackage_names(module)
        rendered = rendered_names(package, module, page)
        for name in public_names(module):
            if name in subpackages:
                if not _links_to(page, page_of(f"{package}.{name}")):
                    missing.append(f"{package}.{name} (no link to {page_of(f'{package}.{name}').name})")
            elif name not in rendered:
                missing.append(f"{package}.{name}")
    assert not missing, (
        "public names missing from their package's API page (render the package with "
        f"`::: <package>` or list the name in its `members:`): {missing}"
    )


def _nav_entries(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [entry for value in node.values() for entry in _nav_entries(value)]
    if isinstance(node, list):
        return [entry for value in node for entry in _nav_entries(value)]
    return []


def _nav() -> list[str]:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    return _nav_entries(config["nav"])


def test_every_api_page_is_in_the_nav():
    nav = _nav()
    pages = sorted(f"api/{p.name}" for p in API_DIR.glob("*.md"))
    assert [p for p in pages if p not in nav] == []
    assert {"math.md", "architecture.md"} <= set(nav)


# ----------------------------------------------------------------------------------------------------------
# Links
# ----------------------------------------------------------------------------------------------------------


def _documents() -> list[tuple[str, str]]:
    """``(name, text)`` of every Markdown page, the README and every notebook's sources."""
    found = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in sorted(DOCS.rglob("*.md"))]
    found.append(("README.md", (ROOT / "README.md").read_text(encoding="utf-8")))
    for path in sorted((ROOT / "examples").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        found.append((str(path.relative_to(ROOT)), "\n".join("".join(c["source"]) for c in cells)))
    return found


def test_nothing_points_at_an_unshipped_math_file():
    """The math reference is the site's page (``math.md#sN``), never MATH.md or a file outside the repo."""
    offending = [name for name, text in _documents() if "MATH.md" in text or "../shared" in text]
    assert not offending, offending


def test_math_citations_link_their_section():
    """``[math §4](math.md#s4)``: a citation in a page links the section it names."""
    wrong = []
    for name, text in _documents():
        if not name.startswith("docs/"):
            continue
        # Code (a fenced block, a code span) is not a citation.
        prose = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.DOTALL))
        for label, target in re.findall(r"\[math §([^\]]+)\]\(([^)]*)\)", prose):
            first = re.match(r"\d+", label)
            prefix = "../" if "/" in name.removeprefix("docs/") else ""
            if first is None or target != f"{prefix}math.md#s{first.group(0)}":
                wrong.append(f"{name}: [math §{label}]({target})")
    assert not wrong, wrong


# ----------------------------------------------------------------------------------------------------------
# The build
# ----------------------------------------------------------------------------------------------------------


def _mkdocs_missing() -> str | None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except ModuleNotFoundError:
            return module
    return None


@pytest.mark.docs
def test_mkdocs_build_strict(tmp_path):
    missing = _mkdocs_missing()
    if missing:
        pytest.skip(
            f"{missing} is not installed: pip install mkdocs-material 'mkdocstrings[python]' "
            "to build the docs"
        )
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert proc.returncode == 0, "mkdocs build --strict failed:\n" + ("\n".join(warnings) or log[-4000:])

    # Every public name has an anchor on its package's rendered page; every subpackage it names, a link.
    absent = []
    for package, module in public_packages().items():
        html_path = site / "api" / page_of(package).stem / "index.html"
        html = html_path.read_text(encoding="utf-8")
        anchors = set(re.findall(r'id="([\w.]+)"', html))
        subpackages = _subpackage_names(module)
        for name in public_names(module):
            if name in subpackages:
                stem = re.escape(page_of(f"{package}.{name}").stem)
                if not re.search(rf'href="\.\./{stem}/(#[^"]*)?"', html):
                    absent.append(f"{package}.{name} (no link)")
            elif f"{package}.{name}" not in anchors:
                absent.append(f"{package}.{name}")
    assert absent == [], f"names without an anchor on their package's rendered page: {absent}"


# Pages whose ```python blocks are complete programs (the capability pages may show fragments).
RUNNABLE_PAGES = ("index.md", "spectra.md", "concepts.md")


def _python_blocks():
    for name in RUNNABLE_PAGES:
        text = (DOCS / name).read_text(encoding="utf-8")
        for number, block in enumerate(re.findall(r"```python\n(.*?)```", text, re.DOTALL)):
            yield pytest.param(block, id=f"{name}-{number}")


@pytest.mark.docs
@pytest.mark.parametrize("source", list(_python_blocks()))
def test_documentation_examples_run(source, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, "-c", source], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
