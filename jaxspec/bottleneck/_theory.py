"""Closed forms of deep linear networks: the minimal-norm factorisation and the weight-decay optimum.

The minimal squared parameter norm of a depth-``L`` network representing ``f`` is
``R(f; L) = L R0(f) + R1(f) + O(1/L)``: ``R0`` is the bottleneck rank, ``R1`` a regularity term that bounds
the pseudo-determinant of the Jacobian. For deep **linear** nets ``R(A; L) = L sum_i s_i(A)^(2/L)``, so
``R0 = rank A``, ``R1 = 2 log|A|_+`` and every layer of the minimal-norm factorisation has singular values
``s_i(A)^(1/L)`` (:func:`deep_linear_min_norm`, :func:`deep_linear_weight_decay_optimum`).

References:
    Jacot, "Bottleneck Structure in Learned Features: Low-Dimension vs Regularity Tradeoff", NeurIPS 2023,
    arXiv:2305.19008. von Neumann, "Some matrix-inequalities and metrization of matric space", Tomsk Univ.
    Rev. 1 (1937).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike, Float
from scipy.optimize import brentq

from jaxspec._checks import InputError, check_positive_int
from jaxspec.bottleneck._validation import check_weight_decay


def _singular_values_np(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        return np.linalg.svd(a, compute_uv=False)
    if a.ndim == 1 and np.all(a >= 0):
        return a
    raise InputError("expected a matrix A or a vector of non-negative singular values")


def deep_linear_min_norm(
    a: Float[ArrayLike, "nL n0"] | Float[ArrayLike, " r"], depth: int, *, rtol: float = 1e-12
) -> float:
    """``R(A; L) = L sum_i s_i(A)^(2/L)``: the least ``||theta||^2`` of a depth-``L`` linear net equal to A.

    Args:
        a: a matrix ``A`` (``(n_L, n_0)``) or the vector of its singular values (``(r,)``).
        depth: ``L``.
        rtol: singular values below ``rtol * s_1`` count as zero (the rank ``R0``).

    Returns:
        A float. As ``L -> infinity`` it equals ``L rank(A) + 2 log|A|_+ + O(1/L)``.

    Example:
        >>> round(deep_linear_min_norm(np.diag([4.0, 1.0]), 2), 6)
        10.0

    References:
        Jacot, arXiv:2305.19008 (deep linear case of ``R(f; L)``).
    """
    depth = check_positive_int("depth", depth)
    s = _singular_values_np(a)
    s = s[s > rtol * (s.max() if s.size else 0.0)]
    return float(depth * np.sum(s ** (2.0 / depth)))


def deep_linear_weight_decay_optimum(
    a: Float[ArrayLike, "nL n0"] | Float[ArrayLike, " r"], depth: int, weight_decay: float
) -> Float[np.ndarray, " r"]:
    """End-to-end singular values of the global minimiser of ``||W_L...W_1 - A||_F^2 + lambda ||theta||^2``.

    This is the loss of :func:`weight_decay_loss` for a linear net on whitened inputs (``X^T X / N = I``) with
    targets ``y = A x``. Minimising over factorisations first gives ``lambda L sum_i s_i(W)^(2/L)``, and by
    von Neumann's trace inequality ``W`` shares ``A``'s singular vectors; each ``s_i = s_i(W)`` then minimises
    ``(s - a_i)^2 + lambda L s^(2/L)``, a scalar problem solved here exactly (root bracketing, and a
    comparison with ``s = 0``, a local minimum for ``L >= 3``). Every layer of the optimum has singular values
    ``s_i^(1/L)`` and ``||theta||^2 = L sum_i s_i^(2/L)``.

    Args:
        a: a matrix ``A`` or its singular values (``(r,)``, non-negative).
        depth: ``L``.
        weight_decay: ``lambda >= 0``.

    Returns:
        ``(r,)`` float64, the optimal ``s_i`` (``a_i`` at ``lambda = 0``).

    Example:
        >>> deep_linear_weight_decay_optimum([3.0, 1.0], 2, 0.5).tolist()
        [2.5, 0.5]

    References:
        Jacot, arXiv:2305.19008; von Neumann, Tomsk Univ. Rev. 1 (1937).
    """
    depth = check_positive_int("depth", depth)
    lam = check_weight_decay(weight_decay)
    a_vals = _singular_values_np(a)
    if lam == 0:
        return a_vals.copy()
    if depth == 1:
        return a_vals / (1.0 + lam)
    if depth == 2:
        return np.maximum(a_vals - lam, 0.0)

    p = (depth - 2) / depth  # stationarity: s + lambda s^-p = a, with a convex left side on s > 0

    def objective(s, ai):
        return (s - ai) ** 2 + lam * depth * s ** (2.0 / depth)

    s_min = (lam * p) ** (1.0 / (p + 1.0))  # minimiser of s + lambda s^-p
    out = np.zeros_like(a_vals)
    for i, ai in enumerate(a_vals):
        if ai <= s_min + lam * s_min ** (-p):
            continue  # no stationary point: s = 0 is the only minimum
        hi = ai  # s + lambda s^-p > a at s = a
        root = brentq(
            lambda s, ai=ai: s + lam * s ** (-p) - ai,
            s_min,
            hi,
            xtol=1e-300,
            rtol=4 * np.finfo(float).eps,
            maxiter=500,
        )
        out[i] = root if objective(root, ai) < objective(0.0, ai) else 0.0
    return out
