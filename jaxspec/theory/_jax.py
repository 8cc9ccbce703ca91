"""Jittable closed forms (``jax.scipy.special``), for sweeps that ``vmap`` over ``sigma2`` and ``p``.

The numpy/scipy functions of :mod:`jaxspec.theory` are the reference (float64, exact sums); these are the same
formulas written with traced ``sigma2`` and ``p`` and static shapes (``n``, ``k``), so a sweep can evaluate
the theory inside its jitted kernel.

References:
    Newman, CMP 104 (1986); Haas, Gatine, Cosse, Bouraoui, arXiv:2602.12384.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy import special as jsp
from jaxtyping import Array, ArrayLike, Float

from jaxspec._checks import check_positive, check_probability
from jaxspec.theory._validation import check_k


def gaussian_exponents_jax(
    n: int, sigma2: Float[ArrayLike, ""] = 1.0, k: int | None = None
) -> Float[Array, " k"]:
    """``(k,)`` Newman exponents with a traced ``sigma2`` (``n``, ``k`` static).

    Args:
        n: width ``N`` (static).
        sigma2: weight variance times fan-in (may be traced).
        k: number of exponents (static, default ``n``).

    Returns:
        ``(k,)`` exponents in the dtype of ``sigma2``.

    Example:
        >>> import jax
        >>> jax.vmap(lambda s2: gaussian_exponents_jax(8, s2, 2))(jnp.array([1.0, 2.0])).shape
        (2, 2)

    References:
        Newman, CMP 104 (1986).
    """
    k = check_k(k, n)
    check_positive("sigma2", sigma2)
    i = jnp.arange(1, k + 1)
    sigma2 = jnp.asarray(sigma2)
    return 0.5 * jnp.log(sigma2) + 0.5 * (jnp.log(2.0 / n) + jsp.digamma((n - i + 1) / 2.0))


def masked_exponents_jax(
    n: int, p: Float[ArrayLike, ""] = 0.5, sigma2: Float[ArrayLike, ""] = 1.0, k: int | None = None
) -> Float[Array, " k"]:
    """``(k,)`` masked-product exponents conditioned on ``K >= i``, with traced ``p`` and ``sigma2``.

    ``lambda_i = (1/2) log(2 sigma2 / n) + (1/2) E[psi((K-i+1)/2) | K >= i]``, ``K ~ Binomial(n, p)``; the
    binomial law is written with ``gammaln`` so that ``p`` may be traced (``0 < p <= 1``).

    Args:
        n: width ``N`` (static).
        p: gate probability (may be traced).
        sigma2: weight variance times fan-in (may be traced).
        k: number of exponents (static, default ``n``).

    Returns:
        ``(k,)`` exponents.

    Example:
        >>> import numpy as np
        >>> np.round(np.asarray(masked_exponents_jax(16, 0.5, 1.0, 2), np.float64), 6)
        array([-0.434772, -0.521208])

    References:
        Haas et al., arXiv:2602.12384 ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)).
    """
    k = check_k(k, n)
    n = int(n)
    check_probability("p", p, allow_array=True)
    check_positive("sigma2", sigma2)
    p = jnp.asarray(p)
    counts = jnp.arange(n + 1.0)
    log_binom = jsp.gammaln(n + 1.0) - jsp.gammaln(counts + 1.0) - jsp.gammaln(n - counts + 1.0)
    log_p = jnp.log(p)
    # log(1 - p) is -inf at p = 1; the terms with n - K > 0 then vanish, as they should.
    log_q = jnp.where(p < 1, jnp.log1p(-jnp.where(p < 1, p, 0.0)), -jnp.inf)
    log_pmf = log_binom + counts * log_p + jnp.where(counts < n, (n - counts) * log_q, 0.0)
    pmf = jnp.exp(log_pmf)
    i = jnp.arange(1, k + 1)[:, None]
    dof = counts[None, :] - i + 1
    alive = dof >= 1
    w = jnp.where(alive, pmf[None, :], 0.0)
    psi = jsp.digamma(jnp.where(alive, dof, 1.0) / 2.0)
    mean_psi = jnp.sum(w * psi, axis=1) / jnp.sum(w, axis=1)
    return 0.5 * jnp.log(2.0 * jnp.asarray(sigma2) / n) + 0.5 * mean_psi
