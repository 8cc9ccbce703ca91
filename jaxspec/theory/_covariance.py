"""Covariance across indices of the QR exponent estimates of a masked product.

Given the layer's active count ``K``, the ``log|R_ii|`` are independent across ``i`` (Bartlett), with means
``m_i(K) = (1/2) log(2 sigma2 / n) + (1/2) psi((K - i + 1)/2)``; they are correlated within a layer only
through ``K``. With ``a_i(K)`` the indicator that the convention counts the layer for index ``i`` and
``P_i = E a_i``, the engine's estimate ``lambda_hat_i`` (a ratio of sums over ``L`` independent layers) has,
to first order in ``1/L``,

    L Cov(lambda_hat_i, lambda_hat_j)
        = E[a_i a_j ((m_i - lambda_i)(m_j - lambda_j) + delta_ij psi1/4)] / (P_i P_j),

averaged over the layers' laws; the diagonal is ``v_i / P_i`` (:func:`jaxspec.theory.predicted_stderr`).

References:
    Newman, CMP 104 (1986); Haas, Gatine, Cosse, Bouraoui, arXiv:2602.12384
    ([math §2](https://jaxspec.github.io/jaxspec/math/#s2)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from jaxtyping import ArrayLike, Float
from scipy import special

from jaxspec._checks import check_positive_int
from jaxspec.theory._lyapunov import (
    CountLaw,
    check_condition,
    count_law_theory,
    ensemble_count_laws,
    ensemble_theory,
    expected_counted_fraction,
    law_terms,
    relu_survival,
)
from jaxspec.theory._validation import check_k


def layer_covariance(
    laws: Sequence[CountLaw], k: int, *, sigma2: float | Float[ArrayLike, " L"] = 1.0, condition: str = "K>=i"
) -> Float[np.ndarray, "k k"]:
    """``(k, k)`` covariance per layer ``Sigma`` of the exponent estimates: ``Cov = Sigma / (L seeds)``.

    Args:
        laws: one :class:`jaxspec.theory.CountLaw` per layer (a single law stands for any depth).
        k: number of indices.
        sigma2: weight variance times fan-in (scalar or per layer).
        condition: ``"K>=i"``, ``"K>=k"`` or ``"none"`` (strict: NaN where the exponent is ``-inf``).

    Returns:
        ``(k, k)`` float64 matrix whose diagonal is ``v_i / P_i``.

    Example:
        >>> from jaxspec.theory import fixed_count_law, gaussian_variance
        >>> np.allclose(layer_covariance([fixed_count_law(4, 4, 4)], 4), np.diag(gaussian_variance(4)))
        True

    References:
        Haas et al., arXiv:2602.12384 (within-layer correlations through ``K``).
    """
    check_condition(condition)
    base = count_law_theory(laws, k, sigma2=sigma2, condition=condition)
    lam = np.where(np.isfinite(base.exponents), base.exponents, 0.0)
    laws = list(laws)
    sigma2 = np.broadcast_to(np.asarray(sigma2, float), (len(laws),))
    total = np.zeros((k, k))
    for law, s2 in zip(laws, sigma2, strict=True):
        _, admit, safe, mean_term, pmf = law_terms(law, k, s2, condition)
        centred = np.where(admit, mean_term - lam[:, None], 0.0)  # (k, support)
        weighted = centred * pmf
        total += weighted @ centred.T
        total += np.diag((np.where(admit, 0.25 * special.polygamma(1, safe), 0.0) * pmf).sum(1))
    total /= len(laws)
    prob = base.prob_counted
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = total / np.outer(prob, prob)
    if condition == "none":
        dead = ~np.isfinite(base.exponents)
        cov[dead, :] = np.nan
        cov[:, dead] = np.nan
    return cov


def estimator_covariance(
    ensemble, k: int | None = None, *, seeds: int = 1, condition: str = "K>=i"
) -> Float[np.ndarray, "k k"] | None:
    """``(k, k)`` predicted covariance of :func:`jaxspec.lyapunov_spectrum`'s mean exponents, or ``None``.

    ``layer_covariance / (L seeds)`` (``reortho_every = 1``); Haar-orthogonal ensembles give zeros.

    Args:
        ensemble: an ensemble of :mod:`jaxspec.ensembles`.
        k: number of indices (default: the smallest width).
        seeds: number of independent seeds averaged.
        condition: ``"K>=i"``, ``"K>=k"`` or ``"none"``.

    Returns:
        ``(k, k)`` float64 matrix, or ``None`` where no closed form is known.

    Example:
        >>> import jaxspec
        >>> cov = estimator_covariance(jaxspec.masked(width=8, depth=100), 3, seeds=4)
        >>> cov.shape
        (3, 3)

    References:
        Haas et al., arXiv:2602.12384 ([math §2](https://jaxspec.github.io/jaxspec/math/#s2)).
    """
    check_condition(condition)
    seeds = check_positive_int("seeds", seeds)
    theory = ensemble_theory(ensemble, k, condition)
    if theory is None:
        return None
    k = check_k(k, min(ensemble.widths))
    depth = len(ensemble.widths) - 1
    laws = ensemble_count_laws(ensemble)
    if laws is None:
        # A closed form without count laws (Haar layers): independent indices with the hook's variances
        # (zero for Haar: every exponent is exactly log sigma).
        return np.diag(theory.variance) / (depth * seeds)
    cov = layer_covariance(laws, k, sigma2=float(ensemble.sigma2), condition=condition) / (depth * seeds)
    if not np.all(relu_survival(ensemble) == 1.0):
        # Dead ReLU networks stop counting layers: first order, the counted fraction f_i replaces P_i.
        fraction = expected_counted_fraction(ensemble, k, condition)
        prob = theory.prob_counted
        cov = cov * np.outer(prob, prob) * relu_survival(ensemble).mean() / np.outer(fraction, fraction)
    return cov
