"""Lanczos tridiagonalisation with full reorthogonalisation, and extreme eigenpairs of symmetric operators.

Why our own loop rather than ``matfree.decomp.tridiag_sym``: Hessians of collapsed models have eigenvalues of
high multiplicity (``K^2`` equal outliers per layer in a deep UFM) and an exact null space. A Krylov space
then closes after a few steps (one step per distinct eigenvalue seen by the start vector), the residual norm
``beta`` falls to rounding level and a plain recurrence divides zero by zero. Here a breakdown
(``beta <= breakdown_tol * ||A||``) sets that ``beta`` to zero and restarts from a fresh random vector
orthogonalised against the whole basis; the tridiagonal matrix becomes block diagonal and later blocks find
the remaining copies of a repeated eigenvalue. matfree's implementation is used in the tests as an
independent cross-check on spectra without breakdown.

Every new vector is orthogonalised twice against all previous ones (classical Gram-Schmidt, twice is enough),
so the basis stays orthonormal to rounding and no spurious copies ("ghosts") appear. Cost ``O(m^2 P)`` for
``m`` steps in dimension ``P``; storage ``m P``.

References:
    Lanczos, J. Res. Nat. Bur. Standards 45 (1950); Paige, "Accuracy and effectiveness of the Lanczos
    algorithm for the symmetric eigenproblem", Linear Algebra Appl. 34 (1980); Golub & Van Loan, Matrix
    Computations, section 10.1; Giraud, Langou, Rozloznik, "The loss of orthogonality in the Gram-Schmidt
    orthogonalization process", Comput. Math. Appl. 50 (2005) (CGS2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from jaxspec._checks import HIGHEST, InputError, check_choice
from jaxspec.hessian._products import Matvec, Pytree, flat_operator, num_parameters


class Tridiagonal(NamedTuple):
    """The output of ``m`` Lanczos steps: ``A Q^T = Q^T T + residual e_m^T`` with ``Q`` orthonormal rows.

    Attributes:
        diagonal: ``(m,)`` the alphas.
        off_diagonal: ``(m - 1,)`` the betas coupling consecutive basis vectors (zero at a restart).
        residual_norm: ``()`` the last beta (the norm of the part of ``A q_m`` outside the basis).
        basis: ``(m, P)`` orthonormal Lanczos vectors, one per row.
        restarts: ``(m - 1,)`` bool, True where a breakdown restarted the recurrence.
    """

    diagonal: Float[Array, " m"]
    off_diagonal: Float[Array, " m-1"]
    residual_norm: Float[Array, ""]
    basis: Float[Array, "m P"]
    restarts: Bool[Array, " m-1"]


class Eigenpairs(NamedTuple):
    """Extreme eigenpairs of a symmetric operator from Lanczos (Ritz pairs).

    Attributes:
        eigenvalues: ``(k,)``, descending for ``which="top"``, ascending for ``which="bottom"``.
        eigenvectors: pytree shaped like the parameters with a leading axis ``k`` (unit norm, orthogonal).
        residuals: ``(k,)`` Ritz residual norms ``||A y - theta y||`` (the error bound on each eigenvalue).
    """

    eigenvalues: Float[Array, " k"]
    eigenvectors: Any
    residuals: Float[Array, " k"]


def _orthogonalise(basis: Float[Array, "m P"], vector: Float[Array, " P"], precision) -> Float[Array, " P"]:
    # Classical Gram-Schmidt twice ("twice is enough"): orthogonal to rounding against every stored row.
    for _ in range(2):
        coefficients = jnp.matmul(basis, vector, precision=precision)
        vector = vector - jnp.matmul(coefficients, basis, precision=precision)
    return vector


def _safe_normalise(vector: Float[Array, " P"]) -> tuple[Float[Array, " P"], Float[Array, ""]]:
    norm = jnp.linalg.norm(vector)
    safe = jnp.where(norm > 0, norm, 1.0)
    return jnp.where(norm > 0, vector / safe, jnp.zeros_like(vector)), norm


def lanczos_tridiagonal(
    flat_matvec: Callable[[Float[Array, " P"]], Float[Array, " P"]],
    start: Float[Array, " P"],
    num_steps: int,
    *,
    key: PRNGKeyArray | None = None,
    breakdown_tol: float | None = None,
    precision=HIGHEST,
) -> Tridiagonal:
    """Run ``num_steps`` Lanczos steps with full reorthogonalisation on a flat symmetric operator.

    Pure and traceable (``jit``/``vmap`` over ``start``, ``key`` or a closed-over operator); ``num_steps`` is
    static and must satisfy ``1 <= num_steps <= P``.

    Args:
        flat_matvec: ``(P,) -> (P,)`` symmetric linear operator.
        start: ``(P,)`` non-zero start vector (normalised inside).
        num_steps: number of matrix-vector products ``m``.
        key: PRNG key for restart vectors after a breakdown (default: a fixed key).
        breakdown_tol: a step breaks down when ``beta <= breakdown_tol * max ||A q_j||`` (default
            ``100 * eps`` of the dtype).
        precision: matmul precision of the reorthogonalisation.

    Returns:
        :class:`Tridiagonal` with ``m`` steps.

    Example:
        >>> import jax.numpy as jnp
        >>> a = jnp.diag(jnp.arange(1.0, 6.0))
        >>> t = lanczos_tridiagonal(lambda v: a @ v, jnp.ones(5), 5)
        >>> jnp.linalg.eigvalsh(tridiagonal_matrix(t)).round(4)
        Array([1., 2., 3., 4., 5.], dtype=float32)

    References:
        Lanczos (1950); Paige (1980); Golub & Van Loan, Matrix Computations, section 10.1.
    """
    (dim,) = start.shape
    if not 1 <= num_steps <= dim:
        raise InputError(f"num_steps must be between 1 and the dimension {dim}, got {num_steps}")
    dtype = start.dtype
    if breakdown_tol is None:
        breakdown_tol = 100.0 * float(jnp.finfo(dtype).eps)
    if key is None:
        key = jax.random.key(0)
    q0, _ = _safe_normalise(start)

    def step(j, carry):
        basis, alphas, betas, restarts, q, scale = carry
        basis = basis.at[j].set(q)
        w = flat_matvec(q).astype(dtype)
        scale = jnp.maximum(scale, jnp.linalg.norm(w))
        alpha = jnp.vdot(q, w)
        w = _orthogonalise(basis, w, precision)
        w_unit, beta = _safe_normalise(w)
        broken = beta <= breakdown_tol * scale

        def restart(_):
            fresh = jax.random.normal(jax.random.fold_in(key, j), (dim,), dtype)
            return _safe_normalise(_orthogonalise(basis, fresh, precision))[0]

        # The fresh vector costs another reorthogonalisation, so draw it only on a breakdown.
        q_next = jax.lax.cond(broken, restart, lambda _: w_unit, None)
        beta = jnp.where(broken, jnp.zeros_like(beta), beta)
        return (
            basis,
            alphas.at[j].set(alpha),
            betas.at[j].set(beta),
            restarts.at[j].set(broken),
            q_next,
            scale,
        )

    init = (
        jnp.zeros((num_steps, dim), dtype),
        jnp.zeros(num_steps, dtype),
        jnp.zeros(num_steps, dtype),
        jnp.zeros(num_steps, bool),
        q0,
        jnp.zeros((), dtype),
    )
    basis, alphas, betas, restarts, _, _ = jax.lax.fori_loop(0, num_steps, step, init)
    return Tridiagonal(alphas, betas[:-1], betas[-1], basis, restarts[:-1])


def tridiagonal_matrix(tri: Tridiagonal) -> Float[Array, "m m"]:
    """The dense ``(m, m)`` symmetric tridiagonal matrix ``T`` of a :class:`Tridiagonal`.

    Example:
        >>> import jax.numpy as jnp
        >>> t = Tridiagonal(jnp.ones(2), jnp.ones(1), jnp.zeros(()), jnp.eye(2), jnp.zeros(1, bool))
        >>> tridiagonal_matrix(t)
        Array([[1., 1.],
               [1., 1.]], dtype=float32)
    """
    return jnp.diag(tri.diagonal) + jnp.diag(tri.off_diagonal, 1) + jnp.diag(tri.off_diagonal, -1)


def lanczos_eigh(
    matvec: Matvec,
    params_like: Pytree,
    k: int,
    *,
    which: str = "top",
    num_steps: int | None = None,
    key: PRNGKeyArray | None = None,
    breakdown_tol: float | None = None,
    precision=HIGHEST,
) -> Eigenpairs:
    """The ``k`` largest (or smallest) eigenpairs of a symmetric pytree operator, by Lanczos.

    Extreme eigenvalues converge first; ``num_steps`` (default ``min(P, max(2k + 20, 40))``) trades accuracy
    for cost. Repeated eigenvalues are found with their multiplicity thanks to restarts (each copy needs its
    own Krylov block, so allow about ``(number of distinct eigenvalues) * multiplicity`` steps).

    Args:
        matvec: pytree operator ``v -> A v`` (for example :func:`jaxspec.hessian.hessian_matvec`).
        params_like: pytree giving the shapes and dtype; ``P`` is its number of entries.
        k: number of eigenpairs, ``1 <= k <= num_steps``.
        which: ``"top"`` (largest, algebraically) or ``"bottom"`` (smallest).
        num_steps: Lanczos steps ``m``, ``k <= m <= P``.
        key: PRNG key for the start and restart vectors (default ``jax.random.key(0)``).
        breakdown_tol: see :func:`lanczos_tridiagonal`.
        precision: matmul precision of the reorthogonalisation.

    Returns:
        :class:`Eigenpairs`; eigenvectors as a pytree with a leading axis ``k``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> a = jnp.diag(jnp.arange(10.0))
        >>> pairs = lanczos_eigh(lambda v: a @ v, jnp.zeros(10), 2, num_steps=10)
        >>> pairs.eigenvalues.round(4)
        Array([9., 8.], dtype=float32)

    References:
        Lanczos (1950); Paige (1980); Ghorbani, Krishnan, Xiao, "An investigation into neural net optimization
        via Hessian eigenvalue density", ICML 2019.
    """
    check_choice("which", which, ("top", "bottom"))
    dim = num_parameters(params_like)
    if not (isinstance(k, int) and 1 <= k <= dim):
        raise InputError(f"k must be an integer between 1 and the number of parameters {dim}, got {k!r}")
    if num_steps is None:
        num_steps = min(dim, max(2 * k + 20, 40))
    if not (isinstance(num_steps, int) and k <= num_steps <= dim):
        raise InputError(
            f"num_steps must be an integer between k={k} and the number of parameters {dim}, "
            f"got {num_steps!r}"
        )
    if key is None:
        key = jax.random.key(0)
    flat_matvec, flat, unravel = flat_operator(matvec, params_like)
    start_key, restart_key = jax.random.split(key)
    start = jax.random.normal(start_key, flat.shape, flat.dtype)
    tri = lanczos_tridiagonal(
        flat_matvec, start, num_steps, key=restart_key, breakdown_tol=breakdown_tol, precision=precision
    )
    theta, s = jnp.linalg.eigh(tridiagonal_matrix(tri))
    order = jnp.arange(num_steps - 1, num_steps - 1 - k, -1) if which == "top" else jnp.arange(k)
    theta, s = theta[order], s[:, order]
    vectors = jnp.matmul(s.T, tri.basis, precision=precision)
    residuals = jnp.abs(tri.residual_norm * s[-1, :])
    return Eigenpairs(theta, jax.vmap(unravel)(vectors), residuals)
