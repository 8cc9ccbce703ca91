"""Stacked frames: the Jacobian spectrum of one fixed network at many inputs, one GEMM per layer for all.

The weights are shared and only the gates differ between inputs, so the per-input frames are stacked side by
side: layer ``l`` is ``D_l^{(b)} (W_l [Q^{(1)} ... Q^{(B)}])``, one ``N x (inputs k)`` matrix product, then a
batched QR. Exact in realisation: the same numbers as running :func:`benettin_scan` per input, in the form
that reaches the machine's GEMM rate.

References:
    Benettin et al., Meccanica 15 (1980); Haas et al., arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxspec._checks import InputError
from jaxspec.engine._config import EngineConfig, make_config
from jaxspec.engine._guard import run_with_orthogonality_guard
from jaxspec.engine._keys import frame_key, initial_frame, seed_keys
from jaxspec.engine._qr import choose_qr, make_qr
from jaxspec.engine._reortho import parse_reortho_every, reortho_from_pilot
from jaxspec.engine._scan import FrameSums, benettin_scan, exponents_from_sums


def stacked_frame_sums(
    weights: Float[Array, "L N N"],
    masks: Float[Array, "B L N"],
    frame: Float[Array, "*B N k"],
    config: EngineConfig,
) -> FrameSums:
    """Frames of many inputs of one fixed network, pushed through one ``N x (inputs k)`` GEMM per layer.

    The weights are shared and only the gates differ between inputs, so the per-input frames are stacked side
    by side: layer ``l`` is ``D_l^{(b)} (W_l [Q^{(1)} ... Q^{(B)}])``, one large matrix product, then a
    batched QR (``config.qr``; the Cholesky backends decide their fallback for the whole batch). Same
    realisation, same numbers as running :func:`benettin_scan` per input.

    Args:
        weights: ``(L, N, N)`` padded weights (``FixedStack.weights``).
        masks: ``(B, L, N)`` gates of each input (0/1).
        frame: ``(N, k)`` initial orthonormal frame shared by the inputs, or ``(B, N, k)`` one per input.
        config: an :class:`EngineConfig` (``k``, ``reortho_every``, ``dtype``, ``precision``,
            ``qr``, ``rates_every``); ``method`` must be ``"direct"``.

    Returns:
        :class:`FrameSums` with a leading ``(B,)`` axis.

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
        block_size=None
        if sums.block_size is None
        else jnp.broadcast_to(sums.block_size, (batch,) + sums.block_size.shape),
        frame=jnp.transpose(sums.frame, (1, 0, 2)),
    )


class SharedWeightsResult(NamedTuple):
    """Per-input growth rates of a fixed network's Jacobian (see :func:`shared_weights_spectrum`).

    Attributes:
        exponents: ``(B, k)`` per-input mean per-layer growth rates of ``log s_i`` (the QR estimator).
        sums: the raw :class:`FrameSums`, batched over inputs.
        config: the resolved :class:`EngineConfig` (``reortho_every`` and ``qr`` resolved).
    """

    exponents: jax.Array
    sums: FrameSums
    config: EngineConfig


@functools.partial(jax.jit, static_argnames=("config",))
def _stacked_run(weights, masks, frame, config):
    sums = stacked_frame_sums(weights, masks, frame, config)
    return exponents_from_sums(sums, config.condition), sums


def pilot_reortho_every(
    weights,
    masks,
    frame,
    config: EngineConfig,
    *,
    pilot_layers: int = 16,
    pilot_inputs: int = 4,
    divisor_of: int | None = None,
) -> int:
    """``reortho_every="auto"`` for a fixed network at many inputs, from a short per-layer pilot.

    The spread of the growth rates is a per-layer statistic: the first ``pilot_layers`` layers at the first
    ``pilot_inputs`` inputs, re-orthonormalised every layer, estimate the per-layer means and variances of
    ``log|R_ii|`` that :func:`choose_reortho_every` turns into the largest safe ``m``.

    Args:
        weights: ``(L, N, N)``; masks: ``(B, L, N)``; frame: ``(N, k)`` or ``(B, N, k)`` (as
            :func:`stacked_frame_sums`).
        config: the run's :class:`EngineConfig` (its ``reortho_every`` is ignored).
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
    return reortho_from_pilot(sums.block_log_r, depth, config.dtype, divisor_of)


def shared_weights_spectrum(
    weights: Float[Array, "L N N"],
    masks: Float[Array, "B L N"],
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
            condition number within :func:`reortho_limits`'s budget, from a ``pilot_layers``
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
    reortho_every, auto = parse_reortho_every(reortho_every)
    if qr == "auto":
        active = int(np.min(np.sum(np.asarray(masks) > 0, axis=-1)))
        qr = choose_qr(active, k, n=weights.shape[1], batch=masks.shape[0])
    config = make_config(
        k,
        max_k=n,
        reortho_every=reortho_every,
        dtype=dtype,
        precision=precision,
        condition=condition,
        qr=qr,
    )
    frame = initial_frame(frame_key(seed_keys(seed, 1)[0]), n, n, config.k, config.jnp_dtype)
    if auto:
        config = dataclasses.replace(
            config,
            reortho_every=pilot_reortho_every(
                weights, masks, frame, config, pilot_layers=pilot_layers, pilot_inputs=pilot_inputs
            ),
        )

    def run(config):
        exponents, sums = _stacked_run(weights, masks, frame, config)
        return (exponents, sums), float(jnp.max(sums.max_block_spread))

    (exponents, sums), config = run_with_orthogonality_guard(run, config, auto, stacklevel=3)
    return SharedWeightsResult(exponents, sums, config)
