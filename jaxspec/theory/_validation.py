"""The argument checks the closed forms share: the number of indices ``k`` and a gate probability ``p``."""

from __future__ import annotations

from jaxspec._checks import InputError


def check_k(k: int | None, n: int) -> int:
    """``k`` (``n`` when ``None``) as an int in ``[1, n]``, else raise :class:`jaxspec.InputError`."""
    k = n if k is None else int(k)
    if not 1 <= k <= n:
        raise InputError(f"k must lie in [1, {n}], got {k}")
    return k


def check_probability(p: float) -> float:
    """``p`` as a float in ``(0, 1]``, else raise :class:`jaxspec.InputError`."""
    p = float(p)
    if not 0 < p <= 1:
        raise InputError(f"p must lie in (0, 1], got {p}")
    return p
