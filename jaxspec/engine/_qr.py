"""QR factorisations of tall frames for the Benettin engine: Householder and Cholesky-based (GEMM) backends.

The engine re-orthonormalises a tall frame ``A`` (``n x k``, ``k <= n``) after every block of layers and keeps
``log|R_ii|``. Three backends share one contract, ``frame (..., n, k) -> (Q (..., n, k), R (..., k, k))`` with
``A = Q R``, ``Q^T Q = I`` and ``R`` upper triangular (the sign of ``R_ii`` is backend-dependent; the engine
only uses ``|R_ii|``):

* ``"householder"``: LAPACK ``geqrf``/``orgqr`` through :func:`jax.numpy.linalg.qr`. Backward stable at any
  condition number, and the only backend that returns an orthonormal completion for a rank-deficient frame
  (a masked layer with fewer active units than columns).
* ``"cholesky2"``: CholeskyQR2. Two passes of ``G = A^T A``, ``R = chol(G)^T``, ``Q = A R^{-1}``, all GEMMs
  plus a ``k x k`` Cholesky. As accurate as Householder while ``cond(A) < u^{-1/2}``.
* ``"shifted_cholesky3"``: one shifted pass ``chol(A^T A + s I)`` then CholeskyQR2; stable up to
  ``cond(A) ~ u^{-1}``.

The Cholesky backends check themselves: if a Cholesky factor is not finite or the Gram matrix of the last
pass is not within ``0.1`` of the identity (``Q`` of the previous pass was not orthonormal, i.e. the Gram
matrix was too ill-conditioned), the whole batch falls back to Householder. The check is a real branch
(``lax.cond``) when the backend sees the whole batch, either as leading dimensions or, inside ``vmap``,
through ``batch_axis_name`` (a ``psum`` over the named axis); inside an unnamed ``vmap`` JAX turns the branch
into a select, which stays exact but computes both sides.

References:
    Fukaya, Nakatsukasa, Yanagisawa, Yamamoto, "CholeskyQR2: a simple and communication-avoiding algorithm
    for computing a tall-skinny QR factorization", ScalA 2014; Fukaya, Kannan, Nakatsukasa, Yamamoto,
    Yanagisawa, "Shifted Cholesky QR for computing the QR factorization of ill-conditioned matrices", SIAM J.
    Sci. Comput. 42 (2020).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxspec._checks import HIGHEST as _HIGHEST
from jaxspec._checks import check_choice

QR_BACKENDS = ("householder", "cholesky2", "shifted_cholesky3")
QRCallable = Callable[[jax.Array], tuple[jax.Array, jax.Array]]

# Largest tolerated max|Q1^T Q1 - I| before the second pass: CholeskyQR2 restores orthogonality to O(u) as
# long as the first pass is this close to orthonormal (Yamamoto et al. 2015 need it below 1; 0.1 leaves
# margin).
_GRAM_TOLERANCE = 0.1


def _transpose(a: jax.Array) -> jax.Array:
    return jnp.swapaxes(a, -1, -2)


def householder_qr(
    frame: jax.Array, *, precision=None, batch_axis_name: str | None = None
) -> tuple[jax.Array, jax.Array]:
    """Reduced Householder QR (LAPACK), batched over leading dimensions.

    Args:
        frame: ``(..., n, k)`` with ``k <= n``.
        precision, batch_axis_name: accepted for a uniform signature; unused.

    Returns:
        ``(Q (..., n, k), R (..., k, k))``.

    Example:
        >>> q, r = householder_qr(jnp.eye(3)[:, :2])
        >>> q.shape, r.shape
        ((3, 2), (2, 2))

    References:
        Golub, Van Loan, "Matrix Computations", section 5.2.
    """
    del precision, batch_axis_name
    q, r = jnp.linalg.qr(frame)
    return q, r


def _cholesky_pass(a: jax.Array, precision, shift=None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One CholeskyQR pass: ``(Q, R, Gram)`` with ``R^T R = A^T A (+ shift I)`` and ``Q = A R^{-1}``."""
    gram = jnp.matmul(_transpose(a), a, precision=precision)
    k = a.shape[-1]
    eye = jnp.eye(k, dtype=a.dtype)
    shifted = gram if shift is None else gram + shift[..., None, None] * eye
    r = _transpose(jnp.linalg.cholesky(shifted))
    # An explicit k x k triangular inverse and one GEMM beat a triangular solve with n right-hand sides on
    # CPU;
    # the second pass repairs the extra rounding (CholeskyQR2 analysis holds for any backward-stable solve).
    r_inv = jax.lax.linalg.triangular_solve(r, jnp.broadcast_to(eye, r.shape), left_side=True, lower=False)
    return jnp.matmul(a, r_inv, precision=precision), r, gram


def _gram_defect(gram: jax.Array) -> jax.Array:
    """``max|G - I|`` per batch element."""
    eye = jnp.eye(gram.shape[-1], dtype=gram.dtype)
    return jnp.max(jnp.abs(gram - eye), axis=(-2, -1))


def _any_bad(bad: jax.Array, batch_axis_name: str | None) -> jax.Array:
    bad = jnp.any(bad)
    if batch_axis_name is not None:
        bad = jax.lax.psum(bad.astype(jnp.int32), batch_axis_name) > 0
    return bad


def _with_fallback(frame, q, r, bad, batch_axis_name):
    fell_back = _any_bad(bad, batch_axis_name)
    q, r = jax.lax.cond(
        fell_back, lambda f, q, r: tuple(jnp.linalg.qr(f)), lambda f, q, r: (q, r), frame, q, r
    )
    return q, r, fell_back


def _finite(*arrays) -> jax.Array:
    return functools.reduce(jnp.logical_and, [jnp.all(jnp.isfinite(a), axis=(-2, -1)) for a in arrays])


def cholesky_qr2_with_status(
    frame: jax.Array, *, precision=_HIGHEST, batch_axis_name: str | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """CholeskyQR2 with its Householder fallback, and whether the fallback ran.

    Args:
        frame: ``(..., n, k)``.
        precision: matmul precision of the Gram and ``Q`` products (``HIGHEST`` by default).
        batch_axis_name: name of an enclosing ``vmap`` axis over which the fallback decision is shared.

    Returns:
        ``(Q, R, fell_back)`` with ``fell_back`` a scalar bool (for the whole batch).
    """
    q1, r1, _ = _cholesky_pass(frame, precision)
    q, r2, gram2 = _cholesky_pass(q1, precision)
    r = jnp.matmul(r2, r1, precision=precision)
    bad = ~_finite(r1, r2, q) | (_gram_defect(gram2) > _GRAM_TOLERANCE)
    return _with_fallback(frame, q, r, bad, batch_axis_name)


def cholesky_qr2(
    frame: jax.Array, *, precision=_HIGHEST, batch_axis_name: str | None = None
) -> tuple[jax.Array, jax.Array]:
    """CholeskyQR2 (two Cholesky passes of GEMMs), falling back to Householder on an ill-conditioned Gram
    matrix.

    Args:
        frame: ``(..., n, k)`` with ``k <= n``.
        precision: matmul precision (``HIGHEST`` by default).
        batch_axis_name: name of an enclosing ``vmap`` axis that shares the fallback decision (see the
            module docstring).

    Returns:
        ``(Q (..., n, k), R (..., k, k))`` with a positive diagonal unless the fallback ran.

    Example:
        >>> a = jax.random.normal(jax.random.key(0), (64, 8))
        >>> q, r = cholesky_qr2(a)
        >>> bool(jnp.allclose(q @ r, a, atol=1e-4))
        True

    References:
        Fukaya, Nakatsukasa, Yanagisawa, Yamamoto, ScalA 2014 (CholeskyQR2).
    """
    q, r, _ = cholesky_qr2_with_status(frame, precision=precision, batch_axis_name=batch_axis_name)
    return q, r


def _unit_roundoff(dtype) -> float:
    return float(jnp.finfo(dtype).eps) / 2


def shifted_cholesky_qr3_with_status(
    frame: jax.Array, *, precision=_HIGHEST, batch_axis_name: str | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Shifted CholeskyQR3 with its Householder fallback, and whether the fallback ran (see
    :func:`shifted_cholesky_qr3`)."""
    n, k = frame.shape[-2:]
    # Fukaya et al. (2020) shift s = 11 (n k + k (k + 1)) u ||A||_2^2, with the Frobenius norm as a cheap
    # upper bound of the spectral norm (a larger shift is still safe).
    norm2 = jnp.sum(jnp.square(frame), axis=(-2, -1))
    shift = 11.0 * (n * k + k * (k + 1)) * _unit_roundoff(frame.dtype) * norm2
    q0, r0, _ = _cholesky_pass(frame, precision, shift=shift)
    q1, r1, _ = _cholesky_pass(q0, precision)
    q, r2, gram2 = _cholesky_pass(q1, precision)
    r = jnp.matmul(r2, jnp.matmul(r1, r0, precision=precision), precision=precision)
    bad = ~_finite(r0, r1, r2, q) | (_gram_defect(gram2) > _GRAM_TOLERANCE)
    return _with_fallback(frame, q, r, bad, batch_axis_name)


def shifted_cholesky_qr3(
    frame: jax.Array, *, precision=_HIGHEST, batch_axis_name: str | None = None
) -> tuple[jax.Array, jax.Array]:
    """Shifted CholeskyQR3: a shifted Cholesky pass, then CholeskyQR2; Householder fallback on failure.

    Args:
        frame: ``(..., n, k)`` with ``k <= n``.
        precision: matmul precision (``HIGHEST`` by default).
        batch_axis_name: name of an enclosing ``vmap`` axis that shares the fallback decision.

    Returns:
        ``(Q (..., n, k), R (..., k, k))``.

    Example:
        >>> a = jax.random.normal(jax.random.key(0), (64, 8))
        >>> q, r = shifted_cholesky_qr3(a)
        >>> bool(jnp.allclose(q.T @ q, jnp.eye(8), atol=1e-5))
        True

    References:
        Fukaya, Kannan, Nakatsukasa, Yamamoto, Yanagisawa, SIAM J. Sci. Comput. 42 (2020).
    """
    q, r, _ = shifted_cholesky_qr3_with_status(frame, precision=precision, batch_axis_name=batch_axis_name)
    return q, r


_BACKENDS = {
    "householder": householder_qr,
    "cholesky2": cholesky_qr2,
    "shifted_cholesky3": shifted_cholesky_qr3,
}


def make_qr(
    name: str = "householder", *, precision=_HIGHEST, batch_axis_name: str | None = None
) -> QRCallable:
    """The QR routine ``frame -> (Q, R)`` of a backend, ready for :func:`benettin_scan`.

    Args:
        name: one of :data:`QR_BACKENDS`.
        precision: matmul precision of the Cholesky backends (a ``jax.lax.Precision``).
        batch_axis_name: enclosing ``vmap`` axis that shares the Cholesky fallback decision.

    Returns:
        A callable ``(..., n, k) -> (Q, R)``.

    Example:
        >>> qr = make_qr("cholesky2")
        >>> q, r = qr(jnp.ones((4, 1)))
        >>> float(r[0, 0])
        2.0
    """
    check_choice("qr", name, QR_BACKENDS)
    return functools.partial(_BACKENDS[name], precision=precision, batch_axis_name=batch_axis_name)


def orthogonality_loss(q: jax.Array, *, precision=_HIGHEST) -> jax.Array:
    """``max|Q^T Q - I|`` per frame, shape ``(...)``: 0 for an exactly orthonormal frame.

    Example:
        >>> float(orthogonality_loss(jnp.eye(3)[:, :2]))
        0.0
    """
    return _gram_defect(jnp.matmul(_transpose(q), q, precision=precision))


def choose_qr(min_active_count: int, k: int) -> str:
    """``qr="auto"``: CholeskyQR2 where every layer keeps at least ``k`` active units, else Householder.

    Measured (benchmarks/RESULTS.md): CholeskyQR2 wins where frames keep full rank; a masked layer with
    ``K_l < k`` makes the Gram matrix singular, and Householder is then the only backend that completes ``Q``.

    Example:
        >>> choose_qr(16, 4), choose_qr(0, 4)
        ('cholesky2', 'householder')
    """
    return "cholesky2" if int(min_active_count) >= int(k) else "householder"
