"""Jacobian spectra of real networks, matrix-free: tangents pushed through the layers with ``jax.jvp``.

For an input ``x`` the input-output Jacobian of an MLP is ``J(x) = D_L W_L ... D_1 W_1`` (see
:mod:`jaxspec.networks`). Nothing here forms it. Each layer is applied to the activation ``h_l`` and, by
``jax.jvp`` vmapped over tangents, to a frame of ``k`` tangent vectors; the frame lives in the engine's
scan-and-QR (:func:`jaxspec.engine.benettin_scan`), so the top-``k`` growth rates ``(1/L) sum log|R_ii|`` come
out exactly as for the random ensembles, with the same rank-collapse bookkeeping (the active count ``K_l`` is
read from the gate, never from ``|R_ii|``). The exact finite-depth singular values of ``J_l(x)`` for every
depth prefix ``l`` come from the stratified scan (:func:`jaxspec.analysis.stratified_scan`) run on the same
layer function with a full frame (``n_0`` columns).

Shared weights. The inputs of one network share every ``W_l``: the layer function is ``vmap``-ed over inputs
with the weights unbatched, so XLA emits one ``(N, N) x (N, batch * k)`` matrix product per layer for all
inputs and tangents together (the tests check the jaxpr), never one per input.

A dense route (:func:`dense_prefix_jacobians`, :func:`dense_prefix_log_svals`) forms the prefix products
explicitly in float64; it is the cross-check for small cases, exact as long as ``s_i / s_1`` stays above
machine precision.

References:
    Benettin et al., Meccanica 15 (1980) (QR method).
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxspec._checks import ComputeOptions, InputError, check_choice
from jaxspec.analysis import ProductSvals, stratified_scan
from jaxspec.engine import (
    QR_BACKENDS,
    FrameSums,
    accumulator_dtype,
    benettin_scan,
    choose_qr,
    exponents_from_sums,
    initial_frame,
    make_config,
    parse_reortho_every,
    pilot_reortho_every,
    run_with_orthogonality_guard,
    stacked_frame_sums,
)
from jaxspec.networks._mlp import (
    ACTIVATIONS,
    PaddedMLP,
    Params,
    _forward_padded,
    activation_derivative,
    apply_activation,
    gates,
    mlp_apply,
    pad_params,
)


@dataclasses.dataclass(frozen=True)
class JacobianConfig(ComputeOptions):
    """Static options of :func:`jacobian_spectrum` (hashable: a ``jit`` static argument).

    Attributes:
        k: number of tangents (top-``k`` growth rates and singular values).
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        negative_slope: leaky-ReLU slope.
        final_activation: the last layer is gated too (default: linear last layer, ``D_L = I``).
        reortho_every: layers between QRs in the growth-rate scan.
        condition: rank-collapse convention of the growth rates (see :mod:`jaxspec.engine`).
        dtype: compute dtype name.
        precision: matmul precision name.
        singular_values: also compute the exact singular values (stratified scan, full frame).
        prefixes: return every depth prefix ``l = 1..L`` (memory ``O(L)``), not only ``l = L``.
        qr: QR backend of the growth-rate scan (:func:`jaxspec.engine.make_qr`).
    """

    k: int
    activation: str = "relu"
    negative_slope: float = 0.01
    final_activation: bool = False
    reortho_every: int = 1
    condition: str = "K>=i"
    dtype: str = "float32"
    precision: str = "highest"
    singular_values: bool = True
    prefixes: bool = True
    qr: str = "householder"


@struct.dataclass
class JacobianSpectrum:
    """Spectra of ``J_l(x)`` for a batch of inputs (a frozen pytree).

    Attributes:
        growth_rates: ``(B, k)`` QR growth rates ``(1/L) sum_l log|R_ii^(l)|`` of the whole network, under
            ``config.condition`` (NaN where no layer qualifies).
        prefix_growth_rates: ``(B, L, k)`` the same average over the first ``l`` layers, for every ``l``
            (``K>=i`` convention; NaN before index ``i`` is counted), or ``None`` without ``prefixes``.
        log_svals: ``(B, L, k)`` exact ``log s_i(J_l(x))`` for every prefix (``(B, k)`` for ``l = L`` only
            without ``prefixes``), or ``None`` without ``singular_values``.
        active_counts: ``(B, L)`` active units ``K_l`` per layer (the width for an ungated layer).
        min_active: ``(B,)`` ``min_l K_l``.
        max_block_spread: ``(B,)`` the largest log condition number a block of ``reortho_every`` layers grew
            each input's frame to (the orthogonality guard of :func:`jaxspec.engine.reortho_limits`).
        outputs: ``(B, n_L)`` the network's outputs.
        widths: ``(n_0, ..., n_L)`` (static).
        config: the :class:`JacobianConfig` (static).
    """

    growth_rates: Float[Array, "B k"]
    prefix_growth_rates: Float[Array, "B L k"] | None
    log_svals: Float[Array, "B *L k"] | None
    active_counts: Int[Array, "B L"]
    min_active: Int[Array, " B"]
    max_block_spread: Float[Array, " B"]
    outputs: Float[Array, "B nL"]
    widths: tuple[int, ...] = struct.field(pytree_node=False)
    config: JacobianConfig = struct.field(pytree_node=False)

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    @property
    def prefix_log_svals_per_layer(self) -> Float[Array, "B L k"]:
        """``(B, L, k)`` ``(1/l) log s_i(J_l)``."""
        if self.log_svals is None or self.log_svals.ndim != 3:
            raise InputError("per-prefix singular values need singular_values=True and prefixes=True")
        return self.log_svals / jnp.arange(1, self.depth + 1)[:, None]


# ----------------------------------------------------------------------------------------------------------
# The layer function: one MLP layer on an activation and a frame of tangents.


def mlp_tangent_layer(
    padded: PaddedMLP,
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    final_activation: bool = False,
    precision=jax.lax.Precision.HIGHEST,
) -> Callable:
    """The engine's ``apply_layer`` for an MLP: ``(h, frame, key, index) -> (h', frame', K_l)``.

    ``h`` is the activation ``(N,)`` (padded), ``frame`` a ``(N, m)`` frame of tangents. The layer map
    ``h -> phi(W_l h + b_l)`` is differentiated with ``jax.jvp``, ``vmap``-ed over the ``m`` tangents, so the
    frame becomes ``D_l W_l frame``. ``K_l`` counts the nonzero gate values on real rows (the width for the
    linear last layer). Vmapping the returned function over inputs keeps the weights unbatched: one matrix
    product per layer for all inputs.

    Args:
        padded: a :class:`jaxspec.networks.PaddedMLP`.
        activation, negative_slope, final_activation: as in :func:`jaxspec.networks.mlp_apply`.
        precision: matmul precision.

    Returns:
        ``apply_layer`` with the signature of :func:`jaxspec.engine.benettin_scan`.

    Example:
        >>> from jaxspec.networks import init_mlp, pad_params
        >>> layer = mlp_tangent_layer(pad_params(init_mlp(jax.random.key(0), (4, 4, 4))))
        >>> h, frame, count = layer(jnp.ones(4), jnp.eye(4), jax.random.key(1), 0)
        >>> frame.shape
        (4, 4)
    """
    depth = padded.depth
    num_gated = depth if final_activation else depth - 1
    valid = padded.row_valid()
    out_widths = jnp.asarray(padded.widths[1:], jnp.int32)
    biases = padded.biases

    def apply_layer(h, frame, key, index):
        del key
        w = padded.weights[index].astype(frame.dtype)
        b = 0.0 if biases is None else biases[index].astype(frame.dtype)
        ok = valid[index].astype(frame.dtype)
        gated = index < num_gated

        def layer(h):
            pre = jnp.matmul(w, h, precision=precision) + b
            return jnp.where(gated, apply_activation(pre, activation, negative_slope), pre) * ok

        # The primal does not depend on the tangent, so it stays unbatched (computed once).
        tangent_map = jax.vmap(lambda t: jax.jvp(layer, (h,), (t,)), in_axes=-1, out_axes=(None, -1))
        h_new, frame_new = tangent_map(frame)
        pre = jnp.matmul(w, h, precision=precision) + b
        gate = activation_derivative(pre, activation, negative_slope) * ok
        count = jnp.where(gated, jnp.sum(gate != 0), out_widths[index])
        return h_new, frame_new, count

    return apply_layer


def input_frame(key: PRNGKeyArray, padded: PaddedMLP, k: int, dtype) -> Float[Array, "N k"]:
    """A Haar-random ``(N, k)`` orthonormal frame on the input rows (the engine's :func:`initial_frame`)."""
    return initial_frame(key, padded.widths[0], padded.max_width, k, dtype)


def _padded_input(padded: PaddedMLP, x: Float[Array, " n0"], dtype) -> Float[Array, " N"]:
    return jnp.pad(x.astype(dtype), (0, padded.max_width - padded.widths[0]))


def network_frame_sums(
    padded: PaddedMLP, x: Float[Array, " n0"], frame: Float[Array, "N k"], config: JacobianConfig
) -> FrameSums:
    """The engine's :class:`jaxspec.engine.FrameSums` for ``J(x)``, one input. Pure; vmap it over
    inputs/seeds.

    Args:
        padded: the network.
        x: ``(n_0,)`` input.
        frame: ``(N, k)`` initial orthonormal frame.
        config: a :class:`JacobianConfig`.

    Returns:
        :class:`jaxspec.engine.FrameSums` of the scan (``record_blocks`` with ``config.prefixes``).

    References:
        Benettin et al., Meccanica 15 (1980).
    """
    dtype = config.jnp_dtype
    layer = mlp_tangent_layer(
        padded,
        activation=config.activation,
        negative_slope=config.negative_slope,
        final_activation=config.final_activation,
        precision=config.lax_precision,
    )
    # Keep the output: a tiny wrapper whose state carries h.
    sums = benettin_scan(
        layer,
        _padded_input(padded, x, dtype),
        frame.astype(dtype),
        jax.random.key(0),
        padded.depth,
        reortho_every=config.reortho_every,
        record_blocks=config.prefixes,
    )
    return sums


def network_prefix_svals(
    padded: PaddedMLP, x: Float[Array, " n0"], config: JacobianConfig, *, return_frames: bool = False
) -> ProductSvals:
    """Exact singular values of ``J_l(x)`` (every prefix if ``config.prefixes``), by the stratified scan.

    Runs :func:`jaxspec.analysis.stratified_scan` on :func:`mlp_tangent_layer` with the full ``(N, n_0)``
    input frame (the identity on the input rows), so ``J_l`` itself is represented in graded form.

    Args:
        padded: the network.
        x: ``(n_0,)`` input.
        config: a :class:`JacobianConfig`.
        return_frames: also return the singular frames of ``J_L(x)``.

    Returns:
        :class:`jaxspec.analysis.ProductSvals` of this input (``(L, n_0)`` log singular values with prefixes).

    References:
        Haas et al., arXiv:2602.12384 ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)).
    """
    dtype = config.jnp_dtype
    layer = mlp_tangent_layer(
        padded,
        activation=config.activation,
        negative_slope=config.negative_slope,
        final_activation=config.final_activation,
        precision=config.lax_precision,
    )
    frame = jnp.eye(padded.max_width, padded.widths[0], dtype=dtype)
    return stratified_scan(
        layer,
        _padded_input(padded, x, dtype),
        frame,
        jax.random.key(0),
        padded.depth,
        prefixes=config.prefixes,
        return_frames=return_frames,
    )


def prefix_growth_rates(
    block_log_r: Float[Array, "*batch blocks k"], block_size: Int[Array, "*batch blocks"]
) -> Float[Array, "*batch blocks k"]:
    """``(..., blocks, k)`` running averages ``sum_{m<=b} log|R_ii| / layers`` under ``K>=i`` (NaN-aware).

    Example:
        >>> prefix_growth_rates(jnp.array([[-1.0], [-3.0]]), jnp.array([1, 1])).ravel().tolist()
        [-1.0, -2.0]
    """
    valid = jnp.isfinite(block_log_r)
    total = jnp.cumsum(jnp.where(valid, block_log_r, 0.0), axis=-2)
    layers = jnp.cumsum(jnp.where(valid, block_size[..., None].astype(total.dtype), 0.0), axis=-2)
    return total / jnp.where(layers > 0, layers, jnp.nan)


def _engine_config(padded: PaddedMLP, config: JacobianConfig):
    return make_config(
        config.k,
        max_k=padded.max_width,
        reortho_every=config.reortho_every,
        dtype=config.dtype,
        precision=config.precision,
        condition=config.condition,
        rates_every=config.reortho_every if config.prefixes else None,
        qr=config.qr,
    )


@functools.partial(jax.jit, static_argnames=("config",))
def _gates_and_frames(padded: PaddedMLP, xs: jax.Array, frame_keys: jax.Array, config: JacobianConfig):
    """One forward pass for every ``D_l(x)``.

    Returns ``(padded, outputs (B, n_L), masks (B, L, N), frames (B, N, k))``, all in the compute dtype.
    """
    dtype = config.jnp_dtype
    padded = jax.tree.map(lambda a: a.astype(dtype), padded)  # everything in the compute dtype
    frames = jax.vmap(lambda key: input_frame(key, padded, config.k, dtype))(frame_keys)
    outputs, diagonals = _forward_padded(
        padded,
        xs.astype(dtype),
        config.activation,
        config.negative_slope,
        config.final_activation,
        config.lax_precision,
        all_layers=True,
    )
    return padded, outputs, jnp.swapaxes(diagonals, 0, 1), frames


@functools.partial(jax.jit, static_argnames=("config",))
def _run(padded: PaddedMLP, xs: jax.Array, frame_keys: jax.Array, config: JacobianConfig) -> JacobianSpectrum:
    # The inputs share the weights: one forward pass gives every D_l(x), then the stacked engine pushes all
    # frames through one (N, N) x (N, B k) GEMM per layer (jaxspec.engine.stacked_frame_sums).
    padded, outputs, masks, frames = _gates_and_frames(padded, xs, frame_keys, config)
    return _spectrum_from_gates(padded, xs, outputs, masks, frames, config)


@functools.partial(jax.jit, static_argnames=("config",))
def _run_from_gates(padded, xs, outputs, masks, frames, config: JacobianConfig) -> JacobianSpectrum:
    """:func:`_run` after :func:`_gates_and_frames` (its outputs, already in the compute dtype)."""
    return _spectrum_from_gates(padded, xs, outputs, masks, frames, config)


def _spectrum_from_gates(padded, xs, outputs, masks, frames, config: JacobianConfig) -> JacobianSpectrum:
    sums = stacked_frame_sums(padded.weights, masks, frames, _engine_config(padded, config))
    rates = exponents_from_sums(sums, config.condition)
    prefix_rates = None
    if config.prefixes:
        sizes = sums.block_size
        prefix_rates = prefix_growth_rates(sums.block_log_r, sizes)
        if config.reortho_every > 1:
            # One value per layer: repeat each block's running average over its layers.
            prefix_rates = jnp.repeat(prefix_rates, config.reortho_every, axis=1)
    log_svals = None
    if config.singular_values:
        svals = jax.vmap(lambda x: network_prefix_svals(padded, x, config))(xs)
        log_svals = svals.log_svals[..., : config.k].astype(accumulator_dtype())
    return JacobianSpectrum(
        growth_rates=rates,
        prefix_growth_rates=prefix_rates,
        log_svals=log_svals,
        active_counts=sums.active_counts,
        min_active=sums.min_active,
        max_block_spread=sums.max_block_spread,
        outputs=outputs,
        widths=padded.widths,
        config=config,
    )


def jacobian_spectrum(
    params: Params | PaddedMLP,
    xs: Float[Array, "B n0"] | Float[Array, " n0"],
    *,
    k: int | None = None,
    activation: str = "relu",
    negative_slope: float = 0.01,
    final_activation: bool = False,
    singular_values: bool = True,
    prefixes: bool = True,
    reortho_every: int | str | None = None,
    qr: str = "auto",
    condition: str = "K>=i",
    dtype: str = "float32",
    precision: str = "highest",
    seed: int = 0,
    pilot_layers: int = 16,
    pilot_inputs: int = 4,
) -> JacobianSpectrum:
    """Top-``k`` growth rates and exact singular values of ``J_l(x)`` for a batch of inputs, matrix-free.

    Args:
        params: list of layer dicts (:func:`jaxspec.networks.init_mlp`) or a ``PaddedMLP``.
        xs: ``(B, n_0)`` inputs (or one ``(n_0,)`` input).
        k: number of tangents / singular values (default ``min(widths)``).
        activation, negative_slope, final_activation: the network's nonlinearity (see
            :func:`jaxspec.networks.mlp_apply`).
        singular_values: also compute exact ``log s_i(J_l)`` by the stratified scan
            (:func:`jaxspec.analysis.stratified_scan`).
        prefixes: return every prefix ``l = 1..L`` (else only the whole network).
        reortho_every: layers between QRs of the growth-rate scan, or ``"auto"``: the largest safe ``m``
            from a pilot of ``pilot_layers`` layers at ``pilot_inputs`` inputs
            (:func:`jaxspec.engine.pilot_reortho_every`; a divisor of the depth with ``prefixes``, whose
            per-layer values are then block running averages). With ``m > 1`` the orthogonality guard checks
            every block: ``"auto"`` re-runs with a smaller ``m``, an explicit ``m`` warns
            (:class:`jaxspec.engine.OrthogonalityWarning`, or :class:`jaxspec.engine.BlockRangeWarning` for a
            block that left the dtype's range); never silent. The exact singular values
            (``singular_values=True``) do not depend on ``m``. Default (``None``): ``"auto"`` when only the
            growth rates are asked for (``singular_values=False, prefixes=False``), else ``1`` (per-layer
            resolution where prefixes or singular values are asked for).
        qr: QR backend of the growth-rate scan, or ``"auto"`` (default): :func:`jaxspec.engine.choose_qr`
            from the smallest active count of the batch's gates, the width and ``k``.
        condition: rank-collapse convention (``"K>=i"``, ``"K>=k"`` or ``"none"``).
        dtype: ``"float32"`` or ``"float64"``.
        precision: matmul precision (``"highest"`` by default).
        seed: seeds the random initial frames (input ``b`` uses ``fold_in(key(seed), b)``).
        pilot_layers, pilot_inputs: size of the pilot run of ``reortho_every="auto"``.

    Returns:
        :class:`JacobianSpectrum`.

    Example:
        >>> from jaxspec.networks import init_mlp
        >>> params = init_mlp(jax.random.key(0), (16,) * 21)
        >>> xs = jax.random.normal(jax.random.key(1), (8, 16))
        >>> spec = jacobian_spectrum(params, xs, k=4)
        >>> spec.growth_rates.shape, spec.log_svals.shape
        ((8, 4), (8, 20, 4))

    References:
        Haas et al., arXiv:2602.12384 (Lyapunov exponents of fixed-gates Jacobians).
    """
    padded = pad_params(params)
    xs = jnp.asarray(xs)
    if xs.ndim == 1:
        xs = xs[None]
    if xs.ndim != 2 or xs.shape[1] != padded.widths[0]:
        raise InputError(f"xs must have shape (batch, {padded.widths[0]}), got {xs.shape}")
    if reortho_every is None:
        reortho_every = "auto" if not (singular_values or prefixes) else 1
    every, auto = parse_reortho_every(reortho_every)
    check_choice("qr", qr, QR_BACKENDS + ("auto",))
    config = make_jacobian_config(
        padded,
        k=k,
        activation=activation,
        negative_slope=negative_slope,
        final_activation=final_activation,
        singular_values=singular_values,
        prefixes=prefixes,
        reortho_every=every,
        condition=condition,
        dtype=dtype,
        precision=precision,
    )
    base = jax.random.key(int(seed))
    keys = jax.vmap(lambda b: jax.random.fold_in(base, b))(jnp.arange(xs.shape[0]))
    gates = None
    if qr == "auto" or auto:  # one forward pass for every D_l(x), shared by the choices and the run
        gates = _gates_and_frames(padded, xs, keys, config)
        cast, _, masks, frames = gates
    if qr == "auto":
        active = int(jnp.min(jnp.sum(masks != 0, axis=-1)))
        qr = choose_qr(active, config.k, n=padded.max_width, batch=xs.shape[0])
    config = dataclasses.replace(config, qr=qr)
    divisor = padded.depth if prefixes else None
    if auto:  # the pilot takes the first pilot_inputs inputs and pilot_layers layers
        m = pilot_reortho_every(
            cast.weights,
            masks,
            frames,
            _engine_config(padded, config),
            pilot_layers=pilot_layers,
            pilot_inputs=pilot_inputs,
            divisor_of=divisor,
        )
        config = dataclasses.replace(config, reortho_every=m)

    def run(config):
        if gates is None:
            result = _run(padded, xs, keys, config)
        else:
            result = _run_from_gates(gates[0], xs.astype(config.jnp_dtype), *gates[1:], config)
        return result, float(jnp.max(result.max_block_spread))

    return run_with_orthogonality_guard(run, config, auto, divisor_of=divisor, stacklevel=3)[0]


def make_jacobian_config(padded: PaddedMLP, *, k: int | None = None, **options) -> JacobianConfig:
    """Validate options and build a :class:`JacobianConfig` (raises :class:`InputError`).

    ``k``, ``reortho_every``, ``condition``, ``dtype`` and ``precision`` are validated by the engine's
    :func:`jaxspec.engine.make_config` (with ``k`` at most the smallest width), the activation here.

    Args:
        padded: the network.
        k: number of tangents (default: the smallest width).
        **options: the other fields of :class:`JacobianConfig`.

    Returns:
        :class:`JacobianConfig`.
    """
    max_k = min(padded.widths)
    k = max_k if k is None else k
    engine = make_config(
        k,
        max_k=max_k,
        reortho_every=options.get("reortho_every", 1),
        dtype=options.get("dtype", "float32"),
        precision=options.get("precision", "highest"),
        condition=options.get("condition", "K>=i"),
    )
    check_choice("activation", options.get("activation", "relu"), ACTIVATIONS)
    every = engine.reortho_every
    if options.get("prefixes", True) and every > 1 and padded.depth % every:
        raise InputError(f"per-prefix growth rates with reortho_every={every} need a depth multiple of it")
    return JacobianConfig(k=int(k), **options)


# ----------------------------------------------------------------------------------------------------------
# Dense route (small cases, float64 cross-check).


def dense_jacobian(
    params: Params | PaddedMLP,
    x: Float[Array, "*B n0"],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    final_activation: bool = False,
) -> Float[Array, "*B nL n0"]:
    """``J(x)`` by ``jax.jacfwd`` (``(n_L, n_0)``; ``(B, n_L, n_0)`` for a batch).

    Example:
        >>> from jaxspec.networks import init_mlp
        >>> dense_jacobian(init_mlp(jax.random.key(0), (3, 8, 2)), jnp.ones((5, 3))).shape
        (5, 2, 3)
    """
    f = functools.partial(
        mlp_apply,
        params,
        activation=activation,
        negative_slope=negative_slope,
        final_activation=final_activation,
    )
    jac = jax.jacfwd(f)
    x = jnp.asarray(x)
    return jax.vmap(jac)(x) if x.ndim == 2 else jac(x)


def dense_prefix_jacobians(
    params: Params | PaddedMLP,
    x: Float[Array, " n0"],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    final_activation: bool = False,
) -> Float[Array, "L N n0"]:
    """Every prefix product ``J_l = D_l W_l ... D_1 W_1`` at ``x``, formed explicitly.

    Args:
        params: list of layer dicts or ``PaddedMLP``.
        x: ``(n_0,)`` input.

    Returns:
        ``(L, N, n_0)`` padded prefix Jacobians (rows beyond ``n_l`` are zero); entry ``L - 1`` is ``J(x)``.
    """
    return _dense_prefix_jacobians(
        pad_params(params), jnp.asarray(x), activation, negative_slope, final_activation
    )


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _dense_prefix_jacobians(padded, x, activation, negative_slope, final_activation):
    g = gates(
        padded, x, activation=activation, negative_slope=negative_slope, final_activation=final_activation
    )
    num_gated = g.shape[0]
    masks = jnp.concatenate([g, jnp.ones((padded.depth - num_gated, padded.max_width), g.dtype)])
    masks = masks * padded.row_valid()

    def body(m, layer):
        w, d = layer
        m = d[:, None] * jnp.matmul(w, m, precision=jax.lax.Precision.HIGHEST)
        return m, m

    start = jnp.eye(padded.max_width, padded.widths[0], dtype=padded.weights.dtype)
    _, prefixes = jax.lax.scan(body, start, (padded.weights, masks))
    return prefixes


def dense_prefix_log_svals(
    params: Params | PaddedMLP, x: Float[Array, " n0"], **kwargs
) -> Float[np.ndarray, "L n0"]:
    """``(L, n_0)`` ``log s_i(J_l)`` by numpy SVD of the explicit prefixes (float64; ``-inf`` for zeros).

    Accurate only while ``s_i / s_1`` stays above machine precision
    ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)): a cross-check.
    """
    prefixes = np.asarray(dense_prefix_jacobians(params, x, **kwargs), dtype=np.float64)
    s = np.linalg.svd(prefixes, compute_uv=False)
    with np.errstate(divide="ignore"):
        return np.log(s)
