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
* ``"blocked_householder"``: Householder QR written in JAX for a whole batch at once: each panel of ``block``
  columns is factored column by column, vectorised over every frame of the batch, and its reflectors are
  aggregated in compact-WY form ``I - V T V^T`` (``T`` from the UT transform), so that the trailing update and
  the formation of ``Q`` are batched GEMMs. It reproduces LAPACK's reflectors (``geqrf``/``orgqr``: the same
  signs, the same ``Q``) to rounding, including the orthonormal completion of a rank-deficient frame: a column
  that is zero below the diagonal gets the identity reflector, as in LAPACK's ``larfg``. One tie differs: when
  a diagonal entry is an exact zero (a gated-off row reaching the diagonal), both take the sign of ``beta``
  from the sign bit of that zero, which depends on the order of each implementation's updates; the completion
  is then another exact one (the same law of the exponents, a different realisation of the
  collapse-conditioned indices). On CPU it is slower than LAPACK's per-matrix loop (measured:
  docs/performance.md) and ``qr="auto"`` never picks it there; it is meant for accelerators, where
  LAPACK-style QR is looped over the batch too.

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

QR_BACKENDS = ("householder", "cholesky2", "shifted_cholesky3", "blocked_householder")
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


def _panel_householder(panel: jax.Array, row0: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Unblocked Householder QR of a ``(..., n, b)`` panel whose diagonal starts at row ``row0``.

    Returns ``(panel, V, T)``: the panel with its ``b`` columns reduced (``R`` entries on and above the
    diagonal rows, zeros below), the ``(..., n, b)`` reflectors ``v`` (unit at their diagonal row, zero above;
    zero for an identity reflector) and the ``(..., b, b)`` upper-triangular ``T`` with
    ``H_1 ... H_b = I - V T V^T``.
    """
    n, b = panel.shape[-2:]
    dtype = panel.dtype
    rows = jnp.arange(n)
    cols = jnp.arange(b)

    def step(i, carry):
        panel, vmat, taus = carry
        j = row0 + i
        x = jax.lax.dynamic_index_in_dim(panel, i, axis=-1, keepdims=False)
        alpha = jax.lax.dynamic_index_in_dim(x, j, axis=-1, keepdims=False)  # keeps the sign of a zero
        below = jnp.where(rows > j, x, 0)
        # A scaled norm (as LAPACK's nrm2): no underflow of the squares of a small column.
        size = jnp.max(jnp.abs(jnp.where(rows >= j, x, 0)), axis=-1)
        unit = jnp.where(size > 0, size, 1)
        below_norm2 = jnp.sum(jnp.square(below / unit[..., None]), axis=-1)
        reflect = below_norm2 > 0  # else the identity reflector: tau = 0, R_jj = alpha (LAPACK larfg)
        norm = unit * jnp.sqrt(jnp.square(alpha / unit) + below_norm2)
        # beta = -sign(alpha) ||x|| with Fortran's SIGN, as LAPACK: alpha = -0.0 (a gated-off row, 0 times
        # a negative number) counts as negative. Its sign steers the completion of a rank-deficient frame.
        beta = jnp.where(jnp.signbit(alpha), norm, -norm)
        tau = jnp.where(reflect, (beta - alpha) / jnp.where(reflect, beta, 1), 0)
        v = jnp.where(reflect[..., None], below / jnp.where(reflect, alpha - beta, 1)[..., None], 0)
        v = v + (reflect[..., None] & (rows == j)).astype(dtype)
        # H = I - tau v v^T on the columns after i (elementwise products and sums: one fused loop over the
        # batch, no tiny batched matrix-vector products); column i becomes beta e_j.
        w = jnp.sum(v[..., :, None] * panel, axis=-2)
        updated = panel - (tau[..., None] * w)[..., None, :] * v[..., :, None]
        reduced = jnp.where(rows < j, x, 0) + jnp.where(
            rows == j, jnp.where(reflect, beta, alpha)[..., None], 0
        )
        panel = jnp.where(cols > i, updated, jnp.where(cols == i, reduced[..., :, None], panel))
        vmat = jnp.where(cols == i, v[..., :, None], vmat)
        taus = jnp.where(cols == i, tau[..., None], taus)
        return panel, vmat, taus

    start = (panel, jnp.zeros_like(panel), jnp.zeros(panel.shape[:-1][:-1] + (b,), dtype))
    panel, vmat, taus = jax.lax.fori_loop(0, b, step, start)
    # UT transform (Joffrain et al. 2006): T^{-1} = diag(1 / tau) + striu(V^T V); an identity reflector has
    # v = 0, so its diagonal entry is arbitrary (1).
    diag = jnp.where(taus != 0, 1 / jnp.where(taus != 0, taus, 1), 1)
    t_inv = jnp.triu(jnp.matmul(_transpose(vmat), vmat, precision=_HIGHEST), 1)
    t_inv = t_inv + diag[..., :, None] * jnp.eye(b, dtype=dtype)
    return panel, vmat, _upper_inverse(t_inv)


def _upper_inverse(u: jax.Array) -> jax.Array:
    """Inverse of a batch of upper-triangular matrices by recursive halving (batched GEMMs only)."""
    b = u.shape[-1]
    if b == 1:
        return 1 / u
    h = b // 2
    top = _upper_inverse(u[..., :h, :h])
    bottom = _upper_inverse(u[..., h:, h:])
    corner = -jnp.matmul(top, jnp.matmul(u[..., :h, h:], bottom, precision=_HIGHEST), precision=_HIGHEST)
    zeros = jnp.zeros(u.shape[:-2] + (b - h, h), u.dtype)
    return jnp.concatenate(
        [jnp.concatenate([top, corner], axis=-1), jnp.concatenate([zeros, bottom], axis=-1)], axis=-2
    )


def blocked_householder_qr(
    frame: jax.Array, *, precision=_HIGHEST, batch_axis_name: str | None = None, block: int = 8
) -> tuple[jax.Array, jax.Array]:
    """Reduced Householder QR in JAX, blocked (compact WY), every panel vectorised over the batch.

    The frame is first scaled by a power of two (exact) so that its largest entry is in ``[1/2, 1)``; each
    panel of ``block`` columns is reduced column by column for the whole batch at once (LAPACK's ``larfg``
    conventions: ``beta = -sign(alpha) ||x||`` with the sign bit of ``alpha``, the identity reflector for a
    column that is zero below the diagonal); the panel's reflectors, as ``I - V T V^T``, update the trailing
    columns and finally form ``Q = H_1 ... H_k I_{n x k}`` with batched GEMMs. Same ``Q`` and ``R`` as
    :func:`householder_qr` to rounding, signs included, and the same orthonormal completion of a
    rank-deficient frame (up to the sign tie of an exact zero on the diagonal: module docstring).

    Args:
        frame: ``(..., n, k)`` with ``k <= n``.
        precision: matmul precision of the GEMMs (``HIGHEST`` by default).
        batch_axis_name: accepted for a uniform signature; unused (nothing is decided per batch).
        block: panel width (8: the fastest measured on CPU; docs/performance.md).

    Returns:
        ``(Q (..., n, k), R (..., k, k))``.

    Example:
        >>> a = jnp.array([[3.0, 0.0], [4.0, 0.0], [0.0, 0.0]])  # rank 1: column 2 is completed
        >>> q, r = blocked_householder_qr(a)
        >>> [round(float(x), 4) for x in jnp.diagonal(r)], bool(jnp.allclose(q.T @ q, jnp.eye(2), atol=1e-6))
        ([-5.0, 0.0], True)

    References:
        Golub, Van Loan, "Matrix Computations", sections 5.1-5.2 (compact WY); Schreiber, Van Loan, SIAM J.
        Sci. Stat. Comput. 10 (1989); Joffrain, Low, Quintana-Orti, van de Geijn, Van Zee, ACM TOMS 32
        (2006) (the UT transform).
    """
    del batch_axis_name
    n, k = frame.shape[-2:]
    dtype = frame.dtype
    largest = jnp.max(jnp.abs(frame), axis=(-2, -1), keepdims=True)
    _, exponent = jnp.frexp(jnp.where(largest > 0, largest, 1))
    scale = jnp.ldexp(jnp.ones_like(largest), exponent)
    a = frame / scale
    panels = []
    for col0 in range(0, k, block):
        width = min(block, k - col0)
        panel, vmat, t = _panel_householder(a[..., :, col0 : col0 + width], col0)
        rest = a[..., :, col0 + width :]
        if col0 + width < k:  # (I - V T V^T)^T applied to the trailing columns
            vt_rest = jnp.matmul(_transpose(vmat), rest, precision=precision)
            rest = rest - jnp.matmul(
                vmat, jnp.matmul(_transpose(t), vt_rest, precision=precision), precision=precision
            )
        a = jnp.concatenate([a[..., :, :col0], panel, rest], axis=-1)
        panels.append((vmat, t))
    r = jnp.triu(a[..., :k, :]) * scale
    q = jnp.broadcast_to(jnp.eye(n, k, dtype=dtype), frame.shape)
    for vmat, t in reversed(panels):
        vt_q = jnp.matmul(_transpose(vmat), q, precision=precision)
        q = q - jnp.matmul(vmat, jnp.matmul(t, vt_q, precision=precision), precision=precision)
    return q, r


_BACKENDS = {
    "householder": householder_qr,
    "blocked_householder": blocked_householder_qr,
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


# qr="auto" takes CholeskyQR2 only for frames at least this many times taller than wide (measured on CPU,
# docs/performance.md: at n / k = 2 and 1 the per-matrix LAPACK loop is 2x faster than CholeskyQR2).
_CHOLESKY_ASPECT = 4


def choose_qr(
    min_active_count: int,
    k: int,
    *,
    n: int | None = None,
    batch: int | None = None,
    platform: str | None = None,
) -> str:
    """``qr="auto"``: the backend for ``(batch, n, k)`` frames on ``platform``, from measurements.

    CholeskyQR2 where every layer keeps at least ``k`` active units and the frame is tall (``n >= 4 k``),
    else Householder (LAPACK). Measured on CPU (docs/performance.md, batched ``(32, n, k)`` frames):
    CholeskyQR2 ties or beats the per-matrix LAPACK loop on tall frames (``(32, 512, 32)``: 4.4 against
    4.0 ms with single-threaded LAPACK, 4.5 against 8.1 ms with two LAPACK threads), loses by 2x on square
    ones (``(32, 128, 128)``: 36 against 17 ms); the batched :func:`blocked_householder_qr` is 2-3x slower
    than LAPACK on CPU at every shape measured. With OpenBLAS's default threads on a busy machine LAPACK's QR
    spin-waits (``(32, 512, 64)``: 3.7 s, CholeskyQR2 27 ms), so CholeskyQR2 is the robust choice for tall
    frames either way. A masked layer with ``K_l < k`` makes the Gram matrix
    singular, and a Householder backend is then the one that completes ``Q``. No accelerator has been
    measured yet: other platforms get the CPU rule (``"blocked_householder"`` is there to be tried).

    Args:
        min_active_count: the smallest number of active units a layer can have.
        k: frame columns.
        n: frame rows (``None``: treated as tall).
        batch: frames per QR (recorded for the rule; unused on CPU).
        platform: ``jax.default_backend()`` if ``None``.

    Returns:
        A name in :data:`QR_BACKENDS`.

    Example:
        >>> choose_qr(16, 4), choose_qr(0, 4), choose_qr(128, 64, n=128)
        ('cholesky2', 'householder', 'householder')
    """
    del batch, platform  # one rule for now: only the CPU has been measured
    tall = n is None or int(n) >= _CHOLESKY_ASPECT * int(k)
    return "cholesky2" if int(min_active_count) >= int(k) and tall else "householder"
