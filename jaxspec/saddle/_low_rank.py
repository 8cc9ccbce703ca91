"""The low-rank bias of the escape, per layer: ``s_1/s_2``, non-leading energy fractions, dominant counts.

:func:`layer_ratios` measures the low-rank bias per layer: ``s_1/s_2`` and the non-leading energy fraction
``1 - s_1^2 / sum_i s_i^2`` of the weights and of the activations. For the optimal direction of a deep ReLU
net the fraction is ``O(l^-1/2)`` in layer ``l``, i.e. ``s_1(W_l) >~ l^(1/4)`` times the other singular
values.

References:
    Bantzis, Simon, Jacot, "Saddle-to-Saddle Dynamics in Deep ReLU Networks: Low-Rank Bias in the First
    Saddle Escape", ICLR 2026, arXiv:2505.21722.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from jaxspec._checks import HIGHEST, InputError, check_choice
from jaxspec.bottleneck import layer_singular_values, representations
from jaxspec.networks import ACTIVATIONS
from jaxspec.saddle._validation import Params, check_params


class LayerRatios(NamedTuple):
    """Per-layer low-rank measurements (layer ``l = 1..L``).

    Attributes:
        s1_over_s2: ``(L,)``, ``s_1(W_l) / s_2(W_l)`` (``inf`` when ``W_l`` has rank one exactly).
        weight_tail_energy: ``(L,)``, ``1 - s_1(W_l)^2 / ||W_l||_F^2``.
        activation_tail_energy: ``(L,)``, the same for the ``(N, n_l)`` activations after layer ``l``.
    """

    s1_over_s2: jax.Array
    weight_tail_energy: jax.Array
    activation_tail_energy: jax.Array


def dominant_counts(
    singular_values: Float[ArrayLike, "*batch K"], *, rtol: float = 0.1
) -> Int[Array, "*batch"]:
    """Number of dominant singular values, ``#{s_i > rtol * s_1}``, along the last axis.

    Args:
        singular_values: ``(*batch, K)``, descending along the last axis.
        rtol: threshold relative to the largest, ``s_1``.

    Returns:
        ``(*batch)`` int counts.

    Example:
        >>> dominant_counts(jnp.array([[3.0, 1.0, 0.01]])).tolist()
        [2]
    """
    s = jnp.asarray(singular_values)
    return jnp.sum(s > rtol * s[..., :1], axis=-1)


def layer_ratios(
    params: Params, x: Float[Array, "N n0"], *, activation: str = "relu", precision: Any = HIGHEST
) -> LayerRatios:
    """Per-layer ``s_1/s_2`` and non-leading energy fractions of the weights and of the activations.

    Args:
        params: bias-free list of layer dicts.
        x: ``(N, n_0)`` inputs at which the activations are taken.
        activation, precision: as in :func:`localised_loss`.

    Returns:
        :class:`LayerRatios` with ``(L,)`` arrays (layer ``l = 1..L``; the activations of the last layer are
        the outputs).

    Example:
        >>> lr = layer_ratios([{"w": jnp.diag(jnp.array([2.0, 1.0]))}], jnp.eye(2), activation="linear")
        >>> lr.s1_over_s2.tolist(), [round(v, 6) for v in lr.weight_tail_energy.tolist()]
        ([2.0], [0.2])

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (``s_1(W_l) >~ l^(1/4) s_2(W_l)`` at the optimal escape).
    """
    params = check_params(params)
    check_choice("activation", activation, ACTIVATIONS)
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != params[0]["w"].shape[1]:
        raise InputError(f"x must have shape (N, {params[0]['w'].shape[1]}), got {x.shape}")
    return _layer_ratios(params, x, activation, precision)


@functools.partial(jax.jit, static_argnames=("activation", "precision"))
def _layer_ratios(params, x, activation, precision) -> LayerRatios:
    s = layer_singular_values(params)
    second = s[:, 1] if s.shape[1] > 1 else jnp.zeros(s.shape[0], s.dtype)
    ratio = jnp.where(second > 0, s[:, 0] / jnp.where(second > 0, second, 1.0), jnp.inf)
    weight_tail = 1.0 - s[:, 0] ** 2 / jnp.sum(s**2, axis=1)
    hs = representations(params, x, activation=activation, precision=precision)[1:]
    act_tail = []
    for h in hs:
        sh = jnp.linalg.svd(h, compute_uv=False)
        total = jnp.sum(sh**2)
        act_tail.append(jnp.where(total > 0, 1.0 - sh[0] ** 2 / jnp.where(total > 0, total, 1.0), 0.0))
    return LayerRatios(ratio, weight_tail, jnp.stack(act_tail))
