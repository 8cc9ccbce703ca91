"""Large-N expansions of the masked-product spectrum (an option; the exact digamma sums are the default).

For Bernoulli(p) gates, ``K ~ Binomial(N, p)`` concentrates at ``pN`` and ``psi(x) = log x - 1/(2x) + ...``,
so the exact ``lambda_i = (1/2) log(2 sigma2 / N) + (1/2) E psi((K - i + 1)/2)`` becomes ([math §1](https://jaxspec.github.io/jaxspec/math/#s1))

    lambda_i ~ (1/2) log(sigma2 p) + (1/2) log(1 - (i - 1)/(pN)) - (3 - p)/(4 p N),

with gaps ``lambda_i - lambda_{i+1} ~ 1/(2(pN - i))`` and per-layer variance
``v_i ~ (1/4)[2/(pN - i + 1) + p(1 - p)N/(pN - i + 1)^2]`` (``(3 - p)/(4pN)`` at ``i = 1``). The error is
``O(N^-2)`` at fixed ``i`` and ``p``; the expansions are poor once ``i`` is comparable to ``pN``.

References:
    Newman, CMP 104 (1986); Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026,
    arXiv:2602.12384.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from jaxspec.theory._validation import check_k, check_probability, check_sigma2


def _indices(n: int, k: int | None) -> np.ndarray:
    return np.arange(1, check_k(k, n) + 1)


def large_n_exponents(
    n: int, p: float = 1.0, sigma2: float = 1.0, k: int | None = None
) -> Float[np.ndarray, " k"]:
    """``(k,)`` large-N exponents ``(1/2) log(sigma2 p) + (1/2) log(1 - (i-1)/(pN)) - (3-p)/(4pN)``.

    NaN where ``i - 1 >= pN`` (outside the expansion's range).

    Args:
        n: width ``N``.
        p: gate probability in ``(0, 1]``.
        sigma2: weight variance times fan-in.
        k: number of exponents (default ``n``).

    Returns:
        ``(k,)`` float64 exponents.

    Example:
        >>> np.round(large_n_exponents(1000, 0.5, 2.0, k=2), 6)
        array([-0.00125 , -0.002251])

    References:
        Haas et al., arXiv:2602.12384 ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)).
    """
    p = check_probability(p)
    sigma2 = check_sigma2(sigma2)
    i = _indices(n, k)
    inside = 1.0 - (i - 1) / (p * n)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_inside = np.where(inside > 0, np.log(np.where(inside > 0, inside, 1.0)), np.nan)
    return 0.5 * np.log(sigma2 * p) + 0.5 * log_inside - (3.0 - p) / (4.0 * p * n)


def large_n_variance(n: int, p: float = 1.0, k: int | None = None) -> Float[np.ndarray, " k"]:
    """``(k,)`` large-N per-layer variance of ``log|R_ii|``: ``(1/4)[2/(pN-i+1) + p(1-p)N/(pN-i+1)^2]``.

    References:
        Haas et al., arXiv:2602.12384 ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)).
    """
    p = check_probability(p)
    i = _indices(n, k)
    m = p * n - i + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(m > 0, 0.25 * (2.0 / m + p * (1.0 - p) * n / m**2), np.nan)


def large_n_gaps(n: int, p: float = 1.0, k: int | None = None) -> Float[np.ndarray, " k-1"]:
    """``(k-1,)`` large-N gaps ``lambda_i - lambda_{i+1} ~ 1/(2(pN - i))``, ``i = 1..k-1``.

    Example:
        >>> float(large_n_gaps(100, 1.0, 2)[0])
        0.005050505050505051
    """
    p = check_probability(p)
    i = _indices(n, k)[:-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p * n - i > 0, 1.0 / (2.0 * (p * n - i)), np.nan)


def large_n_complex_exponents(n: int, sigma2: float = 1.0, k: int | None = None) -> Float[np.ndarray, " k"]:
    """``(k,)`` large-N complex Ginibre exponents ``(1/2) log sigma2 + (1/2)[log(1 - (i-1)/N) - 1/(2N)]``."""
    i = _indices(n, k)
    sigma2 = check_sigma2(sigma2)
    return 0.5 * np.log(sigma2) + 0.5 * (np.log1p(-(i - 1) / n) - 0.5 / n)
