"""Argument checks shared by the saddle modules: bias-free layer lists, their data, positive step sizes.

Shared validators (activations, positive integers) come from :mod:`jaxspec._checks`; what is here is specific
to the saddle at the origin (no biases, ``G`` shaped like the outputs, finite positive step sizes).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxspec._checks import InputError

#: A bias-free network: a list of layer dicts ``{"w": (n_{l+1}, n_l)}``.
Params = list[dict[str, jax.Array]]


def check_params(params: Any) -> Params:
    """``params`` as a list, if it is a non-empty chain of bias-free layer dicts, else raise InputError."""
    if not isinstance(params, (list, tuple)) or not params:
        raise InputError("params must be a non-empty list of layer dicts {'w': (n_out, n_in)}")
    for l, p in enumerate(params):
        if not isinstance(p, dict) or "w" not in p or jnp.ndim(p["w"]) != 2:
            raise InputError(f"params[{l}] must be a dict holding a matrix 'w' of shape (n_out, n_in)")
        if "b" in p:
            raise InputError("the saddle at the origin is for bias-free networks; drop the biases 'b'")
        if l and p["w"].shape[1] != params[l - 1]["w"].shape[0]:
            raise InputError(
                f"params[{l}]['w'] has {p['w'].shape[1]} columns but params[{l - 1}]['w'] has "
                f"{params[l - 1]['w'].shape[0]} rows"
            )
    return list(params)


def check_data(params: Params, x: Any, g: Any) -> tuple[jax.Array, jax.Array]:
    """``(x, g)`` as arrays, if ``x`` is ``(N, n_0)`` and ``g`` is ``(N, n_L)`` for ``params``."""
    n0, n_out = params[0]["w"].shape[1], params[-1]["w"].shape[0]
    x, g = jnp.asarray(x), jnp.asarray(g)
    if x.ndim != 2 or x.shape[1] != n0:
        raise InputError(f"x must have shape (N, {n0}), got {x.shape}")
    if g.shape != (x.shape[0], n_out):
        raise InputError(f"the output gradient G must have shape ({x.shape[0]}, {n_out}), got {g.shape}")
    return x, g


def check_positive_number(name: str, value: Any) -> float:
    """``float(value)`` if it is a finite positive number (not a bool), else raise InputError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.floating))
        or not np.isfinite(value)
        or value <= 0
    ):
        raise InputError(f"{name} must be a positive number, got {value!r}")
    return float(value)
