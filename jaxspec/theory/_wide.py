"""The wide-first regime: the spectrum of ``J J^T`` when the width grows before the depth.

Normalise ``J J^T`` to spectral mean 1 (``sigma2 p = 1``). For free factors of mean 1 the variances of the
spectral distributions add under multiplication (``phi(abab) = phi(a^2) + phi(b^2) - 1``), and each layer
``D W`` contributes ``(1/p - 1)`` from the gates plus ``1`` from a Gaussian ``W W^T`` (Marchenko-Pastur) or
``0`` from an orthogonal one. Hence (Pennington, Schoenholz, Ganguli)

    Var = L   (linear, Gaussian),   0 (linear, orthogonal),   2L (ReLU, Gaussian),   L (ReLU, orthogonal),

ReLU being gates with ``p = 1/2`` in this limit. The linear Gaussian spectrum is Fuss-Catalan: moments
``binom((L+1)m, m)/(Lm + 1)``, top edge ``(L+1)^(L+1)/L^L``. There is no exponential separation here; the
crossover to the Lyapunov regime is ``L/N ~ 1``.

At finite width the exact second moment of the masked Gaussian product follows from a linear recursion on
``(E tr A^2, E (tr A)^2)`` for ``A_l = D_l W_l A_{l-1} W_l^T D_l`` (Wick's theorem; gates independent of the
weights): :func:`jjt_moments`.

References:
    Pennington, Schoenholz, Ganguli, "Resurrecting the sigmoid in deep learning through dynamical isometry",
    NeurIPS 2017, and "The emergence of spectral universality in deep networks", AISTATS 2018;
    Penson, Zyczkowski, "Product of Ginibre matrices: Fuss-Catalan and Raney distributions", PRE 83 (2011).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special

from jaxspec._checks import InputError, check_choice, check_int, check_positive_int
from jaxspec.theory._validation import check_probability, check_sigma2, check_width

ACTIVATIONS = ("linear", "relu")
WEIGHTS = ("gaussian", "orthogonal")


def wide_spectral_variance(
    depth: int, *, activation: str = "linear", weights: str = "gaussian", p: float | None = None
) -> float:
    """Variance of the spectrum of ``J J^T`` normalised to mean 1, width to infinity first.

    Args:
        depth: number of layers ``L``.
        activation: ``"linear"`` or ``"relu"`` (gates with ``p = 1/2``).
        weights: ``"gaussian"`` or ``"orthogonal"``.
        p: gate probability of a masked product (overrides ``activation``).

    Returns:
        ``L [(1/p - 1) + 1_{Gaussian}]``: ``L``, ``0``, ``2L``, ``L`` for linear/ReLU x Gaussian/orthogonal.

    Example:
        >>> [wide_spectral_variance(3, activation=a, weights=w) for a in ("linear", "relu")
        ...  for w in ("gaussian", "orthogonal")]
        [3.0, 0.0, 6.0, 3.0]

    References:
        Pennington, Schoenholz, Ganguli, NeurIPS 2017 and AISTATS 2018.
    """
    depth = check_positive_int("depth", depth)
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("weights", weights, WEIGHTS)
    if p is None:
        p = 0.5 if activation == "relu" else 1.0
    p = check_probability(p)
    per_layer = (1.0 / p - 1.0) + (1.0 if weights == "gaussian" else 0.0)
    return float(depth * per_layer)


def linear_gaussian_top_edge(depth: int) -> float:
    """Top edge ``(L+1)^(L+1) / L^L`` of the Fuss-Catalan spectrum of ``J J^T`` (linear Gaussian, mean 1).

    Example:
        >>> linear_gaussian_top_edge(1)
        4.0

    References:
        Penson, Zyczkowski, PRE 83 (2011).
    """
    depth = check_positive_int("depth", depth)
    return float(np.exp((depth + 1) * np.log(depth + 1.0) - depth * np.log(float(depth))))


def fuss_catalan_moment(depth: int, order: int, *, log: bool = False) -> float:
    """``m``-th moment ``binom((L+1)m, m) / (Lm + 1)`` of the wide linear Gaussian ``J J^T`` spectrum.

    Args:
        depth: number of layers ``L``.
        order: the moment's order ``m``.
        log: return the logarithm (finite for any order).

    Returns:
        The moment (or its logarithm), a float.

    Example:
        >>> round(fuss_catalan_moment(2, 2), 12)
        3.0

    References:
        Penson, Zyczkowski, PRE 83 (2011).
    """
    depth = check_positive_int("depth", depth)
    order = check_int("order", order, minimum=0)
    log_moment = (
        special.gammaln((depth + 1) * order + 1)
        - special.gammaln(order + 1)
        - special.gammaln(depth * order + 1)
        - np.log(depth * order + 1.0)
    )
    if not log and log_moment > np.log(np.finfo(np.float64).max):
        raise InputError(
            f"the Fuss-Catalan moment exp({log_moment:.2f}) of order {order} at depth {depth} exceeds "
            "float64's largest number exp(709.78); ask for log=True"
        )
    return float(log_moment) if log else float(np.exp(log_moment))


class JJtMoments(NamedTuple):
    """Exact finite-width moments of ``J J^T`` for a masked Gaussian product of width ``n``.

    Attributes:
        mean: ``E (1/n) tr J J^T``.
        second: ``E (1/n) tr (J J^T)^2``.
        spectral_variance: ``second / mean^2 - 1`` (tends to :func:`wide_spectral_variance` as ``n`` grows).
    """

    mean: float
    second: float
    spectral_variance: float


def jjt_moments(n: int, depth: int, *, p: float = 1.0, sigma2: float | None = None) -> JJtMoments:
    """Exact ``E (1/n) tr (J J^T)^{1,2}`` for ``J = D_L W_L ... D_1 W_1`` at finite width ``n``.

    ``W_l`` has iid ``N(0, sigma2/n)`` entries, ``D_l`` iid Bernoulli(``p``) gates. With ``B = W A W^T``
    (``s = sigma2/n``): ``E tr B^2 = s^2[n (tr A)^2 + (n^2 + n) tr A^2]``, ``E (tr B)^2 = s^2[n^2 (tr A)^2 +
    2n tr A^2]``, ``E sum_i B_ii^2 = n s^2[(tr A)^2 + 2 tr A^2]``, and the gates mix these with weights
    ``p^2`` and ``p - p^2``.

    Args:
        n: width.
        depth: number of layers.
        p: gate probability.
        sigma2: weight variance times fan-in (default ``1/p``, spectral mean 1).

    Returns:
        :class:`JJtMoments`.

    Example:
        >>> round(jjt_moments(10**6, 3).spectral_variance, 4)
        3.0

    References:
        Pennington, Schoenholz, Ganguli, AISTATS 2018 (free multiplicative convolution); Wick's theorem.
    """
    n = check_width(n)
    depth = check_positive_int("depth", depth)
    p = check_probability(p)
    sigma2 = 1.0 / p if sigma2 is None else check_sigma2(sigma2)
    n = float(n)
    s = sigma2 / n
    tr_sq, sq_tr, tr = n, n * n, n  # A_0 = I: tr A^2, (tr A)^2, tr A
    for _ in range(depth):
        diag_sq = n * s * s * (sq_tr + 2.0 * tr_sq)
        new_tr_sq = p * p * s * s * (n * sq_tr + (n * n + n) * tr_sq) + (p - p * p) * diag_sq
        new_sq_tr = p * p * s * s * (n * n * sq_tr + 2.0 * n * tr_sq) + (p - p * p) * diag_sq
        tr_sq, sq_tr, tr = new_tr_sq, new_sq_tr, p * s * n * tr
    mean, second = tr / n, tr_sq / n
    if not (np.isfinite(second) and mean > 0 and np.isfinite(mean)):
        raise InputError(
            f"the moments of J J^T leave float64's range at depth {depth} (sigma2 = {sigma2}, p = {p}, "
            f"n = {int(n)}): E tr (J J^T)^2 grows like (sigma2 p)^(2L) (1 + O(1/n))^L"
        )
    return JJtMoments(mean, second, second / mean**2 - 1.0)
