"""The re-orthonormalisation interval ``m``: its validation, its budget, and the choice of ``"auto"``.

A block of ``m`` layers spreads the frame's columns by about ``exp(m (lambda_1 - lambda_k))``; the QR at the
block's end then loses ``log cond`` of the ``-log u`` digits the dtype holds
([math §4](https://jaxspec.github.io/jaxspec/math/#s4)). A block also scales the frame by about
``exp(m lambda_1)`` and ``exp(m lambda_k)``, which must stay inside the dtype's exponent range (a block that
underflows to zero or overflows is lost, whatever its spread). This module is the one place that
validates ``reortho_every``, states both limits, and turns per-layer statistics of ``log|R_ii|`` (from a
closed form or a pilot run) into the largest safe ``m``.
"""

from __future__ import annotations

import math
import warnings

import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from jaxspec._checks import InputError

AUTO = "auto"


def parse_reortho_every(reortho_every: int | str, *, allow_auto: bool = True) -> tuple[int, bool]:
    """Validate ``reortho_every`` and split it into ``(m, auto)``.

    Args:
        reortho_every: a positive integer, or ``"auto"`` where allowed.
        allow_auto: whether ``"auto"`` is accepted.

    Returns:
        ``(m, auto)``: the integer interval (1, a placeholder, when ``auto``) and whether it is to be chosen.

    Example:
        >>> parse_reortho_every("auto"), parse_reortho_every(8)
        ((1, True), (8, False))
    """
    if allow_auto and reortho_every == AUTO:
        return 1, True
    if (
        isinstance(reortho_every, bool)
        or not isinstance(reortho_every, (int, np.integer, float))
        or int(reortho_every) != reortho_every
        or reortho_every < 1
    ):
        accepted = "a positive integer or 'auto'" if allow_auto else "a positive integer"
        raise InputError(f"reortho_every must be {accepted}, got {reortho_every!r}")
    return int(reortho_every), False


def reortho_limits(dtype) -> tuple[float, float]:
    """``(budget, guard)`` for the log condition number a block may grow a frame to
    ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)).

    The QR of a block loses ``log cond`` of the ``-log u`` available digits (``u`` the unit roundoff: 16.6
    in float32, 36.7 in float64). ``reortho_every="auto"`` aims at three eighths of them (the smallest
    ``|R_ii|`` keeps a relative accuracy of ``u^{5/8}``); the guard reports blocks that used more than half
    (accuracy worse than ``u^{1/2}``). The budget was a quarter until the accuracy study of
    ``benchmarks/accuracy.py`` (docs/performance.md): over 14 ensembles and networks, float32 with blocks at
    three eighths stays within 2e-6 of float64 every layer, with no guard trip but the constructed ones.

    Example:
        >>> [round(x, 2) for x in reortho_limits("float32")]
        [6.24, 8.32]
    """
    digits = -math.log(float(jnp.finfo(dtype).eps) / 2)
    return 0.375 * digits, 0.5 * digits


def range_limits(dtype) -> tuple[float, float]:
    """``(budget, guard)`` for ``max_i |log|R_ii||`` of one block: how far a block may scale the frame.

    ``log`` of the dtype's largest finite value is ``88.7`` in float32 and ``709.8`` in float64 (its smallest
    normal is about the reciprocal). ``reortho_every="auto"`` keeps a block's predicted growth within half of
    it; the guard reports a block whose ``|R_ii|`` left ``0.8`` of it (the frame's entries, ``|R_ii| /
    sqrt(N)``, then come within a few decades of underflow to subnormals and zero, or of overflow).

    Example:
        >>> [round(x, 1) for x in range_limits("float32")]
        [44.4, 71.0]
    """
    log_max = math.log(float(jnp.finfo(dtype).max))
    return 0.5 * log_max, 0.8 * log_max


def choose_reortho_every(
    mean_log_r: Float[np.ndarray, " k"],
    var_log_r: Float[np.ndarray, " k"],
    depth: int,
    dtype,
    rates_every: int | None = None,
) -> int:
    """The largest safe ``reortho_every`` from per-layer statistics of ``log|R_ii|``
    ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)).

    A block of ``m`` layers is predicted to spread the columns by ``m (max_i mu_i - min_i mu_i)`` plus four
    standard deviations ``4 sqrt(2 m max_i v_i)``; ``m`` is the largest value keeping that within the budget
    of :func:`reortho_limits`, and ``m max|mu_i| + 4 sqrt(m max v_i)`` within the budget of
    :func:`range_limits` (no underflow or overflow).

    Args:
        mean_log_r: ``(k,)`` per-layer means ``mu_i`` (exponents); non-finite entries force ``m = 1``.
        var_log_r: ``(k,)`` per-layer variances ``v_i``.
        depth: number of layers (the largest possible ``m``).
        dtype: compute dtype.
        rates_every: if set, ``m`` is also a divisor of it.

    Returns:
        ``m`` in ``[1, depth]``; without ``rates_every``, the smallest ``m`` with the same number of blocks
        ``ceil(depth / m)`` as the largest safe one (balanced blocks).

    Example:
        >>> choose_reortho_every(np.array([-0.01, -0.02]), np.array([1e-3, 1e-3]), 1000, "float32") > 10
        True

    References:
        Benettin et al., Meccanica 15 (1980); [math §4](https://jaxspec.github.io/jaxspec/math/#s4).
    """
    mean = np.asarray(mean_log_r, float)
    var = np.asarray(var_log_r, float)
    if mean.size == 0 or not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        return 1
    budget, _ = reortho_limits(dtype)
    range_budget, _ = range_limits(dtype)
    spread = float(mean.max() - mean.min())
    growth = float(np.abs(mean).max())
    vmax = float(max(var.max(), 0.0))

    def safe(m: int) -> bool:
        return (
            m * spread + 4 * math.sqrt(2 * m * vmax) <= budget
            and m * growth + 4 * math.sqrt(m * vmax) <= range_budget
        )

    lo, hi = 1, int(depth)
    if not safe(lo):
        return 1
    while lo < hi:  # safe(m) is monotone in m: bisect for the largest safe m
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if safe(mid) else (lo, mid - 1)
    if rates_every is not None:
        return max(d for d in range(1, min(lo, rates_every) + 1) if rates_every % d == 0)
    # Balance the blocks: the same number of QRs, no short remainder block (measured: 64 layers as 32 + 32
    # run faster than 35 + 29, which compiles and runs the remainder block outside the scan).
    return -(-int(depth) // -(-int(depth) // lo))


def reortho_from_pilot(
    pilot_log_r: Float[np.ndarray, "... k"], depth: int, dtype, rates_every: int | None = None
) -> int:
    """:func:`choose_reortho_every` from a pilot run's per-layer ``log|R_ii|`` (NaN where not counted).

    A counted ``-inf`` (a layer that annihilated a column) gives ``m = 1``.

    Args:
        pilot_log_r: ``(..., k)`` per-layer ``log|R_ii|`` of a pilot re-orthonormalised every layer.
        depth, dtype, rates_every: as in :func:`choose_reortho_every`.

    Returns:
        ``m`` in ``[1, depth]``.
    """
    log_r = np.asarray(pilot_log_r, float)
    log_r = log_r.reshape(-1, log_r.shape[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (never counted) give m = 1
        mean, var = np.nanmean(log_r, axis=0), np.nanvar(log_r, axis=0)
    return choose_reortho_every(mean, var, depth, dtype, rates_every)
