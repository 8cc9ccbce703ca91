"""The collapsed optimum of the deep linear UFM in closed form, and everything predicted from it.

At the collapsed optimum the class means form an orthogonal frame, ``f = gamma Y`` with the end-to-end gain
``gamma`` solving

    gamma^(L-1) (1 - gamma)^(L+1) = (lam_W K)^L (lam_H K n)        (the root nearest 1),

and ``W_l = sigma U U^T`` (``l < L``), ``W_L = sigma U^T``, ``H = s U (x) 1_n^T`` for any ``d x K``
orthonormal ``U``, with ``sigma^2 = gamma (1 - gamma) / (lam_W K)`` and
``s^2 = gamma (1 - gamma) / (lam_H K n)``. Then
``loss = (1 - gamma)^2 / 2 + L lam_W K sigma^2 / 2 + lam_H K n s^2 / 2``; each layer's data Hessian is
``(A^T A) (x) Av[h h^T]`` of rank ``K^2`` with all non-zero eigenvalues ``lam_W gamma / (1 - gamma)``; every
Gram matrix ``W_l^T W_l`` has ``K`` eigenvalues ``sigma^2`` and ``H H^T`` has ``K`` eigenvalues ``n s^2``;
the Gauss-Newton class / cross-class / within-class parts have ranks ``K``, ``K(K-1)``, ``0``; the data
gradient lies on the ``K`` class directions with weight ``1/K`` each.

The left side is largest at ``gamma* = (L-1)/(2L)``; when the right side exceeds that maximum there is no
collapsed critical point and the only minimiser is zero (loss 1/2). Computed on the host in float64: this is
the theory column, not the simulation.

References:
    Garrod & Keating, "Unifying low dimensional spectra in deep learning", arXiv:2404.06106 (deep UFM
    optimum, layer-wise Hessian, Gauss-Newton split, gradient alignment).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float
from scipy.optimize import brentq

from jaxspec._checks import InputError
from jaxspec.ufm._model import UFM, UFMParams


class CollapsedOptimum(NamedTuple):
    """Closed-form predictions at the collapsed optimum of a deep linear UFM (host floats).

    Attributes:
        gamma: end-to-end gain (``f = gamma Y``).
        one_minus_gamma: ``1 - gamma`` to full relative precision (it sets the outlier
            ``lam_W gamma/(1-gamma)``).
        sigma2: squared scale of every weight matrix (also the non-zero eigenvalue of each ``W_l^T W_l``).
        s2: squared norm of each feature column.
        loss: total regularised loss at the optimum.
        data_loss: ``(1 - gamma)^2 / 2``.
        outlier: the ``K^2`` non-zero eigenvalues of each layer's data Hessian, ``lam_W gamma / (1 - gamma)``.
        outlier_multiplicity: ``K^2``.
        weight_gram: non-zero eigenvalue of ``W_l^T W_l`` (``= sigma2 = (lam_H / lam_W) n s2``).
        feature_gram: non-zero eigenvalue of ``H H^T`` (``= n s2``).
        gram_multiplicity: ``K``.
        gauss_newton_ranks: ``(K, K(K-1), 0)`` for the class, cross-class and within-class parts.
        gradient_weight: ``1/K``, the weight of the data gradient on each class direction.
        is_global: whether the collapsed loss is below the loss 1/2 of the zero solution.
    """

    gamma: float
    one_minus_gamma: float
    sigma2: float
    s2: float
    loss: float
    data_loss: float
    outlier: float
    outlier_multiplicity: int
    weight_gram: float
    feature_gram: float
    gram_multiplicity: int
    gauss_newton_ranks: tuple[int, int, int]
    gradient_weight: float
    is_global: bool


def solve_gamma(num_classes: int, per_class: int, depth: int, lam_w: float, lam_h: float) -> float:
    """The root nearest 1 of ``gamma^(L-1) (1-gamma)^(L+1) = (lam_W K)^L (lam_H K n)``.

    Solved for ``t = 1 - gamma`` in log form, so that tiny regularisation (``gamma`` close to 1) keeps full
    relative precision in ``1 - gamma``.

    Args:
        num_classes: ``K``.
        per_class: ``n``.
        depth: ``L``.
        lam_w: ``lam_W > 0``.
        lam_h: ``lam_H > 0``.

    Returns:
        ``gamma`` in ``((L-1)/(2L), 1)``.

    Raises:
        InputError: when no collapsed solution exists (regularisation too strong).

    Example:
        >>> round(solve_gamma(3, 40, 5, 1e-2, 1e-2), 6)
        0.942277

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    return 1.0 - _one_minus_gamma(num_classes, per_class, depth, lam_w, lam_h)


def _one_minus_gamma(num_classes: int, per_class: int, depth: int, lam_w: float, lam_h: float) -> float:
    K, n, L = num_classes, per_class, depth
    log_rhs = L * math.log(lam_w * K) + math.log(lam_h * K * n)
    if L == 1:  # (1 - gamma)^2 = rhs, a collapsed solution needs gamma > 0
        if log_rhs >= 0:
            raise InputError(
                f"no collapsed optimum: lam_W K * lam_H K n = {math.exp(log_rhs):.4g} >= 1; "
                f"the only minimiser is zero (weaken lam_W or lam_H)"
            )
        return math.exp(0.5 * log_rhs)
    # In u = log(1 - gamma) the left side is (L-1) log(1 - e^u) + (L+1) u: no underflow for tiny lam.
    u_peak = math.log1p(-(L - 1) / (2.0 * L))

    def log_lhs(u: float) -> float:
        return (L - 1) * math.log1p(-math.exp(u)) + (L + 1) * u

    peak = log_lhs(u_peak)
    if log_rhs > peak:
        raise InputError(
            f"no collapsed optimum: (lam_W K)^L (lam_H K n) = {math.exp(log_rhs):.4g} exceeds "
            f"the maximum {math.exp(peak):.4g} of gamma^(L-1)(1-gamma)^(L+1); the only "
            f"minimiser is zero (weaken lam_W or lam_H)"
        )
    if log_rhs == peak:
        return math.exp(u_peak)
    # log_lhs increases from -inf (u -> -inf) to its peak at u_peak; the root nearest gamma = 1 is below it.
    u_low = min(u_peak, log_rhs / (L + 1)) - 1.0
    while log_lhs(u_low) > log_rhs:
        u_low -= 1.0
    u = brentq(
        lambda x: log_lhs(x) - log_rhs, u_low, u_peak, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500
    )
    return math.exp(u)


def collapsed_optimum(ufm: UFM) -> CollapsedOptimum:
    """Closed-form predictions at the collapsed optimum of the deep linear UFM.

    Args:
        ufm: the model (its activation is ignored: these are the linear UFM's values; for ReLU they describe
            the non-negative collapsed critical point built by :func:`collapsed_params`).

    Returns:
        :class:`CollapsedOptimum`.

    Example:
        >>> from jaxspec.ufm import make_ufm
        >>> opt = collapsed_optimum(make_ufm(3, 40, 5, 1e-2))
        >>> round(opt.loss, 6), round(opt.outlier, 6), round(opt.weight_gram, 6)
        (0.164838, 0.163243, 1.813021)

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    K, n, L = ufm.num_classes, ufm.per_class, ufm.depth
    lam_w, lam_h = float(ufm.lam_w), float(ufm.lam_h)
    one_minus = _one_minus_gamma(K, n, L, lam_w, lam_h)
    gamma = 1.0 - one_minus
    g1 = gamma * one_minus
    sigma2 = g1 / (lam_w * K)
    s2 = g1 / (lam_h * K * n)
    data = 0.5 * one_minus**2
    total = data + 0.5 * L * lam_w * K * sigma2 + 0.5 * lam_h * K * n * s2
    return CollapsedOptimum(
        gamma=gamma,
        one_minus_gamma=one_minus,
        sigma2=sigma2,
        s2=s2,
        loss=total,
        data_loss=data,
        outlier=lam_w * gamma / one_minus,
        outlier_multiplicity=K * K,
        weight_gram=sigma2,
        feature_gram=n * s2,
        gram_multiplicity=K,
        gauss_newton_ranks=(K, K * (K - 1), 0),
        gradient_weight=1.0 / K,
        is_global=total < 0.5,
    )


def collapsed_params(ufm: UFM, basis: Float[ArrayLike, "d K"] | None = None) -> UFMParams:
    """The collapsed optimum as parameters: ``W_l = sigma U U^T``, ``W_L = sigma U^T``, ``H = s U (x) 1_n^T``.

    Args:
        ufm: the model.
        basis: ``(d, K)`` orthonormal ``U`` (default: the first ``K`` standard basis vectors, which are
            non-negative, so the point is also a critical point of the ReLU UFM).

    Returns:
        :class:`UFMParams` in the model's dtype.

    Example:
        >>> from jaxspec.ufm import make_ufm, loss
        >>> ufm = make_ufm(3, 40, 5, 1e-2, width=4)
        >>> round(float(loss(ufm, collapsed_params(ufm))), 5)
        0.16484

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    opt = collapsed_optimum(ufm)
    d, K, L = ufm.width, ufm.num_classes, ufm.depth
    dt = jnp.dtype(ufm.dtype)
    if basis is None:
        u = jnp.eye(d, K, dtype=dt)
    else:
        u = jnp.asarray(basis, dt)
        if u.shape != (d, K):
            raise InputError(f"basis must have shape (d, K) = {(d, K)}, got {u.shape}")
        if not np.allclose(np.asarray(u.T @ u, float), np.eye(K), atol=1e-5):
            raise InputError("basis must have orthonormal columns")
    sigma, s = math.sqrt(opt.sigma2), math.sqrt(opt.s2)
    hidden = jnp.broadcast_to(sigma * (u @ u.T), (L - 1, d, d))
    features = s * jnp.repeat(u, ufm.per_class, axis=1)
    return UFMParams(features=features, hidden=jnp.asarray(hidden), head=sigma * u.T)
