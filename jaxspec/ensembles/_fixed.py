"""Fixed networks: explicit weights and masks (a fixed-gates network), no randomness."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxspec._checks import InputError, is_traced
from jaxspec.ensembles._padded import PaddedLayers


@struct.dataclass
class FixedStack(PaddedLayers):
    """A user-supplied network: explicit weights and masks (a fixed-gates network), no randomness."""

    weights: jax.Array = None  # (L, N, N)
    masks: jax.Array = None  # (L, N)
    widths: tuple[int, ...] = struct.field(pytree_node=False, default=(1, 1))
    name: str = struct.field(pytree_node=False, default="fixed")

    def layer(self, state, key, index, dtype=jnp.float32):
        del key
        return state, self.weights[index].astype(dtype), self.masks[index].astype(dtype)

    def min_active_count(self) -> int:
        if is_traced(self.masks):
            return 0
        return int(np.min(np.sum(np.asarray(self.masks) > 0, axis=-1)))


def _real_array(name: str, value: Any, *, allow_bool: bool = False) -> np.ndarray:
    """``value`` as a real numeric array; complex, string and object arrays are refused (never cast)."""
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - ragged or unreadable input
        raise InputError(f"{name} must be a real numeric array") from None
    kinds = "iufb" if allow_bool else "iuf"
    if array.dtype.kind not in kinds:
        what = "complex" if array.dtype.kind == "c" else str(array.dtype)
        raise InputError(f"{name} must hold real numbers, got {what} values (cast them explicitly if meant)")
    return array.astype(np.float32) if array.dtype.kind == "b" else array


def fixed_network(weights: Sequence[Any], masks: Sequence[Any] | None = None) -> FixedStack:
    """A fixed network from explicit layers.

    Args:
        weights: ``L`` matrices, ``weights[l]`` of shape ``(n_{l+1}, n_l)`` (consecutive shapes must chain).
        masks: ``L`` gate vectors of shape ``(n_{l+1},)`` with entries in ``{0, 1}``; all ones if omitted.

    Returns:
        A :class:`FixedStack`, padded to ``N = max(widths)``.
    """
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
        raise InputError(f"weights must be a sequence of L matrices, got {type(weights).__name__}")
    weights = [_real_array(f"weights[{l}]", w) for l, w in enumerate(weights)]
    if not weights:
        raise InputError("a fixed network needs at least one layer")
    for l, w in enumerate(weights):
        if w.ndim != 2 or 0 in w.shape:
            raise InputError(f"weights[{l}] must be a non-empty matrix, got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise InputError(f"weights[{l}] holds non-finite values")
    widths = (weights[0].shape[1],) + tuple(w.shape[0] for w in weights)
    for l in range(1, len(weights)):
        if weights[l].shape[1] != weights[l - 1].shape[0]:
            raise InputError(
                f"weights[{l}] has {weights[l].shape[1]} columns but weights[{l - 1}] has "
                f"{weights[l - 1].shape[0]} rows"
            )
    if masks is None:
        masks = [np.ones(w.shape[0]) for w in weights]
    if isinstance(masks, (str, bytes)) or not hasattr(masks, "__len__"):
        raise InputError(f"masks must be a sequence of L gate vectors, got {type(masks).__name__}")
    masks = [_real_array(f"masks[{l}]", m, allow_bool=True) for l, m in enumerate(masks)]
    if len(masks) != len(weights):
        raise InputError(f"got {len(masks)} masks for {len(weights)} layers")
    for l, (m, w) in enumerate(zip(masks, weights, strict=True)):
        if m.shape != (w.shape[0],):
            raise InputError(f"masks[{l}] must have shape ({w.shape[0]},), got {m.shape}")
        if not np.all((m == 0) | (m == 1)):
            raise InputError(f"masks[{l}] must hold only 0 and 1")
    n = max(widths)
    dtype = np.result_type(*weights, np.float32)
    padded_w = np.zeros((len(weights), n, n), dtype)
    padded_m = np.zeros((len(weights), n), dtype)
    for l, (w, m) in enumerate(zip(weights, masks, strict=True)):
        padded_w[l, : w.shape[0], : w.shape[1]] = w
        padded_m[l, : w.shape[0]] = m
    return FixedStack(weights=jnp.asarray(padded_w), masks=jnp.asarray(padded_m), widths=widths)
