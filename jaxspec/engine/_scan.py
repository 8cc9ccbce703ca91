"""The scan core: blocks of layers, a QR at each block's end, and the rank-collapse bookkeeping of
``log|R_ii|``.

The Benettin (Shimada-Nagashima) method. A frame ``Q_0`` of ``k`` orthonormal columns is propagated through
``A_L ... A_1`` by ``lax.scan`` over layers; every ``reortho_every`` layers the frame is re-orthonormalised by
QR, ``A Q = Q' R``, and ``log|R_ii|`` is accumulated. ``(1/L) sum log|R_ii|`` estimates the Lyapunov exponent
``lambda_i`` and is unbiased at every finite depth for rotation-invariant ensembles
([math §1](https://jaxspec.github.io/jaxspec/math/#s1)).

Rank collapse. When a layer has ``K_l < i`` active units the product has lost rank ``i`` for ever, and
``R_ii`` of that block is rounding noise, not zero. The engine never thresholds ``|R_ii|``: it counts ``K_l``
and keeps the accumulators that each convention of :func:`exponents_from_sums` needs:

* ``"K>=i"`` (default): index ``i`` averages ``log|R_ii|`` over the blocks in which every layer had
  ``K_l >= i``, divided by the number of layers in those blocks (the exponent conditioned on ``K >= i``);
* ``"K>=k"``: every index uses only the blocks in which every layer had ``K_l >= k``;
* ``"none"``: the strict exponent, ``-inf`` for every ``i`` larger than ``min_l K_l``.

Every path that accumulates ``log|R_ii|`` (the direct product, the exact samplers, stacked frames, sweeps)
goes through :func:`scan_blocks` and :func:`accumulate_block`.

References:
    Benettin, Galgani, Giorgilli, Strelcyn, Meccanica 15 (1980); Shimada, Nagashima, Prog. Theor. Phys. 61
    (1979).
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxspec._checks import check_choice
from jaxspec.engine._reortho import range_limits
from jaxspec.ensembles import layer_key

_BIG = np.iinfo(np.int32).max


def accumulator_dtype():
    """The widest enabled float: ``log|R_ii|`` sums are kept in float64 whenever x64 is on."""
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


class FrameSums(NamedTuple):
    """Raw accumulators of one realisation (one seed); summarise with :func:`exponents_from_sums`.

    Attributes:
        log_r_sum: ``(k,)`` sum of ``log|R_ii|`` over blocks where every layer had ``K_l >= i``.
        layer_count: ``(k,)`` number of layers in those blocks.
        log_r_sum_all_k: ``(k,)`` sum of ``log|R_ii|`` over blocks where every layer had ``K_l >= k``.
        layer_count_all_k: ``()`` number of layers in those blocks.
        depth: ``()`` total number of layers.
        min_active: ``()`` ``min_l K_l``.
        active_counts: ``(L,)`` ``K_l`` per layer.
        block_log_r: ``(blocks, k)`` per-block ``log|R_ii|`` (NaN where the block had ``K_l < i``), or
            ``None``.
        block_size: ``(blocks,)`` layers per block, or ``None``.
        frame: ``(N, k)`` the final orthonormal frame (``None`` for the exact samplers, which never form a
            frame of the product).
        max_block_spread: ``()`` orthogonality guard: the largest :func:`block_spread` of a block, i.e. the
            log condition number the block grew the frame to (compare with :func:`reortho_limits`), raised
            where a block scaled the frame out of range and ``+inf`` where a counted ``log|R_ii|`` was not
            finite; ``None`` where not tracked.
    """

    log_r_sum: Float[Array, "*batch k"]
    layer_count: Int[Array, "*batch k"]
    log_r_sum_all_k: Float[Array, "*batch k"]
    layer_count_all_k: Int[Array, "*batch"]
    depth: Int[Array, "*batch"]
    min_active: Int[Array, "*batch"]
    active_counts: Int[Array, " L *batch"]
    block_log_r: Float[Array, "blocks *batch k"] | None
    block_size: Int[Array, " blocks"] | None
    frame: Float[Array, "N k"] | None
    max_block_spread: Float[Array, ""] | None = None


def initial_totals(batch_shape: tuple[int, ...], k: int) -> FrameSums:
    """The running totals of :func:`scan_blocks` at the start: a :class:`FrameSums` holding only the
    accumulators (zeros; ``min_active`` at the int32 maximum), for frames of shape ``batch_shape + (k,)``."""
    acc_dtype = accumulator_dtype()
    zeros = jnp.zeros(batch_shape + (k,), acc_dtype)
    return FrameSums(
        log_r_sum=zeros,
        layer_count=jnp.zeros(batch_shape + (k,), jnp.int32),
        log_r_sum_all_k=zeros,
        layer_count_all_k=jnp.zeros(batch_shape, jnp.int32),
        depth=None,
        min_active=jnp.full(batch_shape, _BIG, jnp.int32),
        active_counts=None,
        block_log_r=None,
        block_size=None,
        frame=None,
        max_block_spread=jnp.zeros((), acc_dtype),
    )


def block_spread(log_r: Float[Array, "*batch k"], valid: Array, dtype=None) -> Float[Array, ""]:
    """The orthogonality guard's statistic of one block over its counted indices (0 if none).

    ``max_i log|R_ii| - min_i log|R_ii|``, the log condition number the block grew the frame to (compare with
    :func:`reortho_limits`); ``+inf`` where a counted ``log|R_ii|`` is not finite (the block underflowed to
    zero, overflowed, or produced NaN) or, given the compute ``dtype``, where ``max_i |log|R_ii||`` exceeds
    the guard of :func:`range_limits` (the frame came within a few decades of underflow or overflow). Never
    NaN.

    Args:
        log_r: ``(..., k)`` the block's ``log|R_ii|`` (any float dtype).
        valid: ``(..., k)`` the counted indices.
        dtype: the compute dtype of the frame, for the range check (``None``: no range check).

    Returns:
        ``()`` the statistic, in ``log_r``'s dtype.

    Example:
        >>> valid = jnp.array([True, True])
        >>> float(block_spread(jnp.array([-1.0, -3.0]), valid))
        2.0
        >>> float(block_spread(jnp.array([0.0, -jnp.inf]), valid))
        inf
        >>> float(block_spread(jnp.array([-90.0, -91.0]), valid, "float32"))  # float32 underflows near -87
        inf
    """
    finite = jnp.isfinite(log_r)
    counted = valid & finite
    top = jnp.max(jnp.where(counted, log_r, -jnp.inf))
    bottom = jnp.min(jnp.where(counted, log_r, jnp.inf))
    spread = jnp.where(jnp.any(counted), top - bottom, 0.0)
    failed = jnp.any(valid & ~finite)
    if dtype is not None:
        _, range_guard = range_limits(dtype)
        failed = failed | (jnp.any(counted) & (jnp.maximum(top, -bottom) > range_guard))
    spread = jnp.where(failed, jnp.inf, spread)
    return spread.astype(log_r.dtype)


def accumulate_block(
    totals: FrameSums,
    log_r: Float[Array, "*batch k"],
    kmin: Int[Array, "*batch"],
    size: int,
    compute_dtype=None,
) -> tuple[FrameSums, Array]:
    """One block's bookkeeping under the rank-collapse conventions.

    Args:
        totals: the running totals so far (see :func:`initial_totals`).
        log_r: ``(..., k)`` the block's ``log|R_ii|``.
        kmin: ``(...)`` the block's smallest active count.
        size: layers in the block.
        compute_dtype: the frame's dtype, for the range check of :func:`block_spread` (``None``: none).

    Returns:
        ``(totals, valid)``: the updated totals and the ``(..., k)`` mask ``kmin >= i`` of counted indices.
    """
    log_r = log_r.astype(totals.log_r_sum.dtype)
    k = log_r.shape[-1]
    valid = kmin[..., None] >= jnp.arange(1, k + 1)
    all_k = kmin >= k
    totals = totals._replace(
        log_r_sum=totals.log_r_sum + jnp.where(valid, log_r, 0.0),
        layer_count=totals.layer_count + jnp.where(valid, size, 0),
        log_r_sum_all_k=totals.log_r_sum_all_k + jnp.where(all_k[..., None], log_r, 0.0),
        layer_count_all_k=totals.layer_count_all_k + jnp.where(all_k, size, 0),
        min_active=jnp.minimum(totals.min_active, kmin),
        max_block_spread=jnp.maximum(totals.max_block_spread, block_spread(log_r, valid, compute_dtype)),
    )
    return totals, valid


# block(carry, layer_indices) -> (carry, (active_counts (m, *batch), block_log_r (*batch, k) or None))
Block = Callable[[Any, Int[Array, " m"]], tuple[Any, tuple[Array, Array | None]]]


def scan_blocks(
    block: Block, carry: Any, depth: int, reortho_every: int, record_blocks: bool
) -> tuple[Any, Int[Array, " L *batch"], Array | None, Int[Array, " blocks"] | None]:
    """Run ``block`` over the full blocks of ``reortho_every`` layers (one ``lax.scan``), then the remainder.

    Args:
        block: ``block(carry, layer_indices) -> (carry, (active_counts, block_log_r))`` for one block.
        carry: the initial carry.
        depth: number of layers ``L`` (static).
        reortho_every: layers per block (static); a final partial block takes the remainder.
        record_blocks: whether ``block`` returns its ``log|R_ii|`` (memory grows with depth).

    Returns:
        ``(carry, active_counts (L, ...), block_log_r (blocks, ..., k) or None,
        block_size (blocks,) or None)``.
    """
    indices = jnp.arange(depth)
    full, rem = divmod(depth, reortho_every)
    actives, block_log_r, sizes = [], [], []
    if full:
        carry, (act, blr) = jax.lax.scan(
            block, carry, indices[: full * reortho_every].reshape(full, reortho_every)
        )
        actives.append(act.reshape((-1,) + act.shape[2:]))
        block_log_r.append(blr)
        sizes.append(jnp.full((full,), reortho_every))
    if rem:
        carry, (act, blr) = block(carry, indices[full * reortho_every :])
        actives.append(act)
        block_log_r.append(None if blr is None else blr[None])
        sizes.append(jnp.full((1,), rem))
    if not record_blocks:
        return carry, jnp.concatenate(actives), None, None
    return carry, jnp.concatenate(actives), jnp.concatenate(block_log_r), jnp.concatenate(sizes)


def frame_sums(
    totals: FrameSums,
    depth: int,
    active_counts: Array,
    block_log_r: Array | None,
    block_size: Array | None,
    frame: Array | None,
    *,
    track_spread: bool = True,
) -> FrameSums:
    """Complete the final totals of :func:`scan_blocks` into the :class:`FrameSums` of the run."""
    return totals._replace(
        depth=jnp.int32(depth),
        active_counts=active_counts,
        block_log_r=block_log_r,
        block_size=block_size,
        frame=frame,
        max_block_spread=totals.max_block_spread if track_spread else None,
    )


# apply_layer(state, frame, key, index) -> (state, frame, active_count)
ApplyLayer = Callable[[Any, Array, PRNGKeyArray, Int[Array, ""]], tuple[Any, Array, Array]]


def benettin_scan(
    apply_layer: ApplyLayer,
    state: Any,
    frame: Float[Array, "*frame k"],
    key: PRNGKeyArray,
    depth: int,
    *,
    reortho_every: int = 1,
    record_blocks: bool = False,
    qr: Callable | None = None,
    batch_shape: tuple[int, ...] = (),
) -> FrameSums:
    """Propagate an orthonormal frame through ``depth`` layers with periodic QR (generic core).

    Args:
        apply_layer: ``(state, frame (..., N, k), key, index) -> (state, frame, active_count)`` applies layer
            ``index`` (0-based, traced) to the frame and returns the layer's active count ``K_l`` (an int;
            pass the width for ungated layers). The key is ``fold_in(key, index)``.
        state: initial per-realisation state (any pytree, may be ``None``).
        frame: ``(N, k)`` initial orthonormal frame.
        key: the realisation's layer key.
        depth: number of layers ``L`` (static).
        reortho_every: QR every this many layers (static); a final partial block takes the remainder.
        record_blocks: also return per-block ``log|R_ii|`` (memory grows with depth).
        qr: optional QR routine ``frame -> (Q, R)``; defaults to ``jnp.linalg.qr`` (Householder). See
            :func:`make_qr` for the GEMM-based backends.
        batch_shape: several frames in one scan (e.g. the inputs of one network, whose frames share each
            layer's GEMM): ``apply_layer`` returns active counts of this shape, ``qr`` takes the frame in
            ``apply_layer``'s own layout and returns ``R`` of shape ``batch_shape + (k, k)``, and the frame's
            trailing axes must broadcast against ``batch_shape + (k,)`` (e.g. ``(N, B, k)``). Every
            accumulator then carries ``batch_shape`` in front; ``active_counts`` is ``(L,) + batch_shape``.

    Returns:
        :class:`FrameSums` with the accumulators in :func:`accumulator_dtype`.

    Example:
        >>> def apply_layer(state, frame, key, index):
        ...     return state, 2.0 * frame, 4
        >>> sums = benettin_scan(apply_layer, None, jnp.eye(4)[:, :2], jax.random.key(0), 10)
        >>> [round(float(x), 6) for x in sums.log_r_sum / 10]
        [0.693147, 0.693147]
    """
    qr = jnp.linalg.qr if qr is None else qr
    k = frame.shape[-1]
    indices_i = jnp.arange(1, k + 1)
    kmin_start = jnp.full(batch_shape, _BIG, jnp.int32)

    def block(carry, block_indices):
        state, frame, totals = carry

        def one_layer(inner, index):
            state, frame, kmin = inner
            state, frame, active = apply_layer(state, frame, layer_key(key, index), index)
            active = jnp.broadcast_to(jnp.asarray(active, jnp.int32), batch_shape)
            return (state, frame, jnp.minimum(kmin, active)), active

        (state, frame, kmin), actives = jax.lax.scan(one_layer, (state, frame, kmin_start), block_indices)
        # Rank collapse (kmin < k): columns beyond kmin lie in the span of the first kmin in exact arithmetic,
        # so only rounding noise would steer their orthonormal completion. Zero them: the QR then completes Q
        # deterministically (the exact-arithmetic answer), float32 and float64 runs stay on one realisation,
        # and the counted R_ii (i <= kmin) are untouched.
        frame = jnp.where(indices_i <= kmin[..., None], frame, jnp.zeros_like(frame))
        q, r = qr(frame)
        log_r = jnp.log(jnp.abs(jnp.diagonal(r, axis1=-2, axis2=-1))).astype(totals.log_r_sum.dtype)
        totals, valid = accumulate_block(totals, log_r, kmin, block_indices.shape[0], frame.dtype)
        recorded = jnp.where(valid, log_r, jnp.nan) if record_blocks else None
        return (state, q.astype(frame.dtype), totals), (actives, recorded)

    carry = (state, frame, initial_totals(batch_shape, k))
    (_, frame, totals), actives, block_log_r, block_size = scan_blocks(
        block, carry, depth, reortho_every, record_blocks
    )
    return frame_sums(totals, depth, actives, block_log_r, block_size, frame)


def exponents_from_sums(sums: FrameSums, condition: str = "K>=i") -> Float[Array, "*batch k"]:
    """Exponents ``(k,)`` (or ``(..., k)`` for batched sums) under a rank-collapse convention.

    A seed in which no block qualifies for index ``i`` gets NaN under ``"K>=i"``/``"K>=k"``.
    """
    k = sums.log_r_sum.shape[-1]
    if condition == "K>=i":
        return sums.log_r_sum / jnp.where(sums.layer_count > 0, sums.layer_count, np.nan)
    if condition == "K>=k":
        count = jnp.where(sums.layer_count_all_k > 0, sums.layer_count_all_k, np.nan)
        return sums.log_r_sum_all_k / count[..., None]
    check_choice("condition", condition, ("K>=i", "K>=k", "none"))
    strict = sums.log_r_sum / sums.depth[..., None]
    return jnp.where(sums.min_active[..., None] >= jnp.arange(1, k + 1), strict, -jnp.inf)


def counted_layers(sums: FrameSums, condition: str = "K>=i") -> Int[Array, "*batch k"]:
    """``(..., k)`` the number of layers that entered each index's estimate under ``condition``."""
    shape = sums.log_r_sum.shape
    if condition == "K>=k":
        return jnp.broadcast_to(sums.layer_count_all_k[..., None], shape)
    if condition == "K>=i":
        return sums.layer_count
    return jnp.broadcast_to(jnp.asarray(sums.depth)[..., None], shape)


def window_rates(
    block_log_r: Float[Array, "*seeds blocks k"],
    block_size: Int[Array, "*seeds blocks"],
    reortho_every: int,
    rates_every: int,
) -> Float[Array, "*seeds windows k"] | None:
    """Mean per-layer growth rates over windows of ``rates_every`` layers (``None`` if no full window).

    Args:
        block_log_r: ``(..., blocks, k)`` per-block ``log|R_ii|`` (NaN where not counted).
        block_size: ``(..., blocks)`` layers per block.
        reortho_every: layers per block (``rates_every`` is a multiple of it).
        rates_every: layers per window.

    Returns:
        ``(..., windows, k)`` counted-layer averages of ``log|R_ii|`` per window, or ``None``.
    """
    blocks_per_window = rates_every // reortho_every
    num_blocks = block_log_r.shape[-2]
    windows = num_blocks // blocks_per_window
    if windows == 0:
        return None
    used = windows * blocks_per_window
    lead = block_log_r.shape[:-2]
    blr = block_log_r[..., :used, :].reshape(lead + (windows, blocks_per_window, -1))
    size = block_size[..., :used].reshape(lead + (windows, blocks_per_window, 1)).astype(blr.dtype)
    valid = jnp.isfinite(blr)
    total = jnp.sum(jnp.where(valid, blr, 0.0), axis=-2)
    layers = jnp.sum(jnp.where(valid, size, 0.0), axis=-2)
    return total / jnp.where(layers > 0, layers, jnp.nan)
