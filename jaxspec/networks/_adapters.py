"""Flax adapters: NNX modules and linen modules as segments of :func:`jaxspec.networks.network_spectrum`.

A segment is a block function and its parameters stacked along a leading axis ``L``. For NNX the block is
``nnx.merge(graphdef, state)(h)`` and the parameters are the module's state (``nnx.split``): a list of ``L``
modules of one structure is stacked here, and a module built with ``nnx.vmap`` (its state already stacked)
is taken as it is. For linen the block is ``module.apply(variables, h)`` and the parameters are the variables:
a list of ``L`` variable dicts is stacked here, or a stacked pytree is taken as it is (``stacked=True``).

Gates. A piecewise-linear block that ends in a ReLU (``gated=True``) reports its number of nonzero outputs,
read from the forward pass, as its active count ``K_l``: rank collapse is then handled as for the random
ensembles ([math §1.4](https://jaxspec.github.io/jaxspec/math/#s1)).

References:
    Heek et al., "Flax: a neural network library and ecosystem for JAX" (2020); Haas et al.,
    arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array

from jaxspec._checks import InputError
from jaxspec.networks._blocks import Segment


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _one(tree: Any) -> Any:
    return jax.tree.map(lambda leaf: jnp.asarray(leaf)[None], tree)


@dataclasses.dataclass(frozen=True)
class _NNXBlock:
    """``(state, h) -> nnx.merge(graphdef, state).method(h, **kwargs)`` (hashable: a ``jit`` static)."""

    graphdef: Any
    method: str
    kwargs: tuple[tuple[str, Any], ...]

    def __call__(self, state: Any, h: Array) -> Array:
        module = nnx.merge(self.graphdef, state)
        return getattr(module, self.method)(h, **dict(self.kwargs))


@dataclasses.dataclass(frozen=True)
class _LinenBlock:
    """``(variables, h) -> module.apply(variables, h, method=..., **kwargs)`` (hashable: a ``jit`` static)."""

    module: nn.Module
    method: str
    kwargs: tuple[tuple[str, Any], ...]

    def __call__(self, variables: Any, h: Array) -> Array:
        return self.module.apply(variables, h, method=self.method, **dict(self.kwargs))


def nnx_segment(
    modules: nnx.Module | Sequence[nnx.Module],
    *,
    stacked: bool = False,
    gated: bool = False,
    method: str = "__call__",
    **kwargs: Any,
) -> Segment:
    """A Flax NNX module (or ``L`` of them) as a :class:`Segment` of :func:`network_spectrum`.

    Args:
        modules: a sequence of ``L`` modules of one structure (their states are stacked here); one module,
            a single block (``L = 1``); or, with ``stacked=True``, one module whose state carries the leading
            axis ``L`` (built with ``nnx.vmap``, as for ``nnx.scan`` over layers).
        stacked: the one module's state is already stacked along ``L``.
        gated: the block ends in a ReLU: its nonzero outputs are its active units ``K_l``.
        method: the method to call (``"__call__"``).
        **kwargs: fixed keyword arguments of every call (hashable values, e.g. ``deterministic=True``).

    Returns:
        :class:`Segment` ``(block, state, gated)``; ``block(state_l, h)`` merges and calls one block.

    Example:
        >>> from flax import nnx
        >>> class Block(nnx.Module):
        ...     def __init__(self, n, rngs):
        ...         self.linear = nnx.Linear(n, n, rngs=rngs)
        ...     def __call__(self, h):
        ...         return h + 0.5 * jnp.tanh(self.linear(h))
        >>> blocks = [Block(8, nnx.Rngs(i)) for i in range(12)]
        >>> xs = jax.random.normal(jax.random.key(0), (4, 8))
        >>> res = network_spectrum([nnx_segment(blocks)], xs, k=2)
        >>> res.log_svals.shape
        (4, 12, 2)

    References:
        Haas et al., arXiv:2602.12384.
    """
    if isinstance(modules, nnx.Module):
        graphdef, state = nnx.split(modules)
        state = state if stacked else _one(state)
    elif isinstance(modules, Sequence) and modules and all(isinstance(m, nnx.Module) for m in modules):
        if stacked:
            raise InputError("stacked=True takes one module with a stacked state, not a sequence of modules")
        splits = [nnx.split(m) for m in modules]
        graphdef = splits[0][0]
        if any(g != graphdef for g, _ in splits[1:]):
            raise InputError("the modules of one segment must share one structure (nnx.split graph)")
        state = _stack([s for _, s in splits])
    else:
        raise InputError(
            f"modules must be an nnx.Module or a non-empty sequence of them, got {type(modules).__name__}"
        )
    return Segment(_NNXBlock(graphdef, method, tuple(sorted(kwargs.items()))), state, bool(gated))


def linen_segment(
    module: nn.Module,
    variables: Any,
    *,
    stacked: bool = False,
    gated: bool = False,
    method: str = "__call__",
    **kwargs: Any,
) -> Segment:
    """A Flax linen module and its variables (one block or ``L`` of them) as a :class:`Segment`.

    Args:
        module: the block's ``flax.linen`` module (one block; the same definition for every ``l``).
        variables: the variables of one block (``module.init(key, h)``), a sequence of ``L`` of them
            (stacked here), or, with ``stacked=True``, one pytree whose leaves carry the leading axis ``L``
            (e.g. from ``jax.vmap(module.init)``).
        stacked: ``variables`` is already stacked along ``L``.
        gated: the block ends in a ReLU: its nonzero outputs are its active units ``K_l``.
        method: the method to apply (``"__call__"``).
        **kwargs: fixed keyword arguments of every call (hashable values, e.g. ``deterministic=True``).

    Returns:
        :class:`Segment` ``(block, variables, gated)``; ``block(variables_l, h) = module.apply(...)``.

    Example:
        >>> import flax.linen as nn
        >>> class Block(nn.Module):
        ...     @nn.compact
        ...     def __call__(self, h):
        ...         return nn.relu(nn.Dense(8)(h))
        >>> keys = jax.random.split(jax.random.key(0), 10)
        >>> variables = jax.vmap(lambda key: Block().init(key, jnp.ones(8)))(keys)
        >>> segment = linen_segment(Block(), variables, stacked=True, gated=True)
        >>> res = network_spectrum([segment], jax.random.normal(jax.random.key(1), (3, 8)), k=2)
        >>> res.active_counts.shape
        (3, 10)

    References:
        Haas et al., arXiv:2602.12384.
    """
    if not isinstance(module, nn.Module):
        raise InputError(f"module must be a flax.linen Module, got {type(module).__name__}")
    if isinstance(variables, (list, tuple)):
        if stacked or not variables:
            raise InputError(
                "variables must be one block's variables, a non-empty sequence of them, or one "
                "stacked pytree with stacked=True"
            )
        variables = _stack(variables)
    elif not stacked:
        variables = _one(variables)
    return Segment(_LinenBlock(module, method, tuple(sorted(kwargs.items()))), variables, bool(gated))
