"""Multilayer perceptrons and their fixed-gates view: a piecewise-linear network as a product of masked maps.

Parametrisation. ``params`` is a list of ``L`` layer dicts ``{"w": (n_out, n_in), "b": (n_out,)}`` (``"b"``
absent for a bias-free network), layer ``l`` (0-based) mapping ``n_l -> n_{l+1}``. The forward pass is::

    h_0 = x,   h_{l+1} = phi(W_l h_l + b_l)   (l < L - 1),   y = W_{L-1} h_{L-1} + b_{L-1}

i.e. **the last layer is linear** (no activation) unless ``final_activation=True``, in which case every layer,
the last included, is followed by ``phi``. ``phi`` is ``relu``, ``leaky_relu`` (slope ``negative_slope``) or
``linear``.

Gates. Inside one activation region the network is affine and its input-output Jacobian is the product

    J(x) = D_L W_L ... D_1 W_1,    D_l = diag(phi'(W_l h_{l-1} + b_l))

(1-based as in [the math reference](https://jaxspec.github.io/jaxspec/math/); ``D_L = I`` when the last layer
is linear). :func:`gates` returns the diagonals ``d_l`` (``{0, 1}`` for ReLU, ``{negative_slope, 1}`` for
leaky ReLU, ones for linear), with the convention ``phi'(0) = negative_slope`` (0 for ReLU).
:func:`fixed_gates_apply` is the network with those gates frozen: a product of masked affine maps, exactly
linear in ``x`` for zero bias, differentiable (and trainable) in ``params``. :func:`network_layer_stack`
hands the masked product to the spectrum engine as a :class:`jaxspec.FixedStack`.

Deep networks. A list of layers is unrolled by ``jit``; for depths in the hundreds use the padded, stacked
form :class:`PaddedMLP` (:func:`pad_params`), on which every function here runs a ``lax.scan`` over layers.
Widths are padded to ``N = max(widths)`` with zeros exactly as in :mod:`jaxspec.ensembles`, and gates are
zero on padding rows.

Flax. :class:`MLP` is a ``flax.linen`` module whose single parameter ``"layers"`` is the same list of dicts,
drawn by :func:`init_mlp`; ``MLP(...).apply(variables, x)`` equals ``mlp_apply(variables["params"]["layers"],
x, ...)``.

References:
    He, Zhang, Ren, Sun, "Delving deep into rectifiers", ICCV 2015 (He initialisation).
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384
    (the fixed-gates view).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from jaxspec._checks import HIGHEST, InputError, PaddedWidths, check_choice
from jaxspec.ensembles import FixedStack, layer_key

ACTIVATIONS = ("relu", "leaky_relu", "linear")
INITS = ("he", "lecun")

#: A list of ``L`` layer dicts ``{"w": (n_{l+1}, n_l), "b": (n_{l+1},)}`` (``"b"`` absent without biases).
Params = list[dict[str, Array]]


# ----------------------------------------------------------------------------------------------------------
# Activations and their derivatives (the gates).


def apply_activation(
    pre: Float[Array, "*shape"], activation: str = "relu", negative_slope: float = 0.01
) -> Float[Array, "*shape"]:
    """``phi(pre)`` elementwise; leaky ReLU is ``where(pre > 0, pre, negative_slope * pre)``.

    Example:
        >>> apply_activation(jnp.array([-2.0, 3.0]), "leaky_relu", 0.5)
        Array([-1.,  3.], dtype=float32)
    """
    check_choice("activation", activation, ACTIVATIONS)
    if activation == "relu":
        return jnp.where(pre > 0, pre, jnp.zeros_like(pre))
    if activation == "leaky_relu":
        return jnp.where(pre > 0, pre, negative_slope * pre)
    return pre


def activation_derivative(
    pre: Float[Array, "*shape"], activation: str = "relu", negative_slope: float = 0.01
) -> Float[Array, "*shape"]:
    """``phi'(pre)`` elementwise, with ``phi'(0) = negative_slope`` (0 for ReLU), matching ``jax.jvp``.

    Example:
        >>> activation_derivative(jnp.array([-2.0, 0.0, 3.0]))
        Array([0., 0., 1.], dtype=float32)
    """
    check_choice("activation", activation, ACTIVATIONS)
    one = jnp.ones_like(pre)
    if activation == "relu":
        return jnp.where(pre > 0, one, jnp.zeros_like(pre))
    if activation == "leaky_relu":
        return jnp.where(pre > 0, one, negative_slope * one)
    return one


# ----------------------------------------------------------------------------------------------------------
# Initialisation.


def init_gain(
    activation: str = "relu", init: str = "he", gain: float | None = None, negative_slope: float = 0.01
) -> float:
    """The weight variance times fan-in, ``sigma2``: entries of ``W_l`` are ``N(0, sigma2 / n_in)``.

    ``gain`` (if given) is ``sigma2`` itself. Otherwise He: ``2 / (1 + negative_slope^2)`` for leaky ReLU,
    2 for ReLU, 1 for linear (the critical ``sigma2 p = 1``, [math §1](https://jaxspec.github.io/jaxspec/math/#s1));
    LeCun: 1.

    Example:
        >>> init_gain("relu"), init_gain("linear"), init_gain("relu", "lecun")
        (2.0, 1.0, 1.0)

    References:
        He et al., ICCV 2015.
    """
    if gain is not None:
        if not np.isfinite(gain) or gain <= 0:
            raise InputError(f"gain (the weight variance times fan-in) must be positive, got {gain}")
        return float(gain)
    check_choice("init", init, INITS)
    if init == "lecun" or activation == "linear":
        return 1.0
    if activation == "relu":
        return 2.0
    return 2.0 / (1.0 + float(negative_slope) ** 2)


def _init_law(
    widths: Sequence[int],
    activation: str,
    init: str,
    gain: float | None,
    negative_slope: float,
    bias_std: float,
) -> tuple[tuple[int, ...], float]:
    """The validated widths and ``sigma2`` of :func:`init_mlp` and :func:`init_padded_mlp`."""
    check_choice("activation", activation, ACTIVATIONS)
    widths = _check_widths(widths)
    sigma2 = init_gain(activation, init, gain, negative_slope)
    if bias_std < 0:
        raise InputError(f"bias_std must be non-negative, got {bias_std}")
    return widths, sigma2


def init_mlp(
    key: PRNGKeyArray,
    widths: Sequence[int],
    *,
    activation: str = "relu",
    bias: bool = False,
    gain: float | None = None,
    init: str = "he",
    negative_slope: float = 0.01,
    bias_std: float = 0.0,
    dtype=jnp.float32,
) -> Params:
    """Draw an MLP: ``W_l`` entries iid ``N(0, sigma2 / n_l)`` with ``sigma2 = init_gain(...)``.

    Layer ``l`` uses the key ``fold_in(key, l)`` and standard normals drawn in float32 then cast, so that a
    float64 network is the float32 one in more digits (float64 oracles then measure rounding alone).

    Args:
        key: a JAX PRNG key.
        widths: ``(n_0, n_1, ..., n_L)``, the input width, hidden widths and output width.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"`` (only sets the He gain here).
        bias: include a bias per layer.
        gain: explicit ``sigma2`` (weight variance times fan-in); overrides ``init``.
        init: ``"he"`` or ``"lecun"``.
        negative_slope: leaky-ReLU slope (enters the He gain).
        bias_std: biases are iid ``N(0, bias_std^2)`` (0 gives zero biases, the usual Flax default).
        dtype: parameter dtype.

    Returns:
        A list of ``L`` dicts ``{"w": (n_{l+1}, n_l)}`` plus ``"b": (n_{l+1},)`` when ``bias``.

    Example:
        >>> params = init_mlp(jax.random.key(0), (3, 16, 16, 2))
        >>> [p["w"].shape for p in params]
        [(16, 3), (16, 16), (2, 16)]

    References:
        He et al., ICCV 2015 (``sigma2 = 2`` for ReLU).
    """
    widths, sigma2 = _init_law(widths, activation, init, gain, negative_slope, bias_std)
    params = []
    for l, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        key_w, key_b = jax.random.split(layer_key(key, l))
        w = jax.random.normal(key_w, (n_out, n_in), jnp.float32).astype(dtype) * jnp.sqrt(
            jnp.asarray(sigma2 / n_in, dtype)
        )
        layer = {"w": w}
        if bias:
            draw = jax.random.normal(key_b, (n_out,), jnp.float32).astype(dtype)
            layer["b"] = draw * jnp.asarray(bias_std, dtype)
        params.append(layer)
    return params


def init_padded_mlp(
    key: PRNGKeyArray,
    widths: Sequence[int],
    *,
    activation: str = "relu",
    bias: bool = False,
    gain: float | None = None,
    init: str = "he",
    negative_slope: float = 0.01,
    bias_std: float = 0.0,
    dtype=jnp.float32,
) -> PaddedMLP:
    """Draw an MLP directly in the stacked form (one vmapped draw, so deep networks compile in constant time).

    The law is that of :func:`init_mlp`, and for equal widths the very same numbers (same per-layer keys,
    ``fold_in(key, l)``); with unequal widths each layer draws an ``(N, N)`` block and keeps its
    ``(n_{l+1}, n_l)`` corner, so the realisation differs from :func:`init_mlp`'s.

    Args:
        key, widths, activation, bias, gain, init, negative_slope, bias_std, dtype: as in :func:`init_mlp`.

    Returns:
        :class:`PaddedMLP`.

    Example:
        >>> padded = init_padded_mlp(jax.random.key(0), (8,) * 501)
        >>> padded.weights.shape
        (500, 8, 8)
    """
    widths, sigma2 = _init_law(widths, activation, init, gain, negative_slope, bias_std)
    n, depth = max(widths), len(widths) - 1

    def one(index):
        key_w, key_b = jax.random.split(layer_key(key, index))
        w = jax.random.normal(key_w, (n, n), jnp.float32).astype(dtype)
        b = jax.random.normal(key_b, (n,), jnp.float32).astype(dtype)
        return w, b

    w, b = jax.vmap(one)(jnp.arange(depth))
    # Same arithmetic as init_mlp (draw in float32, cast, scale in dtype): equal widths give equal numbers.
    scale = jnp.sqrt(jnp.asarray(sigma2, dtype) / jnp.asarray(widths[:-1], dtype))[:, None, None]
    rows = PaddedMLP(weights=w, biases=None, widths=widths).row_valid()
    cols = jnp.arange(n)[None, :] < jnp.asarray(widths[:-1])[:, None]
    weights = jnp.where(rows[:, :, None] & cols[:, None, :], w * scale, 0.0).astype(dtype)
    biases = jnp.where(rows, b * jnp.asarray(bias_std, dtype), 0.0).astype(dtype) if bias else None
    return PaddedMLP(weights=weights, biases=biases, widths=widths)


def _check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    try:
        widths = tuple(int(n) for n in widths)
    except (TypeError, ValueError):
        raise InputError(f"widths must be a sequence of positive integers, got {widths!r}") from None
    if len(widths) < 2 or min(widths) < 1:
        raise InputError(f"widths must hold at least two positive integers (n_0, n_1), got {widths}")
    return widths


def mlp_widths(params: Params | PaddedMLP) -> tuple[int, ...]:
    """``(n_0, ..., n_L)`` of a list of layers or a :class:`PaddedMLP`.

    Example:
        >>> mlp_widths(init_mlp(jax.random.key(0), (3, 5, 2)))
        (3, 5, 2)
    """
    if isinstance(params, PaddedMLP):
        return params.widths
    return (int(params[0]["w"].shape[1]),) + tuple(int(p["w"].shape[0]) for p in params)


# ----------------------------------------------------------------------------------------------------------
# The padded, stacked form (deep networks, lax.scan over layers).


@struct.dataclass
class PaddedMLP(PaddedWidths):
    """An MLP stored as stacked, zero-padded layers (for ``lax.scan`` over depth).

    Attributes:
        weights: ``(L, N, N)``, ``weights[l][:n_{l+1}, :n_l]`` is ``W_l``, zero elsewhere.
        biases: ``(L, N)`` (zero on padding rows), or ``None`` for a bias-free network.
        widths: ``(n_0, ..., n_L)`` (static).
    """

    weights: Float[Array, "L N N"]
    biases: Float[Array, "L N"] | None
    widths: tuple[int, ...] = struct.field(pytree_node=False)

    def row_valid(self) -> Bool[Array, "L N"]:
        """``(L, N)`` booleans, True on the real (non-padding) output rows of each layer."""
        out = jnp.asarray(self.widths[1:], jnp.int32)
        return jnp.arange(self.max_width)[None, :] < out[:, None]


def pad_params(params: Params | PaddedMLP) -> PaddedMLP:
    """Stack a list of layers into a :class:`PaddedMLP` (zero padding to the largest width).

    Example:
        >>> pad_params(init_mlp(jax.random.key(0), (3, 5, 2))).weights.shape
        (2, 5, 5)
    """
    if isinstance(params, PaddedMLP):
        return params
    _check_params(params)
    widths = mlp_widths(params)
    n = max(widths)
    dtype = params[0]["w"].dtype
    weights = jnp.stack(
        [jnp.pad(p["w"], ((0, n - p["w"].shape[0]), (0, n - p["w"].shape[1]))) for p in params]
    )
    biases = None
    if "b" in params[0]:
        biases = jnp.stack([jnp.pad(p["b"], (0, n - p["b"].shape[0])) for p in params]).astype(dtype)
    return PaddedMLP(weights=weights, biases=biases, widths=widths)


def unpad_params(padded: PaddedMLP) -> Params:
    """The list-of-layers form of a :class:`PaddedMLP` (the inverse of :func:`pad_params`)."""
    w = padded.widths
    out = []
    for l in range(padded.depth):
        layer = {"w": padded.weights[l, : w[l + 1], : w[l]]}
        if padded.biases is not None:
            layer["b"] = padded.biases[l, : w[l + 1]]
        out.append(layer)
    return out


def _check_params(params) -> None:
    if isinstance(params, PaddedMLP):
        return
    if not isinstance(params, (list, tuple)) or not params:
        raise InputError("params must be a non-empty list of layer dicts {'w': (n_out, n_in), 'b': (n_out,)}")
    has_bias = "b" in params[0]
    for l, p in enumerate(params):
        if "w" not in p or jnp.ndim(p["w"]) != 2:
            raise InputError(f"params[{l}] must hold a matrix 'w' of shape (n_out, n_in)")
        if ("b" in p) != has_bias:
            raise InputError("either every layer has a bias 'b' or none does")
        if l and p["w"].shape[1] != params[l - 1]["w"].shape[0]:
            raise InputError(
                f"params[{l}]['w'] has {p['w'].shape[1]} columns but params[{l - 1}]['w'] has "
                f"{params[l - 1]['w'].shape[0]} rows"
            )


def _check_input(params, x) -> None:
    n0 = mlp_widths(params)[0]
    if jnp.ndim(x) not in (1, 2) or jnp.shape(x)[-1] != n0:
        raise InputError(f"x must have shape ({n0},) or (batch, {n0}), got {jnp.shape(x)}")


def _is_gated(l: int, depth: int, final_activation: bool) -> bool:
    return final_activation or l < depth - 1


# ----------------------------------------------------------------------------------------------------------
# Forward pass, gates, fixed gates.


def _linear(w, b, h, precision):
    # h: (..., n_in) -> (..., n_out); one GEMM for a whole batch of inputs.
    out = jnp.matmul(h, w.T, precision=precision)
    return out if b is None else out + b


def _forward(
    params, x, activation, negative_slope, final_activation, precision, *, gate_list=None, collect_gates=False
):
    """Shared forward pass, returns ``(y, gates)``; with ``gate_list`` the gates are frozen, not computed."""
    check_choice("activation", activation, ACTIVATIONS)
    if isinstance(params, PaddedMLP):
        return _forward_padded(
            params, x, activation, negative_slope, final_activation, precision, gate_list=gate_list
        )
    depth = len(params)
    h = x
    found = []
    g_index = 0
    for l, p in enumerate(params):
        pre = _linear(p["w"], p.get("b"), h, precision)
        if _is_gated(l, depth, final_activation):
            if gate_list is None:
                d = activation_derivative(pre, activation, negative_slope)
                h = apply_activation(pre, activation, negative_slope)
            else:
                d = gate_list[g_index]
                h = d * pre
            g_index += 1
            if collect_gates:
                found.append(d)
        else:
            h = pre
    return h, found


def _forward_padded(
    padded: PaddedMLP,
    x,
    activation,
    negative_slope,
    final_activation,
    precision,
    *,
    gate_list=None,
    all_layers: bool = False,
):
    n, depth = padded.max_width, padded.depth
    n0, n_out = padded.widths[0], padded.widths[-1]
    h = jnp.pad(x, [(0, 0)] * (jnp.ndim(x) - 1) + [(0, n - n0)]).astype(
        jnp.result_type(x.dtype, padded.weights.dtype)
    )
    valid = padded.row_valid()
    biases = padded.biases if padded.biases is not None else jnp.zeros((depth, n), padded.weights.dtype)
    gated = jnp.asarray([_is_gated(l, depth, final_activation) for l in range(depth)])
    if gate_list is not None:
        gate_list = _pad_gates(padded, gate_list, final_activation)

    def body(h, inputs):
        if gate_list is None:
            w, b, ok, is_gated = inputs
            pre = _linear(w, b, h, precision)
            d = jnp.where(is_gated, activation_derivative(pre, activation, negative_slope), 1.0) * ok
            h = jnp.where(is_gated, apply_activation(pre, activation, negative_slope), pre) * ok
        else:
            w, b, ok, is_gated, d = inputs
            pre = _linear(w, b, h, precision)
            d = d * ok
            h = d * pre
        return h, d

    xs = (padded.weights, biases, valid.astype(padded.weights.dtype), gated)
    if gate_list is not None:
        xs = xs + (gate_list,)
    h, ds = jax.lax.scan(body, h, xs)
    num_gated = depth if final_activation else depth - 1
    # all_layers: the (L, ..., N) diagonals D_l of J = D_L W_L ... D_1 W_1 (ones on an ungated last layer).
    return h[..., :n_out], ds if all_layers else ds[:num_gated]


def _pad_gates(padded: PaddedMLP, gate_list, final_activation: bool) -> Float[Array, "L *batch N"]:
    """``(L, ..., N)`` stacked gates, ones for an ungated last layer."""
    n, depth = padded.max_width, padded.depth
    if isinstance(gate_list, (list, tuple)):
        last = (padded.widths[-1],)
        ones_shape = jnp.shape(gate_list[0])[:-1] + last if gate_list else last
        gl = list(gate_list)
        if len(gl) == depth - 1:
            gl.append(jnp.ones(ones_shape, padded.weights.dtype))
        return jnp.stack(
            [
                jnp.pad(
                    jnp.asarray(g, padded.weights.dtype),
                    [(0, 0)] * (jnp.ndim(g) - 1) + [(0, n - g.shape[-1])],
                )
                for g in gl
            ]
        )
    g = jnp.asarray(gate_list, padded.weights.dtype)  # already stacked (num_gated, ..., N)
    if g.shape[0] == depth - 1:
        g = jnp.concatenate([g, jnp.ones((1,) + g.shape[1:], g.dtype)])
    return g


def _num_gates(gate_list, depth: int) -> int:
    """How many gate vectors ``gate_list`` holds: ``L - 1`` (last layer linear) or ``L``, else raise."""
    num = len(gate_list) if isinstance(gate_list, (list, tuple)) else jnp.shape(gate_list)[0]
    if num not in (depth - 1, depth):
        raise InputError(f"need {depth - 1} (last layer linear) or {depth} gate vectors, got {num}")
    return num


def mlp_apply(
    params: Params | PaddedMLP,
    x: Float[Array, "*batch n0"],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    final_activation: bool = False,
    precision=HIGHEST,
) -> Float[Array, "*batch nL"]:
    """The network's output.

    Args:
        params: list of layer dicts (see :func:`init_mlp`) or a :class:`PaddedMLP`.
        x: ``(n_0,)`` or ``(batch, n_0)``.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        negative_slope: leaky-ReLU slope.
        final_activation: also apply ``phi`` after the last layer (default: the last layer is linear).
        precision: matmul precision (HIGHEST by default).

    Returns:
        ``(n_L,)`` or ``(batch, n_L)``.

    Example:
        >>> params = init_mlp(jax.random.key(0), (3, 16, 2))
        >>> mlp_apply(params, jnp.ones(3)).shape
        (2,)
    """
    _check_params(params)
    _check_input(params, x)
    return _forward(params, x, activation, negative_slope, final_activation, precision)[0]


def gates(
    params: Params | PaddedMLP,
    x: Float[Array, "*batch n0"],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    final_activation: bool = False,
    precision=HIGHEST,
) -> list[Float[Array, "*batch n"]] | Float[Array, "G *batch N"]:
    """The activation derivatives ``d_l = phi'(W_l h_{l-1} + b_l)`` of every gated layer at ``x``.

    Args:
        params, x, activation, negative_slope, final_activation, precision: as in :func:`mlp_apply`.

    Returns:
        A list of ``L - 1`` arrays (``L`` with ``final_activation``), entry ``l`` of shape ``(n_{l+1},)`` or
        ``(batch, n_{l+1})``: ``{0, 1}`` for ReLU, ``{negative_slope, 1}`` for leaky ReLU, ones for linear.
        For a :class:`PaddedMLP`, one stacked ``(num_gated, ..., N)`` array instead (zero on padding rows).

    Example:
        >>> params = init_mlp(jax.random.key(0), (3, 16, 16, 2))
        >>> [g.shape for g in gates(params, jnp.ones(3))]
        [(16,), (16,)]
    """
    _check_params(params)
    _check_input(params, x)
    return _forward(params, x, activation, negative_slope, final_activation, precision, collect_gates=True)[1]


def fixed_gates_apply(
    params: Params | PaddedMLP,
    gate_list: Sequence[Float[Array, "*batch n"]] | Float[Array, "G *batch N"],
    x: Float[Array, "*batch n0"],
    *,
    precision=HIGHEST,
) -> Float[Array, "*batch nL"]:
    """The network with frozen gates: ``y = W_L (d_{L-1} * (... d_1 * (W_1 x + b_1) ...)) + b_L``.

    A product of masked affine maps: linear in ``x`` when bias-free, differentiable in ``params`` (so it can
    be trained as a fixed-gates network) and in the gates. The gates may be shared, ``(n_l,)`` each, or given
    per input, ``(batch, n_l)`` each (they broadcast against ``x``; ``vmap`` also works).

    Args:
        params: list of layer dicts or a :class:`PaddedMLP`.
        gate_list: ``L - 1`` gate vectors (the last layer then stays linear) or ``L`` (every layer gated), as
            returned by :func:`gates`.
        x: ``(n_0,)`` or ``(batch, n_0)``.
        precision: matmul precision.

    Returns:
        ``(n_L,)`` or ``(batch, n_L)``.

    Example:
        >>> params = init_mlp(jax.random.key(0), (3, 16, 2))
        >>> x = jnp.ones(3)
        >>> bool(jnp.allclose(fixed_gates_apply(params, gates(params, x), x), mlp_apply(params, x)))
        True

    References:
        Haas et al., arXiv:2602.12384 (fixed-gates view of piecewise-linear networks).
    """
    _check_params(params)
    _check_input(params, x)
    depth = len(params) if not isinstance(params, PaddedMLP) else params.depth
    final_activation = _num_gates(gate_list, depth) == depth
    # 'linear' with frozen gates: the forward pass only multiplies by the given d_l.
    return _forward(params, x, "linear", 0.0, final_activation, precision, gate_list=gate_list)[0]


def network_layer_stack(
    params: Params | PaddedMLP, gate_list: Sequence[Float[Array, " n"]] | Float[Array, "G N"], *, dtype=None
) -> FixedStack:
    """The fixed-gates network as a :class:`jaxspec.FixedStack` (masked layers ``D_l W_l``) for the engine.

    Biases do not enter the Jacobian and are dropped. A missing last gate (linear last layer) becomes ones.

    Args:
        params: list of layer dicts or a :class:`PaddedMLP`.
        gate_list: ``L - 1`` or ``L`` gate vectors of one input (shapes ``(n_{l+1},)``), or a stacked
            ``(L - 1 or L, N)`` array as returned for deep padded networks.
        dtype: cast weights and masks (default: the weights' dtype).

    Returns:
        :class:`jaxspec.FixedStack` with ``weights (L, N, N)``, ``masks (L, N)``. For ReLU the masks are in
        ``{0, 1}``; leaky-ReLU masks hold the slope (the engine's active count ``K_l`` then counts
        every unit).

    Example:
        >>> params = init_mlp(jax.random.key(0), (4, 8, 8, 3))
        >>> stack = network_layer_stack(params, gates(params, jnp.ones(4)))
        >>> stack.weights.shape, stack.widths
        ((3, 8, 8), (4, 8, 8, 3))
    """
    _check_params(params)
    padded = pad_params(params)
    depth = padded.depth
    num = _num_gates(gate_list, depth)
    first = gate_list[0]
    if jnp.ndim(first) != 1:
        raise InputError("network_layer_stack takes the gates of one input; vmap it over a batch")
    masks = _pad_gates(padded, gate_list, num == depth) * padded.row_valid()
    dtype = padded.weights.dtype if dtype is None else dtype
    return FixedStack(weights=padded.weights.astype(dtype), masks=masks.astype(dtype), widths=padded.widths)


# ----------------------------------------------------------------------------------------------------------
# Flax module.


class MLP(nn.Module):
    """A ``flax.linen`` MLP with the parametrisation of :func:`init_mlp` (one parameter, ``"layers"``).

    Attributes:
        widths: ``(n_0, ..., n_L)``.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        negative_slope: leaky-ReLU slope.
        bias: include biases.
        weight_init: ``"he"`` or ``"lecun"`` (the ``init`` of :func:`init_mlp`; ``Module.init`` is taken).
        gain: explicit weight variance times fan-in (overrides ``weight_init``).
        bias_std: standard deviation of the initial biases.
        final_activation: apply ``phi`` after the last layer too.
        param_dtype: parameter dtype.

    Example:
        >>> model = MLP(widths=(3, 16, 2))
        >>> variables = model.init(jax.random.key(0), jnp.ones(3))
        >>> model.apply(variables, jnp.ones((5, 3))).shape
        (5, 2)
    """

    widths: Sequence[int]
    activation: str = "relu"
    negative_slope: float = 0.01
    bias: bool = False
    weight_init: str = "he"
    gain: float | None = None
    bias_std: float = 0.0
    final_activation: bool = False
    param_dtype: Any = jnp.float32

    def setup(self):
        self.layers = self.param(
            "layers",
            lambda key: init_mlp(
                key,
                self.widths,
                activation=self.activation,
                bias=self.bias,
                gain=self.gain,
                init=self.weight_init,
                negative_slope=self.negative_slope,
                bias_std=self.bias_std,
                dtype=self.param_dtype,
            ),
        )

    def __call__(self, x: Float[Array, "*batch n0"]) -> Float[Array, "*batch nL"]:
        return mlp_apply(
            self.layers,
            x,
            activation=self.activation,
            negative_slope=self.negative_slope,
            final_activation=self.final_activation,
        )

    def gates(self, x: Float[Array, "*batch n0"]) -> list[Float[Array, "*batch n"]]:
        """The gates at ``x`` (call through ``model.apply(variables, x, method=MLP.gates)``)."""
        return gates(
            self.layers,
            x,
            activation=self.activation,
            negative_slope=self.negative_slope,
            final_activation=self.final_activation,
        )
