"""Simulation against theory: z-scores from PREDICTED standard errors (|z| < 4 on every index checked).

Every Monte Carlo here compares an estimate with a closed form of :mod:`jaxspec.theory`, scaled by the
standard error that the theory itself predicts (per-layer variances, covariance across indices, exact
moments). Sizes are modest (depth x seeds) so that the file runs in well under a minute on an idle 2-core CPU.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxspec
from jaxspec import theory
from jaxspec.analysis import ensemble_log_svals
from jaxspec.engine import ensemble_frame_sums, make_config, realisation_key, seed_keys
from tests.conftest import Z_MAX, assert_close, run_cli, zscores


def _check_spectrum(ens, *, seeds, k=None, condition="K>=i"):
    res = jaxspec.lyapunov_spectrum(
        ens, k=k, seeds=seeds, dtype="float64", condition=condition, method="direct"
    )
    kk = res.config.k
    z = zscores(
        res.mean,
        theory.lyapunov_exponents(ens, kk, condition),
        theory.predicted_stderr(ens, kk, seeds=seeds, condition=condition),
    )
    assert np.all(np.abs(z) < Z_MAX), z
    return res


# ----------------------------------------------------------------------------------------------------------
# Exponents.


@pytest.mark.parametrize("p", [0.5, 0.8])
def test_masked_bernoulli(p):
    # k = 4 keeps P(K >= i) >= 0.85 at p = 1/2; p is a pytree leaf, so both values share one compilation.
    _check_spectrum(jaxspec.masked(width=8, depth=200, p=p), seeds=512, k=4)


def test_masked_fixed_count():
    ens = jaxspec.masked(width=8, depth=400, fixed_count=5, sigma2=2.0)
    res = _check_spectrum(ens, seeds=16, k=5)
    np.testing.assert_array_equal(np.asarray(res.active_counts), 5)


def test_relu_net_is_the_exact_p_half_instance():
    # Width 16: a layer with every unit off (which kills the network for ever) has probability 2^-16.
    ens = jaxspec.relu_net(width=16, depth=400)
    _check_spectrum(ens, seeds=16)
    assert_close(theory.lyapunov_exponents(ens), theory.masked_exponents(16, 0.5, 2.0), scale=3e-3)


@pytest.mark.slow
def test_relu_net_death_and_counted_layers():
    # Width 6: P(K = 0) = 1/64 per layer, so most networks die within 100 layers; after that no layer counts.
    depth, seeds = 100, 256
    ens = jaxspec.relu_net(width=6, depth=depth)
    res = _check_spectrum(ens, seeds=seeds, k=2)
    counted = np.asarray(res.counted_layers)[:, 0]  # layers with K >= 1 before death: min(G, L), G geometric
    q = 1 / 64
    g = np.arange(depth + 1)
    pmf = np.where(g < depth, q * (1 - q) ** g, (1 - q) ** depth)
    mean, var = np.sum(g * pmf), np.sum(g**2 * pmf) - np.sum(g * pmf) ** 2
    assert_close(mean, depth * theory.expected_counted_fraction(ens, 1)[0], scale=0.3)
    z = zscores(counted.mean(), mean, np.sqrt(var / seeds))
    assert abs(z) < Z_MAX, z


def test_variable_widths_masked():
    widths = tuple([8, 12, 6, 10] * 100) + (8,)
    _check_spectrum(jaxspec.masked(widths=widths, p=0.7, sigma2=1.3), seeds=16)


@pytest.mark.slow
def test_complex_gaussian_by_an_independent_qr_simulation():
    # Complex Ginibre layers (E|z|^2 = sigma2/n) are outside the ensembles: a direct scan of complex QRs.
    n, depth, seeds, sigma2 = 4, 300, 16, 1.7

    def one_seed(key):
        def layer(q, key):
            re_key, im_key = jax.random.split(key)
            w = (jax.random.normal(re_key, (n, n)) + 1j * jax.random.normal(im_key, (n, n))) * jnp.sqrt(
                sigma2 / (2 * n)
            )
            q, r = jnp.linalg.qr(w @ q)
            return q, jnp.log(jnp.abs(jnp.diagonal(r)))

        _, logs = jax.lax.scan(layer, jnp.eye(n, dtype=jnp.complex128), jax.random.split(key, depth))
        return logs.mean(0)

    rates = jax.jit(jax.vmap(one_seed))(jax.random.split(jax.random.key(4), seeds))
    se = np.sqrt(theory.complex_gaussian_variance(n) / (depth * seeds))
    z = zscores(np.asarray(rates).mean(0), theory.complex_gaussian_exponents(n, sigma2), se)
    assert np.all(np.abs(z) < Z_MAX), z


def test_issue2_acceptance_cli_lyapunov_reproduces_newman(capsys):
    code, out, _ = run_cli(
        capsys,
        "lyapunov",
        "--ensemble",
        "gaussian",
        "--width",
        "8",
        "--depth",
        "2000",
        "--seeds",
        "16",
        "--dtype",
        "float64",
        "--json",
    )
    assert code == 0
    payload = json.loads(out)
    newman = theory.gaussian_exponents(8)
    assert_close(np.array(payload["theory"]), newman, scale=3e-3)
    predicted_se = np.sqrt(theory.gaussian_variance(8) / (2000 * 16))
    assert_close(np.array(payload["theory_stderr"]), predicted_se, scale=0.1)
    z = zscores(payload["exponents"], newman, predicted_se)
    assert np.all(np.abs(z) < Z_MAX), z


# ----------------------------------------------------------------------------------------------------------
# Spread across seeds and covariance across indices.


def test_predicted_spread_and_covariance_across_indices():
    # Masked p = 1/2: indices are correlated within a layer through K; the theory predicts the whole matrix.
    ens = jaxspec.masked(width=8, depth=200, p=0.5)
    k, seeds = 4, 512
    res = _check_spectrum(ens, seeds=seeds, k=k)
    per_seed = np.asarray(res.exponents)
    cov = theory.estimator_covariance(ens, k, seeds=1)  # covariance of one seed's estimate
    sd = np.sqrt(np.diag(cov))
    rho = cov / np.outer(sd, sd)
    empirical = np.cov(per_seed, rowvar=False)
    # Pooled variance ratio; with S seeds its predicted sd is sqrt(2 sum_ij rho_ij^2 / (S-1)) / k (Wishart).
    ratio_sq = np.mean(np.diag(empirical) / sd**2)
    ratio_sd = np.sqrt(2 * np.sum(rho**2) / (seeds - 1)) / k / 2  # sd of sqrt(ratio_sq) near 1
    assert ratio_sd < 0.03  # a fair test of [0.8, 1.25]
    assert 0.8 < np.sqrt(ratio_sq) < 1.25, np.sqrt(ratio_sq)
    assert abs(np.sqrt(ratio_sq) - 1) < Z_MAX * ratio_sd
    # Every covariance entry: z with the Wishart standard error (sigma_ii sigma_jj + sigma_ij^2)/(S - 1).
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / (seeds - 1))
    z = zscores(empirical, cov, se)
    assert np.all(np.abs(z) < Z_MAX), z
    # The within-layer correlation is real: the off-diagonal of the empirical correlation is far from 0.
    assert (empirical[0, 1] / np.sqrt(empirical[0, 0] * empirical[1, 1])) / (1 / np.sqrt(seeds)) > Z_MAX


def test_gaussian_newman_and_predicted_spread_over_many_indices():
    ens = jaxspec.gaussian(width=16, depth=50, sigma2=1.5)
    seeds = 128
    res = _check_spectrum(ens, seeds=seeds)
    predicted_var = theory.gaussian_variance(16) / 50
    ratio = np.sqrt(np.mean(np.var(np.asarray(res.exponents), axis=0, ddof=1) / predicted_var))
    ratio_sd = np.sqrt(2 / (16 * (seeds - 1))) / 2  # independent indices
    assert ratio_sd < 0.03
    assert 0.8 < ratio < 1.25 and abs(ratio - 1) < Z_MAX * ratio_sd, ratio


# ----------------------------------------------------------------------------------------------------------
# Finite depth: the offsets c_i of the true singular values.


def _haar_delta_moments(n, samples, rng):
    """Mean and variance of Delta_i = log|det B_i| - log|det B_{i-1}| over Haar O(n) top-left blocks."""
    g = rng.normal(size=(samples, n, n))
    q, r = np.linalg.qr(g)
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    logdet = np.stack([np.zeros(samples)] + [np.linalg.slogdet(q[:, :i, :i])[1] for i in range(1, n + 1)], 1)
    delta = np.diff(logdet, axis=1)
    return delta.mean(0), delta.var(0)


def test_offsets_visible_in_finite_depth_singular_values(rng):
    n, depth, seeds = 4, 60, 512  # depth x (smallest gap 0.19) = 11.6: strong separation
    ens = jaxspec.gaussian(width=n, depth=depth)
    keys = seed_keys(7, seeds)
    one = jax.vmap(lambda key: ensemble_log_svals(ens, key, dtype=jnp.float64).log_svals)
    log_s = np.asarray(jax.jit(one)(keys))
    lam, c, v = theory.gaussian_exponents(n), theory.singular_value_offsets(n), theory.gaussian_variance(n)
    # Var log s_i(M_L) = L v_i - Var(Delta_i) <= L v_i: a conservative predicted standard error.
    se = np.sqrt(depth * v / seeds)
    z = zscores(log_s.mean(0), depth * lam + c, se)
    assert np.all(np.abs(z) < Z_MAX), z
    # Without the offset the top index is rejected: (1/L) log s_1 is biased by c_1/L.
    assert zscores(log_s.mean(0)[0], depth * lam[0], se[0]) > Z_MAX
    # Paired with the QR sums of the same realisations (Haar frame), log s_i - QR_i = -Delta_i is independent
    # of the product, with mean c_i and the Haar-block variance (predicted by an independent Monte Carlo).
    config = make_config(n, max_k=n, dtype="float64")
    sums = jax.jit(jax.vmap(lambda key: ensemble_frame_sums(ens, key, config).log_r_sum))(keys)
    diff = log_s - np.asarray(sums)
    haar_mean, haar_var = _haar_delta_moments(n, 50_000, rng)
    assert np.all(np.abs(zscores(-haar_mean, c, np.sqrt(haar_var.max() / 50_000))) < Z_MAX)
    z_paired = zscores(diff.mean(0), c, np.sqrt(haar_var / seeds))
    assert np.all(np.abs(z_paired) < Z_MAX), z_paired
    # Every c_i is visible.
    assert np.all(np.abs(zscores(diff.mean(0), 0.0, np.sqrt(haar_var / seeds))) > Z_MAX)


# ----------------------------------------------------------------------------------------------------------
# Alignment: E log sin angle(v_1(J_l), v_1(J_L)) ~ -l (lambda_1 - lambda_2) + const.


def test_alignment_slope_is_the_top_gap():
    n, depth, seeds = 4, 90, 256
    ens = jaxspec.gaussian(width=n, depth=depth)
    keys = seed_keys(3, seeds)
    stacks = jax.vmap(lambda key: ens.sample(realisation_key(key), dtype=jnp.float64))(keys)
    weights = np.asarray(stacks.weights)
    prod = np.broadcast_to(np.eye(n), (seeds, n, n)).copy()
    tops = []
    for l in range(depth):
        prod = weights[:, l] @ prod
        prod /= np.linalg.norm(prod, axis=(1, 2), keepdims=True)
        tops.append(np.linalg.svd(prod)[2][:, 0, :])  # v_1(J_l), (seeds, n)
    tops = np.stack(tops, 1)
    final = tops[:, -1:, :]
    # sin of the angle as the norm of the projection residual (never sqrt(1 - cos^2)).
    window = np.arange(15, 46)
    near = tops[:, window - 1]
    resid = near - np.sum(near * final, axis=2, keepdims=True) * final
    log_sin = np.log(np.linalg.norm(resid, axis=2))
    slopes = np.polyfit(window, log_sin.T, 1)[0]
    # The slope of one seed has no closed-form variance: its standard error is the spread across the
    # independent seeds (a t-test with 255 degrees of freedom).
    expected = -theory.alignment_slope(theory.gaussian_exponents(n))
    z = zscores(slopes.mean(), expected, slopes.std(ddof=1) / np.sqrt(seeds))
    assert abs(z) < Z_MAX, z


# ----------------------------------------------------------------------------------------------------------
# ReLU ||J u||: exact Hanin-Nica moments at variable widths.


def test_relu_norm_moments_monte_carlo():
    widths = (6, 10, 8, 12)
    ens = jaxspec.relu_net(widths=widths)
    samples = 20_000
    keys = seed_keys(11, samples)
    u = jnp.zeros(ens.max_width).at[0].set(1.0)

    def norm_sq(key):
        stack = ens.sample(realisation_key(key), dtype=jnp.float64)
        v = u
        for l in range(ens.depth):
            v = stack.masks[l] * (stack.weights[l] @ v)
        return jnp.sum(v * v)

    sq = np.asarray(jax.jit(jax.vmap(norm_sq))(keys))
    m = theory.relu_log_norm_moments(widths)
    laws = theory.count_laws(widths, p=0.5)
    nonzero = sq > 0
    z_prob = zscores(nonzero.mean(), m.prob_nonzero, np.sqrt(m.prob_nonzero * (1 - m.prob_nonzero) / samples))
    logs = np.log(sq[nonzero])
    z_mean = zscores(logs.mean(), m.mean, np.sqrt(m.variance / nonzero.sum()))
    # The sample variance of log||Ju||^2: its sd needs the fourth central moment; we use the normal-theory
    # 2 sigma^4/(S-1) inflated by an upper bound on the excess kurtosis of a sum of log-chi^2 terms (< 4).
    z_var = zscores(logs.var(ddof=1), m.variance, m.variance * np.sqrt((2 + 4) / (nonzero.sum() - 1)))
    e4, e8 = theory.norm_power_moment(laws, 2), theory.norm_power_moment(laws, 4)
    z_second = zscores(sq.mean(), m.second, np.sqrt((m.fourth - m.second**2) / samples))
    z_fourth = zscores(np.mean(sq**2), e4, np.sqrt((e8 - e4**2) / samples))
    zs = np.array([z_prob, z_mean, z_var, z_second, z_fourth])
    assert np.all(np.abs(zs) < Z_MAX), zs
    assert_close(m.fourth, e4)  # two closed forms of E||Ju||^4


# ----------------------------------------------------------------------------------------------------------
# Wide-first: finite-width J J^T moments of the masked Gaussian product.


@jax.jit
def _jjt_traces(ens, keys):
    def traces(key):
        stack = ens.sample(realisation_key(key), dtype=jnp.float64)
        n = ens.max_width
        j = jnp.eye(n)
        for l in range(ens.depth):
            j = stack.masks[l][:, None] * (stack.weights[l] @ j)
        a = j @ j.T
        return jnp.trace(a) / n, jnp.sum(a * a) / n

    return jax.vmap(traces)(keys)


@pytest.mark.slow
@pytest.mark.parametrize("p", [1.0, 0.5])
def test_jjt_second_moment_monte_carlo(p):
    n, depth, seeds = 24, 3, 2000
    ens = jaxspec.masked(width=n, depth=depth, p=p, sigma2=1 / p)
    first, second = (np.asarray(x) for x in _jjt_traces(ens, seed_keys(5, seeds)))
    exact = theory.jjt_moments(n, depth, p=p)
    # Standard errors from the spread across independent seeds (no closed form for the 4th spectral moment).
    z = [
        zscores(first.mean(), exact.mean, first.std(ddof=1) / np.sqrt(seeds)),
        zscores(second.mean(), exact.second, second.std(ddof=1) / np.sqrt(seeds)),
    ]
    assert np.all(np.abs(z) < Z_MAX), z
