"""Exact fast paths, validated in distribution against the direct path and the closed forms; stacked frames
validated in realisation against the per-input engine and a dense float64 oracle."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import jaxspec
from jaxspec import InputError, theory
from jaxspec.engine import (
    benettin_scan,
    chi_frame_sums,
    ensemble_frame_sums,
    gaussian_frame_sums,
    initial_frame,
    log_gamma_variates,
    make_config,
    resolve_method,
    seed_keys,
    shared_weights_spectrum,
    stacked_frame_sums,
)
from tests.conftest import Z_MAX, assert_close, zscores

FAST = ["gaussian_frame", "chi"]
# The default run keeps the chi sampler (the default of lyapunov_spectrum); the Gaussian-frame sampler's
# statistical twins run in the slow step.
FAST_DEFAULT_RUN = [pytest.param("gaussian_frame", marks=pytest.mark.slow), "chi"]
# Kolmogorov-Smirnov tests reject at p < 1e-4, the false-alarm rate of |z| > Z_MAX (6e-5).
KS_PVALUE_MIN = 1e-4


@pytest.mark.parametrize("a", [0.5, 1.0, 2.5, 40.0, 511.5])
def test_log_gamma_variates_mean_variance_and_law(a):
    n = 40_000
    x = np.asarray(log_gamma_variates(jax.random.key(7), jnp.full((n,), a), jnp.float64), float)
    mean, var = special.digamma(a), special.polygamma(1, a)
    z_mean = zscores(x.mean(), mean, np.sqrt(var / n))
    # Var of the sample variance: (kappa_4 + 2 sigma^4) / n with kappa_4 = psi'''(a) for log-gamma.
    z_var = zscores(x.var(ddof=1), var, np.sqrt((special.polygamma(3, a) + 2 * var**2) / n))
    assert abs(z_mean) < Z_MAX and abs(z_var) < Z_MAX, (z_mean, z_var)
    assert stats.kstest(x, stats.loggamma(a).cdf).pvalue > KS_PVALUE_MIN


def _two_sample_z(a, b, se_a, se_b):
    return zscores(a.mean, b.mean, np.sqrt(se_a**2 + se_b**2))


@pytest.mark.parametrize("method", FAST_DEFAULT_RUN)
def test_fast_paths_match_direct_path_and_closed_form_masked(method):
    ens = jaxspec.masked(width=12, depth=400, p=0.5, sigma2=2.0)
    seeds = 16
    direct = jaxspec.lyapunov_spectrum(ens, seeds=seeds, dtype="float64", method="direct")
    fast = jaxspec.lyapunov_spectrum(ens, seeds=seeds, seed=1, dtype="float64", method=method)
    se = theory.predicted_stderr(ens, seeds=seeds)
    z_pair = _two_sample_z(fast, direct, se, se)
    z_theory = zscores(fast.mean, theory.lyapunov_exponents(ens), se)
    assert np.all(np.abs(z_pair) < Z_MAX), z_pair
    assert np.all(np.abs(z_theory) < Z_MAX), z_theory
    # Counted layers: Binomial(L S, P(K >= i)) in both paths.
    p = theory.prob_active_at_least(ens)
    frac = np.asarray(fast.counted_layers).sum(0) / (ens.depth * seeds)
    assert np.all(np.abs(zscores(frac, p, np.sqrt(p * (1 - p) / (ens.depth * seeds)))) < Z_MAX)


def test_chi_path_per_seed_variance_matches_prediction():
    ens = jaxspec.masked(width=16, depth=200, p=0.5)
    seeds = 96
    res = jaxspec.lyapunov_spectrum(ens, k=8, seeds=seeds, dtype="float64", method="chi")
    predicted_var = theory.predicted_stderr(ens, k=8, seeds=1) ** 2
    sample_var = np.var(np.asarray(res.exponents), axis=0, ddof=1)
    # Sample variance of ~normal per-seed means: se = sigma^2 sqrt(2 / (S - 1)).
    z = zscores(sample_var, predicted_var, predicted_var * np.sqrt(2 / (seeds - 1)))
    assert np.all(np.abs(z) < Z_MAX), z


@pytest.mark.parametrize("method", FAST_DEFAULT_RUN)
def test_per_layer_log_r_has_the_direct_law_two_sample_ks(method):
    ens = jaxspec.masked(width=8, depth=300, p=0.75)
    kw = dict(seeds=8, dtype="float64", rates_every=1)
    direct = np.asarray(jaxspec.lyapunov_spectrum(ens, method="direct", **kw).local_rates)
    fast = np.asarray(jaxspec.lyapunov_spectrum(ens, seed=3, method=method, **kw).local_rates)
    for i in (0, 3, 7):
        a, b = direct[..., i].ravel(), fast[..., i].ravel()
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        assert stats.ks_2samp(a, b).pvalue > KS_PVALUE_MIN, i


@pytest.mark.parametrize("method", FAST_DEFAULT_RUN)
def test_fast_paths_fixed_count_and_variable_widths_match_theory(method):
    fixed = jaxspec.masked(width=10, depth=300, fixed_count=7)
    varw = jaxspec.gaussian(widths=(6, 9, 7, 12) * 60 + (6,), sigma2=1.5)
    for ens, k in ((fixed, 7), (varw, 5)):
        res = jaxspec.lyapunov_spectrum(ens, k=k, seeds=12, dtype="float64", method=method)
        se = theory.predicted_stderr(ens, k, seeds=12)
        z = zscores(res.mean, theory.lyapunov_exponents(ens, k), se)
        assert np.all(np.abs(z) < Z_MAX), (ens.name, z)


def test_fast_paths_keep_block_bookkeeping_of_reortho_every():
    ens = jaxspec.masked(width=6, depth=120, p=0.5)
    res = jaxspec.lyapunov_spectrum(ens, seeds=4, dtype="float64", method="chi", reortho_every=4)
    counted = np.asarray(res.counted_layers)
    assert np.all(counted % 4 == 0)
    # A block counts index i iff every layer in it had K_l >= i: recompute from the active counts.
    act = np.asarray(res.active_counts).reshape(4, 30, 4).min(-1)
    expected = np.stack([(act >= i).sum(1) * 4 for i in range(1, 7)], axis=1)
    np.testing.assert_array_equal(counted, expected)


def test_fast_paths_refuse_ensembles_where_they_are_not_exact():
    for ens in (
        jaxspec.relu_net(width=8, depth=10),
        jaxspec.orthogonal(width=8, depth=10),
        jaxspec.fixed_network([np.eye(4)] * 3),
    ):
        for method in FAST:
            with pytest.raises(InputError):
                jaxspec.lyapunov_spectrum(ens, method=method)
    # "auto" takes the direct product where no sampler is exact, chi for masked Gaussian layers (the rule,
    # then one run to show lyapunov_spectrum follows it).
    relu, masked = jaxspec.relu_net(width=8, depth=10), jaxspec.masked(width=8, depth=10)
    assert resolve_method(relu, "auto") == "direct"
    assert resolve_method(masked, "auto") == "chi"
    assert jaxspec.lyapunov_spectrum(masked, method="auto", seeds=2).config.method == "chi"


def test_fast_sums_have_no_frame():
    ens = jaxspec.gaussian(width=8, depth=5)
    cfg = make_config(3, max_k=8)
    key = seed_keys(0, 1)[0]
    assert chi_frame_sums(ens, key, cfg).frame is None
    assert gaussian_frame_sums(ens, key, cfg).frame is None
    chex.assert_shape(ensemble_frame_sums(ens, key, cfg).frame, (8, 3))


def _relu_network(width, depth, inputs, seed):
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((depth, width, width)) * np.sqrt(2.0 / width)
    h = rng.standard_normal((inputs, width))
    masks = []
    for w in weights:
        pre = h @ w.T
        masks.append(pre > 0)
        h = np.maximum(pre, 0)
        h /= np.linalg.norm(h, axis=1, keepdims=True)
    return weights, np.stack(masks, axis=1).astype(np.float64)


def test_stacked_frames_equal_per_input_engine_and_dense_oracle():
    n, k = 24, 4
    weights, masks = _relu_network(width=n, depth=20, inputs=3, seed=0)
    assert masks.sum(-1).min() >= k  # no rank collapse: the realisation is then rounding-independent
    frame = initial_frame(jax.random.key(1), n, n, k, jnp.float64)
    wj = jnp.asarray(weights)

    def per_input(mb):  # the per-input engine, vmapped over inputs: one program for all of them
        def apply_layer(state, fr, key, index):
            return state, mb[index][:, None] * (wj[index] @ fr), jnp.sum(mb[index])

        return benettin_scan(apply_layer, None, frame, jax.random.key(0), 20, reortho_every=2).log_r_sum

    one = jax.jit(jax.vmap(per_input))(jnp.asarray(masks))
    # Dense oracle: partial sums of log|R_ii| are j-volumes of M Q_0[:, :j].
    f = np.asarray(frame)
    volumes = []
    for b in range(3):
        m = np.eye(n)
        for w, d in zip(weights, masks[b], strict=True):
            m = (d[:, None] * w) @ m
        mq = m @ f
        volumes.append([0.5 * np.linalg.slogdet(mq[:, :j].T @ mq[:, :j])[1] for j in range(1, k + 1)])
    for qr in ("householder", "cholesky2"):
        cfg = make_config(k, max_k=n, dtype="float64", reortho_every=2, qr=qr)
        sums = stacked_frame_sums(wj, jnp.asarray(masks), frame, cfg)
        assert_close(sums.log_r_sum, one)
        assert_close(np.cumsum(np.asarray(sums.log_r_sum), axis=-1), np.array(volumes))


def test_shared_weights_spectrum_exact_cases_and_auto_reortho():
    w = jnp.stack([2.0 * jnp.eye(8)] * 30)
    res = shared_weights_spectrum(w, jnp.ones((3, 30, 8)), k=2, dtype="float64")
    assert_close(res.exponents, np.log(2.0), scale=0.3)
    assert res.config.reortho_every == 30 and res.config.qr == "cholesky2"  # full rank, tall (n >= 4 k)
    wide = shared_weights_spectrum(w, jnp.ones((3, 30, 8)), k=3, dtype="float64")
    assert wide.config.qr == "householder"  # n < 4 k: LAPACK is faster (docs/performance.md)
    assert_close(wide.exponents, np.log(2.0), scale=0.3)
    weights, masks = _relu_network(width=16, depth=24, inputs=2, seed=1)
    auto = shared_weights_spectrum(weights, masks, k=3, dtype="float64")
    every = shared_weights_spectrum(weights, masks, k=3, dtype="float64", reortho_every=1)
    assert auto.config.reortho_every > 1
    assert_close(auto.exponents, every.exponents)
