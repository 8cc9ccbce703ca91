"""Exact fast paths: samplers with the same law as the engine's exponents, and stacked frames for shared
weights.

For a rotation-invariant iid ensemble (Gaussian layers, optionally behind gates independent of the weights),
the frame the engine propagates never needs the ``n x n`` matrices ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)):

* **Fresh Gaussian frame** (``method="gaussian_frame"``). For an orthonormal ``Q`` independent of ``W``,
  ``W Q`` is again an ``n_out x k`` matrix of iid ``N(0, sigma2 / n_in)`` entries, independent of the past.
  So layer ``l``'s QR factor has the law of the R factor of ``D_l G_l`` with ``G_l`` a fresh ``n_out x k``
  Gaussian: ``n k`` random numbers and an ``n k^2`` QR per layer instead of ``n^2`` numbers and an ``n^2 k``
  product.
* **Chi-law R factors** (``method="chi"``). Bartlett's decomposition of ``D_l G_l``: given the active count
  ``K_l``, the diagonal entries are independent with ``R_ii^2 ~ (sigma2 / n_in) chi^2_{K_l - i + 1}`` for
  ``i <= K_l`` (and ``R_ii = 0`` beyond, where the engine's rank-collapse convention excludes the layer). So
  ``k`` log-gamma variates and one count per layer sample the exact finite-depth QR estimator, O(k) per layer.

Both are *exact in distribution*: the per-seed exponents (every index, every depth, every rank-collapse
convention and ``reortho_every``, whose block bookkeeping is reproduced) have the same joint law as those of
the direct path; they are not the same realisation. They are exponents-only samplers: no frame of the product
exists, so :class:`~jaxspec.engine.FrameSums` has ``frame=None`` and they must never stand in for the product
when vectors, alignment or finite-depth singular values are wanted. :func:`check_fast_path` admits only
:class:`~jaxspec.ensembles.Gaussian` and :class:`~jaxspec.ensembles.Masked` (Bernoulli or fixed-count gates,
drawn independently of the weights); ReLU networks (gates depend on the weights), orthogonal and fixed
networks go through the direct path.

The third tool here is exact in realisation: :func:`stacked_frame_sums` propagates the frames of many inputs
of one fixed network with **one** ``N x (inputs k)`` matrix product per layer (the weights are shared, only
the gates differ), the form that reaches the machine's GEMM rate.

References:
    Newman, "The distribution of Lyapunov exponents: exact results for random matrices", CMP 104 (1986);
    Bartlett, "On the theory of statistical regression", Proc. R. Soc. Edinburgh 53 (1933);
    Marsaglia, Tsang, "A simple method for generating gamma variables", ACM TOMS 26 (2000);
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxspec._checks import InputError
from jaxspec.engine._qr import make_qr
from jaxspec.engine._spectrum import (
    EngineConfig,
    FrameSums,
    accumulate_block,
    accumulator_dtype,
    benettin_scan,
    choose_reortho_every,
    exponents_from_sums,
    frame_key,
    initial_frame,
    make_config,
    realisation_key,
    run_with_orthogonality_guard,
    seed_keys,
)
from jaxspec.ensembles._layers import Gaussian, Masked, layer_key

__all__ = [
    "FAST_METHODS",
    "SharedWeightsResult",
    "chi_frame_sums",
    "check_fast_path",
    "fast_frame_sums",
    "fast_path_eligible",
    "gaussian_frame_sums",
    "log_gamma_variates",
    "pilot_reortho_every",
    "shared_weights_spectrum",
    "stacked_frame_sums",
]

FAST_METHODS = ("gaussian_frame", "chi")
# Up to this padded width the active count is drawn as a sum of Bernoulli gates (cheaper than a binomial
# sampler's rejection loop on CPU); beyond it, jax.random.binomial. Both are exactly Binomial(n_out, p).
_BERNOULLI_SUM_MAX_WIDTH = 4096
# Vectorised Marsaglia-Tsang attempts per variate before the (rarely entered) rejection loop.
_GAMMA_ATTEMPTS = 3


def fast_path_eligible(ensemble) -> bool:
    """Whether the fast samplers are exact for this ensemble: Gaussian layers, optionally behind gates drawn
    independently of the weights (:class:`~jaxspec.ensembles.Gaussian`,
    :class:`~jaxspec.ensembles.Masked`)."""
    return isinstance(ensemble, (Gaussian, Masked))


def check_fast_path(ensemble, method: str) -> None:
    """Raise :class:`InputError` unless ``method`` is a fast sampler that is exact for ``ensemble``."""
    if method not in FAST_METHODS:
        raise InputError(f"fast method must be one of {', '.join(FAST_METHODS)}, got {method!r}")
    if not fast_path_eligible(ensemble):
        name = getattr(ensemble, "name", type(ensemble).__name__)
        raise InputError(
            f"method={method!r} is exact only for gaussian and masked ensembles (gates independent of "
            f"the weights), not {name!r}; use method='direct'"
        )


def log_gamma_variates(
    key: jax.Array, shape_param: jax.Array, dtype=jnp.float32, attempts: int = _GAMMA_ATTEMPTS
) -> jax.Array:
    """Exact samples of ``log X`` with ``X ~ Gamma(a, 1)``, vectorised (Marsaglia-Tsang, boosted below 1).

    Every variate gets ``attempts`` independent proposals drawn in one batch; the first accepted one is kept
    (this *is* the rejection sampler), and a ``while_loop`` redraws the rare variates that rejected them all.
    For ``a < 1``, ``log X = log Y + log(U) / a`` with ``Y ~ Gamma(a + 1)``, which stays finite where ``X``
    itself would underflow. The normals and uniforms are drawn in float32 and cast, as the ensembles draw
    their weights, so float32 and float64 runs share realisations (a float64 run is a rounding reference).

    Args:
        key: a PRNG key.
        shape_param: ``(...)`` shape parameters ``a > 0``.
        dtype: floating dtype of the variates.
        attempts: proposals per variate before the rejection loop.

    Returns:
        ``(...)`` samples of ``log Gamma(a, 1)``: mean ``psi(a)``, variance ``psi1(a)``.

    Example:
        >>> x = log_gamma_variates(jax.random.key(0), jnp.full((4,), 2.5))
        >>> x.shape
        (4,)

    References:
        Marsaglia, Tsang, ACM TOMS 26 (2000), 363-372.
    """
    a = jnp.asarray(shape_param, dtype)
    boost = a < 1
    a1 = jnp.where(boost, a + 1, a)
    d = a1 - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    key_try, key_boost, key_loop = jax.random.split(key, 3)

    def propose(key, lead):
        key_x, key_u = jax.random.split(key)
        x = jax.random.normal(key_x, lead + a.shape, jnp.float32).astype(dtype)
        u = jax.random.uniform(key_u, lead + a.shape, jnp.float32).astype(dtype)
        w = c * x
        positive = w > -1
        log1p_w = jnp.log1p(jnp.where(positive, w, 0.0))
        # Accept iff log u < x^2/2 + d - d v + d log v with v = (1 + w)^3; written with log1p for float32.
        v_minus_1 = jnp.expm1(3.0 * log1p_w)
        accept = positive & (jnp.log(u) < 0.5 * x * x - d * (v_minus_1 - 3.0 * log1p_w))
        return accept, jnp.log(d) + 3.0 * log1p_w

    accept, value = propose(key_try, (attempts,))
    first = jnp.argmax(accept, axis=0)
    done = jnp.any(accept, axis=0)
    log_y = jnp.take_along_axis(value, first[None], axis=0)[0]

    def redraw(state):
        key, done, log_y = state
        key, sub = jax.random.split(key)
        ok, val = propose(sub, ())
        take = ok & ~done
        return key, done | ok, jnp.where(take, val, log_y)

    _, _, log_y = jax.lax.while_loop(lambda s: ~jnp.all(s[1]), redraw, (key_loop, done, log_y))
    u = jax.random.uniform(key_boost, a.shape, jnp.float32, minval=jnp.finfo(jnp.float32).tiny).astype(dtype)
    return jnp.where(boost, log_y + jnp.log(u) / a, log_y)


def _layer_fan(ensemble, index):
    widths = jnp.asarray(ensemble.widths, jnp.int32)
    return widths[index], widths[index + 1]


def _active_count(ensemble, key: jax.Array, index) -> jax.Array:
    """``K_l`` with the law of the direct path's ``mask.sum()`` (independent of everything else)."""
    _, fan_out = _layer_fan(ensemble, index)
    if isinstance(ensemble, Gaussian):
        return fan_out
    if ensemble.fixed_count is not None:
        return jnp.asarray(ensemble.fixed_count, jnp.int32)[index]
    n = ensemble.max_width
    if n <= _BERNOULLI_SUM_MAX_WIDTH:
        gates = jax.random.bernoulli(key, ensemble.p, (n,)) & (jnp.arange(n) < fan_out)
        return jnp.sum(gates, dtype=jnp.int32)
    return jax.random.binomial(key, fan_out.astype(jnp.float32), ensemble.p).astype(jnp.int32)


def _log_variance(ensemble, index, dtype) -> jax.Array:
    fan_in, _ = _layer_fan(ensemble, index)
    return jnp.log(jnp.asarray(ensemble.sigma2, dtype) / fan_in.astype(dtype))


def _gaussian_frame_layer(ensemble, k: int, dtype) -> Callable:
    n = ensemble.max_width

    def layer(key, index):
        key_g, key_k = jax.random.split(key)
        count = _active_count(ensemble, key_k, index)
        g = jax.random.normal(key_g, (n, k), jnp.float32).astype(dtype)
        # Active rows first: the R factor's law does not depend on which rows are active (iid rows).
        g = g * (jnp.arange(n) < count)[:, None].astype(dtype)
        r = jnp.linalg.qr(g, mode="r")
        log_r = jnp.log(jnp.abs(jnp.diagonal(r))) + 0.5 * _log_variance(ensemble, index, dtype)
        return log_r, count

    return layer


def _chi_layer(ensemble, k: int, dtype) -> Callable:
    def layer(key, index):
        key_c, key_k = jax.random.split(key)
        count = _active_count(ensemble, key_k, index)
        dof = count - jnp.arange(k)  # chi^2 degrees of freedom K - i + 1
        alive = dof >= 1
        log_gamma = log_gamma_variates(key_c, jnp.where(alive, dof, 1).astype(dtype) / 2, dtype)
        # R_ii^2 = (sigma2 / n_in) * 2 * Gamma((K - i + 1) / 2)
        log_r = 0.5 * (_log_variance(ensemble, index, dtype) + jnp.log(jnp.asarray(2.0, dtype)) + log_gamma)
        return jnp.where(alive, log_r, 0.0), count

    return layer


def _log_r_scan(
    layer: Callable, key: jax.Array, depth: int, k: int, reortho_every: int, record_blocks: bool
) -> FrameSums:
    """The engine's block bookkeeping (:func:`jaxspec.engine.benettin_scan`) over sampled per-layer
    ``log|R_ii|``.

    Within a block the per-layer logs add up: ``diag(R_m ... R_1) = prod diag(R_j)``, which is what the direct
    path's single QR per block returns in exact arithmetic.
    """
    acc_dtype = accumulator_dtype()
    big = jnp.iinfo(jnp.int32).max

    def block(carry, block_indices):
        sums, count, sums_k, count_k, kmin_all = carry

        def one_layer(inner, index):
            total, kmin = inner
            log_r, active = layer(layer_key(key, index), index)
            active = jnp.asarray(active, jnp.int32)
            return (total + log_r.astype(acc_dtype), jnp.minimum(kmin, active)), active

        (log_r, kmin), actives = jax.lax.scan(
            one_layer, (jnp.zeros((k,), acc_dtype), jnp.int32(big)), block_indices
        )
        (sums, count, sums_k, count_k), valid = accumulate_block((sums, count, sums_k, count_k), log_r, kmin,
                                                                 block_indices.shape[0])
        out = (actives, jnp.where(valid, log_r, jnp.nan) if record_blocks else None)
        return (sums, count, sums_k, count_k, jnp.minimum(kmin_all, kmin)), out

    zeros = jnp.zeros((k,), acc_dtype)
    carry = (zeros, jnp.zeros((k,), jnp.int32), zeros, jnp.int32(0), jnp.int32(big))
    indices = jnp.arange(depth)
    full, rem = divmod(depth, reortho_every)
    actives, block_log_r, sizes = [], [], []
    if full:
        carry, (act, blr) = jax.lax.scan(
            block, carry, indices[: full * reortho_every].reshape(full, reortho_every)
        )
        actives.append(act.reshape(-1))
        block_log_r.append(blr)
        sizes.append(jnp.full((full,), reortho_every))
    if rem:
        carry, (act, blr) = block(carry, indices[full * reortho_every :])
        actives.append(act)
        block_log_r.append(None if blr is None else blr[None])
        sizes.append(jnp.full((1,), rem))
    sums, count, sums_k, count_k, kmin_all = carry
    return FrameSums(
        log_r_sum=sums,
        layer_count=count,
        log_r_sum_all_k=sums_k,
        layer_count_all_k=count_k,
        depth=jnp.int32(depth),
        min_active=kmin_all,
        active_counts=jnp.concatenate(actives),
        block_log_r=jnp.concatenate(block_log_r) if record_blocks else None,
        block_size=jnp.concatenate(sizes) if record_blocks else None,
        frame=None,
        max_block_spread=None,
    )


def _fast_sums(make_layer: Callable, ensemble, seed_key: jax.Array, config: EngineConfig) -> FrameSums:
    _, key_layers = jax.random.split(realisation_key(seed_key))
    layer = make_layer(ensemble, config.k, config.jnp_dtype)
    return _log_r_scan(
        layer, key_layers, ensemble.depth, config.k, config.reortho_every, config.rates_every is not None
    )


def gaussian_frame_sums(ensemble, seed_key: jax.Array, config: EngineConfig) -> FrameSums:
    """Exponent sums of one seed with ``W Q`` drawn as a fresh ``n_out x k`` Gaussian per layer (exact in
    law).

    Args:
        ensemble: a :class:`~jaxspec.ensembles.Gaussian` or :class:`~jaxspec.ensembles.Masked` ensemble.
        seed_key: this seed's key (see :func:`jaxspec.engine.seed_keys`).
        config: an :class:`~jaxspec.engine.EngineConfig` (its ``reortho_every`` sets the block bookkeeping).

    Returns:
        :class:`~jaxspec.engine.FrameSums` with ``frame=None``.

    Example:
        >>> import jaxspec
        >>> ens = jaxspec.gaussian(width=64, depth=100)
        >>> cfg = jaxspec.engine.make_config(4, max_k=64)
        >>> gaussian_frame_sums(ens, jaxspec.engine.seed_keys(0, 1)[0], cfg).log_r_sum.shape
        (4,)

    References:
        Newman, CMP 104 (1986), section 2 (rotation invariance of the Gaussian ensemble).
    """
    check_fast_path(ensemble, "gaussian_frame")
    return _fast_sums(_gaussian_frame_layer, ensemble, seed_key, config)


def chi_frame_sums(ensemble, seed_key: jax.Array, config: EngineConfig) -> FrameSums:
    """Exponent sums of one seed from independent chi-law ``R`` factors, O(k) per layer (exact in law).

    Args:
        ensemble: a :class:`~jaxspec.ensembles.Gaussian` or :class:`~jaxspec.ensembles.Masked` ensemble.
        seed_key: this seed's key.
        config: an :class:`~jaxspec.engine.EngineConfig`.

    Returns:
        :class:`~jaxspec.engine.FrameSums` with ``frame=None``.

    Example:
        >>> import jaxspec
        >>> ens = jaxspec.masked(width=128, depth=1000, p=0.5)
        >>> cfg = jaxspec.engine.make_config(8, max_k=128)
        >>> chi_frame_sums(ens, jaxspec.engine.seed_keys(0, 1)[0], cfg).layer_count.shape
        (8,)

    References:
        Bartlett (1933); Newman, CMP 104 (1986); [math §1](https://jaxspec.github.io/jaxspec/math/#s1).
    """
    check_fast_path(ensemble, "chi")
    return _fast_sums(_chi_layer, ensemble, seed_key, config)


def fast_frame_sums(ensemble, seed_key: jax.Array, config: EngineConfig) -> FrameSums:
    """Dispatch on ``config.method`` (``"gaussian_frame"`` or ``"chi"``); used by the engine."""
    if config.method == "gaussian_frame":
        return gaussian_frame_sums(ensemble, seed_key, config)
    if config.method == "chi":
        return chi_frame_sums(ensemble, seed_key, config)
    raise InputError(f"fast method must be one of {', '.join(FAST_METHODS)}, got {config.method!r}")


# ------------------------------------------------------------------------------------------------------------
# Stacked frames: one fixed network, many inputs.


def stacked_frame_sums(
    weights: jax.Array, masks: jax.Array, frame: jax.Array, config: EngineConfig
) -> FrameSums:
    """Frames of many inputs of one fixed network, pushed through one ``N x (inputs k)`` GEMM per layer.

    The weights are shared and only the gates differ between inputs, so the per-input frames are stacked side
    by side: layer ``l`` is ``D_l^{(b)} (W_l [Q^{(1)} ... Q^{(B)}])``, one large matrix product, then a
    batched QR (``config.qr``; the Cholesky backends decide their fallback for the whole batch). Same
    realisation, same numbers as running :func:`jaxspec.engine.benettin_scan` per input.

    Args:
        weights: ``(L, N, N)`` padded weights (``FixedStack.weights``).
        masks: ``(B, L, N)`` gates of each input (0/1).
        frame: ``(N, k)`` initial orthonormal frame shared by the inputs, or ``(B, N, k)`` one per input.
        config: an :class:`~jaxspec.engine.EngineConfig` (``k``, ``reortho_every``, ``dtype``, ``precision``,
            ``qr``, ``rates_every``); ``method`` must be ``"direct"``.

    Returns:
        :class:`~jaxspec.engine.FrameSums` with a leading ``(B,)`` axis.

    Example:
        >>> import jaxspec
        >>> w = jnp.stack([jnp.eye(4)] * 3); m = jnp.ones((2, 3, 4))
        >>> f = jnp.eye(4)[:, :2]
        >>> stacked_frame_sums(w, m, f, jaxspec.engine.make_config(2, max_k=4)).log_r_sum.shape
        (2, 2)

    References:
        Benettin et al., Meccanica 15 (1980); Haas et al., arXiv:2602.12384.
    """
    if config.method != "direct":
        raise InputError("stacked_frame_sums propagates the product itself; config.method must be 'direct'")
    dtype = config.jnp_dtype
    precision = config.lax_precision
    weights = jnp.asarray(weights, dtype)
    masks = jnp.asarray(masks, dtype)
    frame = jnp.asarray(frame, dtype)
    depth, n = weights.shape[0], weights.shape[-1]
    batch, k = masks.shape[0], frame.shape[-1]
    # The frames live side by side as one (N, B, k) array: each layer is a single (N, N) x (N, B k) GEMM with
    # no transposes; only the QR at a block's end sees them as a (B, N, k) batch.
    frames = jnp.transpose(jnp.broadcast_to(frame, (batch, n, k)), (1, 0, 2))
    gates = jnp.transpose(masks, (1, 2, 0))[..., None]  # (L, N, B, 1)
    counts = jnp.sum(masks != 0, axis=-1, dtype=jnp.int32).T  # (L, B)
    batched_qr = make_qr(config.qr, precision=precision)

    def apply_layer(state, frames, key, index):
        product = jnp.matmul(weights[index], frames.reshape(n, batch * k), precision=precision)
        return state, gates[index] * product.reshape(n, batch, k), counts[index]

    def qr(frames):
        q, r = batched_qr(jnp.transpose(frames, (1, 0, 2)))
        return jnp.transpose(q, (1, 0, 2)), r

    sums = benettin_scan(
        apply_layer,
        None,
        frames,
        jax.random.key(0),
        depth,
        reortho_every=config.reortho_every,
        record_blocks=config.rates_every is not None,
        qr=qr,
        batch_shape=(batch,),
    )
    # The contract of a vmap over inputs: every field has the inputs axis in front.
    return sums._replace(
        depth=jnp.full((batch,), depth, jnp.int32),
        active_counts=sums.active_counts.T,
        block_log_r=None if sums.block_log_r is None else jnp.swapaxes(sums.block_log_r, 0, 1),
        block_size=None if sums.block_size is None else jnp.broadcast_to(sums.block_size, (batch,) +
                                                                          sums.block_size.shape),
        frame=jnp.transpose(sums.frame, (1, 0, 2)),
    )


class SharedWeightsResult(NamedTuple):
    """Per-input growth rates of a fixed network's Jacobian (see :func:`shared_weights_spectrum`).

    Attributes:
        exponents: ``(B, k)`` per-input mean per-layer growth rates of ``log s_i`` (the QR estimator).
        sums: the raw :class:`~jaxspec.engine.FrameSums`, batched over inputs.
        config: the resolved :class:`~jaxspec.engine.EngineConfig` (``reortho_every`` and ``qr`` resolved).
    """

    exponents: jax.Array
    sums: FrameSums
    config: EngineConfig


@functools.partial(jax.jit, static_argnames=("config",))
def _stacked_run(weights, masks, frame, config):
    sums = stacked_frame_sums(weights, masks, frame, config)
    return exponents_from_sums(sums, config.condition), sums


def pilot_reortho_every(weights, masks, frame, config: EngineConfig, *, pilot_layers: int = 16,
                        pilot_inputs: int = 4, divisor_of: int | None = None) -> int:
    """``reortho_every="auto"`` for a fixed network at many inputs, from a short per-layer pilot.

    The spread of the growth rates is a per-layer statistic: the first ``pilot_layers`` layers at the first
    ``pilot_inputs`` inputs, re-orthonormalised every layer, estimate the per-layer means and variances of
    ``log|R_ii|`` that :func:`jaxspec.engine.choose_reortho_every` turns into the largest safe ``m``.

    Args:
        weights: ``(L, N, N)``; masks: ``(B, L, N)``; frame: ``(N, k)`` or ``(B, N, k)`` (as
            :func:`stacked_frame_sums`).
        config: the run's :class:`~jaxspec.engine.EngineConfig` (its ``reortho_every`` is ignored).
        pilot_layers, pilot_inputs: size of the pilot.
        divisor_of: the chosen ``m`` must divide this (e.g. the depth, for per-prefix rates).

    Returns:
        ``m`` in ``[1, L]``.
    """
    depth = weights.shape[0]
    layers = min(depth, pilot_layers)
    pilot = dataclasses.replace(config, reortho_every=1, rates_every=1)
    frame = frame if frame.ndim == 2 else frame[:pilot_inputs]
    _, sums = _stacked_run(weights[:layers], masks[:pilot_inputs, :layers], frame, pilot)
    log_r = np.asarray(sums.block_log_r, float).reshape(-1, config.k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (never counted) give m = 1
        mean, var = np.nanmean(log_r, 0), np.nanvar(log_r, 0)
    return choose_reortho_every(mean, var, depth, config.dtype, divisor_of)


def shared_weights_spectrum(
    weights,
    masks,
    *,
    k: int,
    seed: int = 0,
    reortho_every: int | str = "auto",
    qr: str = "auto",
    dtype: str = "float32",
    precision: str = "highest",
    condition: str = "K>=i",
    pilot_layers: int = 16,
    pilot_inputs: int = 4,
) -> SharedWeightsResult:
    """Top-``k`` growth rates of one fixed (gated) network's Jacobian at many inputs, frames stacked per
    layer.

    Args:
        weights: ``(L, N, N)`` layer weights (uniform width; pad variable widths as
            :func:`jaxspec.fixed_network` does).
        masks: ``(B, L, N)`` 0/1 gates of each input (e.g. ReLU derivatives at each input).
        k: number of growth rates.
        seed: seed of the shared initial Haar frame.
        reortho_every: positive int, or ``"auto"``: the largest ``m`` that keeps each block's log
            condition number within :func:`jaxspec.engine.reortho_limits`'s budget, from a ``pilot_layers``
            pilot with ``m = 1``; a tripped guard re-runs with a smaller ``m``, an explicit ``m`` warns.
        qr: ``"auto"`` (CholeskyQR2 when every layer has at least ``k`` active units, else Householder) or a
            backend of :mod:`jaxspec.qr`.
        dtype, precision, condition: as in :func:`jaxspec.lyapunov_spectrum`.
        pilot_layers, pilot_inputs: layers and inputs of the pilot run for ``reortho_every="auto"``.

    Returns:
        :class:`SharedWeightsResult`.

    Example:
        >>> w = jnp.stack([2.0 * jnp.eye(8)] * 10); m = jnp.ones((3, 10, 8))
        >>> res = shared_weights_spectrum(w, m, k=2)
        >>> bool(jnp.allclose(res.exponents, jnp.log(2.0)))
        True

    References:
        Benettin et al., Meccanica 15 (1980); Haas et al., arXiv:2602.12384.
    """
    weights = jnp.asarray(weights)
    masks = jnp.asarray(masks)
    if weights.ndim != 3 or weights.shape[1] != weights.shape[2]:
        raise InputError(f"weights must have shape (L, N, N), got {weights.shape}")
    if masks.ndim != 3 or masks.shape[1:] != weights.shape[:2]:
        raise InputError(
            f"masks must have shape (inputs, L={weights.shape[0]}, N={weights.shape[1]}), got {masks.shape}"
        )
    depth, n = weights.shape[:2]
    auto = reortho_every == "auto"
    if isinstance(reortho_every, str) and not auto:
        raise InputError(f"reortho_every must be a positive integer or 'auto', got {reortho_every!r}")
    if qr == "auto":
        qr = "cholesky2" if int(np.min(np.sum(np.asarray(masks) > 0, axis=-1))) >= k else "householder"
    config = make_config(
        k,
        max_k=n,
        reortho_every=1 if auto else reortho_every,
        dtype=dtype,
        precision=precision,
        condition=condition,
        qr=qr,
    )
    frame = initial_frame(frame_key(seed_keys(seed, 1)[0]), n, n, config.k, config.jnp_dtype)
    if auto:
        config = dataclasses.replace(config, reortho_every=pilot_reortho_every(
            weights, masks, frame, config, pilot_layers=pilot_layers, pilot_inputs=pilot_inputs))

    def run(config):
        exponents, sums = _stacked_run(weights, masks, frame, config)
        return (exponents, sums), float(jnp.max(sums.max_block_spread))

    (exponents, sums), config = run_with_orthogonality_guard(run, config, auto, stacklevel=3)
    return SharedWeightsResult(exponents, sums, config)
