"""mkdocs hooks of the documentation build (loaded by ``mkdocs.yml``): API pages that follow the code.

Two expansions, applied to the Markdown of the pages under ``docs/api`` before mkdocstrings reads them:

* **``group_by_module: true``.** A directive

  ```
  ::: jaxspec.engine
      options:
        group_by_module: true
  ```

  renders the package's docstring, then its public names (its ``__all__``, one ``::: package.name`` each) in
  one section per implementation module they are imported from (``engine/_qr.py``, ``engine/_spectrum.py``,
  ...), each section titled by that module's docstring, and a list of links for the public subpackages that
  ``__all__`` names. The grouping is read from the package's ``__init__.py`` (its ``from ... import`` lines
  and ``__all__``) at every build, so a name added to a package, or a module split in two, needs no edit of
  the page. A package whose names all come
  from one module is rendered as a plain ``::: package``.
* **``<!-- cli-reference jaxspec.cli.build_app -->``** becomes the ``--help`` text of the command that the
  named function builds (a Typer app) and of each of its subcommands, one section each.

Every other option of a directive is passed on unchanged. ``tests/docs/test_docs.py`` treats a grouped
directive like a plain one: it renders every name of the package's ``__all__``.
"""

from __future__ import annotations

import ast
import importlib
import re
import textwrap
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_DIRECTIVE = re.compile(
    r"^:::[ \t]+(?P<ident>[\w.]+)[ \t]*\n"
    r"(?P<options>(?:[ \t]+.*\n|[ \t]*\n(?=[ \t]+\S))*)",
    re.MULTILINE,
)
_CLI_MARKER = re.compile(r"^<!--\s*cli-reference\s+(?P<target>[\w.]+)\s*-->[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:py:)?\w+:`~?(?P<target>[^`]+)`")
DEFAULT_HEADING_LEVEL = 2
CLI_HELP_WIDTH = 100


def on_page_markdown(markdown: str, page, config, files) -> str:
    """mkdocs hook: expand grouped directives and CLI markers on the API pages."""
    if not page.file.src_uri.startswith("api/"):
        return markdown
    markdown = _DIRECTIVE.sub(_expand_directive, markdown if markdown.endswith("\n") else markdown + "\n")
    return _CLI_MARKER.sub(lambda m: cli_reference(m.group("target")), markdown)


# ----------------------------------------------------------------------------------------------------------
# Packages grouped by implementation module
# ----------------------------------------------------------------------------------------------------------


def _expand_directive(match: re.Match) -> str:
    ident, block = match.group("ident"), match.group("options")
    parsed = yaml.safe_load(textwrap.dedent(block)) if block.strip() else None
    options = dict((parsed or {}).get("options") or {})
    if not options.pop("group_by_module", False):
        return match.group(0)
    return grouped_directives(ident, options)


def _directive(ident: str, options: dict) -> str:
    if not options:
        return f"::: {ident}\n\n"
    dumped = yaml.safe_dump({"options": options}, default_flow_style=None, sort_keys=False, width=10_000)
    return f"::: {ident}\n" + textwrap.indent(dumped, "    ") + "\n"


def _source_path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _literal_all(tree: ast.Module) -> list[str] | None:
    names = None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            names = list(ast.literal_eval(node.value))
        elif (
            isinstance(node, ast.AugAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "__all__"
            and names is not None
        ):
            names += list(ast.literal_eval(node.value))
    return names


def package_groups(package: str) -> tuple[dict[str, list[str]], list[str]] | None:
    """``({source module: [names]}, [public subpackages])`` for the names in ``package.__all__``.

    A name's source module is the module its ``__init__.py`` imports it from (the package itself for a name
    defined there). Groups follow the order of the imports; names within a group follow ``__all__``. ``None``
    when the package's ``__all__`` is not a literal list.
    """
    path = _source_path(package)
    if path is None or path.name != "__init__.py":
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    exported = _literal_all(tree)
    if exported is None:
        return None
    source: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = node.module or ""
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join(base + ([module] if module else []))
        for alias in node.names:
            source.setdefault(alias.asname or alias.name, module)
    submodules = [
        name
        for name in exported
        if _source_path(f"{source.get(name, package)}.{name}") is not None
        and not name.startswith("_")
        and f"{source.get(name, package)}.{name}".startswith(package.split(".")[0] + ".")
    ]
    order = list(dict.fromkeys(source.values()))
    groups: dict[str, list[str]] = {}
    for module in order + [package]:
        names = [name for name in exported if name not in submodules and source.get(name, package) == module]
        if names:
            groups[module] = names
    return groups, submodules


def _markdown_text(text: str) -> str:
    """A docstring fragment as Markdown: ``literal`` and Sphinx roles become code spans."""
    text = _ROLE.sub(lambda m: f"`{m.group('target').rsplit('.', 1)[-1]}`", text)
    return re.sub(r"``(.+?)``", r"`\1`", text)


def _first_paragraph(module: str) -> str:
    """The first paragraph of a module's docstring, as one line of Markdown."""
    path = _source_path(module)
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) if path else None
    return _markdown_text(" ".join((doc or "").split("\n\n")[0].split()))


def _summary(module: str) -> tuple[str, str]:
    """``(title, remainder)`` from the first paragraph of a module's docstring.

    The title is the part before the first colon (or the first sentence), the remainder what follows.
    """
    paragraph = _first_paragraph(module)
    head, colon, rest = paragraph.partition(": ")
    if not colon or "`" in head and head.count("`") % 2:
        head, _, rest = paragraph.partition(". ")
    head, rest = head.rstrip(".").strip(), rest.strip()
    return (head or module.rsplit(".", 1)[-1]), rest[:1].upper() + rest[1:]


def _api_page(module: str) -> str:
    """The API page of a public package, relative to ``docs/api`` (``jaxspec`` -> ``jaxspec.md``)."""
    return ("jaxspec" if module == "jaxspec" else module.removeprefix("jaxspec.")) + ".md"


def grouped_directives(package: str, options: dict) -> str:
    """The Markdown that renders ``package`` grouped by implementation module (see the module docstring)."""
    found = package_groups(package)
    if found is None or (len(found[0]) <= 1 and not found[1]):
        return _directive(package, options)
    groups, submodules = found
    level = int(options.get("heading_level", DEFAULT_HEADING_LEVEL))
    out = [_directive(package, {**options, "members": False})]
    anchors: set[str] = set()
    for module, names in groups.items():
        title, rest = _summary(module)
        anchor = module.rsplit(".", 1)[-1].lstrip("_").replace("_", "-") if module != package else "members"
        while anchor in anchors:
            anchor += "-"
        anchors.add(anchor)
        source = _source_path(module)
        if any(part.startswith("_") for part in module.split(".")) and source is not None:
            where = f"`{source.relative_to(ROOT).as_posix()}`"
        elif module == package or source is None:
            where = f"`{module}`"
        else:
            where = f"[`{module}`]({_api_page(module)})"
        out.append(f"{'#' * (level + 1)} {title} {{ #{anchor} }}\n\n")
        out.append(f"{rest + ' ' if rest else ''}From {where}.\n\n")
        # One directive per name: a package directive with a `members` list would repeat the package's
        # docstring in every group.
        for name in names:
            out.append(
                _directive(
                    f"{package}.{name}",
                    {
                        **options,
                        "show_root_heading": True,
                        "show_root_full_path": False,
                        "heading_level": level + 2,
                    },
                )
            )
    if submodules:
        out.append(f"{'#' * (level + 1)} Packages {{ #packages }}\n\n")
        for name in submodules:
            full = f"{package}.{name}"
            out.append(f"- [`{full}`]({_api_page(full)}): {_first_paragraph(full)}\n")
        out.append("\n")
    return "".join(out)


# ----------------------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------------------


@contextmanager
def _plain_help():
    """Typer's help without rich panels (plain click formatting, stable across terminals)."""
    import typer.core

    saved = getattr(typer.core, "HAS_RICH", None)
    typer.core.HAS_RICH = False
    try:
        yield
    finally:
        if saved is not None:
            typer.core.HAS_RICH = saved


def cli_commands(target: str) -> list[tuple[str, str]]:
    """``[(command line, help text)]`` of the Typer app built by ``target``, its subcommands depth first."""
    import typer.main

    module, _, attr = target.rpartition(".")
    app = getattr(importlib.import_module(module), attr)()
    root = typer.main.get_command(app)
    context_class = root.context_class
    found = []

    def visit(command, path, parent):
        ctx = context_class(
            command,
            info_name=path[-1],
            parent=parent,
            terminal_width=CLI_HELP_WIDTH,
            max_content_width=CLI_HELP_WIDTH,
        )
        found.append((" ".join(path), command.get_help(ctx)))
        if hasattr(command, "list_commands"):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None and not getattr(sub, "hidden", False):
                    visit(sub, path + [name], ctx)

    with _plain_help():
        visit(root, [root.name or "jaxspec"], None)
    return found


def cli_reference(target: str, level: int = 3) -> str:
    """Markdown: one section per command, with its ``--help`` text."""
    out = []
    for line, text in cli_commands(target):
        # `jaxspec figures init` -> #figures-init; the command itself -> #usage (never the bare `jaxspec`,
        # which is the anchor of the package on its own page).
        anchor = "-".join(line.split()[1:]) or "usage"
        out.append(f"{'#' * level} `{line}` {{ #{anchor} }}\n\n```text\n{text.rstrip()}\n```\n\n")
    return "".join(out)
