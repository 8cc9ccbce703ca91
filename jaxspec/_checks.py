"""Errors, shared constants, argument validators and two shape/dtype mixins: the bottom of the house.

It imports nothing of jaxspec; every package may import it.

Arguments are validated at the public boundary, before anything is traced. A bad argument raises
:class:`InputError` (a ``ValueError``) with a one-line message that names the argument; the CLI prints that
line and exits with status 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxspec._errors import InputError  # re-exported: validators raise it, every package imports it here

#: Matmul precision of every product jaxspec forms (GPUs and TPUs otherwise use TF32/bf16 passes).
HIGHEST = jax.lax.Precision.HIGHEST
#: Matmul precisions by name, for the ``precision=`` arguments.
PRECISIONS = {
    "highest": jax.lax.Precision.HIGHEST,
    "high": jax.lax.Precision.HIGH,
    "default": jax.lax.Precision.DEFAULT,
}
#: Compute dtypes by name, for the ``dtype=`` arguments.
DTYPES = ("float32", "float64")


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (validators then leave it to the caller's own checks)."""
    return isinstance(value, jax.core.Tracer)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Raise :class:`InputError` unless ``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def check_positive_int(name: str, value: Any) -> int:
    """``int(value)`` if it is a positive integer (not a bool), else raise :class:`InputError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        if not (isinstance(value, (float, np.floating)) and float(value).is_integer() and value >= 1):
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_positive(name: str, value: Any) -> None:
    """Raise :class:`InputError` unless every entry of ``value`` is positive (tracers pass through)."""
    if not is_traced(value) and not np.all(np.asarray(value) > 0):
        raise InputError(f"{name} must be positive, got {value}")


def check_dtype(dtype: str) -> str:
    """Validate a compute dtype name; float64 needs ``jax_enable_x64``."""
    check_choice("dtype", dtype, DTYPES)
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise InputError(
            "dtype float64 needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) first"
        )
    return dtype


class PaddedWidths:
    """Mixin of everything stored at padded width ``N = max(widths)``: ``depth``, ``max_width``, ``input_width``
    from a static ``widths = (n_0, ..., n_L)``."""

    widths: tuple[int, ...]

    @property
    def depth(self) -> int:
        """Number of layers ``L``."""
        return len(self.widths) - 1

    @property
    def max_width(self) -> int:
        """Padded width ``N``."""
        return max(self.widths)

    @property
    def input_width(self) -> int:
        """``n_0``."""
        return self.widths[0]


class ComputeOptions:
    """Mixin of the frozen run configurations: the ``dtype`` and ``precision`` names as JAX objects."""

    dtype: str
    precision: str

    @property
    def jnp_dtype(self):
        """The compute dtype (``jnp.dtype``)."""
        return jnp.dtype(self.dtype)

    @property
    def lax_precision(self):
        """The matmul precision (``jax.lax.Precision``)."""
        return PRECISIONS[self.precision]
