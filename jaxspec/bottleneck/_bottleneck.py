"""Bottleneck rank of L2-regularised deep networks: weight spectra, representation ranks, the Jacobian
pseudo-determinant, the per-network inequality and the depth fit ``||theta||^2 ~ L R0 + R1``.

The minimal squared parameter norm of a depth-``L`` network representing ``f`` is
``R(f; L) = L R0(f) + R1(f) + O(1/L)``: ``R0`` is the bottleneck rank, ``R1`` a regularity term that bounds the
pseudo-determinant of the Jacobian. For deep **linear** nets ``R(A; L) = L sum_i s_i(A)^(2/L)``, so ``R0 = rank A``,
``R1 = 2 log|A|_+`` and every layer of the minimal-norm factorisation has singular values ``s_i(A)^(1/L)``
(:func:`deep_linear_min_norm`, :func:`deep_linear_weight_decay_optimum`).

Per-network inequality ([math §6](https://jaxspec.github.io/jaxspec/math/#s6)). For a ReLU, leaky-ReLU or linear network, an input ``x`` and any
``k <= rank Jf(x)`` (in particular ``k = rank Jf(x)``), with ``s_i`` the singular values of ``W_l``,

    sum_l e_l <= ||theta||^2 - L k - 2 log|Jf(x)|_+,
    e_l = sum_{i<=k} (s_i^2 - 1 - log s_i^2) + sum_{i>k} s_i^2 >= 0,

where ``log|Jf(x)|_+`` sums the logs of the top ``k`` singular values of ``Jf(x)``. It follows from Horn's
inequality ``prod_{i<=k} s_i(AB) <= prod_{i<=k} s_i(A) s_i(B)`` and ``|phi'| <= 1``: the slack
``rhs - lhs = ||b||^2 + 2 sum_l sum_{i<=k} log s_i(W_l) - 2 log|Jf(x)|_+`` is never negative. Because it holds
for *every* ``k``, the threshold that decides the numerical rank of ``Jf(x)`` (:func:`jacobian_pseudo_logdet`)
only chooses which instance is reported; it cannot make the inequality fail.

Thresholds (documented defaults).

* Jacobian rank: ``k(x) = #{i : s_i(Jf(x)) > jacobian_rtol * s_1(Jf(x))}``, ``jacobian_rtol = 1e-3``. In a
  network with a bottleneck the non-bottleneck directions of ``Jf`` are damped geometrically with depth (a
  product of ``O(L^-1/2)`` factors), so they fall far below ``1e-3`` while the ``R0`` bottleneck directions stay
  ``O(1)``; float32 rounding sits near ``1e-6``.
* Representation rank: ``#{i : s_i(H_l) > rank_rtol * s_1(H_l)}``, ``rank_rtol = 1e-2``, with ``H_l`` the
  ``(batch, n_l)`` matrix of layer-``l`` activations (uncentred: the networks are bias-free); the stable rank
  ``||H_l||_F^2 / ||H_l||_2^2`` needs no threshold.

Training. :func:`train_weight_decay` minimises ``(1/N) sum_j ||f(x_j) - y_j||^2 + lambda ||theta||^2`` through
:func:`jaxspec.training.train` (any optax optimizer). :func:`bottleneck_target` draws ``f = h o g`` through a
``k``-dimensional middle (bottleneck rank ``k``), or a rank-``k`` linear map; :func:`jaxspec.data.digits` is the
real-data target.

References:
    Jacot, "Bottleneck Structure in Learned Features: Low-Dimension vs Regularity Tradeoff", NeurIPS 2023,
    arXiv:2305.19008. Horn, "On the singular values of a product of completely continuous operators",
    PNAS 36 (1950).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxspec._checks import HIGHEST, InputError
from jaxspec.networks._mlp import ACTIVATIONS, apply_activation, init_mlp, mlp_apply, pad_params, unpad_params

__all__ = [
    "BottleneckInequality",
    "BottleneckReport",
    "BottleneckTask",
    "JacobianPseudoDet",
    "RankFit",
    "RepresentationRanks",
    "bottleneck_inequality",
    "bottleneck_report",
    "bottleneck_target",
    "deep_linear_min_norm",
    "deep_linear_weight_decay_optimum",
    "fit_rank_terms",
    "jacobian_pseudo_logdet",
    "layer_singular_values",
    "parameter_norm_sq",
    "representation_ranks",
    "representations",
    "train_weight_decay",
    "weight_decay_loss",
]

JACOBIAN_RTOL = 1e-3
RANK_RTOL = 1e-2


# ----------------------------------------------------------------------------------------------------------
# Result pytrees.


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


class BottleneckInequality(NamedTuple):
    """The per-network inequality ``sum_l e_l <= ||theta||^2 - L k - 2 log|Jf(x)|_+`` at each input.

    Attributes:
        layer_excess: ``(B, L)``, ``e_l >= 0`` (distance of layer ``l`` from ``k`` unit singular values and
            zeros elsewhere).
        lhs: ``(B,)``, ``sum_l e_l``.
        rhs: ``(B,)``, ``||theta||^2 - L k - 2 log|Jf(x)|_+``.
        margin: ``(B,)``, ``rhs - lhs >= 0`` (computed without cancellation).
        rank: ``(B,)``, ``k(x)``.
        logdet: ``(B,)``, ``log|Jf(x)|_+``.
        norm_sq: ``()``, ``||theta||^2`` (weights and biases).
    """

    layer_excess: jax.Array
    lhs: jax.Array
    rhs: jax.Array
    margin: jax.Array
    rank: jax.Array
    logdet: jax.Array
    norm_sq: jax.Array


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


class BottleneckReport(NamedTuple):
    """Every per-layer bottleneck measurement of one network on one batch.

    Attributes:
        weight_singular_values: ``(L, N)`` descending, zero-padded to the largest width ``N``.
        representations: :class:`RepresentationRanks`.
        jacobian: :class:`JacobianPseudoDet`.
        inequality: :class:`BottleneckInequality`.
        norm_sq: ``()``, ``||theta||^2``.
    """

    weight_singular_values: jax.Array
    representations: RepresentationRanks
    jacobian: JacobianPseudoDet
    inequality: BottleneckInequality
    norm_sq: jax.Array


class RankFit(NamedTuple):
    """Least-squares line ``||theta||^2 = R0 L + R1`` over depths.

    Attributes:
        r0: slope (bottleneck-rank estimate).
        r1: intercept (regularity estimate).
        r0_stderr: standard error of the slope (NaN with two depths).
        r1_stderr: standard error of the intercept (NaN with two depths).
        residuals: ``(num_depths,)`` data minus the line.
    """

    r0: float
    r1: float
    r0_stderr: float
    r1_stderr: float
    residuals: np.ndarray


# ----------------------------------------------------------------------------------------------------------
# Validation.


def _as_layers(params) -> list[dict[str, jax.Array]]:
    if hasattr(params, "weights") and hasattr(params, "widths"):  # a PaddedMLP
        params = unpad_params(params)
    if not isinstance(params, (list, tuple)) or not params:
        raise InputError("params must be a non-empty list of layer dicts {'w': (n_out, n_in)}")
    for l, p in enumerate(params):
        if not isinstance(p, dict) or "w" not in p or jnp.ndim(p["w"]) != 2:
            raise InputError(f"params[{l}] must be a dict holding a matrix 'w' of shape (n_out, n_in)")
        if l and p["w"].shape[1] != params[l - 1]["w"].shape[0]:
            raise InputError(f"params[{l}]['w'] has {p['w'].shape[1]} columns but params[{l - 1}]['w'] has "
                             f"{params[l - 1]['w'].shape[0]} rows")
    return list(params)


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise InputError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")


def _check_batch(params, x) -> jax.Array:
    n0 = params[0]["w"].shape[1]
    x = jnp.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != n0 or x.shape[0] < 1:
        raise InputError(f"x must have shape ({n0},) or (batch, {n0}), got {jnp.shape(x)}")
    return x


def _check_rtol(name: str, rtol: float) -> float:
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise InputError(f"{name} must be in (0, 1), got {rtol!r}")
    return float(rtol)


# ----------------------------------------------------------------------------------------------------------
# Per-layer measurements.


def parameter_norm_sq(params) -> jax.Array:
    """``||theta||^2``: the sum of squares of every weight and bias.

    Example:
        >>> parameter_norm_sq([{"w": jnp.eye(3)}, {"w": 2 * jnp.ones((1, 3))}])
        Array(15., dtype=float32)
    """
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(params))


def layer_singular_values(params) -> jax.Array:
    """Singular values of every weight matrix, stacked.

    Zero padding to the largest width adds only zero singular values, so one ``vmap`` of the SVD over the
    padded ``(L, N, N)`` stack gives every layer.

    Args:
        params: list of layer dicts ``{"w": (n_{l+1}, n_l)}`` or a :class:`jaxspec.networks.PaddedMLP`.

    Returns:
        ``(L, N)``, row ``l`` the singular values of ``W_l`` in descending order, zero-padded.

    Example:
        >>> layer_singular_values([{"w": jnp.diag(jnp.array([3.0, 1.0]))}]).tolist()
        [[3.0, 1.0]]

    References:
        Jacot, arXiv:2305.19008 (the weight spectra of the bottleneck structure).
    """
    return _layer_singular_values(_as_layers(params))


@jax.jit
def _layer_singular_values(params) -> jax.Array:
    padded = pad_params(params)
    return jax.vmap(lambda w: jnp.linalg.svd(w, compute_uv=False))(padded.weights)


def representations(params, x: jax.Array, *, activation: str = "relu", negative_slope: float = 0.01,
                    precision=HIGHEST) -> list[jax.Array]:
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
    params = _as_layers(params)
    _check_activation(activation)
    h = _check_batch(params, x)
    out = [h]
    for l, p in enumerate(params):
        pre = jnp.matmul(h, p["w"].T, precision=precision)
        if "b" in p:
            pre = pre + p["b"]
        h = pre if l == len(params) - 1 else apply_activation(pre, activation, negative_slope)
        out.append(h)
    return out


def representation_ranks(params, x: jax.Array, *, activation: str = "relu", negative_slope: float = 0.01,
                         rtol: float = RANK_RTOL, precision=HIGHEST) -> RepresentationRanks:
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
    rtol = _check_rtol("rtol", rtol)
    params = _as_layers(params)
    _check_activation(activation)
    x = _check_batch(params, x)
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


def _input_jacobians(params, x, activation, negative_slope, precision) -> jax.Array:
    def f(xi):
        return mlp_apply(params, xi, activation=activation, negative_slope=negative_slope, precision=precision)

    return jax.vmap(jax.jacfwd(f))(x)  # (B, n_L, n_0): exact inside each linear region


def jacobian_pseudo_logdet(params, x: jax.Array, *, activation: str = "relu", negative_slope: float = 0.01,
                           rtol: float = JACOBIAN_RTOL, precision=HIGHEST) -> JacobianPseudoDet:
    """``log|Jf(x)|_+`` from the singular values of ``Jf(x)`` counted above ``rtol * s_1``.

    Args:
        params: list of layer dicts.
        x: ``(B, n_0)`` or ``(n_0,)``.
        activation, negative_slope, precision: as in :func:`representations`.
        rtol: relative threshold deciding the numerical rank ``k(x)`` (default ``1e-3``, see the module doc).

    Returns:
        :class:`JacobianPseudoDet` with ``singular_values (B, min(n_0, n_L))``, ``rank (B,)``, ``logdet (B,)``.

    Example:
        >>> params = [{"w": jnp.diag(jnp.array([2.0, 3.0, 0.0]))}]
        >>> jd = jacobian_pseudo_logdet(params, jnp.ones(3), activation="linear")
        >>> int(jd.rank[0]), round(float(jd.logdet[0]), 4)
        (2, 1.7918)

    References:
        Jacot, arXiv:2305.19008 (``R1`` bounds ``log|Jf(x)|_+``).
    """
    params = _as_layers(params)
    _check_activation(activation)
    rtol = _check_rtol("rtol", rtol)
    x = _check_batch(params, x)
    return _jacobian_pseudo_logdet(params, x, rtol, activation, negative_slope, precision)


@functools.partial(jax.jit, static_argnames=("activation", "negative_slope", "precision"))
def _jacobian_pseudo_logdet(params, x, rtol, activation, negative_slope, precision) -> JacobianPseudoDet:
    jac = _input_jacobians(params, x, activation, negative_slope, precision)
    s = jax.vmap(lambda j: jnp.linalg.svd(j, compute_uv=False))(jac)
    rank = _numerical_rank(s, rtol)
    keep = jnp.arange(s.shape[-1])[None, :] < rank[:, None]
    logdet = jnp.sum(jnp.where(keep, jnp.log(jnp.where(keep, s, 1.0)), 0.0), axis=-1)
    return JacobianPseudoDet(s, rank, logdet)


def bottleneck_inequality(params, x: jax.Array, *, activation: str = "relu", negative_slope: float = 0.01,
                          rtol: float = JACOBIAN_RTOL, precision=HIGHEST) -> BottleneckInequality:
    """Both sides of ``sum_l e_l <= ||theta||^2 - L k - 2 log|Jf(x)|_+`` at every input of a batch.

    Holds for every ReLU, leaky-ReLU or linear network and every ``k`` (Horn's inequality, see the module
    doc); ``k = k(x)`` is the numerical rank of ``Jf(x)`` from :func:`jacobian_pseudo_logdet`.

    Args:
        params: list of layer dicts (biases allowed: they only add ``||b||^2`` to the slack).
        x: ``(B, n_0)`` or ``(n_0,)``.
        activation, negative_slope, precision: as in :func:`representations`.
        rtol: Jacobian rank threshold (default ``1e-3``).

    Returns:
        :class:`BottleneckInequality`; ``margin >= 0`` up to rounding.

    Example:
        >>> params = init_mlp(jax.random.key(0), (4, 16, 16, 3))
        >>> res = bottleneck_inequality(params, jax.random.normal(jax.random.key(1), (8, 4)))
        >>> bool(jnp.all(res.margin >= 0))
        True

    References:
        Jacot, arXiv:2305.19008 (the inequality behind the bottleneck structure).
    """
    params = _as_layers(params)
    _check_activation(activation)
    rtol = _check_rtol("rtol", rtol)
    x = _check_batch(params, x)
    return _bottleneck_inequality(params, x, rtol, activation, negative_slope, precision)


@functools.partial(jax.jit, static_argnames=("activation", "negative_slope", "precision"))
def _bottleneck_inequality(params, x, rtol, activation, negative_slope, precision) -> BottleneckInequality:
    jd = _jacobian_pseudo_logdet(params, x, rtol, activation, negative_slope, precision)
    s = _layer_singular_values(params)  # (L, N)
    depth = s.shape[0]
    norm_sq = parameter_norm_sq(params)
    # The slack carries ||b||^2 exactly (not as a difference of two sums, which would round below zero).
    bias_sq = parameter_norm_sq([p["b"] for p in params if "b" in p]) if any("b" in p for p in params) else 0.0
    keep = jnp.arange(s.shape[1])[None, None, :] < jd.rank[:, None, None]  # (B, 1, N)
    s2 = jnp.broadcast_to(s**2, keep.shape[:1] + s.shape)
    # s_i(W_l) > 0 for i <= k because k <= rank Jf(x) <= rank W_l; a zero here would show as a negative margin.
    log_s2 = jnp.log(jnp.where(keep, s2, 1.0))
    layer_excess = jnp.sum(jnp.where(keep, s2 - 1.0 - log_s2, s2), axis=-1)  # (B, L)
    kept_logs = jnp.sum(jnp.where(keep, log_s2, 0.0), axis=(1, 2))
    lhs = jnp.sum(layer_excess, axis=-1)
    rhs = norm_sq - depth * jd.rank - 2.0 * jd.logdet
    margin = bias_sq + kept_logs - 2.0 * jd.logdet
    return BottleneckInequality(layer_excess, lhs, rhs, margin, jd.rank, jd.logdet, norm_sq)


def bottleneck_report(params, x: jax.Array, *, activation: str = "relu", negative_slope: float = 0.01,
                      jacobian_rtol: float = JACOBIAN_RTOL, rank_rtol: float = RANK_RTOL,
                      precision=HIGHEST) -> BottleneckReport:
    """All bottleneck measurements of one network on one batch (weights, representations, Jacobian, inequality).

    Args:
        params: list of layer dicts.
        x: ``(B, n_0)``.
        activation, negative_slope, precision: as in :func:`representations`.
        jacobian_rtol: Jacobian rank threshold (default ``1e-3``).
        rank_rtol: representation rank threshold (default ``1e-2``).

    Returns:
        :class:`BottleneckReport`.

    Example:
        >>> params = init_mlp(jax.random.key(0), (4, 16, 16, 3))
        >>> rep = bottleneck_report(params, jax.random.normal(jax.random.key(1), (8, 4)))
        >>> rep.weight_singular_values.shape, rep.representations.stable_rank.shape
        ((3, 16), (4,))

    References:
        Jacot, arXiv:2305.19008.
    """
    kw = dict(activation=activation, negative_slope=negative_slope, precision=precision)
    ineq = bottleneck_inequality(params, x, rtol=jacobian_rtol, **kw)
    jd = jacobian_pseudo_logdet(params, x, rtol=jacobian_rtol, **kw)
    reps = representation_ranks(params, x, rtol=rank_rtol, **kw)
    return BottleneckReport(layer_singular_values(params), reps, jd, ineq, ineq.norm_sq)


# ----------------------------------------------------------------------------------------------------------
# Deep linear closed forms and the depth fit.


def _singular_values_np(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        return np.linalg.svd(a, compute_uv=False)
    if a.ndim == 1 and np.all(a >= 0):
        return a
    raise InputError("expected a matrix A or a vector of non-negative singular values")


def _check_depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
        raise InputError(f"depth must be a positive integer, got {depth!r}")
    return int(depth)


def deep_linear_min_norm(a, depth: int, *, rtol: float = 1e-12) -> float:
    """``R(A; L) = L sum_i s_i(A)^(2/L)``: the least ``||theta||^2`` of a depth-``L`` linear net equal to ``A``.

    Args:
        a: a matrix ``A`` (``(n_L, n_0)``) or the vector of its singular values.
        depth: ``L``.
        rtol: singular values below ``rtol * s_1`` count as zero (the rank ``R0``).

    Returns:
        A float. As ``L -> infinity`` it equals ``L rank(A) + 2 log|A|_+ + O(1/L)``.

    Example:
        >>> round(deep_linear_min_norm(np.diag([4.0, 1.0]), 2), 6)
        10.0

    References:
        Jacot, arXiv:2305.19008 (deep linear case of ``R(f; L)``).
    """
    depth = _check_depth(depth)
    s = _singular_values_np(a)
    s = s[s > rtol * (s.max() if s.size else 0.0)]
    return float(depth * np.sum(s ** (2.0 / depth)))


def deep_linear_weight_decay_optimum(a, depth: int, weight_decay: float) -> np.ndarray:
    """End-to-end singular values of the global minimiser of ``||W_L...W_1 - A||_F^2 + lambda ||theta||^2``.

    This is the loss of :func:`weight_decay_loss` for a linear net on whitened inputs (``X^T X / N = I``) with
    targets ``y = A x``. Minimising over factorisations first gives ``lambda L sum_i s_i(W)^(2/L)``, and by von
    Neumann's trace inequality ``W`` shares ``A``'s singular vectors; each ``s_i = s_i(W)`` then minimises
    ``(s - a_i)^2 + lambda L s^(2/L)``, a scalar problem solved here exactly (root bracketing, and a comparison
    with ``s = 0``, a local minimum for ``L >= 3``). Every layer of the optimum has singular values
    ``s_i^(1/L)`` and ``||theta||^2 = L sum_i s_i^(2/L)``.

    Args:
        a: a matrix ``A`` or its singular values (``(r,)``, non-negative).
        depth: ``L``.
        weight_decay: ``lambda >= 0``.

    Returns:
        ``(r,)`` float64, the optimal ``s_i`` (``a_i`` at ``lambda = 0``).

    Example:
        >>> deep_linear_weight_decay_optimum([3.0, 1.0], 2, 0.5).tolist()
        [2.5, 0.5]

    References:
        Jacot, arXiv:2305.19008; von Neumann, Tomsk Univ. Rev. 1 (1937).
    """
    from scipy.optimize import brentq

    depth = _check_depth(depth)
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise InputError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
    lam = float(weight_decay)
    a_vals = _singular_values_np(a)
    if lam == 0:
        return a_vals.copy()
    if depth == 1:
        return a_vals / (1.0 + lam)
    if depth == 2:
        return np.maximum(a_vals - lam, 0.0)

    p = (depth - 2) / depth  # stationarity: s + lambda s^-p = a, with a convex left side on s > 0

    def objective(s, ai):
        return (s - ai) ** 2 + lam * depth * s ** (2.0 / depth)

    s_min = (lam * p) ** (1.0 / (p + 1.0))  # minimiser of s + lambda s^-p
    out = np.zeros_like(a_vals)
    for i, ai in enumerate(a_vals):
        if ai <= s_min + lam * s_min ** (-p):
            continue  # no stationary point: s = 0 is the only minimum
        hi = ai  # s + lambda s^-p > a at s = a
        root = brentq(lambda s, ai=ai: s + lam * s ** (-p) - ai, s_min, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                      maxiter=500)
        out[i] = root if objective(root, ai) < objective(0.0, ai) else 0.0
    return out


def fit_rank_terms(depths: Sequence[int], norm_sq: Sequence[float]) -> RankFit:
    """Fit ``||theta||^2 = R0 L + R1`` by least squares over depths.

    Args:
        depths: ``(D,)`` depths ``L`` (at least two distinct).
        norm_sq: ``(D,)`` trained ``||theta||^2``.

    Returns:
        :class:`RankFit` (slope ``r0``, intercept ``r1`` and their standard errors from the residuals).

    Example:
        >>> fit = fit_rank_terms([4, 8, 12], [9.0, 17.0, 25.0])
        >>> round(fit.r0, 6), round(fit.r1, 6)
        (2.0, 1.0)

    References:
        Jacot, arXiv:2305.19008 (``R(f; L) = L R0 + R1 + O(1/L)``).
    """
    d = np.asarray(depths, dtype=np.float64).ravel()
    y = np.asarray(norm_sq, dtype=np.float64).ravel()
    if d.shape != y.shape or d.size < 2 or np.unique(d).size < 2:
        raise InputError("fit_rank_terms needs matching depths and norms with at least two distinct depths")
    if not (np.all(np.isfinite(d)) and np.all(np.isfinite(y))):
        raise InputError("depths and norms must be finite")
    design = np.stack([d, np.ones_like(d)], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - design @ coef
    if d.size > 2:
        sigma2 = float(residuals @ residuals) / (d.size - 2)
        cov = sigma2 * np.linalg.inv(design.T @ design)
        r0_se, r1_se = float(np.sqrt(cov[0, 0])), float(np.sqrt(cov[1, 1]))
    else:
        r0_se = r1_se = float("nan")
    return RankFit(float(coef[0]), float(coef[1]), r0_se, r1_se, residuals)


# ----------------------------------------------------------------------------------------------------------
# Targets and training.


class BottleneckTask(NamedTuple):
    """A regression task of known bottleneck rank.

    Attributes:
        x: ``(N, d)`` inputs.
        y: ``(N, d_out)`` targets, ``y = mlp_apply(teacher, x, activation=activation)``.
        teacher: the target network as a list of layer dicts; one of its weight matrices has rank ``k``.
        activation: ``"relu"`` or ``"linear"`` (static).
        rank: ``k``, the bottleneck rank (static).
    """

    x: jax.Array
    y: jax.Array
    teacher: list
    activation: str
    rank: int


def bottleneck_target(key: jax.Array, num_points: int, *, input_dim: int = 8, bottleneck_dim: int = 2,
                      output_dim: int = 8, hidden: int = 32, kind: str = "relu",
                      dtype=jnp.float32) -> BottleneckTask:
    """A regression task of known bottleneck rank ``k``: ``y = f(x)``, ``f = h o g``, ``g: R^d -> R^k``.

    ``kind="relu"``: ``g`` and ``h`` are random bias-free ReLU nets with one hidden layer of width ``hidden``
    (``d -> hidden -> k`` and ``k -> hidden -> d_out``, the last layer of each linear), so the teacher is the
    depth-3 ReLU net ``d -> hidden -> hidden -> d_out`` whose middle weight ``W_h1 W_g2`` has rank ``k``, and
    ``rank Jf(x) <= k`` everywhere. ``kind="linear"``: ``f(x) = A x`` with ``A = H G`` of rank ``k`` (Gaussian
    factors). Inputs are standard Gaussian; the teacher's last layer is scaled so that the outputs have unit mean
    square per coordinate.

    Args:
        key: PRNG key.
        num_points: ``N``.
        input_dim, bottleneck_dim, output_dim: ``d``, ``k``, ``d_out`` (``k <= min(d, d_out)``).
        hidden: width of the hidden layers of ``g`` and ``h`` (``kind="relu"``).
        kind: ``"relu"`` or ``"linear"``.
        dtype: array dtype.

    Returns:
        :class:`BottleneckTask`.

    Example:
        >>> task = bottleneck_target(jax.random.key(0), 64, input_dim=6, bottleneck_dim=2, output_dim=5)
        >>> task.x.shape, task.y.shape, task.rank
        ((64, 6), (64, 5), 2)

    References:
        Jacot, arXiv:2305.19008 (functions of bottleneck rank ``k`` factor through ``R^k``).
    """
    for name, v in (("num_points", num_points), ("input_dim", input_dim), ("bottleneck_dim", bottleneck_dim),
                    ("output_dim", output_dim), ("hidden", hidden)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(f"{name} must be a positive integer, got {v!r}")
    if bottleneck_dim > min(input_dim, output_dim):
        raise InputError(f"bottleneck_dim must be at most min(input_dim, output_dim) = "
                         f"{min(input_dim, output_dim)}, got {bottleneck_dim}")
    if kind not in ("relu", "linear"):
        raise InputError(f"kind must be 'relu' or 'linear', got {kind!r}")
    kx, kg, kh = jax.random.split(key, 3)
    x = jax.random.normal(kx, (num_points, input_dim), jnp.float32).astype(dtype)
    if kind == "linear":
        g = init_mlp(kg, (input_dim, bottleneck_dim), activation="linear", dtype=dtype)
        h = init_mlp(kh, (bottleneck_dim, output_dim), activation="linear", dtype=dtype)
        teacher = [{"w": jnp.matmul(h[0]["w"], g[0]["w"], precision=HIGHEST)}]
    else:
        g = init_mlp(kg, (input_dim, hidden, bottleneck_dim), dtype=dtype)
        h = init_mlp(kh, (bottleneck_dim, hidden, output_dim), dtype=dtype)
        # g's last layer is linear, so it merges with h's first layer into one rank-k weight.
        teacher = [g[0], {"w": jnp.matmul(h[0]["w"], g[1]["w"], precision=HIGHEST)}, h[1]]
    y = mlp_apply(teacher, x, activation=kind)
    scale = jnp.sqrt(jnp.mean(y**2))
    teacher[-1] = {"w": teacher[-1]["w"] / scale}
    return BottleneckTask(x, y / scale, teacher, kind, int(bottleneck_dim))


def weight_decay_loss(params, x: jax.Array, y: jax.Array, *, activation: str = "relu",
                      weight_decay: float = 1e-3, negative_slope: float = 0.01, precision=HIGHEST) -> jax.Array:
    """``(1/N) sum_j ||f(x_j) - y_j||^2 + lambda ||theta||^2``.

    Args:
        params: list of layer dicts.
        x: ``(N, n_0)``; y: ``(N, n_L)``.
        activation, negative_slope, precision: as in :func:`representations`.
        weight_decay: ``lambda``.

    Returns:
        A scalar.

    Example:
        >>> params = init_mlp(jax.random.key(0), (3, 8, 2))
        >>> weight_decay_loss(params, jnp.ones((4, 3)), jnp.zeros((4, 2))).shape
        ()

    References:
        Jacot, arXiv:2305.19008 (L2-regularised training).
    """
    pred = mlp_apply(params, x, activation=activation, negative_slope=negative_slope, precision=precision)
    return jnp.mean(jnp.sum((pred - y) ** 2, axis=-1)) + weight_decay * parameter_norm_sq(params)


def train_weight_decay(params, x: jax.Array, y: jax.Array, *, activation: str = "relu", weight_decay: float = 1e-3,
                       num_steps: int, optimizer: optax.GradientTransformation | None = None,
                       learning_rate: float = 1e-2, log_every: int = 100, track_fn=None, progress: bool = True,
                       negative_slope: float = 0.01, precision=HIGHEST) -> Any:
    """Train with weight decay through :func:`jaxspec.training.train` (full batch).

    The tracked quantities are ``{"norm_sq": ||theta||^2, "data_loss": (1/N) sum ||f(x) - y||^2}`` merged with
    ``track_fn(params)`` when given (a dict).

    Args:
        params: list of layer dicts (initial).
        x: ``(N, n_0)``; y: ``(N, n_L)``.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        weight_decay: ``lambda >= 0``.
        num_steps: optimizer steps.
        optimizer: any optax optimizer (default ``optax.sgd(learning_rate)``: full-batch GD).
        learning_rate: step of the default optimizer.
        log_every: steps between records.
        track_fn: optional ``params -> dict`` of extra tracked arrays.
        progress: tqdm bar.
        negative_slope, precision: as in :func:`representations`.

    Returns:
        :class:`jaxspec.training.TrainResult`.

    Example:
        >>> task = bottleneck_target(jax.random.key(0), 32, input_dim=4, bottleneck_dim=1, output_dim=3)
        >>> res = train_weight_decay(init_mlp(jax.random.key(1), (4, 8, 8, 3)), task.x, task.y, num_steps=20,
        ...                          log_every=10, progress=False)
        >>> res.loss.shape
        (3,)

    References:
        Jacot, arXiv:2305.19008.
    """
    from jaxspec.training import train

    params = _as_layers(params)
    _check_activation(activation)
    x = _check_batch(params, x)
    y = jnp.asarray(y)
    if y.ndim != 2 or y.shape != (x.shape[0], params[-1]["w"].shape[0]):
        raise InputError(f"y must have shape ({x.shape[0]}, {params[-1]['w'].shape[0]}), got {y.shape}")
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise InputError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
    kw = dict(activation=activation, negative_slope=negative_slope, precision=precision)

    def loss_fn(p):
        return weight_decay_loss(p, x, y, weight_decay=weight_decay, **kw)

    def track(p):
        out = {"norm_sq": parameter_norm_sq(p), "data_loss": weight_decay_loss(p, x, y, weight_decay=0.0, **kw)}
        if track_fn is not None:
            out.update(track_fn(p))
        return out

    return train(loss_fn, params, optimizer, num_steps=num_steps, log_every=log_every, track_fn=track,
                 learning_rate=learning_rate, progress=progress)
