"""Griffe extension for the documentation build: jaxspec's docstring dialect, read as mkdocstrings expects it.

Two rewrites, applied to every loaded docstring before it is parsed (loaded by ``mkdocs.yml``):

* **``Example:`` sections.** The house style opens doctest blocks with the singular ``Example:``. Griffe's
  Google parser only knows ``Examples:`` and would render the singular one as an admonition whose ``>>>``
  lines become Markdown block quotes (and whose printed lists, such as ``[(5, 3), (5, 8)]``, broken
  cross-references).
* **Sphinx roles.** ``:func:`name```, ``:class:`~a.b.C``` and friends become Markdown cross-references
  ``[`name`][jaxspec.package.name]`` when the target is rendered by the API reference (a member of a package
  that ``docs/api`` documents, listed in that package's ``__all__``; a name defined in a private module
  ``jaxspec.package._module`` links to its re-export ``jaxspec.package.name``), and plain code otherwise, so
  that a reference to a private helper can never break ``mkdocs build --strict``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

_SINGULAR_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(
    r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc|const):"
    r"`(?P<tilde>~?)(?P<target>[\w.]+?)(?:\(\))?`"
)
_API_DIR = Path(__file__).resolve().parents[1] / "docs" / "api"
_DIRECTIVE = re.compile(r"^:::\s+([\w.]+)[ \t]*\n(?P<options>(?:[ \t]+.*\n)*)", re.MULTILINE)


def _documented_modules() -> set[str]:
    """Modules that the API pages render with their members (``::: module`` without ``members: false``)."""
    found = set()
    for page in _API_DIR.glob("*.md"):
        for match in _DIRECTIVE.finditer(page.read_text(encoding="utf-8") + "\n"):
            if not re.search(r"members:\s*false", match.group("options")):
                found.add(match.group(1))
    return found


class ExampleSections(griffe.Extension):
    """Rewrite ``Example:`` headers to ``Examples:`` and Sphinx roles to Markdown cross-references."""

    def __init__(self) -> None:
        super().__init__()
        self._modules = _documented_modules()

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        # `on_object` fires for the members of a loaded package, not for the package itself (`jaxspec`).
        self.on_object(obj=pkg, loader=loader)

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is None:
            return
        text = _SINGULAR_EXAMPLE.sub(r"\g<indent>Examples:", obj.docstring.value)
        obj.docstring.value = _ROLE.sub(lambda m: self._reference(m, obj, loader), text)

    def _reference(self, match: re.Match, obj: griffe.Object, loader: griffe.GriffeLoader) -> str:
        target = match.group("target")
        shown = target.rsplit(".", 1)[-1] if match.group("tilde") else target
        path = self._rendered_path(target, obj, loader)
        return f"[`{shown}`][{path}]" if path else f"`{shown}`"

    def _rendered_path(self, target: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str | None:
        candidates = []
        if target.startswith("jaxspec"):
            candidates.append(target)
        else:
            head, _, rest = target.partition(".")
            scope = obj if obj.is_module or obj.is_class else obj.parent
            try:
                resolved = scope.resolve(head) if scope is not None else None
            except (griffe.NameResolutionError, AttributeError, KeyError):
                resolved = None
            if resolved:
                candidates.append(f"{resolved}.{rest}" if rest else resolved)
        for path in list(candidates):
            try:
                member = loader.modules_collection.get_member(path)
            except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue
            if getattr(member, "is_alias", False):
                candidates.append(member.target_path)
        # A name defined in a private module (``jaxspec.engine._qr.make_qr``) is rendered under the package
        # that re-exports it (``jaxspec.engine.make_qr``).
        candidates += [public for path in list(candidates) if (public := self._public_path(path, loader))]
        for path in candidates:
            if self._is_rendered(path, loader):
                return path
        return None

    def _public_path(self, path: str, loader: griffe.GriffeLoader) -> str | None:
        """``package.name[.attr]`` for ``package._module.name[.attr]`` when ``package`` exports the object."""
        for module in sorted(self._modules, key=len, reverse=True):
            if not path.startswith(module + "."):
                continue
            parts = path[len(module) + 1 :].split(".")
            private = 0
            while private < len(parts) - 1 and parts[private].startswith("_"):
                private += 1
            if private == 0:
                continue
            public = ".".join([module, *parts[private:]])
            try:
                alias = loader.modules_collection.get_member(f"{module}.{parts[private]}")
                targets = {alias.path}
                if getattr(alias, "is_alias", False):
                    targets |= {alias.target_path, alias.final_target.path}
            except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue
            if ".".join([module, *parts[: private + 1]]) in targets:
                return public
        return None

    def _is_rendered(self, path: str, loader: griffe.GriffeLoader) -> bool:
        if path in self._modules:
            return True
        for module in self._modules:
            if not path.startswith(module + "."):
                continue
            parts = path[len(module) + 1 :].split(".")
            if any(part.startswith("_") for part in parts):
                return False
            try:
                exports = loader.modules_collection.get_member(module).exports or []
            except (KeyError, ValueError):
                return False
            names = {getattr(name, "name", name) for name in exports}
            if parts[0] not in names:
                continue
            try:
                loader.modules_collection.get_member(path)
            except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                return False
            return True
        return False
