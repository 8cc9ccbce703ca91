"""Exact finite-depth singular values of a deep product, by stratified (graded) QR accumulation.

A direct SVD of ``M = A_L ... A_1`` loses every singular value below ``eps * s_1`` and overflows at moderate
depth ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)). Here the product applied to the input frame
``F`` is kept in graded form

    M F = Q diag(e^d) T,

``Q`` an ``(N, r)`` orthonormal frame, ``d`` an ``(r,)`` vector of log scales (float64 whenever x64 is on) and
``T`` an ``(r, n_0)`` matrix with unit rows. One layer ``A`` updates it without ever forming ``e^d``:

1. ``B = A Q``; columns are *pre-pivoted* by decreasing ``d_j + log||B e_j||`` (the log norms of the columns
   of ``B diag(e^d)``), which makes the next step as stable as a column-pivoted QR;
2. ``B = Q' R`` (Householder); ``R diag(e^d) = diag(e^{d'}) U`` with
   ``U_ij = (R_ij / |R_ii|) e^{d_j - d_i}`` bounded, computed from logarithms and rescaled row by row;
3. ``T <- U T`` and its row norms are folded into ``d``.

The singular values of the graded core ``diag(e^d) T`` are then found by a one-sided Jacobi iteration on its
rows carried out in the same log-scaled form (a row is ``e^{s_i} r_i`` with ``||r_i|| = 1``): between rows of
very different scales the rotation degenerates gracefully into Gram-Schmidt, so small singular values keep a
relative accuracy of a few ``eps * cond`` (Demmel-Veselic) instead of ``eps * s_1 / s_i``. Rotations use a
round-robin ordering, ``r / 2`` disjoint pairs at a time (vectorised).

Rank collapse: the layer function reports its active count ``K_l`` (as for the engine);
``rank M <= min_l K_l``, so the log singular values beyond ``min_l K_l`` are exactly ``-inf`` and are reported
as such (never by thresholding rounding noise).

Entry points: :func:`stratified_scan` (generic, any ``apply_layer`` with the signature of
:func:`jaxspec.engine.benettin_scan`, e.g. ``jax.jvp`` tangents of a network), :func:`product_log_svals`
(explicit stacks of weights and masks) and :func:`ensemble_log_svals` (one realisation of an ensemble, drawn
with the engine's keys).

References:
    Loh, Gubernatis, Scalettar et al., "Stable matrix-multiplication algorithms for low-temperature numerical
    simulations of fermions" (1989); Bai, Chen, Scalettar, Yamazaki, "Numerical methods for quantum Monte
    Carlo simulations of the Hubbard model" (2009) (pre-pivoting); Demmel, Veselic, "Jacobi's method is more
    accurate than QR", SIAM J. Matrix Anal. Appl. 13 (1992); Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian
    Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from jaxspec._checks import DTYPES, InputError, check_choice, check_dtype, check_int, check_scale_range
from jaxspec.engine import accumulator_dtype, realisation_key
from jaxspec.ensembles import Ensemble, fixed_network, layer_key

#: ``(state, frame (N, r), key, index) -> (state, image (N, r), active_count)``, as for the engine.
ApplyLayer = Callable[[Any, Array, PRNGKeyArray, Int[Array, ""]], tuple[Any, Array, Array]]

_MAX_SWEEPS = 60
_INT_BIG = np.iinfo(np.int32).max


class ProductSvals(NamedTuple):
    """Exact log singular values of a product, and optionally its singular frames.

    Attributes:
        log_svals: ``(n,)`` ``log s_i(M F)`` in descending order (``(L, n)`` for every prefix ``A_l ... A_1``
            with ``prefixes=True``); ``-inf`` beyond ``min_l K_l``. ``n = n_0`` is the frame's column count.
        left: ``(N, n)`` orthonormal left singular vectors of the full product (``return_frames=True``), else
            ``None``.
        right: ``(n0, n)`` orthonormal right singular vectors in the frame's coordinates (``M F = U S W^T``
            gives ``W``; for the identity input frame these are the right singular vectors of ``M``), else
            ``None``.
    """

    log_svals: Float[Array, "*L n"]
    left: Float[Array, "N n"] | None
    right: Float[Array, "n0 n"] | None


class GradedProduct(NamedTuple):
    """The carry of the stratified scan: ``M F = frame @ diag(exp(log_scale)) @ rows``.

    Attributes:
        frame: ``(N, r)`` orthonormal columns ``Q``.
        log_scale: ``(r,)`` log scales ``d`` (accumulator dtype).
        rows: ``(r, n0)`` unit-norm rows ``T``.
        min_active: ``()`` ``min_l K_l`` so far (int32).
    """

    frame: Float[Array, "N r"]
    log_scale: Float[Array, " r"]
    rows: Float[Array, "r n0"]
    min_active: Int[Array, ""]


def _initial_graded(frame: Float[Array, "N n0"]) -> GradedProduct:
    n0 = frame.shape[-1]
    return GradedProduct(
        frame, jnp.zeros((n0,), accumulator_dtype()), jnp.eye(n0, dtype=frame.dtype), jnp.int32(_INT_BIG)
    )


def graded_step(
    graded: GradedProduct, image: Float[Array, "N r"], active_count: int | Int[Array, ""]
) -> GradedProduct:
    """Fold one layer into the graded form, given ``image = A @ graded.frame``.

    Args:
        graded: the current :class:`GradedProduct` of ``A_{l-1} ... A_1 F``.
        image: ``(N, r)`` the layer applied to ``graded.frame``.
        active_count: the layer's active count ``K_l`` (int).

    Returns:
        The :class:`GradedProduct` of ``A A_{l-1} ... A_1 F``.

    References:
        Loh et al. (1989); Bai et al. (2009) (pre-pivoting); [math §4](https://jaxspec.github.io/jaxspec/math/#s4).
    """
    acc = graded.log_scale.dtype
    dtype = image.dtype
    d = graded.log_scale
    # Pre-pivoting: order the columns of B diag(e^d) by decreasing norm (computed in logs).
    col_log_norm = jnp.log(jnp.linalg.norm(image, axis=0).astype(acc))
    order = jnp.argsort(-(d + col_log_norm))
    image = image[:, order]
    d = d[order]
    rows = graded.rows[order]
    q, r = jnp.linalg.qr(image)
    tiny = jnp.finfo(dtype).tiny
    diag = jnp.diagonal(r)
    log_abs_diag = jnp.log(jnp.maximum(jnp.abs(diag), tiny).astype(acc))
    # U = diag(e^-d') R diag(e^d) with e^d'_i = |R_ii| e^d_i: log|U_ij| = log|R_ij| - log|R_ii| + d_j - d_i
    # for j >= i, U_ii = sign(R_ii); each row is rescaled by its largest entry, folded into d'.
    log_abs_r = jnp.log(jnp.abs(r).astype(acc))
    expo = log_abs_r - log_abs_diag[:, None] + d[None, :] - d[:, None]
    upper = jnp.triu(jnp.ones(r.shape, bool))
    expo = jnp.where(upper, expo, -jnp.inf)
    expo = expo.at[jnp.diag_indices(r.shape[0])].set(0.0)
    row_max = jnp.max(expo, axis=1)
    sign = jnp.sign(r).at[jnp.diag_indices(r.shape[0])].set(jnp.where(diag < 0, -1.0, 1.0).astype(dtype))
    u = sign * jnp.exp(expo - row_max[:, None]).astype(dtype)
    new_rows = jnp.matmul(u, rows, precision=jax.lax.Precision.HIGHEST)
    norms = jnp.linalg.norm(new_rows, axis=1)
    safe = jnp.where(norms > 0, norms, 1.0)
    new_d = d + log_abs_diag + row_max + jnp.log(safe.astype(acc))
    return GradedProduct(
        q,
        new_d,
        new_rows / safe[:, None],
        jnp.minimum(graded.min_active, jnp.asarray(active_count, jnp.int32)),
    )


@functools.cache
def _round_robin(m: int) -> tuple[np.ndarray, np.ndarray]:
    """The circle method for ``m`` (even) rows: ``m - 1`` rounds of ``m / 2`` disjoint pairs covering every
    pair once. Returns ``(order, inverse)``, each ``(m - 1, m)``: round ``t`` pairs ``order[t, 2q]`` with
    ``order[t, 2q + 1]``, and ``inverse[t]`` undoes the reordering."""
    players = list(range(m))
    order = []
    for _ in range(m - 1):
        order.append([x for i in range(m // 2) for x in (players[i], players[m - 1 - i])])
        players = [players[0], players[-1]] + players[1:-1]
    order = np.asarray(order, dtype=np.int32)
    return order, np.argsort(order, axis=1).astype(np.int32)


def _rotate_pairs(s, rw, rot, dtype, acc):
    """Orthogonalise rows ``(2q, 2q + 1)`` of ``diag(e^s) rw`` for every ``q`` (one round, vectorised)."""
    half = s.shape[0] // 2
    s2 = s.reshape(half, 2)
    rw2 = rw.reshape(half, 2, -1)
    first_big = s2[:, 0] >= s2[:, 1]
    swap = lambda x: jnp.where(first_big.reshape((half,) + (1,) * (x.ndim - 2)), x[:, 0], x[:, 1])  # noqa: E731
    swap_small = lambda x: jnp.where(first_big.reshape((half,) + (1,) * (x.ndim - 2)), x[:, 1], x[:, 0])  # noqa: E731
    s_big, s_small = swap(s2), swap_small(s2)
    r_big, r_small = swap(rw2), swap_small(rw2)
    rho = jnp.exp(s_small - s_big).astype(dtype)  # in [0, 1]: no overflow whatever the grading
    gamma = jnp.sum(r_big * r_small, axis=1)
    one_minus = (1.0 - rho) * (1.0 + rho)
    den = one_minus + jnp.sqrt(one_minus**2 + 4.0 * (rho * gamma) ** 2)
    tau = jnp.where(den > 0, -2.0 * gamma / jnp.where(den > 0, den, 1.0), 0.0)
    t = tau * rho
    cs = 1.0 / jnp.sqrt(1.0 + t * t)
    sn = cs * t
    # x_big' = cs x_big - sn x_small and x_small' = sn x_big + cs x_small with the scales factored out: as
    # rho -> 0 the small row is projected off the big one (Gram-Schmidt) and the big row is left unchanged.
    new_big = r_big - (tau * rho * rho)[:, None] * r_small
    new_small = tau[:, None] * r_big + r_small
    nb = jnp.linalg.norm(new_big, axis=1)
    ns = jnp.linalg.norm(new_small, axis=1)
    s_big = s_big + jnp.log(jnp.where(nb > 0, cs * nb, 1.0).astype(acc))
    s_small = s_small + jnp.log(jnp.where(ns > 0, cs * ns, 1.0).astype(acc))
    new_big = new_big / jnp.where(nb > 0, nb, 1.0)[:, None]
    new_small = new_small / jnp.where(ns > 0, ns, 1.0)[:, None]
    fb = first_big[:, None]
    s_out = jnp.stack([jnp.where(first_big, s_big, s_small), jnp.where(first_big, s_small, s_big)], 1)
    rw_out = jnp.stack([jnp.where(fb, new_big, new_small), jnp.where(fb, new_small, new_big)], 1)
    if rot is not None:
        rot2 = rot.reshape(half, 2, -1)
        g_big, g_small = swap(rot2), swap_small(rot2)
        g_big, g_small = (
            cs[:, None] * g_big - sn[:, None] * g_small,
            sn[:, None] * g_big + cs[:, None] * g_small,
        )
        rot = jnp.stack([jnp.where(fb, g_big, g_small), jnp.where(fb, g_small, g_big)], 1).reshape(rot.shape)
    return s_out.reshape(-1), rw_out.reshape(rw.shape), rot, jnp.max(jnp.abs(gamma))


def _jacobi_rows(log_scale: jax.Array, rows: jax.Array, with_rotation: bool):
    """One-sided Jacobi on the rows of ``diag(e^s) R`` (``R`` unit rows), entirely in log-scaled form.

    Returns ``(s, R, G)`` with orthonormal rows ``R``, ``diag(e^s_in) R_in = G^T diag(e^s) R`` (``G`` the
    accumulated rotation, or ``None``).
    """
    r, dtype = rows.shape[0], rows.dtype
    acc = log_scale.dtype
    m = r + (r % 2)
    if m != r:
        # A zero dummy row far below every other scale: it never rotates.
        rows = jnp.concatenate([rows, jnp.zeros((1, rows.shape[1]), dtype)])
        log_scale = jnp.concatenate([log_scale, jnp.min(log_scale, keepdims=True) - 4096.0])
    if m == 1:
        return log_scale, rows, (jnp.eye(1, dtype=dtype) if with_rotation else None)
    order, inverse = (jnp.asarray(x) for x in _round_robin(m))
    tol = m * float(jnp.finfo(dtype).eps)
    rot = jnp.eye(m, dtype=dtype) if with_rotation else None

    def one_round(carry, perm):
        s, rw, rot, off = carry
        forward, backward = perm
        rot = None if rot is None else rot[forward]
        s, rw, rot, gamma = _rotate_pairs(s[forward], rw[forward], rot, dtype, acc)
        rot = None if rot is None else rot[backward]
        return (s[backward], rw[backward], rot, jnp.maximum(off, gamma)), None

    def sweep(state):
        s, rw, rot, _, count = state
        (s, rw, rot, off), _ = jax.lax.scan(one_round, (s, rw, rot, jnp.zeros((), dtype)), (order, inverse))
        return s, rw, rot, off, count + 1

    def not_done(state):
        return (state[3] > tol) & (state[4] < _MAX_SWEEPS)

    init = (log_scale, rows, rot, jnp.asarray(jnp.inf, dtype), jnp.int32(0))
    s, rw, rot, _, _ = jax.lax.while_loop(not_done, sweep, init)
    if m != r:
        s, rw = s[:r], rw[:r]
        rot = None if rot is None else rot[:r, :r]
    return s, rw, rot


def _diagonalised(graded: GradedProduct) -> GradedProduct:
    """The same product with orthonormal rows: ``M F = (Q G^T) diag(e^s) W^T``."""
    s, rw, rot = _jacobi_rows(graded.log_scale, graded.rows, True)
    frame = jnp.matmul(graded.frame, rot.T, precision=jax.lax.Precision.HIGHEST)
    return GradedProduct(frame, s, rw, graded.min_active)


def _sorted_log_svals(log_scale: jax.Array, min_active: jax.Array) -> jax.Array:
    log_svals = -jnp.sort(-log_scale)
    return jnp.where(jnp.arange(1, log_scale.shape[0] + 1) <= min_active, log_svals, -jnp.inf)


def graded_log_svals(graded: GradedProduct, *, return_frames: bool = False) -> ProductSvals:
    """Singular values (and frames) of the product held in graded form.

    Args:
        graded: a :class:`GradedProduct`.
        return_frames: also return the left ``(N, r)`` and right ``(n0, r)`` singular vectors.

    Returns:
        :class:`ProductSvals` with ``(r,)`` log singular values in descending order.

    References:
        Demmel, Veselic (1992) (one-sided Jacobi); [math §4](https://jaxspec.github.io/jaxspec/math/#s4).
    """
    s, rw, rot = _jacobi_rows(graded.log_scale, graded.rows, return_frames)
    order = jnp.argsort(-s)
    log_svals = _sorted_log_svals(s, graded.min_active)
    if not return_frames:
        return ProductSvals(log_svals, None, None)
    left = jnp.matmul(graded.frame, rot.T, precision=jax.lax.Precision.HIGHEST)[:, order]
    right = rw[order].T
    return ProductSvals(log_svals, left, right)


def stratified_scan(
    apply_layer: ApplyLayer,
    state: Any,
    frame: Float[Array, "N n0"],
    key: PRNGKeyArray,
    depth: int,
    *,
    prefixes: bool = False,
    return_frames: bool = False,
) -> ProductSvals:
    """Exact log singular values of ``A_L ... A_1 F`` by a stratified QR scan (generic core). Pure; vmappable.

    Args:
        apply_layer: ``(state, frame (N, r), key, index) -> (state, frame, active_count)`` applies layer
            ``index`` (0-based, traced) to the frame, exactly as for :func:`jaxspec.engine.benettin_scan`
            (``active_count``: the layer's ``K_l``, the width for ungated layers). The key is
            ``fold_in(key, index)``.
        state: initial per-realisation state (any pytree, may be ``None``).
        frame: ``(N, n0)`` the full input frame (for a product on ``R^{n0}`` padded to ``N``:
            ``jnp.eye(N, n0)``).
        key: the realisation's layer key.
        depth: number of layers ``L`` (static).
        prefixes: return ``log s_i(A_l ... A_1 F)`` for every ``l = 1..L`` (``(L, n0)``).
        return_frames: also return the singular frames of the full product.

    Returns:
        :class:`ProductSvals`.

    Example:
        >>> w = jax.random.normal(jax.random.key(0), (50, 4, 4)) / 2.0
        >>> layer = lambda s, f, k, i: (s, w[i] @ f, 4)
        >>> out = stratified_scan(layer, None, jnp.eye(4), jax.random.key(1), 50)
        >>> out.log_svals.shape
        (4,)

    References:
        Loh et al. (1989); Bai et al. (2009); Demmel, Veselic (1992);
        [math §4](https://jaxspec.github.io/jaxspec/math/#s4).
    """
    depth = check_int("depth", depth, minimum=1)

    def body(carry, index):
        state, graded = carry
        state, image, active = apply_layer(state, graded.frame, layer_key(key, index), index)
        graded = graded_step(graded, image.astype(graded.frame.dtype), active)
        out = None
        if prefixes:
            # Diagonalise every prefix and carry the diagonal form on: T stays orthonormal, so the next
            # layer's Jacobi starts from a graded, nearly diagonal core and needs only a sweep or two.
            graded = _diagonalised(graded)
            out = _sorted_log_svals(graded.log_scale, graded.min_active)
        return (state, graded), out

    (_, graded), prefix_svals = jax.lax.scan(body, (state, _initial_graded(frame)), jnp.arange(int(depth)))
    final = graded_log_svals(graded, return_frames=return_frames)
    if prefixes:
        return ProductSvals(prefix_svals, final.left, final.right)
    return final


def _masked_layer(weights: jax.Array, masks: jax.Array, precision) -> ApplyLayer:
    def apply_layer(state, frame, key, index):
        del key
        w = weights[index].astype(frame.dtype)
        mask = masks[index].astype(frame.dtype)
        return state, mask[:, None] * jnp.matmul(w, frame, precision=precision), jnp.sum(mask > 0)

    return apply_layer


@functools.partial(jax.jit, static_argnames=("input_width", "prefixes", "return_frames"))
def _stack_log_svals(weights, masks, input_width: int, prefixes: bool, return_frames: bool) -> ProductSvals:
    n = weights.shape[-1]
    frame = jnp.eye(n, input_width, dtype=weights.dtype)
    layer = _masked_layer(weights, masks, jax.lax.Precision.HIGHEST)
    return stratified_scan(
        layer,
        None,
        frame,
        jax.random.key(0),
        weights.shape[0],
        prefixes=prefixes,
        return_frames=return_frames,
    )


def product_log_svals(
    weights: Float[ArrayLike, "L N N"] | Sequence[Float[ArrayLike, "n_out n_in"]],
    masks: Float[ArrayLike, "L N"] | Sequence[Float[ArrayLike, " n_out"]] | None = None,
    *,
    prefixes: bool = False,
    return_frames: bool = False,
) -> ProductSvals:
    """Exact log singular values of an explicit product ``D_L W_L ... D_1 W_1``.

    Args:
        weights: ``(L, N, N)`` padded stack (float32 or float64; the product acts on ``R^N``), or a list of
            ``L`` rectangular matrices, ``weights[l]`` of shape ``(n_{l+1}, n_l)``.
        masks: ``(L, N)`` gates in ``{0, 1}`` (or one ``(n_{l+1},)`` vector per layer for a list); all ones if
            omitted.
        prefixes: return every prefix ``A_l ... A_1`` as ``(L, n0)``.
        return_frames: also return the left ``(N, n0)`` and right ``(n0, n0)`` singular vectors.

    Returns:
        :class:`ProductSvals` (``n0 = N`` for a padded stack), descending, ``-inf`` beyond ``min_l K_l``.

    Example:
        >>> w = np.random.default_rng(0).normal(size=(200, 4, 4)) / 2.0
        >>> out = product_log_svals(jnp.asarray(w, jnp.float32))
        >>> bool(out.log_svals[0] > out.log_svals[-1])
        True

    References:
        Loh et al. (1989); Demmel, Veselic (1992); [math §4](https://jaxspec.github.io/jaxspec/math/#s4).
    """
    if isinstance(weights, list | tuple):
        stack = fixed_network(weights, masks)
        w, m, n0 = stack.weights, stack.masks, stack.widths[0]
    else:
        w = jnp.asarray(weights)
        if w.ndim != 3 or w.shape[1] != w.shape[2] or w.shape[0] < 1 or w.shape[1] < 1:
            raise InputError(f"weights must be a (L, N, N) stack with L, N >= 1, got shape {tuple(w.shape)}")
        if jnp.issubdtype(w.dtype, jnp.complexfloating) or w.dtype == jnp.bool_:
            raise InputError(f"weights must hold real numbers, got {w.dtype} (cast them explicitly if meant)")
        if not jnp.issubdtype(w.dtype, jnp.floating):
            w = w.astype(jnp.float32)
        if not bool(jnp.all(jnp.isfinite(w))):
            raise InputError("weights hold non-finite values")
        if masks is None:
            m = jnp.ones(w.shape[:2], w.dtype)
        else:
            m = jnp.asarray(masks)
            if m.shape != w.shape[:2]:
                raise InputError(f"masks must have shape {tuple(w.shape[:2])}, got {tuple(m.shape)}")
            if not bool(jnp.all((m == 0) | (m == 1))):
                raise InputError("masks must hold only 0 and 1")
            m = m.astype(w.dtype)
        n0 = w.shape[-1]
    return _stack_log_svals(w, m, int(n0), bool(prefixes), bool(return_frames))


def ensemble_log_svals(
    ensemble: Ensemble,
    seed_key: PRNGKeyArray,
    *,
    prefixes: bool = False,
    return_frames: bool = False,
    dtype=None,
    precision=jax.lax.Precision.HIGHEST,
) -> ProductSvals:
    """Exact log singular values of one realisation of an ensemble (one seed), with the engine's keys.

    The layers are those of ``ensemble.sample(jaxspec.engine.realisation_key(seed_key))``, i.e. the very
    matrices :func:`jaxspec.lyapunov_spectrum` propagates for that seed. Pure (vmap it over seeds): concrete
    arguments are validated, traced ones (inside ``jit``/``vmap``) pass through.

    Precision follows what the user enabled: with ``jax_enable_x64`` on, the default is float64 (exact to
    ~1e-12 in ``log s_i``, the point of this function); without it, float32 (errors ~1e-5, larger for
    ill-conditioned products).

    Args:
        ensemble: any ensemble of :mod:`jaxspec.ensembles`.
        seed_key: this seed's key (see :func:`jaxspec.engine.seed_keys`).
        prefixes: return every prefix ``J_l = A_l ... A_1`` as ``(L, n0)``.
        return_frames: also return the singular frames of the full product.
        dtype: compute dtype, ``"float32"`` or ``"float64"``; ``None`` (default): float64 when
            ``jax_enable_x64`` is on, else float32. The log scales are float64 whenever x64 is enabled.
        precision: matmul precision.

    Returns:
        :class:`ProductSvals` with ``n0 = ensemble.widths[0]`` values.

    Raises:
        InputError: an argument that is not an ensemble, a key or a known dtype, or a weight variance whose
            layers leave the dtype's range.

    Example:
        >>> import jaxspec
        >>> ens = jaxspec.gaussian(width=4, depth=300)
        >>> out = ensemble_log_svals(ens, jaxspec.engine.seed_keys(0, 1)[0])
        >>> out.log_svals.shape
        (4,)

    References:
        Newman (1986) (spectrum); Haas et al., arXiv:2602.12384 (offsets ``c_i``,
        [math §2](https://jaxspec.github.io/jaxspec/math/#s2)).
    """
    if not isinstance(ensemble, Ensemble):
        raise InputError(
            f"ensemble must be a jaxspec ensemble (see jaxspec.ensembles), got {type(ensemble).__name__}"
        )
    if not isinstance(seed_key, jax.Array) or not jax.dtypes.issubdtype(seed_key.dtype, jax.dtypes.prng_key):
        raise InputError(
            "seed_key must be one typed PRNG key (jaxspec.engine.seed_keys(seed, n)[i]), "
            f"got {type(seed_key).__name__}"
        )
    dtype = resolve_svals_dtype(dtype)
    sigma2 = getattr(ensemble, "sigma2", None)
    if sigma2 is not None:  # the layers are drawn in the compute dtype: out of its range they are inf or 0
        check_scale_range("sigma2", sigma2, dtype, width=max(ensemble.widths))
    return _ensemble_log_svals(ensemble, seed_key, bool(prefixes), bool(return_frames), dtype, precision)


def resolve_svals_dtype(dtype: Any = None) -> str:
    """The compute dtype name of the exact singular values: ``dtype``, or for ``None`` the enabled precision
    (``"float64"`` with ``jax_enable_x64``, else ``"float32"``).

    Example:
        >>> resolve_svals_dtype("float32")
        'float32'
    """
    if dtype is None:
        return "float64" if jax.config.jax_enable_x64 else "float32"
    try:
        name = jnp.dtype(dtype).name
    except TypeError:
        name = dtype
    check_choice("dtype", name, DTYPES)
    return check_dtype(name)


@functools.partial(jax.jit, static_argnames=("prefixes", "return_frames", "dtype", "precision"))
def _ensemble_log_svals(ensemble, seed_key, prefixes: bool, return_frames: bool, dtype: str, precision):
    dtype = jnp.dtype(dtype)
    key_state, key_layers = jax.random.split(realisation_key(seed_key))
    frame = jnp.eye(ensemble.max_width, ensemble.input_width, dtype=dtype)

    def apply_layer(state, frame, key, index):
        state, weight, mask = ensemble.layer(state, key, index, dtype)
        image = mask[:, None].astype(dtype) * jnp.matmul(weight.astype(dtype), frame, precision=precision)
        return state, image, jnp.sum(mask > 0)

    return stratified_scan(
        apply_layer,
        ensemble.init_state(key_state, dtype),
        frame,
        key_layers,
        ensemble.depth,
        prefixes=prefixes,
        return_frames=return_frames,
    )
