"""Errors, shared constants, argument validators and two shape/dtype mixins: the bottom of the house.

It imports nothing of jaxspec; every package may import it.

Arguments are validated at the public boundary, before anything is traced. A bad argument raises
:class:`InputError` (a ``ValueError``) with a one-line message that names the argument; the CLI prints that
line and exits with status 2.
"""

from __future__ import annotations

import math
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
    try:
        known = value in choices
    except TypeError:  # an unhashable or incomparable value
        known = False
    if not known:
        raise InputError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def _got(value: Any) -> str:
    """``value!r``, with its type where the repr alone could mislead (``'4'`` is a str, not 4)."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, (bool, str, bytes, complex)) or value is None:
        return f"{text} ({type(value).__name__})"
    return text


def _int_expectation(name: str, minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{name} must lie in [{minimum}, {maximum}] (an integer)"
    if minimum == 1:
        return f"{name} must be a positive integer"
    if minimum == 0:
        return f"{name} must be a non-negative integer"
    if minimum is not None:
        return f"{name} must be an integer >= {minimum}"
    if maximum is not None:
        return f"{name} must be an integer <= {maximum}"
    return f"{name} must be an integer"


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``, else raise :class:`InputError` naming ``name``.

    Integers (Python, numpy, 0-d integer arrays) and integral finite floats (``4.0``) are accepted; booleans,
    strings, fractional or non-finite numbers are refused, never floored.

    Example:
        >>> check_int("width", 4.0, minimum=1)
        4
    """
    expected = _int_expectation(name, minimum, maximum)
    if isinstance(value, (bool, np.bool_)) or is_traced(value):
        raise InputError(f"{expected}, got {_got(value)}")
    if isinstance(value, (np.ndarray, jax.Array)) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (int, np.integer)):
        result = int(value)
    elif isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        result = int(value)
    else:
        raise InputError(f"{expected}, got {_got(value)}")
    if (minimum is not None and result < minimum) or (maximum is not None and result > maximum):
        raise InputError(f"{expected}, got {_got(value)}")
    return result


def check_seed(value: Any, name: str = "seed") -> int:
    """A base seed as JAX keys take it: an integer in ``[0, 2^32 - 1]``, else :class:`InputError`.

    Example:
        >>> check_seed(7)
        7
    """
    return check_int(name, value, minimum=0, maximum=2**32 - 1)


def check_positive_int(name: str, value: Any) -> int:
    """``int(value)`` if it is a positive integer (not a bool, not a fraction), else raise
    :class:`InputError`."""
    return check_int(name, value, minimum=1)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_array: bool = False,
) -> Any:
    """``value`` as a finite real float (or float64 array with ``allow_array``) within the given bounds.

    Refuses strings, booleans, complex numbers, ``None``, NaN and infinities with an :class:`InputError` that
    names ``name`` and the accepted range. Tracers pass through unchecked (their caller checks them).

    Args:
        name: the argument's name, as the user wrote it.
        value: the value.
        low, high: bounds (``None``: unbounded).
        low_open, high_open: exclude the bound itself.
        allow_array: accept an array of values (each checked), returned as a float64 array.

    Returns:
        A float, or a float64 array.

    Example:
        >>> check_real("p", 0.5, low=0.0, high=1.0, low_open=True)
        0.5
    """
    if is_traced(value):
        return value
    lo = None if low is None else ("(" if low_open else "[") + f"{low:g}"
    hi = None if high is None else f"{high:g}" + (")" if high_open else "]")
    kind = "finite real numbers" if allow_array and np.ndim(value) > 0 else "a finite real number"
    if lo is not None and hi is not None:
        expected = f"{name} must lie in {lo}, {hi} ({kind})"
    elif low == 0 and low_open:
        expected = f"{name} must be positive ({kind})"
    elif low is not None:
        expected = f"{name} must be {'>' if low_open else '>='} {low:g} ({kind})"
    elif high is not None:
        expected = f"{name} must be {'<' if high_open else '<='} {high:g} ({kind})"
    else:
        expected = f"{name} must be {kind}"
    bad = f"{expected}, got {_got(value)}"
    if value is None or isinstance(value, (bool, np.bool_, str, bytes, complex)):
        raise InputError(bad)
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything numpy cannot read is refused with the same message
        raise InputError(bad) from None
    if array.dtype.kind not in "iuf" or (array.ndim > 0 and not allow_array) or array.size == 0:
        raise InputError(bad)
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise InputError(bad)
    too_low = low is not None and np.any(array <= low if low_open else array < low)
    too_high = high is not None and np.any(array >= high if high_open else array > high)
    if too_low or too_high:
        raise InputError(bad)
    return float(array) if array.ndim == 0 else array


def check_positive(name: str, value: Any, *, allow_array: bool = True) -> Any:
    """``value`` if every entry is a finite positive real number, else raise :class:`InputError` (tracers pass
    through). Returns a float (or a float64 array)."""
    return check_real(name, value, low=0.0, low_open=True, allow_array=allow_array)


def check_probability(name: str, value: Any, *, allow_array: bool = False) -> Any:
    """``value`` as a probability in ``(0, 1]`` (a gate that is never open is refused)."""
    return check_real(name, value, low=0.0, high=1.0, low_open=True, allow_array=allow_array)


def check_widths(widths: Any) -> tuple[int, ...]:
    """``(n_0, ..., n_L)`` as a tuple of at least two positive ints, else raise :class:`InputError`."""
    if isinstance(widths, (str, bytes)) or np.ndim(widths) != 1:
        raise InputError(f"widths must be a sequence (n_0, ..., n_L) of positive integers, got {widths!r}")
    widths = tuple(check_int(f"widths[{l}]", n, minimum=1) for l, n in enumerate(widths))
    if len(widths) < 2:
        raise InputError(f"widths must hold at least two entries (n_0, n_1), got {widths}")
    return widths


#: Natural log of the largest finite float64: ``exp`` of anything above it overflows.
LOG_FLOAT64_MAX = float(np.log(np.finfo(np.float64).max))
# Headroom kept below a dtype's exponent range when bounding a block's scale: the chi fluctuations of a
# block's lengths beyond sigma^m (e^6 ~ 400).
_SCALE_HEADROOM = 6.0


def log_range(dtype: Any) -> float:
    """``min(ln max, -ln tiny)`` of a floating dtype: how far from 1 a normal number's scale can go
    (87.3 for float32, 708.4 for float64)."""
    info = np.finfo(np.dtype(dtype))
    return float(min(np.log(info.max), -np.log(info.tiny)))


def check_scale_range(
    name: str, sigma2: Any, dtype: Any, *, block: int = 1, width: int = 1, gram: bool = False
) -> None:
    """Refuse a weight scale whose products leave the compute dtype's range.

    The weights hold ``sigma2 / N`` and a frame pushed through a block of ``m`` layers (multiplied out between
    two re-orthonormalisations) grows or shrinks in length by about ``sigma^m = sigma2^(m/2)``, times
    ``sqrt(N)`` for a column's norm and the chi fluctuations. So

        max(1, m / 2) |ln sigma2| + ln N + 6 <= log range of the dtype

    (:func:`log_range`: 87.3 in float32, 708.4 in float64). The bound is on lengths, not squares: the QR
    (Householder, scaled norms) never squares a column, which was checked at the edge (``sigma2 = 1e3`` over
    blocks of 16 and 24 layers in float32, lengths ~1e24-1e36, exact to the usual error). At ``m = 1`` this is
    the weight variance's own range: ``sigma2 = 1e300`` fits float64, not float32. The closed forms (in logs)
    and the exact singular values (log-scaled, ``m = 1``) have no other limit. A QR that forms the Gram matrix
    of the block (CholeskyQR2, ``gram=True``) squares the lengths: ``max(1, m) |ln sigma2|`` then.

    Raises:
        InputError: naming ``name``, the dtype and the limit.

    Example:
        >>> check_scale_range("sigma2", 2.0, "float32", block=16, width=128)
    """
    if is_traced(sigma2):
        return
    values = np.atleast_1d(np.asarray(sigma2, np.float64))
    log_s2 = float(np.max(np.abs(np.log(values))))
    block = max(int(block), 1)
    factor = max(1.0, float(block) if gram else block / 2.0)
    limit = log_range(dtype) - math.log(max(int(width), 1)) - _SCALE_HEADROOM
    if limit <= 0:
        raise InputError(
            f"width {width} is beyond {np.dtype(dtype).name}'s range: ln N + {_SCALE_HEADROOM:g} = "
            f"{math.log(int(width)) + _SCALE_HEADROOM:.1f} exceeds the dtype's log range "
            f"{log_range(dtype):.1f}"
        )
    if factor * log_s2 > limit:
        largest = math.exp(limit / factor)
        what = "its Gram matrix" if gram else "lengths"
        power = block if gram else block / 2
        blocks = f"a block of {block} layers scales {what} by {name}^{power:g}, and " if block > 1 else ""
        advice = "; use float64" if np.dtype(dtype) == np.float32 else ""
        if block > 1:
            advice += " or a shorter re-orthonormalisation interval"
        raise InputError(
            f"{name} = {np.asarray(sigma2).tolist()} leaves {np.dtype(dtype).name}'s range: {blocks}"
            f"{factor:g} x |ln {name}| = {factor * log_s2:.1f} must stay below {limit:.1f} (the dtype's log "
            f"range {log_range(dtype):.1f} less ln N + {_SCALE_HEADROOM:g}), i.e. {name} in "
            f"[{1 / largest:.3g}, {largest:.3g}]{advice}"
        )


def check_dtype(dtype: str) -> str:
    """Validate a compute dtype name; float64 needs ``jax_enable_x64``."""
    check_choice("dtype", dtype, DTYPES)
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise InputError(
            "dtype float64 needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) first"
        )
    return dtype


class PaddedWidths:
    """Mixin of everything stored at padded width ``N = max(widths)``: ``depth``, ``max_width``,
    ``input_width`` from a static ``widths = (n_0, ..., n_L)``."""

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
