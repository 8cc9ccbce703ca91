"""Random ensembles: Ginibre, Haar-orthogonal, masked (Bernoulli or fixed-count gates) and ReLU-network
layers.

References:
    Newman, "The distribution of Lyapunov exponents: exact results for random matrices", CMP 1986.
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxspec._checks import HIGHEST, InputError, check_int, check_positive, check_probability, is_traced
from jaxspec.ensembles._padded import PaddedLayers, resolve_widths, standard_normal
from jaxspec.theory import CountLaw, LayerTheory, binomial_count_law, fixed_count_law, orthogonal_exponents

ENSEMBLE_NAMES = ("gaussian", "orthogonal", "masked", "relu-net")
# Up to this padded width the exact samplers draw a masked layer's active count as a sum of Bernoulli gates
# (cheaper than a binomial sampler's rejection loop on CPU); beyond it, jax.random.binomial. Both are exactly
# Binomial(n_out, p).
_BERNOULLI_SUM_MAX_WIDTH = 4096


@struct.dataclass
class Gaussian(PaddedLayers):
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

    def min_active_count(self) -> int:
        return min(self.widths[1:])  # no gates: every unit is active

    def count_laws(self) -> list[CountLaw]:
        w = self.widths
        return [fixed_count_law(w[l], w[l + 1], w[l + 1]) for l in range(self.depth)]

    def sample_active_count(self, key, index):
        del key
        return self._fan(index)[1]

    def log_weight_variance(self, index, dtype):
        return jnp.log(jnp.asarray(self.sigma2, dtype) / self._fan(index)[0].astype(dtype))


@struct.dataclass
class Orthogonal(PaddedLayers):
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
        g = standard_normal(key, (n, n), dtype)
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

    def min_active_count(self) -> int:
        return min(self.widths[1:])  # no gates: every unit is active

    def layer_theory(self, k: int, condition: str = "K>=i") -> LayerTheory | None:
        # Every exponent is log(sigma) exactly, with no fluctuation; known for uniform widths only.
        if not self.is_uniform:
            return None
        return LayerTheory(
            orthogonal_exponents(self.widths[0], float(self.sigma2), k), np.zeros(k), np.ones(k)
        )


@struct.dataclass
class Masked(PaddedLayers):
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

    def min_active_count(self) -> int:
        if self.fixed_count is not None:
            return min(self.fixed_count)
        if not is_traced(self.p) and bool(np.all(np.asarray(self.p) >= 1.0)):
            return min(self.widths[1:])
        return 0

    def count_laws(self) -> list[CountLaw]:
        w = self.widths
        if self.fixed_count is not None:
            return [fixed_count_law(w[l], w[l + 1], self.fixed_count[l]) for l in range(self.depth)]
        return [binomial_count_law(w[l], w[l + 1], float(self.p)) for l in range(self.depth)]

    def sample_active_count(self, key, index):
        _, fan_out = self._fan(index)
        if self.fixed_count is not None:
            return jnp.asarray(self.fixed_count, jnp.int32)[index]
        n = self.max_width
        if n <= _BERNOULLI_SUM_MAX_WIDTH:
            gates = jax.random.bernoulli(key, self.p, (n,)) & (jnp.arange(n) < fan_out)
            return jnp.sum(gates, dtype=jnp.int32)
        return jax.random.binomial(key, fan_out.astype(jnp.float32), self.p).astype(jnp.int32)

    def log_weight_variance(self, index, dtype):
        return jnp.log(jnp.asarray(self.sigma2, dtype) / self._fan(index)[0].astype(dtype))


@struct.dataclass
class ReluNet(PaddedLayers):
    """Gates of a zero-bias ReLU network at a random input: ``D_l`` is the true ReLU derivative.

    The state is the (normalised) activation ``h_l``; ``D_{l+1} = 1[W_{l+1} h_l > 0]``. Normalising ``h``
    does not change any gate (zero bias) and keeps deep runs finite. For sign-symmetric iid weights this is an
    exact ``p = 1/2`` instance of :class:`Masked` for all volume statistics
    ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)); He init is ``sigma2 = 2``.
    """

    sigma2: jax.Array | float = 2.0
    widths: tuple[int, ...] = struct.field(pytree_node=False, default=(1, 1))
    name: str = struct.field(pytree_node=False, default="relu-net")

    def init_state(self, key, dtype=jnp.float32):
        n = self.max_width
        h = standard_normal(key, (n,), dtype) * (jnp.arange(n) < self.widths[0])
        return h / jnp.linalg.norm(h)

    def layer(self, state, key, index, dtype=jnp.float32):
        weight = self._gaussian(key, index, self.sigma2, dtype)
        rows, _, _ = self._valid(index)
        pre = jnp.matmul(weight, state.astype(dtype), precision=HIGHEST)
        gate = (pre > 0) & rows
        h = jnp.where(gate, pre, 0.0)
        norm = jnp.linalg.norm(h)
        h = jnp.where(norm > 0, h / jnp.where(norm > 0, norm, 1.0), 0.0)
        return h.astype(state.dtype), weight, gate.astype(dtype)

    def count_laws(self) -> list[CountLaw]:
        # Sign-symmetric iid weights: the gates are Bernoulli(1/2) for every volume statistic.
        w = self.widths
        return [binomial_count_law(w[l], w[l + 1], 0.5) for l in range(self.depth)]

    def survival(self) -> np.ndarray:
        # Once K_l = 0 the activation is exactly zero and every later gate is off (an absorbing state):
        # S_l = prod_{m<l} (1 - 2^{-n_{m+1}}).
        dead = 0.5 ** np.asarray(self.widths[1:], float)
        return np.concatenate([[1.0], np.cumprod(1.0 - dead)[:-1]])


def gaussian(
    width: int | None = None,
    depth: int | None = None,
    *,
    sigma2: float = 1.0,
    widths: Sequence[int] | None = None,
) -> Gaussian:
    """Ginibre ensemble, entries ``N(0, sigma2 / n_in)``.

    Args:
        width: uniform width ``N`` (with ``depth``).
        depth: number of layers ``L``.
        sigma2: weight variance times fan-in.
        widths: alternatively ``(n_0, ..., n_L)``.
    """
    return Gaussian(sigma2=_sigma2(sigma2), widths=resolve_widths(width, depth, widths))


def orthogonal(
    width: int | None = None,
    depth: int | None = None,
    *,
    sigma2: float = 1.0,
    widths: Sequence[int] | None = None,
) -> Orthogonal:
    """Haar-orthogonal layers times ``sqrt(sigma2)``."""
    return Orthogonal(sigma2=_sigma2(sigma2), widths=resolve_widths(width, depth, widths))


def masked(
    width: int | None = None,
    depth: int | None = None,
    *,
    p: float = 0.5,
    sigma2: float = 1.0,
    fixed_count: int | Sequence[int] | None = None,
    widths: Sequence[int] | None = None,
) -> Masked:
    """Gaussian layers behind Bernoulli(``p``) gates, or exactly ``fixed_count`` active units per layer.

    Args:
        width, depth, widths: shapes as in :func:`gaussian`.
        p: gate probability in ``(0, 1]`` (ignored with ``fixed_count``).
        sigma2: weight variance times fan-in.
        fixed_count: ``K`` (int, all layers) or one count per layer, ``1 <= K_l <= n_{l+1}``.
    """
    widths = resolve_widths(width, depth, widths)
    sigma2 = _sigma2(sigma2)
    p = _leaf(p, check_probability("p", p, allow_array=True))
    counts = None
    if fixed_count is not None:
        depth_ = len(widths) - 1
        if isinstance(fixed_count, (str, bytes)) or np.ndim(fixed_count) > 1:
            raise InputError(f"fixed_count must be an integer or one integer per layer, got {fixed_count!r}")
        counts = (fixed_count,) * depth_ if np.ndim(fixed_count) == 0 else tuple(fixed_count)
        if len(counts) != depth_:
            raise InputError(f"fixed_count needs one entry per layer ({depth_}), got {len(counts)}")
        counts = tuple(
            check_int(f"fixed_count[{l}]", c, minimum=0, maximum=n)
            for l, (c, n) in enumerate(zip(counts, widths[1:], strict=True))
        )
    return Masked(sigma2=sigma2, p=p, widths=widths, fixed_count=counts)


def _leaf(value, checked):
    """A checked numeric leaf: the validated float for plain numbers, the caller's array (or tracer) as given,
    so that a sweep's batched leaves keep their dtype and shape."""
    return checked if isinstance(value, (int, float, np.integer, np.floating)) else value


def _sigma2(sigma2):
    """``sigma2`` checked finite, real and positive (scalar or batched leaf; tracers pass)."""
    return _leaf(sigma2, check_positive("sigma2", sigma2))


def relu_net(
    width: int | None = None,
    depth: int | None = None,
    *,
    sigma2: float = 2.0,
    widths: Sequence[int] | None = None,
) -> ReluNet:
    """Zero-bias ReLU network at a random Gaussian input; He init is ``sigma2 = 2``."""
    return ReluNet(sigma2=_sigma2(sigma2), widths=resolve_widths(width, depth, widths))


def make_ensemble(
    name: str,
    width: int | None = None,
    depth: int | None = None,
    *,
    sigma2: float | None = None,
    p: float | None = None,
    fixed_count=None,
    widths: Sequence[int] | None = None,
):
    """Build an ensemble by name (``gaussian``, ``orthogonal``, ``masked``, ``relu-net``).

    ``sigma2`` defaults to 1, except for ``relu-net`` (He init, 2). ``p`` is only meaningful for ``masked``.
    """
    if not isinstance(name, str) or name not in ENSEMBLE_NAMES:
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
        return masked(
            width,
            depth,
            p=0.5 if p is None else p,
            sigma2=1.0 if sigma2 is None else sigma2,
            fixed_count=fixed_count,
            widths=widths,
        )
    return relu_net(width, depth, sigma2=2.0 if sigma2 is None else sigma2, widths=widths)
