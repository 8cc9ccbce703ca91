"""Scaling and separation diagnostics of deep Jacobians, beside their theory.

Given ``log s_i(J_l)`` for every depth prefix ``l`` (from :func:`jaxspec.networks.jacobian_spectrum`,
:func:`jaxspec.analysis.product_log_svals` or a dense route), this module computes

* the per-layer scaling ``(1/l) log s_i(J_l)``, which tends to the Lyapunov exponent ``lambda_i``;
* fitted per-index slopes of ``log s_i(J_l)`` against ``l`` with standard errors (one least-squares slope per
  independent sample, then the mean and its standard error across samples: the prefixes of one sample are a
  random walk, so the ordinary least-squares error of a single fit would be wrong);
* separation ratios ``log(s_i / s_{i+1})`` against ``l / N``;
* the matching theory: ``lambda_i`` from :mod:`jaxspec.theory` (masked ``p = 1/2`` model for zero-bias ReLU
  networks, Newman for linear ones), the finite-depth offsets ``c_i`` of ``E log s_i(J_l) = l lambda_i + c_i``
  and the predicted separation ``l (lambda_i - lambda_{i+1}) + c_i - c_{i+1}`` (:mod:`jaxspec.theory`,
  [math §2](https://jaxspec.github.io/jaxspec/math/#s2)).

References:
    Newman, CMP 104 (1986); Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026,
    arXiv:2602.12384 (masked closed form, finite-depth offsets, separation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from jaxtyping import ArrayLike, Float

from jaxspec._checks import InputError, check_choice, check_int, check_positive, check_widths
from jaxspec.theory import binomial_count_law, count_law_theory, fixed_count_law, singular_value_offsets


def per_layer_log_svals(log_svals: Float[ArrayLike, "*batch L k"]) -> Float[np.ndarray, "*batch L k"]:
    """``(1/l) log s_i(J_l)`` from ``(..., L, k)`` prefix log singular values (``l = 1..L`` along axis -2).

    Example:
        >>> per_layer_log_svals(np.array([[-0.5], [-1.0]])).tolist()
        [[-0.5], [-0.5]]
    """
    log_svals = np.asarray(log_svals, dtype=np.float64)
    depth = log_svals.shape[-2]
    return log_svals / np.arange(1, depth + 1)[:, None]


class SlopeFit(NamedTuple):
    """Per-index slopes of ``log s_i(J_l)`` against ``l``.

    Attributes:
        slope: ``(k,)`` mean of the per-sample least-squares slopes (an estimate of ``lambda_i``).
        stderr: ``(k,)`` standard error of that mean across samples (``std(ddof=1) / sqrt(S)``).
        intercept: ``(k,)`` mean intercept (an estimate of the offset ``c_i`` when the fit window starts
            where ``l * gap >> 1``).
        per_sample: ``(S, k)`` the individual slopes.
    """

    slope: Float[np.ndarray, " k"]
    stderr: Float[np.ndarray, " k"]
    intercept: Float[np.ndarray, " k"]
    per_sample: Float[np.ndarray, "S k"]


def fit_slopes(log_svals: Float[ArrayLike, "S L k"], *, start: int = 1, stop: int | None = None) -> SlopeFit:
    """Least-squares slope of ``log s_i(J_l)`` on ``l`` per sample and index, averaged over samples.

    Args:
        log_svals: ``(S, L, k)`` prefix log singular values of ``S`` independent samples (seeds; inputs of one
            network are not independent, so fold them into the statistic with care).
        start: first depth ``l`` in the fit (1-based).
        stop: last depth (default ``L``).

    Returns:
        :class:`SlopeFit`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> walk = np.cumsum(-0.1 + 0.01 * rng.normal(size=(8, 100, 2)), axis=1)
        >>> bool(abs(fit_slopes(walk).slope[0] + 0.1) < 0.01)
        True
    """
    log_svals = np.asarray(log_svals, dtype=np.float64)
    if log_svals.ndim != 3:
        raise InputError(f"log_svals must be (samples, depth, k), got shape {log_svals.shape}")
    depth = log_svals.shape[1]
    if depth < 2:
        raise InputError(f"fitting a slope needs at least two depths, got {depth}")
    start = check_int("start", start, minimum=1, maximum=depth - 1)
    stop = depth if stop is None else check_int("stop", stop, minimum=start + 1, maximum=depth)
    l = np.arange(start, stop + 1, dtype=np.float64)
    y = log_svals[:, start - 1 : stop]
    lc = l - l.mean()
    slopes = np.einsum("l,slk->sk", lc, y - y.mean(axis=1, keepdims=True)) / np.sum(lc**2)
    intercepts = y.mean(axis=1) - slopes * l.mean()
    n = slopes.shape[0]
    stderr = slopes.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(slopes.shape[1], np.nan)
    return SlopeFit(slopes.mean(0), stderr, intercepts.mean(0), slopes)


def separation_ratios(
    log_svals: Float[ArrayLike, "*batch L k"], width: int | None = None
) -> tuple[Float[np.ndarray, "*batch L k-1"], Float[np.ndarray, " L"] | None]:
    """``log(s_i / s_{i+1})`` for every prefix, and the depth axis ``l / N``.

    Args:
        log_svals: ``(..., L, k)`` prefix log singular values.
        width: ``N`` for the ``l / N`` axis (optional).

    Returns:
        ``(log_ratios (..., L, k - 1), l_over_n (L,) or None)``.

    References:
        Haas et al., arXiv:2602.12384 (separation; [math §2](https://jaxspec.github.io/jaxspec/math/#s2)).
    """
    log_svals = np.asarray(log_svals, dtype=np.float64)
    ratios = log_svals[..., :-1] - log_svals[..., 1:]
    depth = log_svals.shape[-2]
    width = None if width is None else check_int("width", width, minimum=1)
    return ratios, None if width is None else np.arange(1, depth + 1) / float(width)


class NetworkTheory(NamedTuple):
    """Closed-form predictions for a network or ensemble (``None`` fields where no closed form is known).

    Attributes:
        exponents: ``(k,)`` Lyapunov exponents ``lambda_i`` (per-layer, averaged over the layers' laws).
        per_layer_variance: ``(k,)`` per-layer variance of ``log|R_ii|``.
        offsets: ``(k,)`` finite-depth offsets ``c_i`` (uniform width only).
        model: a one-line description of the theory used.
    """

    exponents: Float[np.ndarray, " k"] | None
    per_layer_variance: Float[np.ndarray, " k"] | None
    offsets: Float[np.ndarray, " k"] | None
    model: str


def network_theory(
    widths: Sequence[int],
    *,
    activation: str = "relu",
    sigma2: float = 2.0,
    k: int | None = None,
    final_activation: bool = False,
    bias: bool = False,
    condition: str = "K>=i",
) -> NetworkTheory:
    """The theory next to a network's Jacobian spectrum at initialisation.

    Zero-bias ReLU with sign-symmetric iid weights is the masked model with ``p = 1/2`` for every volume
    statistic (``K_l ~ Bin(n_l, 1/2)``); a linear last layer has ``K = n_L``. Linear networks are Gaussian
    products. Leaky ReLU and biased networks have no closed form here (``exponents=None``).

    Args:
        widths: ``(n_0, ..., n_L)``.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        sigma2: weight variance times fan-in (He: 2).
        k: number of indices (default ``min(widths)``).
        final_activation: whether the last layer is gated too.
        bias: whether the network has nonzero biases.
        condition: rank-collapse convention (as for the engine).

    Returns:
        :class:`NetworkTheory`.

    Example:
        >>> np.round(network_theory((32,) * 11, k=2, final_activation=True).exponents, 6)
        array([-0.04127 , -0.077195])

    References:
        Haas et al., arXiv:2602.12384 ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)); Newman,
        CMP 104 (1986).
    """
    widths = check_widths(widths)
    k = min(widths) if k is None else check_int("k", k, minimum=1, maximum=min(widths))
    check_choice("activation", activation, ("relu", "leaky_relu", "linear"))
    sigma2 = check_positive("sigma2", sigma2, allow_array=False)
    depth = len(widths) - 1
    uniform = len(set(widths)) == 1
    offsets = singular_value_offsets(widths[0], k) if uniform else None
    if bias or activation == "leaky_relu":
        return NetworkTheory(None, None, offsets, f"no closed form for {activation} with bias={bias}")
    laws = []
    for l in range(depth):
        fan_in, fan_out = widths[l], widths[l + 1]
        gated = activation == "relu" and (final_activation or l < depth - 1)
        laws.append(
            binomial_count_law(fan_in, fan_out, 0.5) if gated else fixed_count_law(fan_in, fan_out, fan_out)
        )
    result = count_law_theory(laws, k, sigma2=sigma2, condition=condition)
    model = "masked p=1/2 (ReLU)" if activation == "relu" else "Gaussian (Newman)"
    return NetworkTheory(result.exponents, result.variance, offsets, model)


def zscores(
    estimate: Float[ArrayLike, "*shape"],
    expected: Float[ArrayLike, "*shape"],
    stderr: Float[ArrayLike, "*shape"],
) -> Float[np.ndarray, "*shape"]:
    """``(estimate - expected) / stderr`` elementwise (NaN where ``stderr`` is not positive).

    Example:
        >>> zscores([1.0, 2.0], [0.5, 2.0], [0.25, 0.0]).tolist()
        [2.0, nan]
    """
    stderr = np.asarray(stderr, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(stderr > 0, (np.asarray(estimate) - np.asarray(expected)) / stderr, np.nan)
