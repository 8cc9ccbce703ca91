"""The deep unconstrained feature model (UFM): free features pushed through ``L`` bias-free layers, MSE loss.

Data: ``K`` classes of ``n`` samples each, ``N = K n``, sample ``i = c n + j`` has class ``c``; targets
``Y = I_K (x) 1_n^T`` (``K x N``). The features ``H`` (``d x N``) are free parameters. Layers
``W_1, ..., W_{L-1}`` are ``d x d`` (stacked as ``hidden``, scanned over) and the head ``W_L`` is ``K x d``:

    h^(0) = H,   h^(l) = act(W_l h^(l-1))  (l = 1..L-1),   f = W_L h^(L-1),
    loss = 1/(2N) ||f - Y||_F^2 + (lam_W/2) sum_l ||W_l||_F^2 + (lam_H/2) ||H||_F^2,

with ``act`` the identity (deep linear UFM) or ReLU. Layers are numbered 0..L-1 in the Python API (layer ``l``
is the matrix ``W_{l+1}``; layer ``L-1`` is the head), and ``h^(l)`` is the input of layer ``l``.

References:
    Garrod & Keating, "Unifying low dimensional spectra in deep learning", arXiv:2404.06106.
    Mixon, Parshall, Pi, "Neural collapse with unconstrained features", arXiv:2011.11619; Sukenik, Mondelli,
    Lampert, "Deep neural collapse is provably optimal for the deep unconstrained features model",
    arXiv:2305.13165.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxspec._checks import HIGHEST, InputError, check_choice, check_dtype

ACTIVATIONS = ("linear", "relu")


@struct.dataclass
class UFM:
    """A deep UFM: regularisation strengths are pytree leaves (vmappable), sizes are static.

    Attributes:
        lam_w: weight decay ``lam_W`` of every layer.
        lam_h: feature decay ``lam_H``.
        num_classes: ``K``.
        per_class: ``n`` samples per class.
        depth: ``L`` weight matrices.
        width: ``d`` feature width (``d >= K``).
        activation: ``"linear"`` or ``"relu"`` (between hidden layers; none after the head).
        dtype: ``"float32"`` or ``"float64"``.
    """

    lam_w: float
    lam_h: float
    num_classes: int = struct.field(pytree_node=False)
    per_class: int = struct.field(pytree_node=False)
    depth: int = struct.field(pytree_node=False)
    width: int = struct.field(pytree_node=False)
    activation: str = struct.field(pytree_node=False, default="linear")
    dtype: str = struct.field(pytree_node=False, default="float32")

    @property
    def num_samples(self) -> int:
        return self.num_classes * self.per_class


class UFMParams(NamedTuple):
    """Parameters of a deep UFM.

    Attributes:
        features: ``(d, N)`` the unconstrained features ``H``.
        hidden: ``(L-1, d, d)`` the layers ``W_1 .. W_{L-1}``.
        head: ``(K, d)`` the last layer ``W_L``.
    """

    features: Float[Array, "d N"]
    hidden: Float[Array, "L-1 d d"]
    head: Float[Array, "K d"]


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def make_ufm(
    num_classes: int,
    per_class: int,
    depth: int,
    lam_w: float,
    lam_h: float | None = None,
    width: int | None = None,
    activation: str = "linear",
    dtype: str = "float32",
) -> UFM:
    """Validate a deep UFM configuration.

    Args:
        num_classes: ``K >= 2``.
        per_class: ``n >= 1``.
        depth: ``L >= 1`` weight matrices.
        lam_w: weight decay ``> 0``.
        lam_h: feature decay ``> 0`` (default ``lam_w``).
        width: ``d >= K`` (default ``K``).
        activation: ``"linear"`` or ``"relu"``.
        dtype: ``"float32"`` or ``"float64"``.

    Returns:
        :class:`UFM`.

    Example:
        >>> ufm = make_ufm(3, 40, 5, 1e-2, width=6)
        >>> ufm.num_samples
        120

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    for name, value, low in (
        ("num_classes K", num_classes, 2),
        ("per_class n", per_class, 1),
        ("depth L", depth, 1),
    ):
        if not (_is_int(value) and value >= low):
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    width = num_classes if width is None else width
    if not (_is_int(width) and width >= num_classes):
        raise InputError(f"width d must be an integer >= K = {num_classes}, got {width!r}")
    lam_h = lam_w if lam_h is None else lam_h
    for name, value in (("lam_w", lam_w), ("lam_h", lam_h)):
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")):
            raise InputError(f"{name} must be a positive finite number, got {value!r}")
    check_choice("activation", activation, ACTIVATIONS)
    check_dtype(dtype)
    return UFM(
        float(lam_w),
        float(lam_h),
        int(num_classes),
        int(per_class),
        int(depth),
        int(width),
        activation,
        dtype,
    )


def labels(ufm: UFM) -> Int[Array, " N"]:
    """``(N,)`` class of each sample (class-major order).

    Example:
        >>> labels(make_ufm(2, 3, 1, 1e-2)).tolist()
        [0, 0, 0, 1, 1, 1]
    """
    return jnp.repeat(jnp.arange(ufm.num_classes), ufm.per_class)


def targets(ufm: UFM) -> Float[Array, "K N"]:
    """``(K, N)`` the targets ``Y = I_K (x) 1_n^T``.

    Example:
        >>> targets(make_ufm(2, 2, 1, 1e-2)).tolist()
        [[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]
    """
    return jnp.kron(jnp.eye(ufm.num_classes, dtype=ufm.dtype), jnp.ones((1, ufm.per_class), ufm.dtype))


def activate(ufm: UFM, x: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """The UFM's activation between hidden layers: ReLU or the identity."""
    return jax.nn.relu(x) if ufm.activation == "relu" else x


def layer_features(ufm: UFM, params: UFMParams) -> Float[Array, "L d N"]:
    """The input features of every layer, ``h^(0) = H`` to ``h^(L-1)``.

    Args:
        ufm: the model.
        params: :class:`UFMParams`.

    Returns:
        ``(L, d, N)``.

    Example:
        >>> import jax
        >>> ufm = make_ufm(2, 3, 4, 1e-2, width=5)
        >>> layer_features(ufm, init_params(ufm, jax.random.key(0))).shape
        (4, 5, 6)
    """

    def layer(h, w):
        h = activate(ufm, jnp.matmul(w, h, precision=HIGHEST))
        return h, h

    _, hs = jax.lax.scan(layer, params.features, params.hidden)
    return jnp.concatenate([params.features[None], hs], axis=0)


def predict(ufm: UFM, params: UFMParams) -> Float[Array, "K N"]:
    """``(K, N)`` network outputs ``f = W_L h^(L-1)``.

    Example:
        >>> ufm = make_ufm(2, 3, 3, 1e-2, width=4)
        >>> predict(ufm, init_params(ufm, jax.random.key(0))).shape
        (2, 6)
    """

    def layer(h, w):
        return activate(ufm, jnp.matmul(w, h, precision=HIGHEST)), None

    h, _ = jax.lax.scan(layer, params.features, params.hidden)
    return jnp.matmul(params.head, h, precision=HIGHEST)


def data_loss(ufm: UFM, params: UFMParams) -> Float[Array, ""]:
    """``1/(2N) ||f - Y||_F^2`` (the part of the loss whose Hessian carries the outliers)."""
    residual = predict(ufm, params) - targets(ufm)
    return 0.5 * jnp.sum(residual**2) / ufm.num_samples


def regulariser(ufm: UFM, params: UFMParams) -> Float[Array, ""]:
    """``(lam_W/2) sum_l ||W_l||^2 + (lam_H/2) ||H||^2``."""
    weights = jnp.sum(params.hidden**2) + jnp.sum(params.head**2)
    return 0.5 * ufm.lam_w * weights + 0.5 * ufm.lam_h * jnp.sum(params.features**2)


def loss(ufm: UFM, params: UFMParams) -> Float[Array, ""]:
    """The regularised MSE loss of the deep UFM (a scalar).

    Example:
        >>> from jaxspec.ufm import collapsed_params
        >>> ufm = make_ufm(3, 40, 5, 1e-2, dtype="float32")
        >>> round(float(loss(ufm, collapsed_params(ufm))), 5)
        0.16484

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    return data_loss(ufm, params) + regulariser(ufm, params)


def init_params(ufm: UFM, key: PRNGKeyArray, scale: float = 1.0) -> UFMParams:
    """Random Gaussian parameters: layers with variance ``scale^2 / fan_in``, features with variance
    ``scale^2``.

    Args:
        ufm: the model.
        key: PRNG key.
        scale: overall scale of the initialisation.

    Returns:
        :class:`UFMParams`.

    Example:
        >>> import jax
        >>> p = init_params(make_ufm(2, 3, 2, 1e-2, width=4), jax.random.key(0))
        >>> p.features.shape, p.hidden.shape, p.head.shape
        ((4, 6), (1, 4, 4), (2, 4))
    """
    k_h, k_w, k_o = jax.random.split(key, 3)
    d, K, N, L = ufm.width, ufm.num_classes, ufm.num_samples, ufm.depth
    dt = jnp.dtype(ufm.dtype)
    std = scale / jnp.sqrt(jnp.asarray(d, dt))
    return UFMParams(
        features=scale * jax.random.normal(k_h, (d, N), dt),
        hidden=std * jax.random.normal(k_w, (L - 1, d, d), dt),
        head=std * jax.random.normal(k_o, (K, d), dt),
    )


def check_layer(ufm: UFM, layer: int | Int[Array, ""]) -> None:
    """Raise :class:`jaxspec.InputError` unless ``layer`` is a layer index (a traced integer passes)."""
    if isinstance(layer, jax.Array) and layer.ndim == 0 and jnp.issubdtype(layer.dtype, jnp.integer):
        return  # a traced index: a hidden layer (vmap over layers); the head needs a Python int
    if not (_is_int(layer) and 0 <= layer < ufm.depth):
        raise InputError(
            f"layer must be an integer in [0, {ufm.depth - 1}] (0-based; {ufm.depth - 1} is the "
            f"head), got {layer!r}"
        )


def is_head(ufm: UFM, layer: int | Int[Array, ""]) -> bool:
    """Whether ``layer`` is the head (a Python int equal to ``L - 1``; a traced index is a hidden layer)."""
    return _is_int(layer) and int(layer) == ufm.depth - 1


def layer_weight(ufm: UFM, params: UFMParams, layer: int | Int[Array, ""]) -> Float[Array, "d_out d"]:
    """The weight of layer ``layer`` (0-based; ``L-1`` is the head; a traced integer means a hidden layer)."""
    check_layer(ufm, layer)
    return params.head if is_head(ufm, layer) else params.hidden[layer]


def with_layer(
    ufm: UFM, params: UFMParams, layer: int | Int[Array, ""], weight: Float[Array, "d_out d"]
) -> UFMParams:
    """``params`` with layer ``layer`` replaced by ``weight`` (a traced integer means a hidden layer)."""
    check_layer(ufm, layer)
    if is_head(ufm, layer):
        return params._replace(head=weight)
    return params._replace(hidden=params.hidden.at[layer].set(weight))


def map_layers(ufm: UFM, fn: Callable[[int | Int[Array, ""], PRNGKeyArray], Any], key: PRNGKeyArray) -> Any:
    """``fn(layer, key)`` for every layer, stacked along a leading axis ``L``.

    The hidden layers share shapes, so one vmapped (and compiled) body serves all of them; the head follows.

    Args:
        ufm: the model.
        fn: ``(layer, key) -> pytree``; called with a traced layer index for the hidden layers.
        key: split into one key per layer.

    Returns:
        The pytree of ``fn`` with a leading axis ``L`` on every leaf.
    """
    keys = jax.random.split(key, ufm.depth)
    head = jax.tree.map(lambda x: x[None], fn(ufm.depth - 1, keys[-1]))
    if ufm.depth == 1:
        return head
    hidden = jax.vmap(fn)(jnp.arange(ufm.depth - 1), keys[:-1])
    return jax.tree.map(lambda h, t: jnp.concatenate([h, t], axis=0), hidden, head)


def layer_block(
    ufm: UFM, params: UFMParams, layer: int | Int[Array, ""], *, regularised: bool = False
) -> tuple[Float[Array, "d_out d"], Callable[[Float[Array, "d_out d"]], Float[Array, ""]]]:
    """One layer's weight and the loss restricted to it (the other parameters held at ``params``).

    Its Hessian is the layer-wise Hessian. ``regularised=False`` (default) keeps only the data term, whose
    Hessian carries the ``K^2`` outliers; the weight decay adds ``lam_W`` to every eigenvalue.

    Args:
        ufm: the model.
        params: :class:`UFMParams`.
        layer: 0-based layer index (a Python int; or a traced integer scalar for a hidden layer, so that
            one compiled function serves every hidden layer under ``vmap``).
        regularised: include the ``(lam_W/2) ||W_l||^2`` term.

    Returns:
        ``(weight, weight -> scalar)``.

    Example:
        >>> import jax
        >>> from jaxspec import hessian
        >>> ufm = make_ufm(2, 3, 3, 1e-2, width=3)
        >>> w, f = layer_block(ufm, init_params(ufm, jax.random.key(0)), 1)
        >>> hessian.dense_hessian(f, w).shape
        (9, 9)
    """
    check_layer(ufm, layer)

    def restricted(weight):
        value = data_loss(ufm, with_layer(ufm, params, layer, weight))
        if regularised:
            value = value + 0.5 * ufm.lam_w * jnp.sum(weight**2)
        return value

    return layer_weight(ufm, params, layer), restricted
