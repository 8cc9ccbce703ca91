"""Flax adapters: an NNX network (stem, stacked residual blocks built with nnx.vmap, head) and a linen
pre-LayerNorm transformer stack, against dense float64 ``jax.jacfwd`` products of the modules themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxspec import InputError
from jaxspec.networks import linen_segment, network_spectrum, nnx_segment
from tests.conftest import assert_close

# The bound on log s_i(J_l) against the dense float64 product, at every prefix.
DENSE_ATOL = 1e-8


class Dense(NamedTuple):
    """A block for the oracle with its own (jitted) Jacobian."""

    apply: Callable
    jacobian: Callable

    def __call__(self, h):
        return self.apply(h)


def dense_log_svals(blocks, x, k):
    """``(L, k)`` ``log s_i`` of every prefix product of the blocks' ``jax.jacfwd`` Jacobians (float64)."""
    h, total, out = x, None, []
    for block in blocks:
        jacobian = block.jacobian if isinstance(block, Dense) else jax.jacfwd(block)
        jac = np.asarray(jacobian(h), np.float64).reshape(-1, h.size)
        h = block(h)
        total = jac if total is None else jac @ total
        with np.errstate(divide="ignore"):  # a ReLU stack can lose rank: log 0 = -inf, as the scan reports
            out.append(np.log(np.linalg.svd(total, compute_uv=False)[:k]))
    return np.stack(out), h


# ----------------------------------------------------------------------------------------------------------
# NNX: a ReLU stem (gated), residual blocks stacked by nnx.vmap, a linear head.


class Residual(nnx.Module):
    def __init__(self, width: int, rngs: nnx.Rngs):
        self.inner = nnx.Linear(width, width, rngs=rngs, param_dtype=jnp.float64)
        self.outer = nnx.Linear(width, width, rngs=rngs, param_dtype=jnp.float64)

    def __call__(self, h):
        return h + 0.5 * self.outer(jnp.tanh(self.inner(h)))


class ReluLayer(nnx.Module):
    def __init__(self, n_in: int, n_out: int, rngs: nnx.Rngs):
        self.linear = nnx.Linear(n_in, n_out, rngs=rngs, param_dtype=jnp.float64)

    def __call__(self, h):
        return jax.nn.relu(self.linear(h))


def test_nnx_stem_stacked_blocks_and_head_match_dense_products():
    depth, width = 6, 8

    @nnx.split_rngs(splits=depth)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make_blocks(rngs):
        return Residual(width, rngs)

    stem = ReluLayer(5, width, nnx.Rngs(0))
    blocks = make_blocks(nnx.Rngs(1))
    head = nnx.Linear(width, 3, rngs=nnx.Rngs(2), param_dtype=jnp.float64)
    segments = [nnx_segment(stem, gated=True), nnx_segment(blocks, stacked=True), nnx_segment(head)]
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5)))
    res = network_spectrum(segments, xs, k=3, dtype="float64", reortho_every=1)

    graphdef, state = nnx.split(blocks)
    each = [nnx.merge(graphdef, jax.tree.map(lambda a, l=l: a[l], state)) for l in range(depth)]
    for b in range(2):
        expected, output = dense_log_svals([stem] + each + [head], xs[b], 3)
        np.testing.assert_allclose(res.log_svals[b], expected, atol=DENSE_ATOL, rtol=0)
        assert_close(res.outputs[b], output)
        # The stem's gates come from its forward pass: K_1 = its number of positive pre-activations.
        assert int(res.active_counts[b, 0]) == int(jnp.sum(stem.linear(xs[b]) > 0))
    np.testing.assert_array_equal(
        res.active_counts[:, 1:], np.broadcast_to([width] * depth + [3], (2, depth + 1))
    )
    # A list of modules of one structure is stacked into the same state.
    listed = nnx_segment(each)
    assert jax.tree.structure(listed.stacked_params) == jax.tree.structure(state)
    assert_close(jax.tree.leaves(listed.stacked_params), jax.tree.leaves(state))


# ----------------------------------------------------------------------------------------------------------
# linen: pre-LayerNorm transformer blocks, variables stacked by jax.vmap(init).


class TransformerBlock(nn.Module):
    features: int = 4
    hidden: int = 8

    @nn.compact
    def __call__(self, h):
        a = nn.LayerNorm(param_dtype=jnp.float64)(h)
        h = h + nn.MultiHeadDotProductAttention(num_heads=2, param_dtype=jnp.float64)(a, a)
        m = nn.LayerNorm(param_dtype=jnp.float64)(h)
        return h + nn.Dense(self.features, param_dtype=jnp.float64)(
            nn.gelu(nn.Dense(self.hidden, param_dtype=jnp.float64)(m))
        )


class ReluDense(nn.Module):
    @nn.compact
    def __call__(self, h):
        return nn.relu(nn.Dense(h.shape[-1], param_dtype=jnp.float64)(h))


def test_linen_gated_relu_stack_matches_dense_products_and_counts_gates():
    module, depth = ReluDense(), 5
    xs = jnp.asarray(np.random.default_rng(2).normal(size=(2, 6)))
    variables = [module.init(key, xs[0]) for key in jax.random.split(jax.random.key(1), depth)]
    res = network_spectrum(
        [linen_segment(module, variables, gated=True)], xs, k=2, dtype="float64", reortho_every=1
    )
    for b in range(2):
        blocks = [lambda h, v=v: module.apply(v, h) for v in variables]
        expected, output = dense_log_svals(blocks, xs[b], 2)
        np.testing.assert_allclose(res.log_svals[b], expected, atol=DENSE_ATOL, rtol=0)
        h, counts = xs[b], []
        for block in blocks:
            h = block(h)
            counts.append(int(jnp.sum(h > 0)))
        np.testing.assert_array_equal(res.active_counts[b], counts)


@pytest.mark.slow
def test_linen_transformer_stack_matches_dense_products():
    depth, tokens, features = 3, 3, 4
    module = TransformerBlock(features)
    xs = jnp.asarray(np.random.default_rng(1).normal(size=(2, tokens, features)))
    keys = jax.random.split(jax.random.key(0), depth)
    variables = jax.vmap(lambda key: module.init(key, xs[0]))(keys)
    res = network_spectrum(
        [linen_segment(module, variables, stacked=True)], xs, dtype="float64", reortho_every=1
    )
    each = [jax.tree.map(lambda a, l=l: a[l], variables) for l in range(depth)]
    apply = jax.jit(module.apply)  # one program for the oracle's forward passes, one for its Jacobians
    jacobian = jax.jit(jax.jacfwd(module.apply, argnums=1))
    blocks = [Dense(lambda h, v=v: apply(v, h), lambda h, v=v: jacobian(v, h)) for v in each]
    for b in range(2):
        expected, output = dense_log_svals(blocks, xs[b], tokens * features)
        np.testing.assert_allclose(res.log_svals[b], expected, atol=DENSE_ATOL, rtol=0)
        assert_close(res.outputs[b], output)
    # A list of variable dicts is stacked into the same pytree.
    assert_close(jax.tree.leaves(linen_segment(module, each).stacked_params), jax.tree.leaves(variables))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: nnx_segment("module"), "nnx.Module"),
        (
            lambda: nnx_segment([nnx.Linear(2, 2, rngs=nnx.Rngs(0)), nnx.Linear(2, 3, rngs=nnx.Rngs(0))]),
            "structure",
        ),
        (lambda: linen_segment(lambda h: h, {}), "linen Module"),
        (lambda: linen_segment(TransformerBlock(), [], stacked=False), "sequence"),
    ],
)
def test_bad_adapter_arguments_raise_input_error(call, message):
    with pytest.raises(InputError, match=message):
        call()
