"""The argument checks the closed forms share: widths, the number of indices ``k``, a gate probability
``p``, a weight scale ``sigma2`` and an ensemble argument. Each raises :class:`jaxspec.InputError` naming the
argument and its accepted range before anything is computed."""

from __future__ import annotations

from typing import Any

from jaxspec._checks import InputError, check_int, check_positive, check_real
from jaxspec._checks import check_probability as _check_probability


def check_width(n: Any, name: str = "n") -> int:
    """``n`` as a positive int (a width), else raise :class:`jaxspec.InputError`."""
    return check_int(name, n, minimum=1)


def check_k(k: int | None, n: int, n_name: str = "n") -> int:
    """``k`` (``n`` when ``None``) as an int in ``[1, n]``, else raise :class:`jaxspec.InputError`.

    ``n`` is checked first (a positive integer), so the message never shows an empty range.
    """
    n = check_width(n, n_name)
    return n if k is None else check_int("k", k, minimum=1, maximum=n)


def check_probability(p: Any, name: str = "p", *, allow_array: bool = False) -> Any:
    """``p`` as a float in ``(0, 1]`` (or a float64 array of them), else raise :class:`jaxspec.InputError`."""
    return _check_probability(name, p, allow_array=allow_array)


def check_sigma2(sigma2: Any, *, allow_array: bool = False) -> Any:
    """``sigma2`` (weight variance times fan-in) as a finite positive float (or float64 array)."""
    return check_positive("sigma2", sigma2, allow_array=allow_array)


def check_depth_value(depth: Any, name: str = "depth") -> Any:
    """A depth (or an array of depths) as finite non-negative floats."""
    return check_real(name, depth, low=0.0, allow_array=True)


def check_ensemble(ensemble: Any) -> None:
    """Raise :class:`jaxspec.InputError` unless ``ensemble`` looks like a jaxspec ensemble (widths and a
    theory hook)."""
    widths = getattr(ensemble, "widths", None)
    if not hasattr(ensemble, "layer_theory") or not isinstance(widths, tuple) or len(widths) < 2:
        raise InputError(
            f"ensemble must be a jaxspec ensemble (see jaxspec.ensembles), got {type(ensemble).__name__}"
        )
