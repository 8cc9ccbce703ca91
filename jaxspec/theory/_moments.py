"""Exact moments of ``||J u||^2`` for zero-bias ReLU networks (and any masked Gaussian product).

For a fixed unit input direction ``u`` and sign-symmetric iid Gaussian weights, layer ``l`` (fan-in ``n_l``,
``K_{l+1}`` active units) multiplies ``||J u||^2`` by an independent ``(sigma2 / n_l) chi^2_{K_{l+1}}``
([math §2](https://jaxspec.github.io/jaxspec/math/#s2)), so with He init (``sigma2 = 2``, ``K ~ Bin(n, 1/2)``)

    E ||J u||^2 = prod_l sigma2 E[K_{l+1}] / n_l            (= 1 for equal widths),
    E ||J u||^4 = prod_l sigma2^2 E[K(K + 2)] / n_l^2      (= prod_l (1 + 5/n_l) for equal widths),
    E ||J u||^{2m} = prod_l (sigma2 / n_l)^m E[K (K+2) ... (K + 2m - 2)],
    E log ||J u||^2 = sum_l [log(2 sigma2 / n_l) + E psi(K/2)],   Var = sum_l [E psi1(K/2) + Var psi(K/2)],

the log moments conditioned on every ``K_l >= 1`` (else ``J u = 0``; that probability is returned). Hanin and
Nica's large-width forms ``-(5/2) beta`` and ``5 beta`` (``beta = sum_l 1/n_l``) are offered as an option;
they are poor at small widths.

References:
    Hanin, Nica, "Products of many large random matrices and gradients in deep neural networks", CMP 376
    (2020); Haas, Gatine, Cosse, Bouraoui, arXiv:2602.12384.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from jaxtyping import ArrayLike, Float
from scipy import special

from jaxspec._checks import LOG_FLOAT64_MAX, InputError, check_int, check_widths
from jaxspec.theory._lyapunov import CountLaw, _check_laws, _per_layer_sigma2, count_laws


class LogNormMoments(NamedTuple):
    """Moments of ``||J u||^2`` for a fixed unit ``u``.

    Attributes:
        mean: ``E log||J u||^2`` given ``J u != 0``.
        variance: ``Var log||J u||^2`` given ``J u != 0``.
        second: ``E ||J u||^2``.
        fourth: ``E ||J u||^4``.
        prob_nonzero: ``P(every K_l >= 1)``.
        per_layer_mean: ``(L,)`` per-layer contributions to ``mean``.
        per_layer_variance: ``(L,)`` per-layer contributions to ``variance``.
        log_second: ``log E ||J u||^2`` (finite where ``second`` overflows float64 to ``inf``).
        log_fourth: ``log E ||J u||^4`` (likewise).
    """

    mean: float
    variance: float
    second: float
    fourth: float
    prob_nonzero: float
    per_layer_mean: Float[np.ndarray, " L"]
    per_layer_variance: Float[np.ndarray, " L"]
    log_second: float = float("nan")
    log_fourth: float = float("nan")


def _rising_even(counts: np.ndarray, m: int) -> np.ndarray:
    """``K (K+2) ... (K+2m-2) = E[(chi^2_K)^m]``."""
    out = np.ones_like(counts, dtype=float)
    for j in range(m):
        out = out * (counts + 2.0 * j)
    return out


def norm_power_moment(
    laws: Sequence[CountLaw], power: int, *, sigma2: float | Float[ArrayLike, " L"] = 2.0, log: bool = False
) -> float:
    """``E ||J u||^{2 power} = prod_l (sigma2_l / n_l)^power E[K (K+2) ... (K + 2 power - 2)]`` (exact).

    Args:
        laws: one :class:`jaxspec.theory.CountLaw` per layer.
        power: the (non-negative integer) power ``m`` of ``||J u||^2``.
        sigma2: weight variance times fan-in (scalar or per layer).
        log: return ``log`` of the moment, summed over layers in logs (finite at any depth).

    Returns:
        The moment (or its logarithm), a float.

    Raises:
        InputError: the moment exceeds float64 (``log > 709.78``) and ``log`` is false.

    Example:
        >>> from jaxspec.theory import count_laws
        >>> laws = count_laws((8, 8, 8, 8), p=0.5)
        >>> round(norm_power_moment(laws, 2), 10) == round((1 + 5 / 8) ** 3, 10)
        True

    References:
        Hanin, Nica, CMP 376 (2020); [math §2](https://jaxspec.github.io/jaxspec/math/#s2).
    """
    power = check_int("power", power, minimum=0)
    log_total = _log_power_moment(_check_laws(laws), power, sigma2)
    if log:
        return log_total
    if log_total > LOG_FLOAT64_MAX:
        raise InputError(
            f"E ||J u||^{2 * power} = exp({log_total:.2f}) exceeds float64's largest number "
            f"exp({LOG_FLOAT64_MAX:.2f}); ask for log=True"
        )
    return float(np.exp(log_total))


def _log_power_moment(laws: list[CountLaw], power: int, sigma2) -> float:
    sigma2 = _per_layer_sigma2(sigma2, len(laws))
    total = 0.0
    done: dict[tuple[int, int, float], float] = {}
    with np.errstate(divide="ignore"):  # a layer that is dead with probability one: log 0 = -inf
        for law, s2 in zip(laws, sigma2, strict=True):
            key = (law.fan_in, id(law.pmf), float(s2))
            if key not in done:
                counts = np.arange(law.pmf.shape[0], dtype=float)
                moment = np.sum(law.pmf * _rising_even(counts, power))
                done[key] = float(power * np.log(s2 / law.fan_in) + np.log(moment))
            total += done[key]
    return float(total)


def count_law_log_norm_moments(
    laws: Sequence[CountLaw], *, sigma2: float | Float[ArrayLike, " L"] = 2.0, large_n: bool = False
) -> LogNormMoments:
    """Exact moments of ``||J u||^2`` for a masked Gaussian product with the given per-layer count laws.

    Args:
        laws: one :class:`jaxspec.theory.CountLaw` per layer.
        sigma2: weight variance times fan-in (scalar or per layer).
        large_n: replace the log moments by Hanin-Nica's ``-(5/2) beta`` and ``5 beta`` (ReLU/He only).

    Returns:
        :class:`LogNormMoments`.

    Example:
        >>> m = count_law_log_norm_moments(count_laws((32, 32), p=0.5))
        >>> round(m.mean, 5), round(m.variance, 5)
        (-0.08254, 0.1775)

    References:
        Hanin, Nica, CMP 376 (2020); [math §2](https://jaxspec.github.io/jaxspec/math/#s2).
    """
    laws = _check_laws(laws)
    sigma2 = _per_layer_sigma2(sigma2, len(laws))
    means, variances = [], []
    prob = 1.0
    done: dict[tuple[int, int, float], tuple[float, float, float]] = {}
    for law, s2 in zip(laws, sigma2, strict=True):
        key = (law.fan_in, id(law.pmf), float(s2))
        if key in done:  # deep networks repeat a few laws: one digamma sum per distinct law
            alive, mean, variance = done[key]
            prob *= alive
            means.append(mean)
            variances.append(variance)
            continue
        counts = np.arange(1, law.pmf.shape[0], dtype=float)
        w = law.pmf[1:]
        alive = float(w.sum())
        if alive == 0:
            raise InputError("a layer has no active unit with probability one: J u = 0")
        w = w / alive
        prob *= alive
        term = np.log(2.0 * s2 / law.fan_in) + special.digamma(counts / 2.0)
        mean = float(np.sum(w * term))
        means.append(mean)
        trigamma = float(np.sum(w * special.polygamma(1, counts / 2.0)))
        variances.append(trigamma + float(np.sum(w * (term - mean) ** 2)))
        done[key] = (alive, mean, variances[-1])
    means, variances = np.asarray(means), np.asarray(variances)
    if large_n:
        beta = np.array([1.0 / law.fan_in for law in laws])
        means, variances = -2.5 * beta, 5.0 * beta
    # The raw moments are products over depth: kept in logs, and inf (not an overflow error) when beyond
    # float64, so that the log moments above stay usable at any depth.
    log_second = _log_power_moment(laws, 1, sigma2)
    log_fourth = _log_power_moment(laws, 2, sigma2)
    with np.errstate(over="ignore"):
        second, fourth = float(np.exp(log_second)), float(np.exp(log_fourth))
    return LogNormMoments(
        float(means.sum()),
        float(variances.sum()),
        second,
        fourth,
        prob,
        means,
        variances,
        log_second,
        log_fourth,
    )


def relu_log_norm_moments(
    widths: Sequence[int], *, sigma2: float = 2.0, final_activation: bool = True, large_n: bool = False
) -> LogNormMoments:
    """Exact moments of ``log||J u||^2`` and ``||J u||^{2,4}`` for a zero-bias ReLU network at initialisation.

    Args:
        widths: ``(n_0, ..., n_L)``.
        sigma2: weight variance times fan-in (He: 2).
        final_activation: whether the last layer is ReLU too (as in :func:`jaxspec.relu_net`); else linear.
        large_n: Hanin-Nica's large-width log moments instead of the exact digamma/trigamma sums.

    Returns:
        :class:`LogNormMoments`; per layer at ``n = 8``: mean ``-0.39878``, variance ``1.24699``.

    Example:
        >>> m = relu_log_norm_moments((32, 32))
        >>> round(m.mean, 5), round(m.variance, 5)
        (-0.08254, 0.1775)

    References:
        Hanin, Nica, CMP 376 (2020); [math §2](https://jaxspec.github.io/jaxspec/math/#s2).
    """
    widths = check_widths(widths)
    depth = len(widths) - 1
    p = [0.5] * depth
    if not final_activation:
        p[-1] = 1.0
    return count_law_log_norm_moments(count_laws(widths, p=p), sigma2=sigma2, large_n=large_n)
