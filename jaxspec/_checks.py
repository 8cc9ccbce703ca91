"""Errors raised at jaxspec's public boundary.

Arguments are validated before anything is traced. A bad argument raises :class:`InputError` (a
``ValueError``) with a one-line message; the CLI prints that line and exits with status 2.
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """An argument or file that jaxspec cannot use. The message is one line, meant for a human."""
