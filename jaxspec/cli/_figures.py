"""``jaxspec figures <name>``: the reproduction jobs of :mod:`jaxspec.reproduce`, one module each."""

from __future__ import annotations

import importlib

import typer

# Modules of jaxspec.reproduce that each add one ``jaxspec figures <name>`` command.
FIGURE_MODULES: tuple[str, ...] = ("jaxspec.reproduce._dynamics",
                                   "jaxspec.reproduce._init",
                                   "jaxspec.reproduce._bottleneck",
                                   "jaxspec.reproduce._saddle",
                                   "jaxspec.reproduce._ufm",)


def register(app: typer.Typer) -> None:
    figures = typer.Typer(help="Reproduce the papers' figures (PNG plus the underlying data).",
                          no_args_is_help=True)
    for module in FIGURE_MODULES:
        importlib.import_module(module).register(figures)
    app.add_typer(figures, name="figures")
