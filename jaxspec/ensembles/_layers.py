"""Ensembles of layers: the random (or fixed) masked linear maps ``A_l = D_l W_l``.

An ensemble is a small frozen pytree. Its numerical parameters (``sigma2``, ``p``) are pytree leaves, so a
sweep can ``vmap`` over them; its shapes (``widths``) are static. Every ensemble exposes the same pure,
layer-at-a-time interface that the engine scans over::

    state = ensemble.init_state(key, dtype)              # per-realisation state (e.g. a ReLU activation)
    state, weight, mask = ensemble.layer(state, key, l)  # layer l: weight (N, N), mask (N,)

and a convenience ``ensemble.sample(key)`` that returns the whole :class:`LayerStack` at once, drawn with
exactly the keys the engine uses, so that a dense oracle sees the same matrices as the scan.

Variable widths. ``widths = (n_0, n_1, ..., n_L)``: layer ``l`` (0-based) maps ``n_l -> n_{l+1}``. All layers are
stored zero-padded to ``N = max(widths)``: the block ``weight[:n_{l+1}, :n_l]`` is the real matrix and
``mask[n_{l+1}:] = 0``. Padding rows are masked and padding columns are zero, so the padded product acts on
``R^{n_0}`` exactly as the unpadded one. Active counts ``K_l = mask.sum()`` only ever count real units.

References:
    Newman, "The distribution of Lyapunov exponents: exact results for random matrices", CMP 1986.
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxspec._checks import InputError

__all__ = [
    "ENSEMBLE_NAMES",
    "Ensemble",
    "FixedStack",
    "Gaussian",
    "LayerStack",
    "Masked",
    "Orthogonal",
    "ReluNet",
    "fixed_network",
    "gaussian",
    "layer_key",
    "make_ensemble",
    "masked",
    "orthogonal",
    "relu_net",
]

ENSEMBLE_NAMES = ("gaussian", "orthogonal", "masked", "relu-net")


class LayerStack(NamedTuple):
    """A whole stack of padded layers.

    Attributes:
        weights: ``(L, N, N)`` padded weight matrices, ``weights[l][:n_{l+1}, :n_l]`` is layer ``l``.
        masks: ``(L, N)`` gate values in ``{0, 1}`` (zero on padding rows).
    """

    weights: jax.Array
    masks: jax.Array


def layer_key(key: jax.Array, index) -> jax.Array:
    """The key of layer ``index`` of one realisation: ``fold_in(key, index)``, so it never depends on depth."""
    return jax.random.fold_in(key, index)


def _standard_normal(key: jax.Array, shape, dtype) -> jax.Array:
    """Standard normals drawn in float32 and cast, so that float32 and float64 runs see the same matrices
    (float64 references then measure rounding error alone, not a different realisation)."""
    return jax.random.normal(key, shape, dtype=jnp.float32).astype(dtype)


def _resolve_widths(width: int | None, depth: int | None, widths: Sequence[int] | None) -> tuple[int, ...]:
    if widths is not None:
        if width is not None or depth is not None:
            raise InputError("give either widths=(n_0, ..., n_L) or width and depth, not both")
        widths = tuple(int(n) for n in widths)
        if len(widths) < 2:
            raise InputError(f"widths must hold at least two entries (n_0, n_1), got {widths}")
    else:
        if width is None or depth is None:
            raise InputError("give width and depth (or widths)")
        if int(depth) < 1:
            raise InputError(f"depth must be a positive integer, got {depth}")
        widths = (int(width),) * (int(depth) + 1)
    if min(widths) < 1:
        raise InputError(f"every width must be a positive integer, got {widths}")
    return widths


def _check_positive(name: str, value) -> None:
    if not isinstance(value, jax.core.Tracer) and not np.all(np.asarray(value) > 0):
        raise InputError(f"{name} must be positive, got {value}")


class _PaddedLayers:
    """Shared helpers for ensembles stored at padded width ``N = max(widths)``."""

    widths: tuple[int, ...]

    @property
    def depth(self) -> int:
        """Number of layers ``L``."""
        return len(self.widths) - 1

    @property
    def max_width(self) -> int:
        """Padded width ``N``."""
        return max(self.widths)

    @property
    def input_width(self) -> int:
        return self.widths[0]

    @property
    def is_uniform(self) -> bool:
        return len(set(self.widths)) == 1

    def _fan(self, index):
        """``(fan_in, fan_out)`` of layer ``index`` (traced-index friendly)."""
        widths = jnp.asarray(self.widths, dtype=jnp.int32)
        return widths[index], widths[index + 1]

    def _valid(self, index):
        n = self.max_width
        fan_in, fan_out = self._fan(index)
        rows = jnp.arange(n) < fan_out
        cols = jnp.arange(n) < fan_in
        return rows, cols, fan_in

    def _gaussian(self, key, index, sigma2, dtype):
        rows, cols, fan_in = self._valid(index)
        n = self.max_width
        g = _standard_normal(key, (n, n), dtype)
        scale = jnp.sqrt(jnp.asarray(sigma2, dtype) / fan_in.astype(dtype))
        if self.is_uniform:
            return g * scale
        return g * scale * (rows[:, None] & cols[None, :]).astype(dtype)

    def init_state(self, key: jax.Array, dtype=jnp.float32) -> Any:
        """Per-realisation state; ``None`` for ensembles with independent layers."""
        del key, dtype
        return None

    def sample(self, key: jax.Array, dtype=jnp.float32) -> LayerStack:
        """Draw the whole stack with the engine's keys.

        Args:
            key: the realisation's key (as given to the engine for one seed).
            dtype: floating dtype of the weights.

        Returns:
            :class:`LayerStack` with ``weights (L, N, N)`` and ``masks (L, N)``.
        """
        key_state, key_layers = jax.random.split(key)
        state = self.init_state(key_state, dtype)

        def body(state, index):
            state, weight, mask = self.layer(state, layer_key(key_layers, index), index, dtype)
            return state, (weight, mask)

        _, (weights, masks) = jax.lax.scan(body, state, jnp.arange(self.depth))
        return LayerStack(weights, masks)

    def sample_layer(self, key: jax.Array, index: int, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
        """One layer's ``(weight (N, N), mask (N,))`` of an ensemble with independent layers."""
        _, weight, mask = self.layer(None, key, index, dtype)
        return weight, mask


@struct.dataclass
class Gaussian(_PaddedLayers):
    """Ginibre layers: entries iid ``N(0, sigma2 / n_in)``, no gates.

    Example:
        >>> ens = gaussian(width=8, depth=100, sigma2=1.0)
        >>> ens.sample(jax.random.key(0)).weights.shape
        (100, 8, 8)
    """

    sigma2: jax.Array | float = 1.0
    widths: tuple[int, ...] = struct.field(pytree_node=False, default=(1, 1))
    name: str = struct.field(pytree_node=False, default="gaussian")

    def layer(self, state, key, index, dtype=jnp.float32):
        weight = self._gaussian(key, index, self.sigma2, dtype)
        rows, _, _ = self._valid(index)
        return state, weight, rows.astype(dtype)


@struct.dataclass
class Orthogonal(_PaddedLayers):
    """Haar-orthogonal layers times ``sigma = sqrt(sigma2)``, no gates.

    For unequal fan-in and fan-out the layer is a Haar partial isometry (the polar factor of a Gaussian
    matrix), times ``sigma``.
    """

    sigma2: jax.Array | float = 1.0
    widths: tuple[int, ...] = struct.field(pytree_node=False, default=(1, 1))
    name: str = struct.field(pytree_node=False, default="orthogonal")

    def layer(self, state, key, index, dtype=jnp.float32):
        rows, cols, _ = self._valid(index)
        n = self.max_width
        g = _standard_normal(key, (n, n), dtype)
        sigma = jnp.sqrt(jnp.asarray(self.sigma2, dtype))
        if self.is_uniform:
            # Mezzadri's sign fix makes Q exactly Haar.
            q, r = jnp.linalg.qr(g)
            q = q * jnp.sign(jnp.diagonal(r))[None, :]
            return state, sigma * q, rows.astype(dtype)
        g = g * (rows[:, None] & cols[None, :]).astype(dtype)
        u, s, vt = jnp.linalg.svd(g, full_matrices=False)
        keep = (s > 0).astype(dtype)
        return state, sigma * (u * keep[None, :]) @ vt, rows.astype(dtype)


@struct.dataclass
class Masked(_PaddedLayers):
    """Gaussian layers behind random gates independent of the weights: ``A_l = D_l W_l``.

    Gates are Bernoulli(``p``) per unit, or, with ``fixed_count = K``, a uniformly random set of exactly
    ``K`` active units per layer (``K`` an int, or one count per layer).

    Example:
        >>> ens = masked(width=16, depth=50, p=0.5)
        >>> stack = ens.sample(jax.random.key(0))
        >>> stack.masks.shape
        (50, 16)
    """

    sigma2: jax.Array | float = 1.0
    p: jax.Array | float = 0.5
    widths: tuple[int, ...] = struct.field(pytree_node=False, default=(1, 1))
    fixed_count: tuple[int, ...] | None = struct.field(pytree_node=False, default=None)
    name: str = struct.field(pytree_node=False, default="masked")

    def layer(self, state, key, index, dtype=jnp.float32):
        key_w, key_m = jax.random.split(key)
        weight = self._gaussian(key_w, index, self.sigma2, dtype)
        rows, _, _ = self._valid(index)
        n = self.max_width
        if self.fixed_count is None:
            gate = jax.random.bernoulli(key_m, self.p, (n,))
        else:
            count = jnp.asarray(self.fixed_count, jnp.int32)[index]
            # Rank of iid uniforms among the valid rows: the K smallest are active.
            u = jnp.where(rows, jax.random.uniform(key_m, (n,)), 2.0)
            order = jnp.argsort(jnp.argsort(u))
            gate = order < count
        return state, weight, (gate & rows).astype(dtype)


@struct.dataclass
class ReluNet(_PaddedLayers):
    """Gates of a zero-bias ReLU network at a random input: ``D_l`` is the true ReLU derivative.

    The state is the (normalised) activation ``h_l``; ``D_{l+1} = 1[W_{l+1} h_l > 0]``. Normalising ``h``
    does not change any gate (zero bias) and keeps deep runs finite. For sign-symmetric iid weights this is an
    exact ``p = 1/2`` instance of :class:`Masked` for all volume statistics ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)); He init is
    ``sigma2 = 2``.
    """

    sigma2: jax.Array | float = 2.0
    widths: tuple[int, ...] = struct.field(pytree_node=False, default=(1, 1))
    name: str = struct.field(pytree_node=False, default="relu-net")

    def init_state(self, key, dtype=jnp.float32):
        n = self.max_width
        h = _standard_normal(key, (n,), dtype) * (jnp.arange(n) < self.widths[0])
        return h / jnp.linalg.norm(h)

    def layer(self, state, key, index, dtype=jnp.float32):
        weight = self._gaussian(key, index, self.sigma2, dtype)
        rows, _, _ = self._valid(index)
        pre = jnp.matmul(weight, state.astype(dtype), precision=jax.lax.Precision.HIGHEST)
        gate = (pre > 0) & rows
        h = jnp.where(gate, pre, 0.0)
        norm = jnp.linalg.norm(h)
        h = jnp.where(norm > 0, h / jnp.where(norm > 0, norm, 1.0), 0.0)
        return h.astype(state.dtype), weight, gate.astype(dtype)


@struct.dataclass
class FixedStack(_PaddedLayers):
    """A user-supplied network: explicit weights and masks (a fixed-gates network), no randomness."""

    weights: jax.Array = None  # (L, N, N)
    masks: jax.Array = None  # (L, N)
    widths: tuple[int, ...] = struct.field(pytree_node=False, default=(1, 1))
    name: str = struct.field(pytree_node=False, default="fixed")

    def layer(self, state, key, index, dtype=jnp.float32):
        del key
        return state, self.weights[index].astype(dtype), self.masks[index].astype(dtype)


Ensemble = Gaussian | Orthogonal | Masked | ReluNet | FixedStack


# ----------------------------------------------------------------------------------------------------------
# Validated constructors (the public boundary).


def gaussian(width: int | None = None, depth: int | None = None, *, sigma2: float = 1.0,
             widths: Sequence[int] | None = None) -> Gaussian:
    """Ginibre ensemble, entries ``N(0, sigma2 / n_in)``.

    Args:
        width: uniform width ``N`` (with ``depth``).
        depth: number of layers ``L``.
        sigma2: weight variance times fan-in.
        widths: alternatively ``(n_0, ..., n_L)``.
    """
    _check_positive("sigma2", sigma2)
    return Gaussian(sigma2=sigma2, widths=_resolve_widths(width, depth, widths))


def orthogonal(width: int | None = None, depth: int | None = None, *, sigma2: float = 1.0,
               widths: Sequence[int] | None = None) -> Orthogonal:
    """Haar-orthogonal layers times ``sqrt(sigma2)``."""
    _check_positive("sigma2", sigma2)
    return Orthogonal(sigma2=sigma2, widths=_resolve_widths(width, depth, widths))


def masked(width: int | None = None, depth: int | None = None, *, p: float = 0.5, sigma2: float = 1.0,
           fixed_count: int | Sequence[int] | None = None, widths: Sequence[int] | None = None) -> Masked:
    """Gaussian layers behind Bernoulli(``p``) gates, or exactly ``fixed_count`` active units per layer.

    Args:
        width, depth, widths: shapes as in :func:`gaussian`.
        p: gate probability in ``(0, 1]`` (ignored with ``fixed_count``).
        sigma2: weight variance times fan-in.
        fixed_count: ``K`` (int, all layers) or one count per layer, ``1 <= K_l <= n_{l+1}``.
    """
    widths = _resolve_widths(width, depth, widths)
    _check_positive("sigma2", sigma2)
    if not isinstance(p, jax.core.Tracer) and not np.all((np.asarray(p) > 0) & (np.asarray(p) <= 1)):
        raise InputError(f"p must lie in (0, 1], got {p}")
    counts = None
    if fixed_count is not None:
        depth_ = len(widths) - 1
        counts = (int(fixed_count),) * depth_ if np.ndim(fixed_count) == 0 else tuple(int(c) for c in fixed_count)
        if len(counts) != depth_:
            raise InputError(f"fixed_count needs one entry per layer ({depth_}), got {len(counts)}")
        for l, (c, n) in enumerate(zip(counts, widths[1:], strict=True)):
            if not 0 <= c <= n:
                raise InputError(f"fixed_count[{l}] = {c} must lie in [0, {n}] (the layer's width)")
    return Masked(sigma2=sigma2, p=p, widths=widths, fixed_count=counts)


def relu_net(width: int | None = None, depth: int | None = None, *, sigma2: float = 2.0,
             widths: Sequence[int] | None = None) -> ReluNet:
    """Zero-bias ReLU network at a random Gaussian input; He init is ``sigma2 = 2``."""
    _check_positive("sigma2", sigma2)
    return ReluNet(sigma2=sigma2, widths=_resolve_widths(width, depth, widths))


def fixed_network(weights: Sequence[Any], masks: Sequence[Any] | None = None) -> FixedStack:
    """A fixed network from explicit layers.

    Args:
        weights: ``L`` matrices, ``weights[l]`` of shape ``(n_{l+1}, n_l)`` (consecutive shapes must chain).
        masks: ``L`` gate vectors of shape ``(n_{l+1},)`` with entries in ``{0, 1}``; all ones if omitted.

    Returns:
        A :class:`FixedStack`, padded to ``N = max(widths)``.
    """
    weights = [np.asarray(w) for w in weights]
    if not weights:
        raise InputError("a fixed network needs at least one layer")
    for l, w in enumerate(weights):
        if w.ndim != 2:
            raise InputError(f"weights[{l}] must be a matrix, got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise InputError(f"weights[{l}] holds non-finite values")
    widths = (weights[0].shape[1],) + tuple(w.shape[0] for w in weights)
    for l in range(1, len(weights)):
        if weights[l].shape[1] != weights[l - 1].shape[0]:
            raise InputError(
                f"weights[{l}] has {weights[l].shape[1]} columns but weights[{l - 1}] has {weights[l - 1].shape[0]} rows"
            )
    if masks is None:
        masks = [np.ones(w.shape[0]) for w in weights]
    masks = [np.asarray(m) for m in masks]
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


def make_ensemble(name: str, width: int | None = None, depth: int | None = None, *, sigma2: float | None = None,
                  p: float | None = None, fixed_count=None, widths: Sequence[int] | None = None):
    """Build an ensemble by name (``gaussian``, ``orthogonal``, ``masked``, ``relu-net``).

    ``sigma2`` defaults to 1, except for ``relu-net`` (He init, 2). ``p`` is only meaningful for ``masked``.
    """
    if name not in ENSEMBLE_NAMES:
        raise InputError(f"unknown ensemble {name!r}; choose one of {', '.join(ENSEMBLE_NAMES)}")
    if p is not None and name != "masked":
        raise InputError(f"--p only applies to the masked ensemble, not {name!r}")
    if fixed_count is not None and name != "masked":
        raise InputError(f"fixed_count only applies to the masked ensemble, not {name!r}")
    if name == "gaussian":
        return gaussian(width, depth, sigma2=1.0 if sigma2 is None else sigma2, widths=widths)
    if name == "orthogonal":
        return orthogonal(width, depth, sigma2=1.0 if sigma2 is None else sigma2, widths=widths)
    if name == "masked":
        return masked(width, depth, p=0.5 if p is None else p, sigma2=1.0 if sigma2 is None else sigma2,
                      fixed_count=fixed_count, widths=widths)
    return relu_net(width, depth, sigma2=2.0 if sigma2 is None else sigma2, widths=widths)
