"""The spectrum engine: an orthonormal frame pushed through a deep product of masked linear maps.

The Benettin (Shimada-Nagashima) method. A frame ``Q_0`` of ``k`` orthonormal columns is propagated through
``A_L ... A_1`` by ``lax.scan`` over layers; every ``reortho_every`` layers the frame is re-orthonormalised by
QR, ``A Q = Q' R``, and ``log|R_ii|`` is accumulated. ``(1/L) sum log|R_ii|`` estimates the Lyapunov exponent
``lambda_i`` and is unbiased at every finite depth for rotation-invariant ensembles ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)).

Three layers of API, from the bottom:

* :func:`benettin_scan` is generic: it takes any ``apply_layer(state, frame, key, index) -> (state, frame,
  active_count)``, so matrix-free networks (``jax.jvp`` tangents) and fast samplers reuse the same scan and the
  same rank-collapse bookkeeping. Pure and vmappable.
* :func:`ensemble_frame_sums` runs it for one realisation of an ensemble (one seed); vmap it yourself inside
  sweeps.
* :func:`lyapunov_spectrum` validates arguments, vmaps over seeds, jits, and returns a
  :class:`LyapunovResult`.

Rank collapse ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)). When a layer has ``K_l < i`` active units the product has lost rank ``i``
for ever, and ``R_ii`` of that block is rounding noise, not zero. The engine never thresholds ``|R_ii|``: it
counts ``K_l`` from the mask and applies one of three conventions (``condition``):

* ``"K>=i"`` (default): index ``i`` averages ``log|R_ii|`` over the blocks in which every layer had
  ``K_l >= i``, divided by the number of layers in those blocks. This estimates the exponent conditioned on
  ``K >= i`` (the per-layer factors are independent given the counts), which is what
  :func:`jaxspec.theory.lyapunov_exponents` returns with the same ``condition``.
* ``"K>=k"``: every index uses only the blocks in which every layer had ``K_l >= k``.
* ``"none"``: the strict exponent, ``-inf`` for every ``i`` larger than ``min_l K_l``.

References:
    Benettin, Galgani, Giorgilli, Strelcyn, Meccanica 15 (1980); Shimada, Nagashima, Prog. Theor. Phys. 61 (1979).
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxspec._checks import InputError
from jaxspec.engine._qr import QR_BACKENDS, make_qr
from jaxspec.ensembles._layers import layer_key

__all__ = [
    "CONDITIONS",
    "EngineConfig",
    "METHODS",
    "OrthogonalityWarning",
    "FrameSums",
    "LyapunovResult",
    "accumulator_dtype",
    "benettin_scan",
    "choose_reortho_every",
    "ensemble_frame_sums",
    "exponents_from_sums",
    "frame_key",
    "initial_frame",
    "lyapunov_spectrum",
    "make_config",
    "realisation_key",
    "reortho_limits",
    "run_with_orthogonality_guard",
    "seed_keys",
]

CONDITIONS = ("K>=i", "K>=k", "none")
PRECISIONS = {"highest": jax.lax.Precision.HIGHEST, "high": jax.lax.Precision.HIGH,
              "default": jax.lax.Precision.DEFAULT}
DTYPES = ("float32", "float64")
# How a realisation is propagated: the direct product, or an exact fast sampler of jaxspec.fast
# (rotation-invariant iid ensembles, exponents only). "auto" (resolved in lyapunov_spectrum) picks "chi" where it is exact.
METHODS = ("direct", "gaussian_frame", "chi")
_SEED_AXIS = "seeds"


class OrthogonalityWarning(UserWarning):
    """A re-orthonormalisation block grew a frame so ill-conditioned that the QR lost accuracy ([math §4](https://jaxspec.github.io/jaxspec/math/#s4))."""


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Static configuration of one engine run (hashable, so it can be a ``jit`` static argument).

    Attributes:
        k: number of frame columns (top-``k`` exponents).
        reortho_every: layers between QR re-orthonormalisations ([math §4](https://jaxspec.github.io/jaxspec/math/#s4) bounds it).
        dtype: compute dtype, ``"float32"`` or ``"float64"``.
        precision: matmul precision, ``"highest"`` (default; GPUs/TPUs otherwise use TF32/bf16), ``"high"``
            or ``"default"``.
        condition: rank-collapse convention, one of :data:`CONDITIONS`.
        rates_every: if set, also return local growth rates averaged over windows of this many layers (a
            multiple of ``reortho_every``); memory then grows with depth.
        qr: QR backend of :mod:`jaxspec.qr` (``"householder"``, ``"cholesky2"``, ``"shifted_cholesky3"``).
        method: ``"direct"`` (the product itself) or an exact fast sampler of :mod:`jaxspec.fast`
            (``"gaussian_frame"``, ``"chi"``; exponents only, rotation-invariant iid ensembles).
    """

    k: int
    reortho_every: int = 1
    dtype: str = "float32"
    precision: str = "highest"
    condition: str = "K>=i"
    rates_every: int | None = None
    qr: str = "householder"
    method: str = "direct"

    @property
    def jnp_dtype(self):
        return jnp.dtype(self.dtype)

    @property
    def lax_precision(self):
        return PRECISIONS[self.precision]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_config(k: int, *, max_k: int, reortho_every: int = 1, dtype: str = "float32",
                precision: str = "highest", condition: str = "K>=i", rates_every: int | None = None,
                qr: str = "householder", method: str = "direct") -> EngineConfig:
    """Validate engine options and build an :class:`EngineConfig` (raises :class:`InputError`)."""
    if isinstance(k, bool) or int(k) != k or not 1 <= int(k) <= max_k:
        raise InputError(f"k must be an integer in [1, {max_k}] (the smallest width), got {k}")
    if int(reortho_every) != reortho_every or reortho_every < 1:
        raise InputError(f"reortho_every must be a positive integer, got {reortho_every}")
    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise InputError("dtype float64 needs 64-bit JAX: call jax.config.update('jax_enable_x64', True) first")
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if condition not in CONDITIONS:
        raise InputError(f"condition must be one of {', '.join(CONDITIONS)}, got {condition!r}")
    if rates_every is not None and (int(rates_every) != rates_every or rates_every < 1
                                    or rates_every % reortho_every):
        raise InputError(f"rates_every must be a positive multiple of reortho_every={reortho_every}, got {rates_every}")
    if qr not in QR_BACKENDS:
        raise InputError(f"qr must be one of {', '.join(QR_BACKENDS)}, got {qr!r}")
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return EngineConfig(int(k), int(reortho_every), dtype, precision, condition,
                        None if rates_every is None else int(rates_every), qr, method)


def reortho_limits(dtype) -> tuple[float, float]:
    """``(budget, guard)`` for the log condition number a block may grow a frame to ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)).

    A block of ``m`` layers spreads the frame's columns by about ``exp(m (lambda_1 - lambda_k))``; the QR then
    loses ``log cond`` of the ``-log u`` available digits (``u`` the unit roundoff: 16.6 in float32, 36.7 in
    float64). ``reortho_every="auto"`` aims at a quarter of them (the smallest ``|R_ii|`` keeps a relative
    accuracy of ``u^{3/4}``); the guard reports blocks that used more than half (accuracy worse than
    ``u^{1/2}``).
    """
    digits = -math.log(float(jnp.finfo(dtype).eps) / 2)
    return 0.25 * digits, 0.5 * digits


def choose_reortho_every(mean_log_r, var_log_r, depth: int, dtype, rates_every: int | None = None) -> int:
    """The largest safe ``reortho_every`` from per-layer statistics of ``log|R_ii|`` ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)).

    A block of ``m`` layers is predicted to spread the columns by ``m (max_i mu_i - min_i mu_i)`` plus four
    standard deviations ``4 sqrt(2 m max_i v_i)``; ``m`` is the largest value keeping that within the budget
    of :func:`reortho_limits`, and ``m max|mu_i| + 4 sqrt(m max v_i)`` within half the exponent range (no
    overflow).

    Args:
        mean_log_r: ``(k,)`` per-layer means ``mu_i`` (exponents); non-finite entries force ``m = 1``.
        var_log_r: ``(k,)`` per-layer variances ``v_i``.
        depth: number of layers (the largest possible ``m``).
        dtype: compute dtype.
        rates_every: if set, ``m`` is also a divisor of it.

    Returns:
        ``m`` in ``[1, depth]``; without ``rates_every``, the smallest ``m`` with the same number of blocks
        ``ceil(depth / m)`` as the largest safe one (balanced blocks).

    Example:
        >>> choose_reortho_every(np.array([-0.01, -0.02]), np.array([1e-3, 1e-3]), 1000, "float32") > 10
        True

    References:
        Benettin et al., Meccanica 15 (1980); [math §4](https://jaxspec.github.io/jaxspec/math/#s4).
    """
    mean = np.asarray(mean_log_r, float)
    var = np.asarray(var_log_r, float)
    if mean.size == 0 or not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        return 1
    budget, _ = reortho_limits(dtype)
    range_budget = 0.5 * math.log(float(jnp.finfo(dtype).max))
    spread = float(mean.max() - mean.min())
    growth = float(np.abs(mean).max())
    vmax = float(max(var.max(), 0.0))

    def safe(m: int) -> bool:
        return (m * spread + 4 * math.sqrt(2 * m * vmax) <= budget
                and m * growth + 4 * math.sqrt(m * vmax) <= range_budget)

    lo, hi = 1, int(depth)
    if not safe(lo):
        return 1
    while lo < hi:  # safe(m) is monotone in m: bisect for the largest safe m
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if safe(mid) else (lo, mid - 1)
    if rates_every is not None:
        return max(d for d in range(1, min(lo, rates_every) + 1) if rates_every % d == 0)
    # Balance the blocks: the same number of QRs, no short remainder block (measured: 64 layers as 32 + 32
    # run faster than 35 + 29, which compiles and runs the remainder block outside the scan).
    return -(-int(depth) // -(-int(depth) // lo))


def accumulator_dtype():
    """The widest enabled float: ``log|R_ii|`` sums are kept in float64 whenever x64 is on."""
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
    """Keys of seeds ``0..num_seeds-1``: ``fold_in(key(seed), s)``, so seed ``s`` never depends on ``num_seeds``."""
    base = jax.random.key(seed)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.arange(num_seeds))


def realisation_key(seed_key: jax.Array) -> jax.Array:
    """The key the engine hands the ensemble for one seed: ``ensemble.sample(realisation_key(k))`` is the stack
    that :func:`ensemble_frame_sums` propagated."""
    return jax.random.split(seed_key)[1]


def frame_key(seed_key: jax.Array) -> jax.Array:
    """The key of one seed's initial frame (see :func:`initial_frame`)."""
    return jax.random.split(seed_key)[0]


def initial_frame(key: jax.Array, input_width: int, padded_width: int, k: int, dtype) -> jax.Array:
    """A Haar-random ``(padded_width, k)`` orthonormal frame supported on the first ``input_width`` rows."""
    # Drawn in float32 and cast: float32 and float64 runs start from the same frame.
    g = jax.random.normal(key, (padded_width, k), dtype=jnp.float32).astype(dtype)
    g = g * (jnp.arange(padded_width) < input_width)[:, None].astype(dtype)
    q, r = jnp.linalg.qr(g)
    return q * jnp.sign(jnp.diagonal(r))[None, :]


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
        block_log_r: ``(blocks, k)`` per-block ``log|R_ii|`` (NaN where the block had ``K_l < i``), or ``None``.
        block_size: ``(blocks,)`` layers per block, or ``None``.
        frame: ``(N, k)`` the final orthonormal frame (``None`` for the fast samplers of :mod:`jaxspec.fast`,
            which never form a frame of the product).
        max_block_spread: ``()`` orthogonality guard: the largest ``max_i log|R_ii| - min_i log|R_ii|`` of a
            block over its counted indices, i.e. the log condition number the block grew the frame to (compare
            with :func:`reortho_limits`); ``None`` where not tracked.
    """

    log_r_sum: jax.Array
    layer_count: jax.Array
    log_r_sum_all_k: jax.Array
    layer_count_all_k: jax.Array
    depth: jax.Array
    min_active: jax.Array
    active_counts: jax.Array
    block_log_r: jax.Array | None
    block_size: jax.Array | None
    frame: jax.Array | None
    max_block_spread: jax.Array | None = None


ApplyLayer = Callable[[Any, jax.Array, jax.Array, jax.Array], tuple[Any, jax.Array, jax.Array]]


def benettin_scan(apply_layer: ApplyLayer, state: Any, frame: jax.Array, key: jax.Array, depth: int, *,
                  reortho_every: int = 1, record_blocks: bool = False, qr: Callable | None = None,
                  batch_shape: tuple[int, ...] = ()) -> FrameSums:
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
            :func:`jaxspec.qr.make_qr` for the GEMM-based backends.
        batch_shape: several frames in one scan (e.g. the inputs of one network, whose frames share each
            layer's GEMM): ``apply_layer`` returns active counts of this shape, ``qr`` takes the frame in
            ``apply_layer``'s own layout and returns ``R`` of shape ``batch_shape + (k, k)``, and the frame's
            trailing axes must broadcast against ``batch_shape + (k,)`` (e.g. ``(N, B, k)``). Every
            accumulator then carries ``batch_shape`` in front; ``active_counts`` is ``(L,) + batch_shape``.

    Returns:
        :class:`FrameSums` with the accumulators in :func:`accumulator_dtype`.
    """
    qr = jnp.linalg.qr if qr is None else qr
    k = frame.shape[-1]
    acc_dtype = accumulator_dtype()
    indices_i = jnp.arange(1, k + 1)
    big = jnp.iinfo(jnp.int32).max

    kmin_start = jnp.full(batch_shape, big, jnp.int32)

    def block(carry, block_indices):
        state, frame, sums, count, sums_k, count_k, kmin_all, spread_max = carry

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
        log_r = jnp.log(jnp.abs(jnp.diagonal(r, axis1=-2, axis2=-1))).astype(acc_dtype)
        (sums, count, sums_k, count_k), valid = accumulate_block((sums, count, sums_k, count_k), log_r, kmin,
                                                                 block_indices.shape[0])
        out = (actives, jnp.where(valid, log_r, jnp.nan) if record_blocks else None)
        spread_max = jnp.maximum(spread_max, block_spread(log_r, valid))
        return (state, q.astype(frame.dtype), sums, count, sums_k, count_k, jnp.minimum(kmin_all, kmin),
                spread_max), out

    zeros = jnp.zeros(batch_shape + (k,), acc_dtype)
    carry = (state, frame, zeros, jnp.zeros(batch_shape + (k,), jnp.int32), zeros,
             jnp.zeros(batch_shape, jnp.int32), kmin_start, jnp.zeros((), acc_dtype))
    indices = jnp.arange(depth)
    full, rem = divmod(depth, reortho_every)
    actives, block_log_r, sizes = [], [], []
    if full:
        carry, (act, blr) = jax.lax.scan(block, carry, indices[: full * reortho_every].reshape(full, reortho_every))
        actives.append(act.reshape((-1,) + batch_shape))
        block_log_r.append(blr)
        sizes.append(jnp.full((full,), reortho_every))
    if rem:
        carry, (act, blr) = block(carry, indices[full * reortho_every:])
        actives.append(act)
        block_log_r.append(None if blr is None else blr[None])
        sizes.append(jnp.full((1,), rem))
    _, frame, sums, count, sums_k, count_k, kmin_all, spread_max = carry
    return FrameSums(
        log_r_sum=sums, layer_count=count, log_r_sum_all_k=sums_k, layer_count_all_k=count_k,
        depth=jnp.int32(depth), min_active=kmin_all, active_counts=jnp.concatenate(actives),
        block_log_r=jnp.concatenate(block_log_r) if record_blocks else None,
        block_size=jnp.concatenate(sizes) if record_blocks else None, frame=frame,
        max_block_spread=spread_max,
    )


def accumulate_block(totals: tuple, log_r: jax.Array, kmin: jax.Array, size: int) -> tuple[tuple, jax.Array]:
    """One block's bookkeeping under the rank-collapse conventions (shared by the direct path and the fast
    samplers).

    Args:
        totals: ``(log_r_sum, layer_count, log_r_sum_all_k, layer_count_all_k)`` so far, shapes
            ``(..., k)``, ``(..., k)``, ``(..., k)``, ``(...)``.
        log_r: ``(..., k)`` the block's ``log|R_ii|``.
        kmin: ``(...)`` the block's smallest active count.
        size: layers in the block.

    Returns:
        ``(totals, valid)``: the updated totals and the ``(..., k)`` mask ``kmin >= i`` of counted indices.
    """
    sums, count, sums_k, count_k = totals
    valid = kmin[..., None] >= jnp.arange(1, log_r.shape[-1] + 1)
    all_k = kmin >= log_r.shape[-1]
    totals = (sums + jnp.where(valid, log_r, 0.0), count + jnp.where(valid, size, 0),
              sums_k + jnp.where(all_k[..., None], log_r, 0.0), count_k + jnp.where(all_k, size, 0))
    return totals, valid


def block_spread(log_r: jax.Array, valid: jax.Array) -> jax.Array:
    """``max_i log|R_ii| - min_i log|R_ii|`` over the counted indices of one block (0 if none): the log
    condition number the block grew the frame to, the orthogonality guard's statistic."""
    finite = valid & jnp.isfinite(log_r)
    top = jnp.max(jnp.where(finite, log_r, -jnp.inf))
    bottom = jnp.min(jnp.where(finite, log_r, jnp.inf))
    return jnp.where(jnp.any(finite), top - bottom, 0.0).astype(log_r.dtype)


def ensemble_frame_sums(ensemble, seed_key: jax.Array, config: EngineConfig, *,
                        batch_axis_name: str | None = None) -> FrameSums:
    """Run the engine on one realisation (one seed) of an ensemble. Pure; vmap it over seeds.

    Args:
        ensemble: any ensemble of :mod:`jaxspec.ensembles` (or an object with the same ``layer`` interface).
        seed_key: this seed's key (see :func:`seed_keys`).
        config: an :class:`EngineConfig`. ``config.method`` other than ``"direct"`` runs an exact fast
            sampler of :mod:`jaxspec.fast` (same law of the exponents, no frame).
        batch_axis_name: name of the enclosing seeds ``vmap`` axis, if any: the Cholesky QR backends then take
            their fallback decision for the whole batch (a real branch instead of a select).

    Returns:
        :class:`FrameSums`.
    """
    if config.method != "direct":
        from jaxspec import fast  # noqa: PLC0415 (fast builds on this module)

        return fast.fast_frame_sums(ensemble, seed_key, config)
    dtype = config.jnp_dtype
    precision = config.lax_precision
    key_state, key_layers = jax.random.split(realisation_key(seed_key))
    frame = initial_frame(frame_key(seed_key), ensemble.input_width, ensemble.max_width, config.k, dtype)

    def apply_layer(state, frame, key, index):
        state, weight, mask = ensemble.layer(state, key, index, dtype)
        frame = mask[:, None] * jnp.matmul(weight, frame, precision=precision)
        return state, frame, jnp.sum(mask > 0)

    qr = make_qr(config.qr, precision=precision, batch_axis_name=batch_axis_name)
    return benettin_scan(apply_layer, ensemble.init_state(key_state, dtype), frame, key_layers,
                         ensemble.depth, reortho_every=config.reortho_every,
                         record_blocks=config.rates_every is not None, qr=qr)


def exponents_from_sums(sums: FrameSums, condition: str = "K>=i") -> jax.Array:
    """Exponents ``(k,)`` (or ``(..., k)`` for batched sums) under a rank-collapse convention.

    A seed in which no block qualifies for index ``i`` gets NaN under ``"K>=i"``/``"K>=k"``.
    """
    k = sums.log_r_sum.shape[-1]
    if condition == "K>=i":
        return sums.log_r_sum / jnp.where(sums.layer_count > 0, sums.layer_count, np.nan)
    if condition == "K>=k":
        count = jnp.where(sums.layer_count_all_k > 0, sums.layer_count_all_k, np.nan)
        return sums.log_r_sum_all_k / count[..., None]
    if condition == "none":
        strict = sums.log_r_sum / sums.depth[..., None]
        return jnp.where(sums.min_active[..., None] >= jnp.arange(1, k + 1), strict, -jnp.inf)
    raise InputError(f"condition must be one of {', '.join(CONDITIONS)}, got {condition!r}")


def _local_rates(sums: FrameSums, config: EngineConfig) -> jax.Array | None:
    """``(seeds, windows, k)`` mean per-layer growth rates over windows of ``rates_every`` layers."""
    if config.rates_every is None:
        return None
    blocks_per_window = config.rates_every // config.reortho_every
    num_blocks = sums.block_log_r.shape[1]
    windows = num_blocks // blocks_per_window
    if windows == 0:
        return None
    used = windows * blocks_per_window
    blr = sums.block_log_r[:, :used].reshape(sums.block_log_r.shape[0], windows, blocks_per_window, -1)
    size = sums.block_size[:, :used].reshape(-1, windows, blocks_per_window, 1).astype(blr.dtype)
    valid = jnp.isfinite(blr)
    total = jnp.sum(jnp.where(valid, blr, 0.0), axis=2)
    layers = jnp.sum(jnp.where(valid, size, 0.0), axis=2)
    return total / jnp.where(layers > 0, layers, jnp.nan)


@struct.dataclass
class LyapunovResult:
    """The result of :func:`lyapunov_spectrum` (a frozen pytree).

    Attributes:
        exponents: ``(seeds, k)`` per-seed exponents (per-layer rates of ``log s_i``), descending in
            expectation.
        mean: ``(k,)`` mean over seeds (NaN-aware).
        stderr: ``(k,)`` standard error of the mean across seeds (``std(ddof=1)/sqrt(seeds)``).
        active_counts: ``(seeds, L)`` active units ``K_l`` per layer.
        min_active: ``(seeds,)`` ``min_l K_l``.
        counted_layers: ``(seeds, k)`` layers that entered each index's estimate under the convention.
        local_rates: ``(seeds, windows, k)`` windowed local growth rates, or ``None``.
        config: the :class:`EngineConfig` (static).
        ensemble: the ensemble (its static description is in ``ensemble.name`` / ``ensemble.widths``).
        max_block_spread: ``(seeds,)`` orthogonality guard, the largest log condition number a block grew the
            frame to (see :func:`reortho_limits`); ``None`` for the fast samplers, which form no frame.
    """

    exponents: jax.Array
    mean: jax.Array
    stderr: jax.Array
    active_counts: jax.Array
    min_active: jax.Array
    counted_layers: jax.Array
    local_rates: jax.Array | None
    ensemble: Any
    config: EngineConfig = struct.field(pytree_node=False)
    max_block_spread: jax.Array | None = None

    @property
    def num_seeds(self) -> int:
        return self.exponents.shape[0]


def _mean_and_stderr(exponents: jax.Array) -> tuple[jax.Array, jax.Array]:
    # Seeds with no qualifying layer (NaN) are left out; -inf (strict convention) stays visible.
    finite = jnp.isfinite(exponents)
    n = jnp.sum(finite, axis=0)
    mean = jnp.sum(jnp.where(finite, exponents, 0.0), axis=0) / jnp.where(n > 0, n, np.nan)
    var = jnp.sum(jnp.where(finite, (exponents - mean) ** 2, 0.0), axis=0) / jnp.where(n > 1, n - 1, np.nan)
    has_neg_inf = jnp.any(exponents == -jnp.inf, axis=0)
    return jnp.where(has_neg_inf, -jnp.inf, mean), jnp.where(has_neg_inf, jnp.nan, jnp.sqrt(var / n))


@functools.partial(jax.jit, static_argnames=("config",))
def _run(ensemble, keys: jax.Array, config: EngineConfig) -> LyapunovResult:
    sums = jax.vmap(lambda key: ensemble_frame_sums(ensemble, key, config, batch_axis_name=_SEED_AXIS),
                    axis_name=_SEED_AXIS)(keys)
    exponents = exponents_from_sums(sums, config.condition)
    mean, stderr = _mean_and_stderr(exponents)
    if config.condition == "K>=k":
        counted = jnp.broadcast_to(sums.layer_count_all_k[:, None], exponents.shape)
    elif config.condition == "K>=i":
        counted = sums.layer_count
    else:
        counted = jnp.broadcast_to(sums.depth[:, None], exponents.shape)
    return LyapunovResult(
        exponents=exponents, mean=mean, stderr=stderr, active_counts=sums.active_counts,
        min_active=sums.min_active, counted_layers=counted, local_rates=_local_rates(sums, config),
        ensemble=ensemble, config=config, max_block_spread=sums.max_block_spread,
    )


def _resolve_method(ensemble, method: str) -> str:
    from jaxspec import fast  # noqa: PLC0415 (fast builds on this module)

    if method == "auto":
        return "chi" if fast.fast_path_eligible(ensemble) else "direct"
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS + ('auto',))}, got {method!r}")
    if method != "direct":
        fast.check_fast_path(ensemble, method)
    return method


def _never_rank_deficient(ensemble, k: int) -> bool:
    """True when no layer can have fewer than ``k`` active units, so a Gram matrix of the frame is regular."""
    name = getattr(ensemble, "name", None)
    if name in ("gaussian", "orthogonal"):
        return True
    if name == "masked":
        if ensemble.fixed_count is not None:
            return min(ensemble.fixed_count) >= k
        return not isinstance(ensemble.p, jax.core.Tracer) and bool(np.all(np.asarray(ensemble.p) >= 1.0))
    if name == "fixed" and not isinstance(ensemble.masks, jax.core.Tracer):
        return int(np.min(np.sum(np.asarray(ensemble.masks) > 0, axis=-1))) >= k
    return False


def _resolve_qr(ensemble, qr: str, k: int) -> str:
    if qr == "auto":
        # Measured (benchmarks/RESULTS.md): CholeskyQR2 wins where frames keep full rank; a masked layer with
        # K_l < k makes the Gram matrix singular, and Householder is then the only backend that completes Q.
        return "cholesky2" if _never_rank_deficient(ensemble, k) else "householder"
    if qr not in QR_BACKENDS:
        raise InputError(f"qr must be one of {', '.join(QR_BACKENDS + ('auto',))}, got {qr!r}")
    return qr


@functools.partial(jax.jit, static_argnames=("config", "layers"))
def _pilot_log_r(ensemble, seed_key: jax.Array, config: EngineConfig, layers: int) -> jax.Array:
    """``(layers, k)`` per-layer ``log|R_ii|`` of the first layers of one realisation (NaN: not counted)."""
    dtype = config.jnp_dtype
    key_state, key_layers = jax.random.split(realisation_key(seed_key))
    frame = initial_frame(frame_key(seed_key), ensemble.input_width, ensemble.max_width, config.k, dtype)

    def apply_layer(state, frame, key, index):
        state, weight, mask = ensemble.layer(state, key, index, dtype)
        frame = mask[:, None] * jnp.matmul(weight, frame, precision=config.lax_precision)
        return state, frame, jnp.sum(mask > 0)

    sums = benettin_scan(apply_layer, ensemble.init_state(key_state, dtype), frame, key_layers, layers,
                         reortho_every=1, record_blocks=True)
    return sums.block_log_r


def _auto_reortho_every(ensemble, config: EngineConfig, seed: int, pilot_layers: int = 32) -> int:
    """``reortho_every="auto"``: from the closed form where one exists, else from a short pilot run."""
    if config.method != "direct":
        return 1  # the fast samplers factor every layer anyway; m only sets the rank-collapse bookkeeping
    from jaxspec import theory  # noqa: PLC0415

    mean = var = None
    try:
        mean = theory.lyapunov_exponents(ensemble, config.k, config.condition)
        var = theory.per_layer_variance(ensemble, config.k, config.condition)
    except (InputError, TypeError, AttributeError, jax.errors.ConcretizationTypeError):
        mean = None
    if getattr(ensemble, "name", None) == "orthogonal" and mean is not None:
        var = np.zeros_like(mean)
    if mean is None or var is None:
        layers = min(ensemble.depth, pilot_layers)
        log_r = np.asarray(_pilot_log_r(ensemble, seed_keys(seed, 1)[0], config, layers), float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (never counted) give m = 1
            mean, var = np.nanmean(log_r, axis=0), np.nanvar(log_r, axis=0)
    return choose_reortho_every(mean, var, ensemble.depth, config.dtype, config.rates_every)


def run_with_orthogonality_guard(run: Callable, config, auto: bool, *, divisor_of: int | None = None,
                                 stacklevel: int = 3):
    """Run, then apply the orthogonality guard of :func:`reortho_limits` ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)). Never silent.

    With ``config.reortho_every > 1``, a block whose log condition number exceeded the guard is re-run with a
    smaller ``m`` (``auto``: the ``m`` was chosen by ``reortho_every="auto"``) or reported with an
    :class:`OrthogonalityWarning` (an explicit ``m``: the user's choice is kept).

    Args:
        run: ``run(config) -> (result, spread)``, ``spread`` the largest block log condition number (a float,
            or None when not recorded).
        config: a frozen dataclass with ``reortho_every`` and ``jnp_dtype`` (an :class:`EngineConfig` or
            :class:`jaxspec.jacobian.JacobianConfig`).
        auto: whether ``m`` was chosen automatically.
        divisor_of: a re-run ``m`` must divide this (per-prefix or windowed rates).
        stacklevel: passed to :func:`warnings.warn`.

    Returns:
        ``(result, config)`` of the accepted run.
    """
    budget, guard = reortho_limits(config.jnp_dtype)
    while True:
        result, spread = run(config)
        m = config.reortho_every
        if m == 1 or spread is None or spread <= guard:
            return result, config
        if not auto:
            dtype = np.dtype(config.jnp_dtype).name
            warnings.warn(
                f"reortho_every={m}: a block grew the frame to log condition {spread:.1f} > {guard:.1f} "
                f"({dtype}); the smallest exponents may be inaccurate ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)). Use a smaller "
                "reortho_every or reortho_every='auto'.", OrthogonalityWarning, stacklevel=stacklevel)
            return result, config
        smaller = max(1, min(m // 2, int(m * budget / spread)))
        if divisor_of is not None:
            smaller = max(d for d in range(1, smaller + 1) if divisor_of % d == 0)
        warnings.warn(f"reortho_every='auto': m={m} grew a block to log condition {spread:.1f} > "
                      f"{guard:.1f}; re-running with m={smaller}.", OrthogonalityWarning,
                      stacklevel=stacklevel)
        config = dataclasses.replace(config, reortho_every=smaller)


def _guarded_run(ensemble, keys: jax.Array, config: EngineConfig, jit: bool, auto: bool) -> LyapunovResult:
    """:func:`_run` (jitted or eager) under :func:`run_with_orthogonality_guard`."""

    def run(config):
        if jit:
            result = _run(ensemble, keys, config)
        else:
            with jax.disable_jit():
                result = _run(ensemble, keys, config)
        spread = None if result.max_block_spread is None else float(jnp.max(result.max_block_spread))
        return result, spread

    return run_with_orthogonality_guard(run, config, auto, divisor_of=config.rates_every, stacklevel=4)[0]


def lyapunov_spectrum(ensemble, *, k: int | None = None, seeds: int = 1, seed: int = 0,
                      reortho_every: int | str = 1, dtype: str = "float32", precision: str = "highest",
                      condition: str = "K>=i", rates_every: int | None = None, jit: bool = True,
                      qr: str = "householder", method: str = "auto") -> LyapunovResult:
    """Lyapunov exponents of a product of (masked) random or fixed layers, by QR iteration.

    Args:
        ensemble: an ensemble from :mod:`jaxspec.ensembles`, e.g. ``jaxspec.gaussian(width=8, depth=2000)``.
        k: number of exponents (default: the smallest width, i.e. the full spectrum).
        seeds: number of independent realisations (vmapped).
        seed: base integer seed; seed ``s`` uses ``fold_in(key(seed), s)``.
        reortho_every: layers between QRs ([math §4](https://jaxspec.github.io/jaxspec/math/#s4): keep ``m (lambda_1 - lambda_k)`` below ~16 in
            float32, ~36 in float64), or ``"auto"``: the largest ``m`` that keeps a block's predicted log
            condition number within a quarter of the dtype's digits (:func:`choose_reortho_every`, from the
            closed form or a 32-layer pilot run), re-run with a smaller ``m`` if the guard trips. With any
            ``m > 1`` the guard (``result.max_block_spread``) is checked and a block that exceeded half the
            digits raises an :class:`OrthogonalityWarning`.
        dtype: compute dtype, ``"float32"`` or ``"float64"`` (needs ``jax_enable_x64``).
        precision: matmul precision, ``"highest"`` by default.
        condition: rank-collapse convention: ``"K>=i"`` (default), ``"K>=k"`` or ``"none"``.
        rates_every: also return local growth rates averaged over windows of this many layers.
        jit: run under ``jax.jit`` (default) or eagerly (for debugging and tests).
        qr: QR backend, ``"householder"`` (default), ``"cholesky2"``, ``"shifted_cholesky3"`` (GEMM-based,
            with a Householder fallback on an ill-conditioned Gram matrix; :mod:`jaxspec.qr`), or ``"auto"``
            (CholeskyQR2 where no layer can have fewer than ``k`` active units, else Householder).
        method: ``"auto"`` (default): ``"chi"`` where it is exact (Gaussian and independently-gated masked
            ensembles), else ``"direct"``. ``"direct"``: the product itself, one realisation of the
            matrices. ``"gaussian_frame"`` (``W Q`` drawn as a fresh ``n x k`` Gaussian) and ``"chi"``
            (independent chi-law ``R`` factors, O(k) per layer) are the exact fast samplers of
            :mod:`jaxspec.fast`: the same joint law of the exponents at every depth, every ``k``, every
            rank-collapse convention, but not the realisation of the direct path for a given seed, and no
            frame. Exponents are all this function returns; use ``method="direct"`` to time or debug the
            product itself (benchmarks/RESULTS.md: the default is 30-100x faster on Gaussian and masked
            ensembles).

    Returns:
        A :class:`LyapunovResult`; ``result.mean`` is ``(k,)``.

    Example:
        >>> import jaxspec
        >>> res = jaxspec.lyapunov_spectrum(jaxspec.gaussian(width=8, depth=500), seeds=4)
        >>> res.exponents.shape
        (4, 8)

    References:
        Newman (1986) for the Gaussian closed form; Haas et al., arXiv:2602.12384, for masked products.
    """
    max_k = min(ensemble.widths)
    auto = isinstance(reortho_every, str)
    if auto and reortho_every != "auto":
        raise InputError(f"reortho_every must be a positive integer or 'auto', got {reortho_every!r}")
    config = make_config(max_k if k is None else k, max_k=max_k, reortho_every=1 if auto else reortho_every,
                         dtype=dtype, precision=precision, condition=condition, rates_every=rates_every)
    config = dataclasses.replace(config, method=_resolve_method(ensemble, method),
                                 qr=_resolve_qr(ensemble, qr, config.k))
    if isinstance(seeds, bool) or int(seeds) != seeds or seeds < 1:
        raise InputError(f"seeds must be a positive integer, got {seeds}")
    if auto:
        config = dataclasses.replace(config, reortho_every=_auto_reortho_every(ensemble, config, int(seed)))
    keys = seed_keys(int(seed), int(seeds))
    return _guarded_run(ensemble, keys, config, jit, auto)
