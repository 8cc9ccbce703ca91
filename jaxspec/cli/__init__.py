"""The ``jaxspec`` command line: one module per capability, assembled by :func:`main`."""

from jaxspec.cli._main import build_app, main

__all__ = ["build_app", "main"]
