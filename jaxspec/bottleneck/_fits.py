"""The depth fit ``||theta||^2 = R0 L + R1`` of trained networks: the bottleneck rank and regularity terms.

References:
    Jacot, "Bottleneck Structure in Learned Features: Low-Dimension vs Regularity Tradeoff", NeurIPS 2023,
    arXiv:2305.19008.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from jaxspec._checks import InputError


class RankFit(NamedTuple):
    """Least-squares line ``||theta||^2 = R0 L + R1`` over depths.

    Attributes:
        r0: slope (bottleneck-rank estimate).
        r1: intercept (regularity estimate).
        r0_stderr: standard error of the slope (NaN with two depths).
        r1_stderr: standard error of the intercept (NaN with two depths).
        residuals: ``(num_depths,)`` data minus the line.
    """

    r0: float
    r1: float
    r0_stderr: float
    r1_stderr: float
    residuals: np.ndarray


def fit_rank_terms(depths: Sequence[int], norm_sq: Sequence[float]) -> RankFit:
    """Fit ``||theta||^2 = R0 L + R1`` by least squares over depths.

    Args:
        depths: ``(D,)`` depths ``L`` (at least two distinct).
        norm_sq: ``(D,)`` trained ``||theta||^2``.

    Returns:
        :class:`RankFit` (slope ``r0``, intercept ``r1`` and their standard errors from the residuals;
        ``residuals (D,)``).

    Example:
        >>> fit = fit_rank_terms([4, 8, 12], [9.0, 17.0, 25.0])
        >>> round(fit.r0, 6), round(fit.r1, 6)
        (2.0, 1.0)

    References:
        Jacot, arXiv:2305.19008 (``R(f; L) = L R0 + R1 + O(1/L)``).
    """
    d = np.asarray(depths, dtype=np.float64).ravel()
    y = np.asarray(norm_sq, dtype=np.float64).ravel()
    if d.shape != y.shape or d.size < 2 or np.unique(d).size < 2:
        raise InputError("fit_rank_terms needs matching depths and norms with at least two distinct depths")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(y))):
        raise InputError("depths and norms must be finite")
    design = np.stack([d, np.ones_like(d)], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - design @ coef
    if d.size > 2:
        sigma2 = float(residuals @ residuals) / (d.size - 2)
        cov = sigma2 * np.linalg.inv(design.T @ design)
        r0_se, r1_se = float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1]))
    else:
        r0_se = r1_se = float("nan")
    return RankFit(float(coef[0]), float(coef[1]), r0_se, r1_se, residuals)
