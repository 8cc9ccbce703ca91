"""Rank measures of a network: weight spectra, representation ranks, the Jacobian pseudo-determinant.

Thresholds (documented defaults).

* Jacobian rank: ``k(x) = #{i : s_i(Jf(x)) > jacobian_rtol * s_1(Jf(x))}``, ``jacobian_rtol = 1e-3``. In a
  network with a bottleneck the non-bottleneck directions of ``Jf`` are damped geometrically with depth (a
  product of ``O(L^-1/2)`` factors), so they fall far below ``1e-3`` while the ``R0`` bottleneck directions
  stay ``O(1)``; float32 rounding sits near ``1e-6``.
* Representation rank: ``#{i : s_i(H_l) > rank_rtol * s_1(H_l)}``, ``rank_rtol = 1e-2``, with ``H_l`` the
  ``(batch, n_l)`` matrix of layer-``l`` activations (uncentred: the networks are bias-free); the stable rank
  ``||H_l||_F^2 / ||H_l||_2^2`` needs no threshold.

References:
    Jacot, "Bottleneck Structure in Learned Features: Low-Dimension vs Regularity Tradeoff", NeurIPS 2023,
    arXiv:2305.19008.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from jaxspec._checks import HIGHEST
from jaxspec.bottleneck._validation import Params, as_layers, check_network, check_rtol
from jaxspec.networks import apply_activation, mlp_apply, pad_params

#: Default relative threshold of the numerical rank of ``Jf(x)``.
JACOBIAN_RTOL = 1e-3
#: Default relative threshold of the numerical rank of a representation ``H_l``.
RANK_RTOL = 1e-2


class JacobianPseudoDet(NamedTuple):
    """Singular values, numerical rank and log pseudo-determinant of ``Jf(x)`` for a batch of inputs.

    Attributes:
        singular_values: ``(B, min(n_0, n_L))``, descending.
        rank: ``(B,)`` int, ``k(x) = #{s_i > rtol s_1}``.
        logdet: ``(B,)``, ``log|Jf(x)|_+ = sum_{i<=k} log s_i`` (0 when ``k = 0``).
    """

    singular_values: jax.Array
    rank: jax.Array
    logdet: jax.Array


class RepresentationRanks(NamedTuple):
    """Spectra of the representations ``H_0 = X, H_1, ..., H_L = f(X)`` over a batch.

    Attributes:
        singular_values: ``(L + 1, K)`` descending, zero-padded, ``K = min(B, max_l n_l)``.
        numerical_rank: ``(L + 1,)`` int, ``#{s_i > rtol s_1}``.
        stable_rank: ``(L + 1,)``, ``||H_l||_F^2 / ||H_l||_2^2`` (0 for a zero representation).
    """

    singular_values: jax.Array
    numerical_rank: jax.Array
    stable_rank: jax.Array


# ----------------------------------------------------------------------------------------------------------
# Weights.


def parameter_norm_sq(params: Any) -> Float[Array, ""]:
    """``||theta||^2``: the sum of squares of every weight and bias.

    Args:
        params: any pytree of arrays (a list of layer dicts).

    Returns:
        A scalar.

    Example:
        >>> parameter_norm_sq([{"w": jnp.eye(3)}, {"w": 2 * jnp.ones((1, 3))}])
        Array(15., dtype=float32)
    """
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(params))


def layer_singular_values(params: Any) -> Float[Array, "L N"]:
    """Singular values of every weight matrix, stacked and zero-padded to the largest width.

    Zero padding to the largest width adds only zero singular values, so one ``vmap`` of the SVD over the
    padded ``(L, N, N)`` stack gives every layer. (:func:`jaxspec.training.layer_singular_values` takes bare
    weight matrices and pads with NaN to the largest rank instead.)

    Args:
        params: list of layer dicts ``{"w": (n_{l+1}, n_l)}`` or a :class:`jaxspec.networks.PaddedMLP`.

    Returns:
        ``(L, N)``, row ``l`` the singular values of ``W_l`` in descending order, zero-padded
        (``N = max_l n_l``).

    Example:
        >>> layer_singular_values([{"w": jnp.diag(jnp.array([3.0, 1.0]))}]).tolist()
        [[3.0, 1.0]]

    References:
        Jacot, arXiv:2305.19008 (the weight spectra of the bottleneck structure).
    """
    return _layer_singular_values(as_layers(params))


@jax.jit
def _layer_singular_values(params) -> jax.Array:
    padded = pad_params(params)
    return jax.vmap(lambda w: jnp.linalg.svd(w, compute_uv=False))(padded.weights)


# ----------------------------------------------------------------------------------------------------------
# Representations.


def representations(
    params: Params,
    x: Float[ArrayLike, "B n0"],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    precision: Any = HIGHEST,
) -> list[Float[Array, "B _"]]:
    """The representations of a batch at every layer: ``[x, h_1, ..., h_{L-1}, f(x)]``.

    ``h_l = phi(W_l h_{l-1} + b_l)`` (post-activation) for hidden layers; the last entry is the linear output.

    Args:
        params: list of layer dicts.
        x: ``(B, n_0)`` or ``(n_0,)``.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        negative_slope: leaky-ReLU slope.
        precision: matmul precision.

    Returns:
        A list of ``L + 1`` arrays of shapes ``(B, n_l)``.

    Example:
        >>> params = init_mlp(jax.random.key(0), (3, 8, 2))
        >>> [h.shape for h in representations(params, jnp.ones((5, 3)))]
        [(5, 3), (5, 8), (5, 2)]
    """
    params, h = check_network(params, x, activation)
    out = [h]
    for l, p in enumerate(params):
        pre = jnp.matmul(h, p["w"].T, precision=precision)
        if "b" in p:
            pre = pre + p["b"]
        h = pre if l == len(params) - 1 else apply_activation(pre, activation, negative_slope)
        out.append(h)
    return out


def representation_ranks(
    params: Params,
    x: Float[ArrayLike, "B n0"],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    rtol: float = RANK_RTOL,
    precision: Any = HIGHEST,
) -> RepresentationRanks:
    """Numerical and stable rank of the representation matrix ``H_l`` (``(B, n_l)``) at every layer.

    Args:
        params: list of layer dicts.
        x: ``(B, n_0)``.
        activation, negative_slope, precision: as in :func:`representations`.
        rtol: relative threshold of the numerical rank, ``#{s_i(H_l) > rtol s_1(H_l)}`` (default ``1e-2``).

    Returns:
        :class:`RepresentationRanks` with ``(L + 1, ...)`` arrays, layer 0 being the input.

    Example:
        >>> params = init_mlp(jax.random.key(0), (3, 8, 2), activation="linear")
        >>> representation_ranks(params, jax.random.normal(jax.random.key(1), (20, 3)),
        ...                      activation="linear").numerical_rank.tolist()
        [3, 3, 2]

    References:
        Jacot, arXiv:2305.19008 (middle representations are ``R0``-dimensional).
    """
    rtol = check_rtol("rtol", rtol)
    params, x = check_network(params, x, activation)
    return _representation_ranks(params, x, rtol, activation, negative_slope, precision)


@functools.partial(jax.jit, static_argnames=("activation", "negative_slope", "precision"))
def _representation_ranks(params, x, rtol, activation, negative_slope, precision) -> RepresentationRanks:
    hs = representations(params, x, activation=activation, negative_slope=negative_slope, precision=precision)
    batch = hs[0].shape[0]
    width = max(h.shape[1] for h in hs)
    k = min(batch, width)
    rows = []
    for h in hs:
        s = jnp.linalg.svd(h, compute_uv=False)
        rows.append(jnp.pad(s, (0, k - s.shape[0])))
    s = jnp.stack(rows)
    return RepresentationRanks(s, _numerical_rank(s, rtol), _stable_rank(s))


def _numerical_rank(s: jax.Array, rtol: float) -> jax.Array:
    return jnp.sum(s > rtol * s[..., :1], axis=-1) * (s[..., 0] > 0)


def _stable_rank(s: jax.Array) -> jax.Array:
    top = s[..., 0] ** 2
    return jnp.sum(s**2, axis=-1) / jnp.where(top > 0, top, 1.0)


# ----------------------------------------------------------------------------------------------------------
# The input Jacobian.


def _input_jacobians(params, x, activation, negative_slope, precision) -> jax.Array:
    def f(xi):
        return mlp_apply(
            params, xi, activation=activation, negative_slope=negative_slope, precision=precision
        )

    return jax.vmap(jax.jacfwd(f))(x)  # (B, n_L, n_0): exact inside each linear region


def jacobian_pseudo_logdet(
    params: Params,
    x: Float[ArrayLike, "B n0"],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    rtol: float = JACOBIAN_RTOL,
    precision: Any = HIGHEST,
) -> JacobianPseudoDet:
    """``log|Jf(x)|_+`` from the singular values of ``Jf(x)`` counted above ``rtol * s_1``.

    Args:
        params: list of layer dicts.
        x: ``(B, n_0)`` or ``(n_0,)``.
        activation, negative_slope, precision: as in :func:`representations`.
        rtol: relative threshold deciding the numerical rank ``k(x)`` (default ``1e-3``, see the module doc).

    Returns:
        :class:`JacobianPseudoDet` with ``singular_values (B, min(n_0, n_L))``, ``rank (B,)``,
        ``logdet (B,)``.

    Example:
        >>> params = [{"w": jnp.diag(jnp.array([2.0, 3.0, 0.0]))}]
        >>> jd = jacobian_pseudo_logdet(params, jnp.ones(3), activation="linear")
        >>> int(jd.rank[0]), round(float(jd.logdet[0]), 4)
        (2, 1.7918)

    References:
        Jacot, arXiv:2305.19008 (``R1`` bounds ``log|Jf(x)|_+``).
    """
    params, x = check_network(params, x, activation)
    rtol = check_rtol("rtol", rtol)
    return _jacobian_pseudo_logdet(params, x, rtol, activation, negative_slope, precision)


@functools.partial(jax.jit, static_argnames=("activation", "negative_slope", "precision"))
def _jacobian_pseudo_logdet(params, x, rtol, activation, negative_slope, precision) -> JacobianPseudoDet:
    jac = _input_jacobians(params, x, activation, negative_slope, precision)
    s = jax.vmap(lambda j: jnp.linalg.svd(j, compute_uv=False))(jac)
    rank = _numerical_rank(s, rtol)
    keep = jnp.arange(s.shape[-1])[None, :] < rank[:, None]
    logdet = jnp.sum(jnp.where(keep, jnp.log(jnp.where(keep, s, 1.0)), 0.0), axis=-1)
    return JacobianPseudoDet(s, rank, logdet)
