"""The errors a user fixes: bad input, a missing optional extra. Imports nothing, so the command line can
catch them without loading JAX."""

from __future__ import annotations


class InputError(ValueError):
    """An argument or file that jaxspec cannot use. The message is one line, meant for a human."""


class MissingExtraError(ImportError):
    """An optional dependency group is not installed; the message says ``pip install 'jaxspec[extra]'``."""
