"""Argument checks shared by the bottleneck modules: layer lists (or a PaddedMLP), batches, thresholds.

Shared validators (activations, positive integers) come from :mod:`jaxspec._checks`; what is here is specific
to the bottleneck measurements.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxspec._checks import InputError, check_choice
from jaxspec.networks import ACTIVATIONS, unpad_params

#: A network: a list of layer dicts ``{"w": (n_{l+1}, n_l)}``, optionally with biases ``"b"``.
Params = list[dict[str, jax.Array]]


def as_layers(params: Any) -> Params:
    """``params`` as a list of layer dicts (a PaddedMLP is unpadded), if they chain, else raise InputError."""
    if hasattr(params, "weights") and hasattr(params, "widths"):  # a PaddedMLP
        params = unpad_params(params)
    if not isinstance(params, (list, tuple)) or not params:
        raise InputError("params must be a non-empty list of layer dicts {'w': (n_out, n_in)}")
    for l, p in enumerate(params):
        if not isinstance(p, dict) or "w" not in p or jnp.ndim(p["w"]) != 2:
            raise InputError(f"params[{l}] must be a dict holding a matrix 'w' of shape (n_out, n_in)")
        if l and p["w"].shape[1] != params[l - 1]["w"].shape[0]:
            raise InputError(
                f"params[{l}]['w'] has {p['w'].shape[1]} columns but params[{l - 1}]['w'] has "
                f"{params[l - 1]['w'].shape[0]} rows"
            )
    return list(params)


def check_batch(params: Params, x: Any) -> jax.Array:
    """``x`` as a ``(batch, n_0)`` array (one ``(n_0,)`` input gets a batch axis), else raise InputError."""
    n0 = params[0]["w"].shape[1]
    x = jnp.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != n0 or x.shape[0] < 1:
        raise InputError(f"x must have shape ({n0},) or (batch, {n0}), got {jnp.shape(x)}")
    return x


def check_network(params: Any, x: Any, activation: str) -> tuple[Params, jax.Array]:
    """The checks of a measurement of a network on a batch: layers, activation, ``(batch, n_0)`` inputs."""
    params = as_layers(params)
    check_choice("activation", activation, ACTIVATIONS)
    return params, check_batch(params, x)


def check_rtol(name: str, rtol: Any) -> float:
    """``float(rtol)`` if it is a number in ``(0, 1)``, else raise InputError."""
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise InputError(f"{name} must be in (0, 1), got {rtol!r}")
    return float(rtol)


def check_weight_decay(weight_decay: Any) -> float:
    """``float(weight_decay)`` if it is a non-negative number, else raise InputError."""
    if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise InputError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
    return float(weight_decay)
