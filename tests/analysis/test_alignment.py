"""Alignment against oracles: scipy's angles, exact rotations, the sandwich inequality, Oseledets rates."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxspec import theory
from jaxspec.analysis import (
    prefix_alignment,
    principal_angles,
    sandwich,
    scaled_prefix_products,
    scaled_suffix_products,
    segment_alignment,
    split_sandwich,
    subspace_sines,
    suffix_alignment,
)
from tests.conftest import Z_MAX, assert_close, zscores

# scipy.linalg.subspace_angles switches to sqrt(1 - cos^2) for some angles, which floors near 1e-8: the bound
# on angles that are exactly zero.
SCIPY_ZERO_ANGLE_FLOOR = 1e-7


def _orthonormal(rng, n, p):
    return np.linalg.qr(rng.normal(size=(n, p)))[0]


@pytest.mark.parametrize("n,p,q", [(10, 3, 2), (10, 2, 3), (6, 3, 3), (20, 5, 1), (7, 4, 4)])
def test_principal_angles_match_scipy(rng, n, p, q):
    for _ in range(5):
        u, v = _orthonormal(rng, n, p), _orthonormal(rng, n, q)
        ours = np.asarray(principal_angles(jnp.asarray(u), jnp.asarray(v)))
        forced = max(p + q - n, 0)  # dim(span u & span v) >= p + q - n: exactly zero angles
        assert_close(ours[:forced], 0.0)
        scipy_angles = np.sort(scipy.linalg.subspace_angles(u, v))
        if forced == 0:
            assert_close(ours, scipy_angles, scale=10)
        else:
            np.testing.assert_allclose(ours, scipy_angles, rtol=1e-10, atol=SCIPY_ZERO_ANGLE_FLOOR)


def test_tiny_angles_resolved_by_projection_residuals():
    # An exact rotation by theta in the (e1, e2) plane: the oracle is sin(theta) itself.
    for theta in (1e-3, 1e-8, 1e-12, 1e-15):
        e = np.eye(5)
        u = e[:, :1]
        v = (np.cos(theta) * e[:, 0] + np.sin(theta) * e[:, 1])[:, None]
        got = float(subspace_sines(jnp.asarray(u), jnp.asarray(v))[0])
        # Relative accuracy down to theta = 1e-15: the table's absolute floor (1e-14) would hide it.
        assert abs(got - np.sin(theta)) <= 1e-15 * np.sin(theta) + 1e-30
        # sqrt(1 - cos^2) would floor near 1e-8; the residual does not.
        np.testing.assert_allclose(
            float(principal_angles(jnp.asarray(u), jnp.asarray(v))[0]), theta, rtol=1e-12
        )


class BatchedAnglesTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_batched_angles_equal_a_loop(self):
        rng = np.random.default_rng(0)
        u = np.stack([_orthonormal(rng, 8, 3) for _ in range(4)])
        v = np.stack([_orthonormal(rng, 8, 2) for _ in range(4)])
        batched = np.asarray(self.variant(principal_angles)(jnp.asarray(u), jnp.asarray(v)))
        for b in range(4):
            assert_close(batched[b], np.sort(scipy.linalg.subspace_angles(u[b], v[b])))


def _random_pairs(rng, shape, count):
    """``count`` random (A, B) pairs of one shape, four kinds: Gaussian, strongly separated A, u_1(B) tilted
    towards v_1(A) by a random amount, rank-deficient A."""
    m, n, p = shape
    a, b = rng.normal(size=(count, m, n)), rng.normal(size=(count, n, p))
    for t in range(count):
        kind = t % 4
        if kind == 1:  # strong separation: scale the top singular value up
            ua, sa, vta = np.linalg.svd(a[t], full_matrices=False)
            sa[0] *= 50
            a[t] = (ua * sa) @ vta
        elif kind == 2:  # align u_1(B) with v_1(A) up to a random tilt (a Householder reflection)
            vta = np.linalg.svd(a[t])[2]
            ub = np.linalg.svd(b[t])[0]
            target = vta[0] + rng.uniform(0, 1) * rng.normal(size=n)
            target /= np.linalg.norm(target)
            w = ub[:, 0] - target
            b[t] = (np.eye(n) - 2 * np.outer(w, w) / max(w @ w, 1e-300)) @ b[t]
        elif kind == 3 and min(m, n) > 2:  # rank-deficient A
            a[t][:, -1] = a[t][:, 0]
    return a, b


@pytest.mark.parametrize("shape", [(5, 6, 4), (6, 6, 6), (3, 8, 2), (8, 3, 7)])
def test_sandwich_bounds_hold_on_many_random_instances(rng, shape):
    a, b = _random_pairs(rng, shape, 200)
    res = jax.jit(sandwich)(jnp.asarray(a), jnp.asarray(b))
    ratio, lower, upper = (np.asarray(x) for x in (res.ratio, res.lower, res.upper))
    # Independent check of the ratio itself with numpy.
    expected = np.linalg.norm(a @ b, 2, axis=(1, 2)) / (
        np.linalg.norm(a, 2, axis=(1, 2)) * np.linalg.norm(b, 2, axis=(1, 2))
    )
    assert_close(ratio, expected, scale=0.3)
    assert np.all(lower <= ratio * (1 + 1e-12) + 1e-15)
    assert np.all(ratio <= upper * (1 + 1e-12) + 1e-15)
    assert np.all(ratio <= 1 + 1e-12)
    assert np.ptp(ratio) > 0.5  # the instances span the range


def test_sandwich_is_one_for_exactly_aligned_factors(rng):
    a = rng.normal(size=(6, 6))
    ua, sa, vta = np.linalg.svd(a)
    b = np.outer(vta[0], rng.normal(size=6))  # rank one, u_1(B) = v_1(A)
    res = sandwich(jnp.asarray(a), jnp.asarray(b))
    assert_close(np.array([float(res.ratio), float(res.overlap)]), np.ones(2), scale=0.3)


def test_scaled_prefix_and_suffix_products_equal_explicit_products(rng):
    w = rng.normal(size=(7, 4, 4))
    d = (rng.uniform(size=(7, 4)) < 0.7).astype(float)
    prefixes, scales = scaled_prefix_products(jnp.asarray(w), jnp.asarray(d))
    m = np.eye(4)
    for l in range(7):
        m = (d[l][:, None] * w[l]) @ m
        assert_close(np.exp(float(scales[l])) * np.asarray(prefixes[l]), m)
    suffixes, sscales = scaled_suffix_products(jnp.asarray(w), jnp.asarray(d))
    for l in range(7):
        s = np.eye(4)
        for j in range(l, 7):
            s = (d[j][:, None] * w[j]) @ s
        assert_close(np.exp(float(sscales[l])) * np.asarray(suffixes[l]), s)


def test_prefix_alignment_matches_dense_svd(rng):
    w = rng.normal(size=(12, 5, 5)) / np.sqrt(5)
    sines = np.asarray(prefix_alignment(jnp.asarray(w), k=2))
    prods = []
    m = np.eye(5)
    for l in range(12):
        m = w[l] @ m
        prods.append(m.copy())
    v_last = np.linalg.svd(prods[-1])[2][:2].T
    for l in range(12):
        v = np.linalg.svd(prods[l])[2][:2].T
        expected = np.sort(np.sin(scipy.linalg.subspace_angles(v, v_last)))
        assert_close(sines[l], expected)


def _gaussian_stacks(n, depth, seeds):
    keys = jax.random.split(jax.random.key(42), seeds)
    return jax.vmap(lambda k: jax.random.normal(k, (depth, n, n), jnp.float64) / np.sqrt(n))(keys)


def test_prefix_alignment_rate_is_lambda1_minus_lambda2_for_gaussian_products():
    # N = 4 Ginibre: lambda_1 - lambda_2 = (psi(2) - psi(3/2)) / 2 = 0.19315.
    n, depth, seeds = 4, 100, 400
    gap = float(-np.diff(theory.gaussian_exponents(n, k=2))[0])
    sines = np.asarray(jax.jit(jax.vmap(prefix_alignment))(_gaussian_stacks(n, depth, seeds)))[..., 0]
    log_sin = np.log(sines[:, :-1])  # the last prefix is J_L itself
    # Fit window: past the initial transient, well before l = L (where v_1(J_L) itself still moves).
    l = np.arange(1, depth)
    window = (l >= 10) & (l <= 70)
    slope = np.polyfit(l[window], log_sin[:, window].mean(0), 1)[0]
    assert abs(-slope - gap) < 0.1 * gap, (slope, gap)


def test_suffix_alignment_rate_is_lambda1_minus_lambda2_for_gaussian_products():
    n, depth, seeds = 4, 100, 400
    gap = float(-np.diff(theory.gaussian_exponents(n, k=2))[0])
    sines = np.asarray(jax.jit(jax.vmap(suffix_alignment))(_gaussian_stacks(n, depth, seeds)))[..., 0]
    log_sin = np.log(sines[:, 1:])  # row l is the suffix A_L ... A_{l+1}; row 0 is J_L itself
    remaining = depth - np.arange(1, depth)  # layers left in the suffix
    window = (remaining >= 10) & (remaining <= 70)
    slope = np.polyfit(remaining[window], log_sin[:, window].mean(0), 1)[0]
    assert abs(-slope - gap) < 0.1 * gap, (slope, gap)


class SegmentAlignmentTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_segment_sandwich_matches_dense_and_independent_overlaps_are_haar_like(self):
        n, seeds = 6, 200
        stacks = _gaussian_stacks(n, 12, seeds)
        res = self.variant(jax.vmap(lambda w: segment_alignment(w, None, (0, 4, 8, 12), k=3)))(stacks)
        # Dense oracle for one seed.
        w = np.asarray(stacks[0])
        seg = [np.linalg.multi_dot(list(w[lo:hi][::-1])) for lo, hi in ((0, 4), (4, 8), (8, 12))]
        for j in range(2):
            dense = sandwich(jnp.asarray(seg[j + 1]), jnp.asarray(seg[j]))
            assert_close(float(res.sandwich.ratio[0, j]), float(dense.ratio))
            assert_close(float(res.sandwich.upper[0, j]), float(dense.upper))
        ratio, lower, upper = (
            np.asarray(x) for x in (res.sandwich.ratio, res.sandwich.lower, res.sandwich.upper)
        )
        assert np.all(lower <= ratio + 1e-12) and np.all(ratio <= upper + 1e-12)
        # Independent segments: v_1(A) is Haar on the sphere given B, so E |<v_1(A), u_1(B)>|^2 = 1/n
        # exactly, with Var = E c^4 - (1/n)^2 = 3/(n(n+2)) - 1/n^2.
        c2 = np.asarray(res.overlaps)[:, :, 0, 0] ** 2
        mean, se = c2.mean(), np.sqrt((3 / (n * (n + 2)) - 1 / n**2) / c2.size)
        assert abs(zscores(mean, 1 / n, se)) < Z_MAX, (mean, 1 / n, se)


def test_split_sandwich_equals_dense_sandwich_of_explicit_segments(rng):
    w = rng.normal(size=(11, 5, 5)) / np.sqrt(5)
    d = (rng.uniform(size=(11, 5)) < 0.8).astype(float)
    res = split_sandwich(jnp.asarray(w), jnp.asarray(d), 6)
    chex.assert_shape(res.ratio, (5,))
    layers = d[:, :, None] * w
    for depth in range(1, 6):
        after = np.linalg.multi_dot([np.eye(5)] + list(layers[6 : 6 + depth][::-1]))
        before = np.linalg.multi_dot([np.eye(5)] + list(layers[6 - depth : 6][::-1]))
        dense = sandwich(jnp.asarray(after), jnp.asarray(before))
        for got, want in zip(res, dense, strict=True):
            assert_close(float(got[depth - 1]), float(want))
