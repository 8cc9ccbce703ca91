"""jaxspec.hessian against dense oracles: eigvalsh, jax.hessian, jax.jacfwd, matfree, Gauss quadrature
identities, and Monte Carlo estimators against their exact predicted standard errors."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matfree import decomp, stochtrace

from jaxspec import InputError, hessian
from tests.conftest import Z_MAX, assert_close, zscores


def wishart(rng, dim, samples):
    x = rng.standard_normal((dim, samples))
    return x @ x.T / samples


def operator(matrix):
    a = jnp.asarray(matrix)
    return lambda v: a @ v


def mlp_loss_and_params(rng):
    """A small tanh MLP with a squared loss on random data, params as a nested pytree."""
    x = jnp.asarray(rng.standard_normal((12, 4)))
    y = jnp.asarray(rng.standard_normal((12, 2)))
    params = {
        "layer0": {"w": jnp.asarray(rng.standard_normal((4, 5)) / 2), "b": jnp.zeros(5)},
        "layer1": {"w": jnp.asarray(rng.standard_normal((5, 2)) / 2)},
    }

    def predict(p):
        return jnp.tanh(x @ p["layer0"]["w"] + p["layer0"]["b"]) @ p["layer1"]["w"]

    def loss(p):
        return 0.5 * jnp.mean(jnp.sum((predict(p) - y) ** 2, axis=1))

    return loss, predict, y, params


# --- Lanczos ------------------------------------------------------------------------------------------------
# The dense-matrix cases share a few jitted shapes (P = 40) so that the file compiles each kernel once.

DIM = 40


def _lanczos_run(a, key, *, k, num_steps, which):
    return hessian.lanczos_eigh(
        lambda v: a @ v, jnp.zeros(a.shape[0], a.dtype), k, num_steps=num_steps, which=which, key=key
    )


_lanczos_jit = jax.jit(_lanczos_run, static_argnames=("k", "num_steps", "which"))


def _lanczos(a, k=10, num_steps=DIM, which="top", key=None):
    key = jax.random.key(0) if key is None else key
    return _lanczos_jit(jnp.asarray(a), key, k=k, num_steps=num_steps, which=which)


@pytest.mark.parametrize("samples", [120, 15])  # full rank, and rank 15 < 40 (Krylov breakdowns)
def test_lanczos_full_steps_matches_eigvalsh_on_wishart(rng, samples):
    a = wishart(rng, DIM, samples)
    exact = np.linalg.eigvalsh(a)
    top = _lanczos(a)
    bottom = _lanczos(a, which="bottom")
    assert_close(top.eigenvalues, exact[::-1][:10])
    assert_close(bottom.eigenvalues, exact[:10])
    # Ritz vectors are eigenvectors: A y = theta y, orthonormal.
    vecs = np.asarray(top.eigenvectors)
    assert_close(a @ vecs.T, vecs.T * np.asarray(top.eigenvalues))
    assert_close(vecs @ vecs.T, np.eye(10))


def test_lanczos_partial_steps_respect_the_ritz_residual_bound(rng):
    # For symmetric A every Ritz value has an eigenvalue within its residual norm ||A y - theta y||.
    a = wishart(rng, DIM, 80)
    exact = np.linalg.eigvalsh(a)
    pairs = _lanczos(a, num_steps=22)
    vecs = np.asarray(pairs.eigenvectors)
    true_residuals = np.linalg.norm(a @ vecs.T - vecs.T * np.asarray(pairs.eigenvalues), axis=0)
    assert_close(pairs.residuals, true_residuals)
    distance = np.min(np.abs(np.asarray(pairs.eigenvalues)[:, None] - exact[None]), axis=1)
    assert np.all(distance <= true_residuals + 1e-12)
    # The top Ritz value converges first and never overshoots (Cauchy interlacing).
    assert pairs.eigenvalues[0] <= exact[-1] + 1e-12
    assert exact[-1] - pairs.eigenvalues[0] < 1e-8


def test_lanczos_finds_every_copy_of_a_repeated_eigenvalue(rng):
    # 9 equal outliers and a 31-dimensional null space: one copy per restart block.
    u = np.linalg.qr(rng.standard_normal((DIM, 9)))[0]
    a = 0.163243 * u @ u.T
    # Tolerances per dtype, tighter in float32 (rtol 1e-6 on an O(0.1) value) than TOLERANCES["float32"]
    # with its absolute floor allows: kept by hand.
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-6)):
        pairs = _lanczos(a.astype(dtype), num_steps=22)
        np.testing.assert_allclose(pairs.eigenvalues[:9], 0.163243, rtol=tol)
        assert abs(float(pairs.eigenvalues[9])) < 10 * tol
        vecs = np.asarray(pairs.eigenvectors[:9], float)
        np.testing.assert_allclose(vecs @ u @ u.T, vecs, atol=10 * tol)  # inside the outlier space


def test_lanczos_tridiagonal_matches_matfree_and_gauss_quadrature(rng):
    a = wishart(rng, 30, 60)
    start = jnp.asarray(rng.standard_normal(30))
    ours = hessian.lanczos_tridiagonal(operator(a), start, 12)
    theirs = decomp.tridiag_sym(12, materialize=False, reortho="full")(operator(a), start)
    diag, off = theirs.J_small
    assert_close(ours.diagonal, diag)
    assert_close(np.abs(ours.off_diagonal), np.abs(off))
    assert_close(np.abs(np.asarray(ours.basis)), np.abs(np.asarray(theirs.Q_tall)))
    assert not bool(ours.restarts.any())
    # The Gauss rule of the same run is exact up to degree 2m - 1 = 23: e_1^T T^p e_1 = u^T A^p u.
    t = np.asarray(hessian.tridiagonal_matrix(ours))
    unit = np.asarray(start) / np.linalg.norm(start)
    for power in range(24):
        expected = unit @ np.linalg.matrix_power(a, power) @ unit
        assert_close(np.linalg.matrix_power(t, power)[0, 0], expected)


def test_lanczos_on_small_model_hessian_matches_dense(rng):
    loss, _, _, params = mlp_loss_and_params(rng)
    dense = np.asarray(hessian.dense_hessian(loss, params))
    exact = np.linalg.eigvalsh(dense)
    dim = dense.shape[0]
    # All Ritz values at m = P: the whole (indefinite) spectrum, top first.
    pairs = jax.jit(lambda p: hessian.lanczos_eigh(hessian.hessian_matvec(loss, p), p, dim, num_steps=dim))(
        params
    )
    assert_close(pairs.eigenvalues, exact[::-1])
    assert exact[0] < 0
    # Eigenvectors come back as pytrees shaped like the parameters.
    chex.assert_shape(pairs.eigenvectors["layer0"]["w"], (dim, 4, 5))


class LanczosTransformsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_lanczos_eager_jit_and_vmap_agree(self):
        a = jnp.asarray(wishart(np.random.default_rng(0), DIM, 80))
        keys = jax.random.split(jax.random.key(3), 3)
        looped = np.stack([np.asarray(_lanczos(a, num_steps=22, key=k).eigenvalues) for k in keys])

        def top(key):
            pairs = hessian.lanczos_eigh(lambda v: a @ v, jnp.zeros(DIM), 10, num_steps=22, key=key)
            return pairs.eigenvalues

        assert_close(self.variant(jax.vmap(top))(keys), looped, scale=0.3)
        assert_close(self.variant(top)(keys[0]), looped[0], scale=0.3)


def test_lanczos_rejects_bad_arguments():
    eye = lambda v: v  # noqa: E731
    with pytest.raises(InputError, match="num_steps"):
        hessian.lanczos_eigh(eye, jnp.zeros(5), 2, num_steps=6)
    with pytest.raises(InputError, match="k must"):
        hessian.lanczos_eigh(eye, jnp.zeros(5), 0)
    with pytest.raises(InputError, match="which"):
        hessian.lanczos_eigh(eye, jnp.zeros(5), 1, which="largest")


# --- products -----------------------------------------------------------------------------------------------


def test_hvp_and_dense_matrix_match_jax_hessian(rng):
    loss, _, _, params = mlp_loss_and_params(rng)
    dense = hessian.dense_hessian(loss, params)
    assert_close(hessian.dense_matrix(hessian.hessian_matvec(loss, params), params), dense)
    v = jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape)), params)
    flat_v = jax.flatten_util.ravel_pytree(v)[0]
    flat_hv = jax.flatten_util.ravel_pytree(hessian.hvp(loss, params, v))[0]
    assert_close(flat_hv, dense @ flat_v)


def test_gauss_newton_matches_jacobian_formula(rng):
    loss, predict, y, params = mlp_loss_and_params(rng)
    output_loss = lambda f: 0.5 * jnp.mean(jnp.sum((f - y) ** 2, axis=1))  # noqa: E731
    gn = hessian.dense_matrix(hessian.gauss_newton_matvec(predict, output_loss, params), params)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    jac = jax.jacfwd(lambda x: predict(unravel(x)).ravel())(flat)
    assert_close(gn, jac.T @ jac / y.shape[0])
    # For a model linear in its parameters, Gauss-Newton is the Hessian.
    x = jnp.asarray(rng.standard_normal((7, 3)))
    linear_predict = lambda w: x @ w  # noqa: E731
    w0 = jnp.asarray(rng.standard_normal((3, 2)))
    gn_lin = hessian.dense_matrix(
        hessian.gauss_newton_matvec(
            linear_predict, output_loss_lin := (lambda f: 0.5 * jnp.sum(jnp.sin(f) + f**2)), w0
        ),
        w0,
    )
    dense_lin = hessian.dense_hessian(lambda w: output_loss_lin(linear_predict(w)), w0)
    assert_close(gn_lin, dense_lin)


def test_block_loss_is_the_diagonal_block_of_the_full_hessian(rng):
    loss, _, _, params = mlp_loss_and_params(rng)
    dense = np.asarray(hessian.dense_hessian(loss, params))
    # ravel_pytree orders leaves layer0/b, layer0/w, layer1/w.
    sizes = [leaf.size for leaf in jax.tree.leaves(params)]
    start = sum(sizes[:2])
    block, block_fn = hessian.block_loss(loss, params, hessian.path_mask(params, "layer1"))
    # rtol only: the blocks hold exact zeros and tiny entries that the table's absolute floor would swamp.
    np.testing.assert_allclose(hessian.dense_hessian(block_fn, block), dense[start:, start:], rtol=1e-12)
    block, block_fn = hessian.block_loss(loss, params, hessian.path_mask(params, "layer0", "w"))
    np.testing.assert_allclose(
        hessian.dense_hessian(block_fn, block), dense[sizes[0] : start, sizes[0] : start], rtol=1e-12
    )
    with pytest.raises(InputError, match="prefix"):
        hessian.path_mask(params, "layer2")


# --- density and trace -------------------------------------------------------------------------------------

_slq_jit = jax.jit(
    lambda a, key: hessian.slq(lambda v: a @ v, jnp.zeros(DIM), num_steps=12, num_probes=64, key=key)
)


def test_slq_is_a_probability_measure_inside_the_spectrum(rng):
    a = wishart(rng, DIM, 20) - 0.3 * np.eye(DIM)  # a bulk at -0.3 (rank 20) and an indefinite spectrum
    exact = np.linalg.eigvalsh(a)
    quad = _slq_jit(jnp.asarray(a), jax.random.key(1))
    assert_close(quad.weights.sum(axis=1), 1.0, scale=0.3)
    assert float(quad.nodes.min()) >= exact[0] - 1e-10 and float(quad.nodes.max()) <= exact[-1] + 1e-10
    width = 0.05
    grid = np.linspace(exact[0] - 10 * width, exact[-1] + 10 * width, 4001)
    density = np.asarray(hessian.spectral_density(quad, jnp.asarray(grid), width))
    np.testing.assert_allclose(np.trapezoid(density, grid), 1.0, rtol=1e-8)  # the trapezoid rule's error
    assert np.all(density >= 0)


def test_slq_moments_agree_with_traces_within_predicted_error(rng):
    # Per probe, sum tau theta^k = v^T A^k v / P exactly (Rademacher: ||v||^2 = P), so the probe average is a
    # Hutchinson estimate of tr(A^k) / P whose variance is 2 (||A^k||_F^2 - sum_i (A^k)_ii^2) / (probes P^2).
    a = wishart(rng, DIM, 80)
    probes = 64
    quad = _slq_jit(jnp.asarray(a), jax.random.key(2))
    for power in (1, 2, 3):
        ak = np.linalg.matrix_power(a, power)
        estimate = np.mean(np.sum(np.asarray(quad.weights) * np.asarray(quad.nodes) ** power, axis=1))
        se = np.sqrt(2 * (np.sum(ak**2) - np.sum(np.diag(ak) ** 2)) / probes) / DIM
        assert abs(zscores(estimate, np.trace(ak) / DIM, se)) < Z_MAX


def test_hutchinson_trace_within_predicted_error(rng):
    loss, _, _, params = mlp_loss_and_params(rng)
    dense = np.asarray(hessian.dense_hessian(loss, params))
    samples = 200
    estimate = jax.jit(
        lambda p, key: hessian.hutchinson_trace(
            hessian.hessian_matvec(loss, p), p, num_samples=samples, key=key
        )
    )
    est = estimate(params, jax.random.key(4))
    predicted_se = np.sqrt(2 * (np.sum(dense**2) - np.sum(np.diag(dense) ** 2)) / samples)
    assert abs(zscores(float(est.mean), np.trace(dense), predicted_se)) < Z_MAX
    assert float(est.stderr) > 0
    # The same probes through matfree's stochtrace (an independent implementation) give the same numbers.
    sampler = stochtrace.sampler_signs(params, num=samples)
    matfree_estimate = stochtrace.estimator_monte_carlo_mean_and_sem(stochtrace.monte_carlo_trace(), sampler)
    mean, sem = matfree_estimate(hessian.hessian_matvec(loss, params), jax.random.key(4))
    assert_close(est.mean, mean, "float32", scale=abs(float(mean)))
    assert_close(est.stderr, sem * np.sqrt(samples / (samples - 1.0)), "float32", scale=float(sem))


# --- alignment ----------------------------------------------------------------------------------------------


def test_alignment_and_overlap_exact_cases():
    a = np.diag([3.0, 2.0, 0.0])
    assert float(hessian.alignment(jnp.array([0.0, 1.0, 0.0]), a @ np.array([0.0, 1.0, 0.0]))) == 1.0
    v = np.array([1.0, 1.0, 0.0])
    assert_close(hessian.alignment(v, a @ v), 25.0 / (2 * 13), scale=3e-3)
    assert float(hessian.alignment(jnp.array([0.0, 0.0, 1.0]), jnp.zeros(3))) == 0.0
    top = jnp.eye(3)[:2]  # the top-2 eigenvectors of diag(3, 2, 0)
    assert_close(hessian.gradient_overlap(jnp.array([1.0, 2.0, 2.0]), top), 5 / 9, scale=0.3)
