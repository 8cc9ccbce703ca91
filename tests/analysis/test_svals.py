"""Exact finite-depth singular values (jaxspec.svals) against high-precision and dense oracles.

Shapes are shared between tests on purpose: every distinct (depth, width, options) compiles the scan once.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import mpmath as mp
import numpy as np
import pytest

import jaxspec
from jaxspec import InputError
from jaxspec.analysis import ensemble_log_svals, product_log_svals, stratified_scan
from jaxspec.engine import realisation_key, seed_keys
from tests.conftest import assert_close

DEPTH, WIDTH = 80, 6
# Log singular values against mpmath: an absolute error on log s_i is the relative error of s_i, which float64
# keeps near 1e-12 through an 80-layer product however small s_i is (the table's rtol would instead grow
# with |log s_i|, up to ~50 here).
LOG_SVALS_ATOL = 1e-12


def _mp_prefix_log_svals(weights, masks, depths, dps=120):
    """log singular values of the prefix products ``prod_{l<d} diag(masks[l]) weights[l]`` for each ``d`` in
    ``depths``, in mpmath at ``dps`` digits (the float64 inputs are exact there)."""
    out = {}
    with mp.workdps(dps):
        n = weights.shape[2]
        prod = mp.eye(n)
        for l, (w, d) in enumerate(zip(weights, masks, strict=True)):
            layer = mp.matrix(
                [[mp.mpf(float(w[i, j])) * int(d[i]) for j in range(w.shape[1])] for i in range(w.shape[0])]
            )
            prod = layer * prod
            if l + 1 in depths:
                s = mp.svd_r(prod, compute_uv=False)
                out[l + 1] = np.sort(np.array([float(mp.log(x)) if x > 0 else -np.inf for x in s]))[::-1]
    return out


def _dense_product(weights, masks):
    m = np.eye(weights[0].shape[1])
    for w, d in zip(weights, masks, strict=True):
        m = (np.asarray(d)[:, None] * np.asarray(w)) @ m
    return m


@pytest.fixture(scope="module")
def deep_product():
    rng = np.random.default_rng(11)
    weights = rng.normal(size=(DEPTH, WIDTH, WIDTH)) / np.sqrt(WIDTH)
    return weights, np.ones((DEPTH, WIDTH))


@pytest.fixture(scope="module")
def deep_reference(deep_product):
    return _mp_prefix_log_svals(*deep_product, depths={1, 7, 30, 55, DEPTH})


def test_matches_mpmath_where_a_plain_svd_is_wrong_and_frames_are_singular_vectors(
    deep_product, deep_reference
):
    weights, masks = deep_product
    reference = deep_reference[DEPTH]
    # The singular values span ~50 orders of magnitude, far beyond float64's 16 digits.
    assert reference[0] - reference[-1] > 100
    out = product_log_svals(jnp.asarray(weights), jnp.asarray(masks), return_frames=True)
    err = np.max(np.abs(np.asarray(out.log_svals) - reference))
    assert err < LOG_SVALS_ATOL, err
    product = _dense_product(weights, masks)
    plain = np.log(np.linalg.svd(product, compute_uv=False))
    assert np.max(np.abs(plain - reference)) > 1.0  # the direct SVD is visibly wrong
    left, right = np.asarray(out.left), np.asarray(out.right)
    assert_close(left.T @ left, np.eye(WIDTH))
    assert_close(right.T @ right, np.eye(WIDTH))
    # M v_1 = s_1 u_1 to the dense product's own accuracy (relative to s_1).
    s1 = np.exp(np.asarray(out.log_svals[0]))
    np.testing.assert_allclose(product @ right[:, 0], s1 * left[:, 0], rtol=0, atol=1e-12 * s1)


def test_masked_product_with_rank_collapse_matches_mpmath(deep_product):
    weights, _ = deep_product
    rng = np.random.default_rng(5)
    masks = (rng.random((DEPTH, WIDTH)) < 0.8).astype(float)
    masks[:, :3] = 1.0
    masks[7, 3:] = 0.0  # one layer with K = 3: rank 3 for ever
    reference = _mp_prefix_log_svals(weights, masks, {DEPTH}, dps=150)[DEPTH][:3]
    out = product_log_svals(jnp.asarray(weights), jnp.asarray(masks), return_frames=True)
    out = np.asarray(out.log_svals)
    np.testing.assert_allclose(out[:3], reference, rtol=0, atol=LOG_SVALS_ATOL)
    assert np.all(np.isneginf(out[3:]))  # exact zeros, reported from the mask counts


def test_prefixes_equal_per_prefix_computations_and_mpmath(deep_product, deep_reference):
    weights, masks = deep_product
    prefix = np.asarray(product_log_svals(jnp.asarray(weights), jnp.asarray(masks), prefixes=True).log_svals)
    chex.assert_shape(prefix, (DEPTH, WIDTH))
    for l, reference in deep_reference.items():
        np.testing.assert_allclose(prefix[l - 1], reference, rtol=0, atol=LOG_SVALS_ATOL)
    full = product_log_svals(jnp.asarray(weights), jnp.asarray(masks), return_frames=True).log_svals
    full = np.asarray(full)
    np.testing.assert_allclose(prefix[-1], full, rtol=0, atol=LOG_SVALS_ATOL)
    part = np.asarray(
        product_log_svals(jnp.asarray(weights[:30]), jnp.asarray(masks[:30]), prefixes=True).log_svals
    )
    np.testing.assert_array_equal(prefix[:30], part)  # same arithmetic, bit for bit


def test_frames_are_orthonormal_and_reconstruct_small_rectangular_products():
    rng = np.random.default_rng(3)
    weights = [rng.normal(size=(5, 3)), rng.normal(size=(4, 5)), rng.normal(size=(6, 4))]
    masks = [np.array([1, 1, 0, 1, 1.0]), np.ones(4), np.ones(6)]
    out = product_log_svals(weights, masks, return_frames=True)
    left, right, s = np.asarray(out.left), np.asarray(out.right), np.exp(np.asarray(out.log_svals))
    chex.assert_shape([left, right], [(6, 3), (3, 3)])
    assert_close(left.T @ left, np.eye(3))
    assert_close(right.T @ right, np.eye(3))
    product = _dense_product(weights, masks)
    # Normwise: a reconstruction is accurate relative to the largest entry, not entry by entry.
    np.testing.assert_allclose(left * s @ right.T, product, rtol=0, atol=1e-13 * np.abs(product).max())
    assert_close(s, np.linalg.svd(product, compute_uv=False), scale=0.03)


def test_orthogonal_ensemble_gives_sigma_to_the_depth_exactly():
    ens = jaxspec.orthogonal(width=WIDTH, depth=DEPTH, sigma2=1.7)
    out = ensemble_log_svals(ens, seed_keys(0, 1)[0], dtype=jnp.float64, prefixes=True)
    depths = np.arange(1, DEPTH + 1)[:, None]
    assert_close(out.log_svals, 0.5 * np.log(1.7) * depths * np.ones((1, WIDTH)), scale=0.3)


def test_a_weight_variance_beyond_float32_is_refused_and_exact_in_float64():
    # sigma2 = 1e50: float32 layers hold inf (NaN singular values before the check); float64 is exact.
    ens = jaxspec.orthogonal(width=WIDTH, depth=DEPTH, sigma2=1e50)
    with pytest.raises(InputError, match=r"sigma2 = 1e\+50 leaves float32's range"):
        ensemble_log_svals(ens, seed_keys(0, 1)[0], dtype=jnp.float32)
    out = ensemble_log_svals(ens, seed_keys(0, 1)[0], dtype=jnp.float64)
    assert_close(out.log_svals, 0.5 * np.log(1e50) * DEPTH * np.ones(WIDTH), scale=0.3)


@pytest.fixture(scope="module")
def masked_ensemble():
    return jaxspec.masked(width=WIDTH, depth=DEPTH, p=0.85)


def test_ensemble_uses_the_engines_keys_and_float32_agrees(masked_ensemble):
    key = seed_keys(3, 4)[2]
    stack = masked_ensemble.sample(realisation_key(key), dtype=jnp.float64)
    masks = np.asarray(stack.masks)
    min_active = int(masks.sum(1).min())
    reference = _mp_prefix_log_svals(np.asarray(stack.weights), masks, {DEPTH}, dps=150)[DEPTH]
    out = np.asarray(ensemble_log_svals(masked_ensemble, key, dtype=jnp.float64).log_svals)
    assert np.isfinite(out).sum() == min_active
    np.testing.assert_allclose(out[:min_active], reference[:min_active], rtol=0, atol=LOG_SVALS_ATOL)
    out32 = np.asarray(ensemble_log_svals(masked_ensemble, key, dtype=jnp.float32).log_svals)
    # float32 keeps a relative accuracy per layer: errors grow like sqrt(depth) * eps32, not like s_1/s_i.
    np.testing.assert_allclose(out32[:min_active], out[:min_active], rtol=0, atol=DEPTH * 1e-6)


class VmapTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_vmap_over_seeds_equals_single_calls(self):
        ens = jaxspec.masked(width=WIDTH, depth=DEPTH, p=0.85)
        keys = seed_keys(0, 3)
        log_svals = self.variant(jax.vmap(lambda k: ensemble_log_svals(ens, k, dtype=jnp.float64).log_svals))
        batched = log_svals(keys)
        for s in range(3):
            single = ensemble_log_svals(ens, keys[s], dtype=jnp.float64).log_svals
            assert_close(batched[s], single)


def test_variable_widths_ensemble_against_dense_product():
    ens = jaxspec.gaussian(widths=(4, 7, 3, 6, 5))
    key = seed_keys(1, 1)[0]
    stack = ens.sample(realisation_key(key), dtype=jnp.float64)
    out = np.asarray(ensemble_log_svals(ens, key, dtype=jnp.float64).log_svals)
    chex.assert_shape(out, (4,))
    dense = _dense_product(np.asarray(stack.weights), np.asarray(stack.masks))[:5, :4]
    assert_close(out[:3], np.log(np.linalg.svd(dense, compute_uv=False))[:3])
    assert np.isneginf(out[3])  # the width-3 layer caps the rank


def test_matrix_free_layer_through_stratified_scan_equals_explicit_stack(deep_product):
    weights = jnp.asarray(deep_product[0])

    def tangent_layer(h, frame, key, index):
        del key

        def forward(x):
            return jnp.tanh(weights[index] @ x)

        push = jax.vmap(lambda t: jax.jvp(forward, (h,), (t,)), in_axes=1, out_axes=(None, 1))
        h_new, tangents = push(frame)
        return h_new, tangents, WIDTH

    h0 = jnp.asarray(np.random.default_rng(8).normal(size=WIDTH))
    out = jax.jit(lambda h: stratified_scan(tangent_layer, h, jnp.eye(WIDTH), jax.random.key(0), DEPTH))(h0)
    # The same Jacobian as an explicit stack diag(tanh'(pre_l)) W_l.
    h, layers = np.asarray(h0), []
    for w in np.asarray(weights):
        pre = w @ h
        layers.append((1 - np.tanh(pre) ** 2)[:, None] * w)
        h = np.tanh(pre)
    reference = product_log_svals(jnp.asarray(np.stack(layers)), jnp.ones((DEPTH, WIDTH)), return_frames=True)
    assert_close(out.log_svals, reference.log_svals)


def test_bad_stacks_raise_input_error():
    with pytest.raises(InputError, match="weights must be"):
        product_log_svals(jnp.ones((3, 4, 5)))
    with pytest.raises(InputError, match="masks must have shape"):
        product_log_svals(jnp.ones((3, 4, 4)), jnp.ones((3, 5)))
    with pytest.raises(InputError, match="only 0 and 1"):
        product_log_svals(jnp.ones((3, 4, 4)), 0.5 * jnp.ones((3, 4)))
    with pytest.raises(InputError, match="non-finite"):
        product_log_svals(jnp.full((2, 3, 3), jnp.nan))
    with pytest.raises(InputError, match="columns"):
        product_log_svals([np.ones((3, 2)), np.ones((3, 4))])
    with pytest.raises(InputError, match="depth"):
        stratified_scan(lambda s, f, k, i: (s, f, 1), None, jnp.eye(2), jax.random.key(0), 0)
