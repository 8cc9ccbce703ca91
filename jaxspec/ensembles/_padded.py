"""The padded-layers base shared by every ensemble: shapes, the engine's sampling keys, default hooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from jaxspec._checks import InputError, PaddedWidths, check_int, check_widths
from jaxspec.ensembles._protocol import LayerStack, layer_key
from jaxspec.theory import CountLaw, LayerTheory, count_law_theory


def standard_normal(key: jax.Array, shape, dtype) -> jax.Array:
    """Standard normals drawn in float32 and cast, so that float32 and float64 runs see the same matrices
    (float64 references then measure rounding error alone, not a different realisation)."""
    return jax.random.normal(key, shape, dtype=jnp.float32).astype(dtype)


def resolve_widths(width: int | None, depth: int | None, widths: Sequence[int] | None) -> tuple[int, ...]:
    """``(n_0, ..., n_L)`` from ``width`` and ``depth`` or from ``widths``; every entry a positive integer
    (fractions, booleans and strings are refused, never rounded)."""
    if widths is not None:
        if width is not None or depth is not None:
            raise InputError("give either widths=(n_0, ..., n_L) or width and depth, not both")
        widths = check_widths(widths)
    else:
        if width is None or depth is None:
            raise InputError("give width and depth (or widths)")
        width = check_int("width", width, minimum=1)
        depth = check_int("depth", depth, minimum=1)
        widths = (width,) * (depth + 1)
    return widths


class PaddedLayers(PaddedWidths):
    """Base of the ensembles stored at padded width ``N = max(widths)``: shapes, sampling, default hooks.

    Subclasses implement ``layer``; the theory hooks default to "unknown" (``count_laws`` is ``None``,
    ``min_active_count`` is 0).
    """

    widths: tuple[int, ...]

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
        g = standard_normal(key, (n, n), dtype)
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

    def min_active_count(self) -> int:
        """A lower bound on every ``K_l`` known before sampling (0: none known)."""
        return 0

    def count_laws(self) -> list[CountLaw] | None:
        """Per-layer active-count laws of Gaussian layers behind independent gates, or ``None``."""
        return None

    def layer_theory(self, k: int, condition: str = "K>=i") -> LayerTheory | None:
        """Closed-form per-layer statistics of ``log|R_ii|`` ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)).

        Args:
            k: number of indices.
            condition: rank-collapse convention (``"K>=i"``, ``"K>=k"``, ``"none"``).

        Returns:
            A :class:`jaxspec.theory.LayerTheory` (exponents, per-layer variances, counted probabilities), or
            ``None`` where no closed form is known.
        """
        laws = self.count_laws()
        if laws is None:
            return None
        first = laws[0]
        if all(law.fan_in == first.fan_in and np.array_equal(law.pmf, first.pmf) for law in laws):
            laws = laws[:1]  # identical layers: one law stands for all
        return count_law_theory(laws, k, sigma2=float(self.sigma2), condition=condition)

    def survival(self) -> Float[np.ndarray, " L"]:
        """``(L,)`` probability that layer ``l`` can still be counted (ones unless a dead state absorbs)."""
        return np.ones(self.depth)
