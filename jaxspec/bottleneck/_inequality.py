"""The per-network bottleneck inequality and the report that gathers every bottleneck measurement.

Per-network inequality ([math §6](https://jaxspec.github.io/jaxspec/math/#s6)). For a ReLU, leaky-ReLU or
linear network, an input ``x`` and any ``k <= rank Jf(x)`` (in particular ``k = rank Jf(x)``), with ``s_i``
the singular values of ``W_l``,

    sum_l e_l <= ||theta||^2 - L k - 2 log|Jf(x)|_+,
    e_l = sum_{i<=k} (s_i^2 - 1 - log s_i^2) + sum_{i>k} s_i^2 >= 0,

where ``log|Jf(x)|_+`` sums the logs of the top ``k`` singular values of ``Jf(x)``. It follows from Horn's
inequality ``prod_{i<=k} s_i(AB) <= prod_{i<=k} s_i(A) s_i(B)`` and ``|phi'| <= 1``: the slack
``rhs - lhs = ||b||^2 + 2 sum_l sum_{i<=k} log s_i(W_l) - 2 log|Jf(x)|_+`` is never negative. Because it holds
for *every* ``k``, the threshold that decides the numerical rank of ``Jf(x)`` (:func:`jacobian_pseudo_logdet`)
only chooses which instance is reported; it cannot make the inequality fail.

References:
    Jacot, "Bottleneck Structure in Learned Features: Low-Dimension vs Regularity Tradeoff", NeurIPS 2023,
    arXiv:2305.19008. Horn, "On the singular values of a product of completely continuous operators",
    PNAS 36 (1950).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike, Float

from jaxspec._checks import HIGHEST
from jaxspec.bottleneck._ranks import (
    JACOBIAN_RTOL,
    RANK_RTOL,
    JacobianPseudoDet,
    RepresentationRanks,
    _jacobian_pseudo_logdet,
    _layer_singular_values,
    jacobian_pseudo_logdet,
    layer_singular_values,
    parameter_norm_sq,
    representation_ranks,
)
from jaxspec.bottleneck._validation import Params, check_network, check_rtol


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


def bottleneck_inequality(
    params: Params,
    x: Float[ArrayLike, "B n0"],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    rtol: float = JACOBIAN_RTOL,
    precision: Any = HIGHEST,
) -> BottleneckInequality:
    """Both sides of ``sum_l e_l <= ||theta||^2 - L k - 2 log|Jf(x)|_+`` at every input of a batch.

    Holds for every ReLU, leaky-ReLU or linear network and every ``k`` (Horn's inequality, see the module
    doc); ``k = k(x)`` is the numerical rank of ``Jf(x)`` from :func:`jacobian_pseudo_logdet`.

    Args:
        params: list of layer dicts (biases allowed: they only add ``||b||^2`` to the slack).
        x: ``(B, n_0)`` or ``(n_0,)``.
        activation, negative_slope, precision: as in :func:`representations`.
        rtol: Jacobian rank threshold (default ``1e-3``).

    Returns:
        :class:`BottleneckInequality` (``layer_excess (B, L)``, the others ``(B,)``); ``margin >= 0`` up to
        rounding.

    Example:
        >>> params = init_mlp(jax.random.key(0), (4, 16, 16, 3))
        >>> res = bottleneck_inequality(params, jax.random.normal(jax.random.key(1), (8, 4)))
        >>> bool(jnp.all(res.margin >= 0))
        True

    References:
        Jacot, arXiv:2305.19008 (the inequality behind the bottleneck structure);
        [math §6](https://jaxspec.github.io/jaxspec/math/#s6).
    """
    params, x = check_network(params, x, activation)
    rtol = check_rtol("rtol", rtol)
    return _bottleneck_inequality(params, x, rtol, activation, negative_slope, precision)


@functools.partial(jax.jit, static_argnames=("activation", "negative_slope", "precision"))
def _bottleneck_inequality(params, x, rtol, activation, negative_slope, precision) -> BottleneckInequality:
    jd = _jacobian_pseudo_logdet(params, x, rtol, activation, negative_slope, precision)
    s = _layer_singular_values(params)  # (L, N)
    depth = s.shape[0]
    norm_sq = parameter_norm_sq(params)
    # The slack carries ||b||^2 exactly (not as a difference of two sums, which would round below zero).
    biases = [p["b"] for p in params if "b" in p]
    bias_sq = parameter_norm_sq(biases) if biases else 0.0
    keep = jnp.arange(s.shape[1])[None, None, :] < jd.rank[:, None, None]  # (B, 1, N)
    s2 = jnp.broadcast_to(s**2, keep.shape[:1] + s.shape)
    # s_i(W_l) > 0 for i <= k because k <= rank Jf(x) <= rank W_l; a zero here would show as a negative
    # margin.
    log_s2 = jnp.log(jnp.where(keep, s2, 1.0))
    layer_excess = jnp.sum(jnp.where(keep, s2 - 1.0 - log_s2, s2), axis=-1)  # (B, L)
    kept_logs = jnp.sum(jnp.where(keep, log_s2, 0.0), axis=(1, 2))
    lhs = jnp.sum(layer_excess, axis=-1)
    rhs = norm_sq - depth * jd.rank - 2.0 * jd.logdet
    margin = bias_sq + kept_logs - 2.0 * jd.logdet
    return BottleneckInequality(layer_excess, lhs, rhs, margin, jd.rank, jd.logdet, norm_sq)


def bottleneck_report(
    params: Params,
    x: Float[ArrayLike, "B n0"],
    *,
    activation: str = "relu",
    negative_slope: float = 0.01,
    jacobian_rtol: float = JACOBIAN_RTOL,
    rank_rtol: float = RANK_RTOL,
    precision: Any = HIGHEST,
) -> BottleneckReport:
    """All bottleneck measurements of a network on a batch: weights, representations, Jacobian, inequality.

    Args:
        params: list of layer dicts.
        x: ``(B, n_0)``.
        activation, negative_slope, precision: as in :func:`representations`.
        jacobian_rtol: Jacobian rank threshold (default ``1e-3``).
        rank_rtol: representation rank threshold (default ``1e-2``).

    Returns:
        :class:`BottleneckReport` (``weight_singular_values (L, N)``).

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
