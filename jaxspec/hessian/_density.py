"""Spectral density by stochastic Lanczos quadrature (SLQ), and the Hutchinson trace estimator.

SLQ. For a unit probe ``v`` and ``m`` Lanczos steps from ``v``, the tridiagonal ``T = S diag(theta) S^T``
gives the Gauss quadrature ``v^T f(A) v ~ sum_i tau_i f(theta_i)`` with nodes ``theta_i`` and weights
``tau_i = S[0, i]^2`` (exact for polynomials of degree ``<= 2m - 1``). Averaged over Rademacher probes it
estimates the spectral density ``(1/P) sum_j delta(x - lambda_j)``; the weights of each probe sum to 1 and the
nodes interlace the spectrum, so the estimate is a probability measure inside ``[lambda_min, lambda_max]``.
``jax.scipy.linalg.eigh_tridiagonal`` returns no eigenvectors, so ``T`` is diagonalised with ``eigh`` (it is
``m x m``, small).

Hutchinson. ``E[z^T A z] = tr A`` for Rademacher ``z``, averaged over probes, with the standard error of the
mean. The exact variance of one sample is ``2 (||A||_F^2 - sum_i A_ii^2)``.

References:
    Golub & Welsch, "Calculation of Gauss quadrature rules", Math. Comp. 23 (1969); Lin, Saad, Yang,
    "Approximating spectral densities of large matrices", SIAM Review 58 (2016); Ghorbani, Krishnan, Xiao,
    ICML 2019 (arXiv:1901.10159); Hutchinson, Comm. Stat. Simul. Comput. 19 (1990).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from jaxspec._checks import HIGHEST, InputError, check_positive_int
from jaxspec.hessian._lanczos import lanczos_tridiagonal, tridiagonal_matrix
from jaxspec.hessian._products import Matvec, Pytree, flat_operator, num_parameters


class SpectralQuadrature(NamedTuple):
    """Gauss quadrature rules of the spectral measure, one per probe.

    Attributes:
        nodes: ``(probes, m)`` Ritz values.
        weights: ``(probes, m)`` squared first components of the tridiagonal's eigenvectors; each row sums to
            1.
    """

    nodes: Float[Array, "probes m"]
    weights: Float[Array, "probes m"]


class TraceEstimate(NamedTuple):
    """A Monte Carlo trace estimate.

    Attributes:
        mean: ``()`` the estimate of ``tr A``.
        stderr: ``()`` standard error of the mean (sample standard deviation over ``sqrt(num_samples)``).
    """

    mean: Float[Array, ""]
    stderr: Float[Array, ""]


def slq(
    matvec: Matvec,
    params_like: Pytree,
    *,
    num_steps: int,
    num_probes: int,
    key: PRNGKeyArray,
    precision=HIGHEST,
) -> SpectralQuadrature:
    """Stochastic Lanczos quadrature of the spectral measure of a symmetric operator.

    Args:
        matvec: pytree operator ``v -> A v``.
        params_like: pytree giving shapes and dtype (``P`` entries).
        num_steps: Lanczos steps per probe, ``1 <= m <= P``.
        num_probes: number of Rademacher probes (vmapped).
        key: PRNG key.
        precision: matmul precision of the reorthogonalisation.

    Returns:
        :class:`SpectralQuadrature` with ``(num_probes, num_steps)`` nodes and weights.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> a = jnp.diag(jnp.arange(8.0))
        >>> q = slq(lambda v: a @ v, jnp.zeros(8), num_steps=8, num_probes=2, key=jax.random.key(0))
        >>> q.weights.sum(axis=1).round(6)
        Array([1., 1.], dtype=float32)

    References:
        Golub & Welsch (1969); Lin, Saad, Yang, SIAM Review 58 (2016); Ghorbani, Krishnan, Xiao, ICML 2019.
    """
    dim = num_parameters(params_like)
    num_steps = check_positive_int("num_steps", num_steps)
    if num_steps > dim:
        raise InputError(f"num_steps must be at most the number of parameters {dim}, got {num_steps}")
    num_probes = check_positive_int("num_probes", num_probes)
    flat_matvec, flat, _ = flat_operator(matvec, params_like)

    def one_probe(probe_key):
        start_key, restart_key = jax.random.split(probe_key)
        probe = jax.random.rademacher(start_key, flat.shape, flat.dtype)
        tri = lanczos_tridiagonal(flat_matvec, probe, num_steps, key=restart_key, precision=precision)
        theta, s = jnp.linalg.eigh(tridiagonal_matrix(tri))
        return theta, s[0, :] ** 2

    nodes, weights = jax.vmap(one_probe)(jax.random.split(key, num_probes))
    return SpectralQuadrature(nodes, weights)


def spectral_density(
    quadrature: SpectralQuadrature, grid: Float[ArrayLike, " G"], width: float
) -> Float[Array, " G"]:
    """The SLQ density on a grid, each node broadened by a Gaussian of standard deviation ``width``.

    Args:
        quadrature: from :func:`slq`.
        grid: ``(G,)`` evaluation points.
        width: Gaussian kernel width (``> 0``).

    Returns:
        ``(G,)`` density values; it integrates to 1 over a grid that covers the nodes plus a few widths.

    Example:
        >>> import jax.numpy as jnp
        >>> q = SpectralQuadrature(jnp.array([[0.0, 1.0]]), jnp.array([[0.5, 0.5]]))
        >>> round(float(spectral_density(q, jnp.array([0.0]), 0.1)[0]), 3)
        1.995

    References:
        Lin, Saad, Yang, SIAM Review 58 (2016), section 3.
    """
    if not width > 0:
        raise InputError(f"width must be positive, got {width!r}")
    grid = jnp.asarray(grid, quadrature.nodes.dtype)
    z = (grid[:, None, None] - quadrature.nodes[None]) / width
    kernel = jnp.exp(-0.5 * z**2) / (width * jnp.sqrt(2.0 * jnp.pi))
    return jnp.mean(jnp.sum(kernel * quadrature.weights[None], axis=-1), axis=-1)


def hutchinson_trace(
    matvec: Matvec, params_like: Pytree, *, num_samples: int, key: PRNGKeyArray
) -> TraceEstimate:
    """Hutchinson's estimate of ``tr A`` from Rademacher probes, with its standard error.

    Each probe ``z`` has independent ``+-1`` entries, so ``E[z^T A z] = tr A``; the estimate is the mean of
    ``num_samples`` such quadratic forms and its standard error the sample standard deviation (``n - 1``) over
    ``sqrt(n)``. The probes run through ``A`` as one ``vmap``. (matfree's ``stochtrace`` computes the same
    estimator; the tests use it as an independent cross-check.)

    Args:
        matvec: pytree operator ``v -> A v``.
        params_like: pytree giving shapes and dtype.
        num_samples: number of probes (``>= 2`` for a standard error).
        key: PRNG key.

    Returns:
        :class:`TraceEstimate` ``(mean, stderr)``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> est = hutchinson_trace(lambda v: 3.0 * v, jnp.zeros(5), num_samples=4, key=jax.random.key(0))
        >>> est.mean  # exact for a multiple of the identity
        Array(15., dtype=float32)

    References:
        Hutchinson, "A stochastic estimator of the trace of the influence matrix for Laplacian smoothing
        splines" (1990).
    """
    num_samples = check_positive_int("num_samples", num_samples)
    if num_samples < 2:
        raise InputError("num_samples must be at least 2 to give a standard error")
    flat_matvec, flat_params, _ = flat_operator(matvec, params_like)
    probes = jax.random.rademacher(key, (num_samples, flat_params.size), dtype=flat_params.dtype)
    forms = jax.vmap(lambda z: jnp.vdot(z, flat_matvec(z)))(probes)
    return TraceEstimate(jnp.mean(forms), jnp.std(forms, ddof=1) / jnp.sqrt(num_samples))
