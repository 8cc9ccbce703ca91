"""Spectra of any deep network of repeated blocks, ``h_l = block(params_l, h_{l-1})``, matrix-free.

A network is one or more *segments* (a stem, a stack of blocks, a head): a block function and its parameters
stacked along a leading axis ``L``, which a ``lax.scan`` walks (compile time does not grow with depth; the
segments of a heterogeneous network are the branches of one ``lax.switch`` in the same scan). Each block is
differentiated with ``jax.jvp``, vmapped over the tangents and over the inputs with the parameters unbatched,
so XLA emits one batched product per block for all inputs and tangents, and the frames live in the stacked
engine (:func:`jaxspec.engine.benettin_scan` with an inputs axis). Blocks act on arrays of any shape (tokens
by features, positions by channels); tangents are those arrays flattened, and a network whose widths change
is padded to its largest width ``N`` as :class:`jaxspec.networks.PaddedMLP` is.

Outputs:

* ``growth_rates`` ``(B, k)``: the QR growth rates ``(1/L) sum_l log|R_ii|`` of the whole network;
* ``log_svals`` ``(B, L, k)``: the exact log singular values of the Jacobian ``J_l(x)`` of the first ``l``
  blocks, for every ``l``, from the stratified scan (:func:`jaxspec.analysis.stratified_scan`) on the same
  block function;
* ``layer_jacobians`` ``(B, L, N, N)`` on request: the blocks' own Jacobians, on which the alignment
  diagnostics of :mod:`jaxspec.analysis` run (:meth:`NetworkSpectrum.prefix_alignment`).

Gates. A block that ends in a ReLU (``gated=True``) has ``K_l`` = its number of nonzero outputs, read from the
forward pass: the Jacobian's rank is at most ``K_l``, and rank collapse is handled exactly as for the random
ensembles ([math §1.4](https://jaxspec.github.io/jaxspec/math/#s1)). Ungated blocks count their width.

References:
    Benettin et al., Meccanica 15 (1980) (QR method); Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian
    Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Float, Int

from jaxspec._checks import HIGHEST, InputError, check_choice, check_dtype, is_traced
from jaxspec.analysis import prefix_alignment, stratified_scan, suffix_alignment
from jaxspec.engine import (
    QR_BACKENDS,
    EngineConfig,
    FrameSums,
    accumulator_dtype,
    benettin_scan,
    choose_qr,
    exponents_from_sums,
    initial_frame,
    make_config,
    make_qr,
    parse_reortho_every,
    reortho_from_pilot,
    run_with_orthogonality_guard,
)
from jaxspec.networks._mlp import ACTIVATIONS, PaddedMLP, Params, apply_activation, mlp_widths, unpad_params


class Segment(NamedTuple):
    """A run of ``L`` blocks of one kind: ``h_l = block(params_l, h_{l-1})``.

    Attributes:
        block: ``(params, h) -> h'``, a pure JAX function of one block's parameters and one input (an array
            of any shape; a block of a stack of ``L > 1`` keeps that shape).
        stacked_params: a pytree whose array leaves all have a leading axis ``L`` (``params_l`` is slice
            ``l``); a single block has ``L = 1``.
        gated: the block ends in a ReLU (any map whose derivative vanishes exactly where its output does):
            its active count ``K_l`` is its number of nonzero outputs (else its width).
    """

    block: Callable[[Any, Array], Array]
    stacked_params: Any
    gated: bool = False


@dataclasses.dataclass(frozen=True)
class _Layout:
    """The static description of a segment (a ``jit`` static argument)."""

    block: Callable
    gated: bool
    depth: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def in_size(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_size(self) -> int:
        return math.prod(self.out_shape)


def _padded_width(layouts: Sequence[_Layout]) -> int:
    return max(max(lay.in_size, lay.out_size) for lay in layouts)


@struct.dataclass
class NetworkSpectrum:
    """Spectra of the Jacobians ``J_l(x)`` of a deep network of blocks at a batch of inputs (a frozen pytree).

    Attributes:
        growth_rates: ``(B, k)`` QR growth rates ``(1/L) sum_l log|R_ii|`` under ``config.condition`` (NaN
            where no block qualifies).
        log_svals: ``(B, L, k)`` exact ``log s_i(J_l(x))``, descending, for every prefix ``l = 1..L``
            (``-inf`` beyond ``min K``), or ``None`` without ``singular_values``.
        active_counts: ``(B, L)`` ``K_l`` per block (the width of an ungated block).
        min_active: ``(B,)`` ``min_l K_l``.
        max_block_spread: ``(B,)`` the largest log condition number a block of ``reortho_every`` layers grew
            each frame to (the orthogonality guard of :func:`jaxspec.engine.reortho_limits`).
        outputs: ``(B, *shape)`` the network's outputs.
        layer_jacobians: ``(B, L, N, N)`` each block's Jacobian at its input (padded to the largest width
            ``N``), or ``None`` without ``layer_jacobians``.
        config: the resolved :class:`jaxspec.engine.EngineConfig` (static).
    """

    growth_rates: Float[Array, "B k"]
    log_svals: Float[Array, "B L k"] | None
    active_counts: Int[Array, "B L"]
    min_active: Int[Array, " B"]
    max_block_spread: Float[Array, " B"]
    outputs: Float[Array, "B ..."]
    layer_jacobians: Float[Array, "B L N N"] | None
    config: EngineConfig = struct.field(pytree_node=False)

    @property
    def depth(self) -> int:
        return self.active_counts.shape[-1]

    @property
    def log_svals_per_layer(self) -> Float[Array, "B L k"]:
        """``(B, L, k)`` ``(1/l) log s_i(J_l)``: the finite-depth rates that converge to the growth rates."""
        if self.log_svals is None:
            raise InputError("per-layer singular values need singular_values=True")
        return self.log_svals / jnp.arange(1, self.depth + 1)[:, None]

    def _jacobians(self) -> Float[Array, "B L N N"]:
        if self.layer_jacobians is None:
            raise InputError(
                "alignment needs the blocks' Jacobians: call network_spectrum(..., layer_jacobians=True)"
            )
        return self.layer_jacobians

    def prefix_alignment(self, k: int = 1) -> Float[Array, "B L k"]:
        """``(B, L, k)`` :func:`jaxspec.analysis.prefix_alignment` of each input's product of block
        Jacobians: sines between the top-``k`` right singular subspaces of ``J_l`` and ``J_L``."""
        return _alignment(self._jacobians(), int(k), False)

    def suffix_alignment(self, k: int = 1) -> Float[Array, "B L k"]:
        """``(B, L, k)`` :func:`jaxspec.analysis.suffix_alignment`: sines between the top-``k`` left singular
        subspaces of the suffixes ``S_l`` and of ``J_L``."""
        return _alignment(self._jacobians(), int(k), True)


@functools.partial(jax.jit, static_argnames=("k", "suffix"))
def _alignment(jacobians: Float[Array, "B L N N"], k: int, suffix: bool) -> Float[Array, "B L k"]:
    alignment = suffix_alignment if suffix else prefix_alignment
    return jax.vmap(lambda j: alignment(j, None, k))(jacobians)


# ----------------------------------------------------------------------------------------------------------
# The block layer: one block on an activation and a frame of tangents, every segment in one function.


def _tangent_layer(layouts: Sequence[_Layout], params: Sequence[Any], width: int) -> Callable:
    """``apply_layer(h (N,), frame (N, r), key, index) -> (h', frame', K)`` of one input, as for the engine.

    Layer ``index`` belongs to the segment whose range holds it; several segments are the branches of a
    ``lax.switch``. Activations and tangents are flattened and zero-padded to ``width``.
    """
    offsets = np.cumsum([0] + [lay.depth for lay in layouts])[:-1]

    def branch(lay: _Layout, stacked: Any, offset: int) -> Callable:
        def apply(h, frame, index):
            p = jax.tree.map(lambda a: a[index - offset], stacked)
            x = h[: lay.in_size].reshape(lay.in_shape)
            columns = frame.shape[-1]
            tangents = frame[: lay.in_size].reshape(lay.in_shape + (columns,))
            block = lambda y: lay.block(p, y).astype(h.dtype)  # noqa: E731
            # The primal does not depend on the tangent: computed once, the tangents batched in one product.
            out, images = jax.vmap(lambda t: jax.jvp(block, (x,), (t,)), in_axes=-1, out_axes=(None, -1))(
                tangents
            )
            pad = width - lay.out_size
            h = jnp.pad(out.reshape(-1), (0, pad))
            frame = jnp.pad(images.reshape(lay.out_size, columns), ((0, pad), (0, 0)))
            count = jnp.sum(out != 0, dtype=jnp.int32) if lay.gated else jnp.int32(lay.out_size)
            return h, frame, count

        return apply

    branches = [branch(lay, p, int(off)) for lay, p, off in zip(layouts, params, offsets, strict=True)]
    segment_of = np.repeat(np.arange(len(layouts)), [lay.depth for lay in layouts]).astype(np.int32)

    def apply_layer(h, frame, key, index):
        del key
        if len(branches) == 1:
            return branches[0](h, frame, index)
        return jax.lax.switch(jnp.asarray(segment_of)[index], branches, h, frame, index)

    return apply_layer


def _stacked_sums(
    layer: Callable,
    hs: Float[Array, "B N"],
    frames: Float[Array, "B N k"],
    config: EngineConfig,
    depth: int,
    record_blocks: bool,
) -> FrameSums:
    """The stacked engine: every input's frame in one ``(N, B, k)`` array, one batched product per block."""
    batched = jax.vmap(layer, in_axes=(0, 1, None, None), out_axes=(0, 1, 0))
    batched_qr = make_qr(config.qr, precision=config.lax_precision)

    def qr(frames):
        q, r = batched_qr(jnp.transpose(frames, (1, 0, 2)))
        return jnp.transpose(q, (1, 0, 2)), r

    return benettin_scan(
        batched,
        hs,
        jnp.transpose(frames, (1, 0, 2)),
        jax.random.key(0),
        depth,
        reortho_every=config.reortho_every,
        record_blocks=record_blocks,
        qr=qr,
        batch_shape=(hs.shape[0],),
    )


def _layer_jacobians(layer: Callable, h: Float[Array, " N"], depth: int) -> Float[Array, "L N N"]:
    eye = jnp.eye(h.shape[0], dtype=h.dtype)

    def body(h, index):
        h, image, _ = layer(h, eye, None, index)
        return h, image

    return jax.lax.scan(body, h, jnp.arange(depth))[1]


def _forward(layouts: Sequence[_Layout], params: Sequence[Any], xs: Array) -> Array:
    """The network's outputs: one ``lax.scan`` over each segment's blocks, inputs vmapped."""
    h = xs
    for lay, stacked in zip(layouts, params, strict=True):
        block = jax.vmap(lambda p, h, block=lay.block: block(p, h).astype(xs.dtype), in_axes=(None, 0))
        if lay.depth == 1:  # a block that may change the shape: no scan
            h = block(jax.tree.map(lambda a: a[0], stacked), h)
        else:
            h = jax.lax.scan(lambda h, p, block=block: (block(p, h), None), h, stacked)[0]
    return h


def _cast(params: Any, dtype) -> Any:
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, params)


def _prepare(layouts, params, xs, config):
    params = tuple(_cast(p, config.jnp_dtype) for p in params)
    width = _padded_width(layouts)
    hs = jnp.pad(xs.reshape(xs.shape[0], -1), ((0, 0), (0, width - layouts[0].in_size)))
    return params, hs, _tangent_layer(layouts, params, width)


@functools.partial(jax.jit, static_argnames=("layouts", "config", "layers"))
def _pilot_log_r(layouts, params, xs, frames, config: EngineConfig, layers: int) -> Array:
    """``(layers, B, k)`` per-layer ``log|R_ii|`` of the first blocks (NaN where not counted)."""
    _, hs, layer = _prepare(layouts, params, xs, config)
    return _stacked_sums(layer, hs, frames, config, layers, True).block_log_r


@functools.partial(jax.jit, static_argnames=("layouts", "config", "singular_values", "layer_jacobians"))
def _run(
    layouts, params, xs, frames, config: EngineConfig, singular_values: bool, layer_jacobians: bool
) -> NetworkSpectrum:
    params, hs, layer = _prepare(layouts, params, xs, config)
    depth = sum(lay.depth for lay in layouts)
    sums = _stacked_sums(layer, hs, frames, config, depth, False)
    log_svals = None
    if singular_values:
        full = jnp.eye(hs.shape[1], layouts[0].in_size, dtype=hs.dtype)
        svals = jax.vmap(lambda h: stratified_scan(layer, h, full, jax.random.key(0), depth, prefixes=True))(
            hs
        )
        log_svals = svals.log_svals[..., : config.k].astype(accumulator_dtype())
    jacobians = jax.vmap(lambda h: _layer_jacobians(layer, h, depth))(hs) if layer_jacobians else None
    return NetworkSpectrum(
        growth_rates=exponents_from_sums(sums, config.condition),
        log_svals=log_svals,
        active_counts=sums.active_counts.T,
        min_active=sums.min_active,
        max_block_spread=jnp.broadcast_to(sums.max_block_spread, sums.min_active.shape),
        outputs=_forward(layouts, params, xs),
        layer_jacobians=jacobians,
        config=config,
    )


# ----------------------------------------------------------------------------------------------------------
# Validation: every shape is known (jax.eval_shape) before any work.


def _segments(block: Any, stacked_params: Any, gated: bool) -> list[Segment]:
    if isinstance(block, Segment):
        return [block]
    if isinstance(block, (list, tuple)):
        segments = []
        for i, segment in enumerate(block):
            if isinstance(segment, (tuple, list)) and len(segment) in (2, 3) and callable(segment[0]):
                segments.append(Segment(*segment))
            else:
                raise InputError(
                    f"segment {i} must be a (block, stacked_params) or (block, stacked_params, "
                    f"gated) tuple, got {type(segment).__name__}"
                )
        if not segments:
            raise InputError("the list of segments is empty")
        return segments
    if not callable(block):
        raise InputError(
            f"block must be a function (params, h) -> h' or a list of segments, got {type(block).__name__}"
        )
    return [Segment(block, stacked_params, gated)]


def _one_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _layouts(segments: Sequence[Segment], in_shape: tuple[int, ...], dtype) -> tuple[_Layout, ...]:
    layouts = []
    for i, (block, stacked, gated) in enumerate(segments):
        leaves = jax.tree.leaves(stacked)
        if not leaves:
            raise InputError(
                f"segment {i}: stacked_params has no arrays (give the block's parameters a leading axis L)"
            )
        if not all(hasattr(a, "shape") and len(a.shape) >= 1 for a in leaves):
            raise InputError(
                f"segment {i}: every leaf of stacked_params needs a leading axis L (arrays only)"
            )
        depths = {int(a.shape[0]) for a in leaves}
        if len(depths) != 1 or 0 in depths:
            raise InputError(
                f"segment {i}: the leaves of stacked_params must share one leading axis L >= 1, "
                f"got {sorted(depths)}"
            )
        depth = depths.pop()

        def slice_of(a):
            floating = jnp.issubdtype(a.dtype, jnp.floating)
            return jax.ShapeDtypeStruct(a.shape[1:], dtype if floating else a.dtype)

        try:
            out = jax.eval_shape(
                block, jax.tree.map(slice_of, stacked), jax.ShapeDtypeStruct(in_shape, dtype)
            )
        except Exception as error:  # the user's function: its failure as one line
            raise InputError(
                f"segment {i}: block(params_0, h) fails on h of shape {in_shape}: {_one_line(error)}"
            ) from error
        if not isinstance(out, jax.ShapeDtypeStruct):
            raise InputError(f"segment {i}: block must return one array, got {type(out).__name__}")
        out_shape = tuple(int(d) for d in out.shape)
        if depth > 1 and out_shape != in_shape:
            raise InputError(
                f"segment {i}: a stack of L={depth} blocks must keep the shape of h, got "
                f"{in_shape} -> {out_shape} (make the block its own segment)"
            )
        if math.prod(out_shape) < 1:
            raise InputError(f"segment {i}: the block's output is empty, shape {out_shape}")
        layouts.append(_Layout(block, bool(gated), depth, in_shape, out_shape))
        in_shape = out_shape
    return tuple(layouts)


def _check_inputs(xs: Any) -> Array:
    xs = jnp.asarray(xs)
    if xs.ndim == 1:
        xs = xs[None]
    if xs.ndim < 2 or xs.shape[0] < 1 or math.prod(xs.shape[1:]) < 1:
        raise InputError(f"xs must have shape (batch, n) or (batch, *shape), got {tuple(xs.shape)}")
    if not (jnp.issubdtype(xs.dtype, jnp.floating) or jnp.issubdtype(xs.dtype, jnp.integer)):
        raise InputError(f"xs must hold real numbers, got dtype {xs.dtype}")
    return xs


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def network_spectrum(
    block: Callable | Segment | Sequence[Segment | tuple],
    stacked_params: Any = None,
    xs: Float[Array, "B n"] | Float[Array, "B ..."] | None = None,
    *,
    k: int | None = None,
    singular_values: bool = True,
    reortho_every: int | str = "auto",
    dtype: str = "float32",
    gated: bool = False,
    layer_jacobians: bool = False,
    qr: str = "householder",
    precision: str = "highest",
    condition: str = "K>=i",
    seed: int = 0,
    pilot_layers: int = 16,
    pilot_inputs: int = 4,
) -> NetworkSpectrum:
    """Top-``k`` growth rates and exact prefix singular values of a deep network of blocks, matrix-free.

    Args:
        block: ``(params, h) -> h'``, one block (a pure JAX function; pass the same function object to
            repeated calls to reuse the compiled program). Or a heterogeneous network: a list of segments
            ``(block, stacked_params)`` / ``(block, stacked_params, gated)`` / :class:`Segment` (a stem, a
            stack, a head, ...), applied in order; then pass ``xs`` second (``stacked_params`` is unused).
        stacked_params: a pytree whose leaves have a leading axis ``L`` (block ``l`` gets slice ``l``),
            scanned so that compile time does not grow with depth.
        xs: ``(B, n)`` inputs, or ``(B, *shape)`` for blocks on arrays (e.g. ``(B, tokens, features)``);
            tangents are the arrays flattened (``n = prod(shape)``).
        k: number of growth rates and singular values (default: the smallest width).
        singular_values: also compute ``log_svals`` ``(B, L, k)``, the exact ``log s_i(J_l(x))`` of every
            prefix, by the stratified scan (a full frame of ``n_0`` tangents).
        reortho_every: blocks between QRs of the growth-rate scan, or ``"auto"``: the largest safe ``m`` from
            a pilot of ``pilot_layers`` blocks at ``pilot_inputs`` inputs, re-run smaller if the orthogonality
            guard trips ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)). Under a JAX transformation
            (``jax.grad``, ``jit``) ``"auto"`` is 1: the pilot needs concrete values.
        dtype: compute dtype, ``"float32"`` or ``"float64"`` (floating parameters and inputs are cast).
        gated: the single block ends in a ReLU: ``K_l`` is its number of nonzero outputs (rank collapse as
            for the ensembles, [math §1.4](https://jaxspec.github.io/jaxspec/math/#s1)).
        layer_jacobians: also return every block's Jacobian ``(B, L, N, N)``, for the alignment diagnostics
            (:meth:`NetworkSpectrum.prefix_alignment`, :meth:`NetworkSpectrum.suffix_alignment`).
        qr: QR backend of the growth-rate scan (:func:`jaxspec.engine.make_qr`), or ``"auto"``:
            :func:`jaxspec.engine.choose_qr` (CholeskyQR2 for tall frames, ``n >= 4 k``, of ungated blocks;
            Householder where a gated block may leave fewer than ``k`` active units).
        precision: matmul precision of every product, the blocks' included (default ``"highest"``).
        condition: rank-collapse convention of the growth rates (``"K>=i"``, ``"K>=k"``, ``"none"``).
        seed: seeds the Haar initial frames (input ``b`` uses ``fold_in(key(seed), b)``, as
            :func:`jaxspec.jacobian_spectrum` does).
        pilot_layers, pilot_inputs: size of the pilot of ``reortho_every="auto"``.

    Returns:
        :class:`NetworkSpectrum`: ``.growth_rates (B, k)``, ``.log_svals (B, L, k)``.

    Raises:
        InputError: a bad argument or a block that does not fit its input, before any work.

    Example:
        >>> block = lambda p, h: h + p["w"] @ jnp.tanh(h)
        >>> params = {"w": 0.3 * jax.random.normal(jax.random.key(0), (20, 8, 8))}
        >>> xs = jax.random.normal(jax.random.key(1), (4, 8))
        >>> res = network_spectrum(block, params, xs, k=3)
        >>> res.growth_rates.shape, res.log_svals.shape
        ((4, 3), (4, 20, 3))

    References:
        Benettin et al., Meccanica 15 (1980); Haas et al., arXiv:2602.12384;
        [math §1.8](https://jaxspec.github.io/jaxspec/math/#s1).
    """
    segments = _segments(block, stacked_params, _flag("gated", gated))
    if not callable(block) and not isinstance(block, Segment):
        if xs is not None and stacked_params is not None:
            raise InputError("with a list of segments, pass xs second (or as xs=) and no stacked_params")
        xs = stacked_params if xs is None else xs
    if xs is None:
        raise InputError("xs (the inputs, shape (batch, n)) is missing")
    xs = _check_inputs(xs)
    every, auto = parse_reortho_every(reortho_every)
    check_choice("qr", qr, QR_BACKENDS + ("auto",))
    singular_values = _flag("singular_values", singular_values)
    layer_jacobians = _flag("layer_jacobians", layer_jacobians)
    seed = _count("seed", seed, 0)
    pilot_layers = _count("pilot_layers", pilot_layers, 1)
    pilot_inputs = _count("pilot_inputs", pilot_inputs, 1)
    layouts = _layouts(segments, tuple(int(d) for d in xs.shape[1:]), jnp.dtype(check_dtype(dtype)))
    max_k = min([layouts[0].in_size] + [lay.out_size for lay in layouts])
    k = max_k if k is None else k
    if qr == "auto":  # the engine's rule; a gated block may leave no active unit, so it counts as 0
        gated = any(lay.gated for lay in layouts)
        width = _padded_width(layouts)
        qr = choose_qr(0 if gated else width, k, n=width, batch=xs.shape[0])
    config = make_config(
        k, max_k=max_k, reortho_every=every, dtype=dtype, precision=precision, condition=condition, qr=qr
    )
    params = tuple(segment.stacked_params for segment in segments)
    traced = any(is_traced(leaf) for leaf in jax.tree.leaves(params) + [xs])
    xs = xs.astype(config.jnp_dtype)
    width, n0 = _padded_width(layouts), layouts[0].in_size
    base = jax.random.key(seed)
    frames = jax.vmap(
        lambda b: initial_frame(jax.random.fold_in(base, b), n0, width, config.k, config.jnp_dtype)
    )(jnp.arange(xs.shape[0]))
    depth = sum(lay.depth for lay in layouts)
    if auto and not traced:
        with jax.default_matmul_precision(config.precision):
            pilot = _pilot_log_r(
                layouts,
                params,
                xs[:pilot_inputs],
                frames[:pilot_inputs],
                dataclasses.replace(config, reortho_every=1),
                min(depth, pilot_layers),
            )
        config = dataclasses.replace(
            config, reortho_every=reortho_from_pilot(np.asarray(pilot), depth, dtype)
        )

    def run(config):
        with jax.default_matmul_precision(config.precision):
            result = _run(layouts, params, xs, frames, config, singular_values, layer_jacobians)
        return result, None if traced else float(jnp.max(result.max_block_spread))

    return run_with_orthogonality_guard(run, config, auto and not traced, stacklevel=3)[0]


# ----------------------------------------------------------------------------------------------------------
# The project's own MLP format as segments.


@dataclasses.dataclass(frozen=True)
class _DenseLayer:
    """``phi(W h + b)`` of one MLP layer (hashable: a repeated call reuses the compiled program)."""

    activation: str
    negative_slope: float

    def __call__(self, params: dict[str, Array], h: Float[Array, " n"]) -> Float[Array, " m"]:
        pre = jnp.matmul(params["w"], h, precision=HIGHEST)
        if "b" in params:
            pre = pre + params["b"]
        return apply_activation(pre, self.activation, self.negative_slope)


def mlp_segments(
    params: Params | PaddedMLP,
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    final_activation: bool = False,
) -> list[Segment]:
    """An MLP of :mod:`jaxspec.networks` (list of layer dicts) as segments for :func:`network_spectrum`.

    Consecutive layers of one shape and one activation form one segment (their weights stacked); ReLU layers
    are gated, so ``network_spectrum(mlp_segments(params), xs)`` reproduces
    :func:`jaxspec.jacobian_spectrum` (same frames for the same ``seed``).

    Args:
        params: list of layer dicts ``{"w": (n_out, n_in), "b": (n_out,)}`` or a ``PaddedMLP``.
        activation, negative_slope, final_activation: as in :func:`jaxspec.networks.mlp_apply` (the last
            layer is linear unless ``final_activation``).

    Returns:
        A list of :class:`Segment`.

    Example:
        >>> from jaxspec.networks import init_mlp
        >>> [len(s.stacked_params["w"]) for s in mlp_segments(init_mlp(jax.random.key(0), (8,) * 11))]
        [9, 1]
    """
    check_choice("activation", activation, ACTIVATIONS)
    if isinstance(params, PaddedMLP):
        params = unpad_params(params)
    depth = len(mlp_widths(params)) - 1
    groups: list[tuple[tuple, list[dict[str, Array]]]] = []
    for index, layer in enumerate(params):
        active = bool(final_activation or index < depth - 1)
        key = (tuple(layer["w"].shape), tuple(sorted(layer)), active)
        if groups and groups[-1][0] == key:
            groups[-1][1].append(layer)
        else:
            groups.append((key, [layer]))
    segments = []
    for (_, names, active), layers in groups:
        stacked = {name: jnp.stack([layer[name] for layer in layers]) for name in names}
        block = _DenseLayer(activation if active else "linear", float(negative_slope))
        segments.append(Segment(block, stacked, active and activation == "relu"))
    return segments
