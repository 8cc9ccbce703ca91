"""MLPs and their fixed-gates view against exact oracles: jax.jacfwd, the forward pass, the init law."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import jaxspec
from jaxspec import InputError
from jaxspec.networks import (
    MLP,
    fixed_gates_apply,
    gates,
    init_gain,
    init_mlp,
    init_padded_mlp,
    mlp_apply,
    network_layer_stack,
    pad_params,
    unpad_params,
)
from tests.conftest import Z_MAX, assert_close, zscores

WIDTHS = (5, 7, 9, 6, 3)


def _dense_product(stack):
    """``D_L W_L ... D_1 W_1`` of a FixedStack, unpadded, in float64 numpy."""
    n0, n_out = stack.widths[0], stack.widths[-1]
    m = np.eye(stack.max_width)[:, :n0]
    for w, d in zip(np.asarray(stack.weights), np.asarray(stack.masks), strict=True):
        m = (d[:, None] * w) @ m
    return m[:n_out]


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "linear"])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("final_activation", [False, True])
def test_masked_product_equals_jacfwd_in_float64(activation, bias, final_activation):
    params = init_mlp(
        jax.random.key(1), WIDTHS, activation=activation, bias=bias, bias_std=0.3, dtype=jnp.float64
    )
    x = jax.random.normal(jax.random.key(2), (WIDTHS[0],), jnp.float64)
    kw = dict(activation=activation, negative_slope=0.1, final_activation=final_activation)
    jac = jax.jacfwd(lambda x: mlp_apply(params, x, **kw))(x)
    stack = network_layer_stack(params, gates(params, x, **kw))
    assert_close(_dense_product(stack), jac)


class FixedGatesTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("relu", "leaky_relu")
    def test_fixed_gates_network_reproduces_the_network_and_is_linear(self, activation):
        params = init_mlp(jax.random.key(3), WIDTHS, activation=activation, dtype=jnp.float64)
        xs = jax.random.normal(jax.random.key(4), (6, WIDTHS[0]), jnp.float64)
        kw = dict(activation=activation, negative_slope=0.2)
        per_input = gates(params, xs, **kw)  # (batch, n_l) each
        assert_close(fixed_gates_apply(params, per_input, xs), mlp_apply(params, xs, **kw), scale=0.1)
        # vmap over (gates, input) pairs is the same as broadcasting.
        vm = self.variant(jax.vmap(lambda g, x: fixed_gates_apply(params, g, x)))(per_input, xs)
        assert_close(vm, fixed_gates_apply(params, per_input, xs), scale=0.1)
        # Gates frozen at x0: an exactly linear map y = J(x0) x, for any x.
        g0 = gates(params, xs[0], **kw)
        jac = jax.jacfwd(lambda x: mlp_apply(params, x, **kw))(xs[0])
        assert_close(fixed_gates_apply(params, g0, xs), xs @ np.asarray(jac).T)


def test_fixed_gates_gradient_in_params_matches_dense_formula():
    params = init_mlp(jax.random.key(5), (4, 6, 3), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(6), (4,), jnp.float64)
    g = gates(params, x)
    # L = (1/2)||W_2 D W_1 x||^2: dL/dW_2 = y (D W_1 x)^T, dL/dW_1 = D W_2^T y x^T.
    grads = jax.grad(lambda p: 0.5 * jnp.sum(fixed_gates_apply(p, g, x) ** 2))(params)
    w1, w2, d = (np.asarray(params[0]["w"]), np.asarray(params[1]["w"]), np.asarray(g[0]))
    h = d * (w1 @ np.asarray(x))
    y = w2 @ h
    # rtol only: the rows of closed gates are exactly zero (the table's absolute floor would loosen that).
    np.testing.assert_allclose(grads[1]["w"], np.outer(y, h), rtol=1e-12)
    np.testing.assert_allclose(grads[0]["w"], np.outer(d * (w2.T @ y), np.asarray(x)), rtol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_padded_scan_form_equals_list_form(activation):
    params = init_mlp(
        jax.random.key(7), WIDTHS, activation=activation, bias=True, bias_std=0.5, dtype=jnp.float64
    )
    padded = pad_params(params)
    xs = jax.random.normal(jax.random.key(8), (3, WIDTHS[0]), jnp.float64)
    kw = dict(activation=activation, negative_slope=0.1)
    assert_close(mlp_apply(padded, xs, **kw), mlp_apply(params, xs, **kw), scale=0.1)
    stacked = gates(padded, xs, **kw)
    chex.assert_shape(stacked, (len(params) - 1, 3, max(WIDTHS)))
    for l, g in enumerate(gates(params, xs, **kw)):
        np.testing.assert_array_equal(stacked[l][:, : g.shape[-1]], g)
        assert np.all(np.asarray(stacked[l][:, g.shape[-1] :]) == 0)  # padding rows are closed gates
    assert_close(fixed_gates_apply(padded, stacked, xs), mlp_apply(params, xs, **kw), scale=0.1)
    for a, b in zip(unpad_params(padded), params, strict=True):
        np.testing.assert_array_equal(a["w"], b["w"])


def test_relu_gates_and_stack_feed_the_engine():
    params = init_mlp(jax.random.key(9), (6, 6, 6, 6), dtype=jnp.float64)
    x = jnp.ones(6, jnp.float64)
    stack = network_layer_stack(params, gates(params, x))
    assert isinstance(stack, jaxspec.FixedStack)
    k = int(np.asarray(stack.masks).sum(1).min())
    assert k >= 1
    res = jaxspec.lyapunov_spectrum(stack, k=k, dtype="float64", condition="none", method="direct")
    # Exact volume identity: sum of the QR log-diagonal (times L) = log of the 3-volume of J Q0.
    key = jaxspec.engine.seed_keys(0, 1)[0]
    q0 = np.asarray(jaxspec.engine.initial_frame(jaxspec.engine.frame_key(key), 6, 6, k, jnp.float64))
    mq = _dense_product(stack) @ q0
    expected = 0.5 * np.linalg.slogdet(mq.T @ mq)[1] / stack.depth
    assert_close(np.sum(np.asarray(res.exponents[0])), expected)


@pytest.mark.parametrize(
    "init,activation,expected", [("he", "relu", 2.0), ("lecun", "relu", 1.0), ("he", "linear", 1.0)]
)
def test_init_variance_matches_gain(init, activation, expected):
    assert init_gain(activation, init) == expected
    n_in = 400
    params = init_mlp(
        jax.random.key(10), (n_in, 300, 200), activation=activation, init=init, dtype=jnp.float64
    )
    for p in params:
        w = np.asarray(p["w"])
        fan_in = w.shape[1]
        var = w.var()
        # Sample variance of m iid normals: stderr = sigma^2 sqrt(2/(m-1)).
        se = expected / fan_in * np.sqrt(2.0 / (w.size - 1))
        assert abs(zscores(var, expected / fan_in, se)) < Z_MAX


def test_explicit_gain_and_leaky_he_gain():
    assert_close(init_gain("leaky_relu", "he", negative_slope=0.5), 2.0 / 1.25)
    params = init_mlp(jax.random.key(11), (3, 4), gain=3.0, dtype=jnp.float64)
    base = init_mlp(jax.random.key(11), (3, 4), gain=1.0, dtype=jnp.float64)
    # A few ulp: the table's absolute floor would loosen this exact-scaling check.
    np.testing.assert_allclose(params[0]["w"], np.sqrt(3.0) * base[0]["w"], rtol=1e-15)


def test_float64_network_is_the_float32_network_in_more_digits():
    p32 = init_mlp(jax.random.key(12), (4, 5, 2), dtype=jnp.float32)
    p64 = init_mlp(jax.random.key(12), (4, 5, 2), dtype=jnp.float64)
    assert_close(p64[0]["w"], p32[0]["w"], "float32", scale=0.03)  # the float32 rounding of the float64 draw


def test_flax_module_matches_pure_functions():
    model = MLP(widths=(3, 8, 8, 2), activation="leaky_relu", negative_slope=0.1, bias=True, bias_std=0.1)
    variables = model.init(jax.random.key(0), jnp.ones(3))
    layers = variables["params"]["layers"]
    x = jax.random.normal(jax.random.key(1), (4, 3))
    assert_close(model.apply(variables, x), mlp_apply(layers, x, activation="leaky_relu", negative_slope=0.1))
    g = model.apply(variables, x, method=MLP.gates)
    chex.assert_shape(list(g), [(4, 8), (4, 8)])
    assert set(np.unique(np.asarray(g[0]))) <= {0.1, 1.0} or np.allclose(np.unique(g[0]), [0.1, 1.0])


def test_bad_arguments_raise_input_error():
    with pytest.raises(InputError):
        init_mlp(jax.random.key(0), (3,))
    with pytest.raises(InputError):
        init_mlp(jax.random.key(0), (3, 4), activation="tanh")
    with pytest.raises(InputError):
        init_mlp(jax.random.key(0), (3, 4), gain=-1.0)
    params = init_mlp(jax.random.key(0), (3, 4, 2))
    with pytest.raises(InputError):
        mlp_apply(params, jnp.ones(5))
    with pytest.raises(InputError):
        fixed_gates_apply(params, [], jnp.ones(3))


def test_stacked_init_equals_list_init_for_equal_widths():
    padded = init_padded_mlp(jax.random.key(13), (6,) * 5, bias=True, bias_std=0.2, dtype=jnp.float64)
    listed = pad_params(init_mlp(jax.random.key(13), (6,) * 5, bias=True, bias_std=0.2, dtype=jnp.float64))
    np.testing.assert_array_equal(padded.weights, listed.weights)
    np.testing.assert_array_equal(padded.biases, listed.biases)
    ragged = init_padded_mlp(jax.random.key(13), (3, 7, 5), dtype=jnp.float64)
    assert ragged.widths == (3, 7, 5)
    assert np.all(np.asarray(ragged.weights[0, :, 3:]) == 0) and np.all(
        np.asarray(ragged.weights[1, 5:]) == 0
    )
