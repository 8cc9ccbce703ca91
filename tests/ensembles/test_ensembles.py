"""Ensembles: shapes, padding, gate laws and the ReLU-derivative identity."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxspec
from tests.conftest import Z_MAX, assert_close, zscores


def test_gaussian_entries_have_variance_sigma2_over_fan_in():
    ens = jaxspec.gaussian(width=64, depth=20, sigma2=2.0)
    w = np.asarray(ens.sample(jax.random.key(0), dtype=jnp.float64).weights)
    n = w.size
    var = w.var()
    # Sample variance of n Gaussians: se = sqrt(2/n) * true variance.
    assert abs(zscores(var, 2.0 / 64, np.sqrt(2.0 / n) * 2.0 / 64)) < Z_MAX


def test_orthogonal_layers_are_orthogonal_times_sigma():
    ens = jaxspec.orthogonal(width=7, depth=3, sigma2=4.0)
    w = np.asarray(ens.sample(jax.random.key(1), dtype=jnp.float64).weights)
    for layer in w:
        assert_close(layer @ layer.T, 4.0 * np.eye(7))


def test_variable_width_orthogonal_is_a_partial_isometry():
    ens = jaxspec.orthogonal(widths=(3, 5, 2), sigma2=1.0)
    w = np.asarray(ens.sample(jax.random.key(1), dtype=jnp.float64).weights)
    first = w[0][:5, :3]
    assert_close(first.T @ first, np.eye(3))
    second = w[1][:2, :5]
    assert_close(second @ second.T, np.eye(2))
    assert np.all(w[0][5:] == 0) and np.all(w[0][:, 3:] == 0)


def test_variable_widths_pad_with_zeros_and_mask_padding_rows():
    ens = jaxspec.masked(widths=(3, 6, 4), p=1.0)
    stack = ens.sample(jax.random.key(2))
    chex.assert_shape(stack.weights, (2, 6, 6))
    w, m = np.asarray(stack.weights), np.asarray(stack.masks)
    assert np.all(w[0][:, 3:] == 0) and np.all(w[1][4:] == 0) and np.all(w[1][:, 6:] == 0)
    np.testing.assert_array_equal(m.sum(1), [6, 4])


def test_bernoulli_gate_frequency_matches_p():
    ens = jaxspec.masked(width=50, depth=40, p=0.3)
    m = np.asarray(ens.sample(jax.random.key(3)).masks)
    se = np.sqrt(0.3 * 0.7 / m.size)
    assert abs(zscores(m.mean(), 0.3, se)) < Z_MAX


def test_fixed_count_gates_have_exactly_k_active_units():
    ens = jaxspec.masked(width=9, depth=30, fixed_count=4)
    m = np.asarray(ens.sample(jax.random.key(4)).masks)
    np.testing.assert_array_equal(m.sum(1), 4)
    # Every unit is active sometimes: the subset is random, not the first K.
    assert np.all(m.sum(0) > 0)


def test_relu_net_gates_are_the_relu_derivative_of_the_forward_pass():
    ens = jaxspec.relu_net(widths=(5, 8, 8, 3))
    key = jax.random.key(5)
    stack = ens.sample(key, dtype=jnp.float64)
    key_state, _ = jax.random.split(key)
    h = np.asarray(ens.init_state(key_state), dtype=float)[:5]
    for l, (w, m) in enumerate(zip(np.asarray(stack.weights), np.asarray(stack.masks), strict=True)):
        n_in, n_out = ens.widths[l], ens.widths[l + 1]
        pre = w[:n_out, :n_in] @ h
        np.testing.assert_array_equal(m[:n_out], (pre > 0).astype(float))
        h = np.maximum(pre, 0.0)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: jaxspec.masked(width=4, depth=3, p=0.0), "p must lie"),
        (lambda: jaxspec.masked(width=4, depth=3, p=1.2), "p must lie"),
        (lambda: jaxspec.gaussian(width=4, depth=0), "depth"),
        (lambda: jaxspec.gaussian(width=0, depth=3), "width"),
        (lambda: jaxspec.gaussian(width=4, depth=3, sigma2=-1.0), "sigma2"),
        (lambda: jaxspec.masked(width=4, depth=2, fixed_count=5), "fixed_count"),
        (lambda: jaxspec.make_ensemble("cauchy", 4, 3), "unknown ensemble"),
        (lambda: jaxspec.make_ensemble("gaussian", 4, 3, p=0.5), "only applies"),
        (lambda: jaxspec.fixed_network([np.ones((3, 2)), np.ones((3, 4))]), "columns"),
        (lambda: jaxspec.fixed_network([np.ones((3, 2))], [np.full(3, 0.5)]), "0 and 1"),
        (lambda: jaxspec.fixed_network([np.array([[np.nan]])]), "non-finite"),
    ],
)
def test_bad_ensemble_arguments_raise_input_errors(build, message):
    with pytest.raises(jaxspec.InputError, match=message):
        build()
