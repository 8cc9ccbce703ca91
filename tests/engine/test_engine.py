"""The QR (Benettin) engine against exact oracles: closed forms, exact volume identities, invariances."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxspec
from jaxspec import theory
from jaxspec.engine import (
    ensemble_frame_sums,
    exponents_from_sums,
    frame_key,
    initial_frame,
    make_config,
    seed_keys,
)
from tests.conftest import Z_MAX, assert_close, zscores


def _volume_oracle(weights, masks, frame):
    """Exact float64 partial sums ``sum_{i<=j} L*lambda_i`` of a fixed product:
    ``(1/2) logdet(Q_j^T M^T M Q_j)``.

    For any fixed product ``M`` the QR telescopes: ``prod_{i<=j} |R_ii|`` is the ``j``-volume of
    ``M Q_0[:, :j]``.
    """
    m = np.eye(weights[0].shape[1])
    for w, d in zip(weights, masks, strict=True):
        m = (d[:, None] * w) @ m
    mq = m @ frame
    return np.array(
        [0.5 * np.linalg.slogdet(mq[:, :j].T @ mq[:, :j])[1] for j in range(1, frame.shape[1] + 1)]
    )


def _engine_frame(ens, seed, k):
    key = seed_keys(seed, 1)[0]
    return np.asarray(initial_frame(frame_key(key), ens.input_width, ens.max_width, k, jnp.float64))


@pytest.mark.parametrize("n", [8, 5])
def test_newman_closed_form_within_four_predicted_stderr(n):
    ens = jaxspec.gaussian(width=n, depth=1000)
    res = jaxspec.lyapunov_spectrum(ens, seeds=8, dtype="float64", method="direct")
    predicted_se = theory.predicted_stderr(ens, seeds=8)
    z = zscores(res.mean, theory.gaussian_exponents(n), predicted_se)
    assert np.all(np.abs(z) < Z_MAX), z
    # The empirical spread is of the predicted size (a gross variance bug would show here).
    assert 0.4 < np.median(np.asarray(res.stderr) / predicted_se) < 2.5


def test_masked_rank_collapse_conditioned_on_k_ge_i_matches_theory():
    # N = 4, p = 0.5: P(K < 3) = 0.69, so most layers collapse index 3; conditioning must exclude them
    # exactly.
    ens = jaxspec.masked(width=4, depth=1500, p=0.5)
    res = jaxspec.lyapunov_spectrum(ens, seeds=8, dtype="float64", method="direct")
    z = zscores(res.mean, theory.lyapunov_exponents(ens), theory.predicted_stderr(ens, seeds=8))
    assert np.all(np.abs(z) < Z_MAX), z
    counted = np.asarray(res.counted_layers)
    expected_fraction = theory.prob_active_at_least(ens)
    frac = counted.mean(0) / ens.depth
    # Counted layers are Binomial(L, P(K >= i)) per seed: z-test on the fraction.
    se = np.sqrt(expected_fraction * (1 - expected_fraction) / (ens.depth * 8))
    assert np.all(np.abs(zscores(frac, expected_fraction, se)) < Z_MAX)


def test_strict_convention_gives_minus_inf_beyond_min_active_count():
    ens = jaxspec.masked(width=4, depth=200, p=0.5)
    res = jaxspec.lyapunov_spectrum(ens, seeds=4, dtype="float64", condition="none", method="direct")
    exps = np.asarray(res.exponents)
    min_active = np.asarray(res.min_active)
    for s in range(4):
        i = np.arange(1, 5)
        assert np.all(np.isneginf(exps[s, i > min_active[s]]))
        chex.assert_tree_all_finite(exps[s, i <= min_active[s]])
    assert np.all(min_active == np.asarray(res.active_counts).min(axis=1))


def test_condition_k_ge_k_uses_common_layers():
    ens = jaxspec.masked(width=6, depth=400, p=0.6)
    res = jaxspec.lyapunov_spectrum(ens, k=3, seeds=4, dtype="float64", condition="K>=k", method="direct")
    counts = np.asarray(res.active_counts)
    expected = (counts >= 3).sum(axis=1)
    np.testing.assert_array_equal(np.asarray(res.counted_layers), np.repeat(expected[:, None], 3, axis=1))
    z = zscores(
        res.mean,
        theory.lyapunov_exponents(ens, 3, "K>=k"),
        theory.predicted_stderr(ens, 3, seeds=4, condition="K>=k"),
    )
    assert np.all(np.abs(z) < Z_MAX), z


@pytest.mark.parametrize("sigma2", [1.0, 2.0, 0.3])
def test_orthogonal_layers_give_exactly_log_sigma(sigma2):
    ens = jaxspec.orthogonal(width=6, depth=300, sigma2=sigma2)
    res = jaxspec.lyapunov_spectrum(ens, seeds=3, dtype="float64", method="direct")
    assert_close(res.exponents, 0.5 * np.log(sigma2))


def test_diagonal_layers_give_their_log_entries():
    rng = np.random.default_rng(1)
    n, depth = 5, 400
    entries = np.array([3.0, -1.7, 1.1, 0.6, -0.2])  # distinct |a_i|, descending
    weights = [np.diag(entries * np.exp(0.1 * rng.standard_normal(n))) for _ in range(depth)]
    ens = jaxspec.fixed_network(weights)
    res = jaxspec.lyapunov_spectrum(ens, dtype="float64", method="direct")
    exact = np.mean([np.log(np.abs(np.diag(w))) for w in weights], axis=0)
    frame = _engine_frame(ens, 0, n)
    # Finite-depth transient: exactly (log|det Q0[:j,:j]| - log|det Q0[:j-1,:j-1]|)/L up to exponentially
    # small terms.
    minors = np.array([np.linalg.slogdet(frame[:j, :j])[1] for j in range(1, n + 1)])
    transient = np.diff(np.concatenate([[0.0], minors])) / depth
    assert_close(res.exponents[0], exact + transient)


@pytest.mark.parametrize("widths", [(5, 5, 5, 5, 5, 5), (4, 7, 3, 6, 5)])
def test_fixed_network_matches_exact_volume_identity(widths):
    rng = np.random.default_rng(2)
    weights = [
        rng.standard_normal((widths[l + 1], widths[l])) / np.sqrt(widths[l]) for l in range(len(widths) - 1)
    ]
    masks = [(rng.random(widths[l + 1]) < 0.8).astype(float) for l in range(len(widths) - 1)]
    for m in masks:
        m[:3] = 1.0  # keep rank 3 alive so every index is defined
    ens = jaxspec.fixed_network(weights, masks)
    k = 3
    res = jaxspec.lyapunov_spectrum(ens, k=k, dtype="float64", condition="none", method="direct")
    depth = len(weights)
    frame = _engine_frame(ens, 0, k)[: widths[0]]
    oracle = _volume_oracle(weights, masks, frame)
    assert_close(np.cumsum(np.asarray(res.exponents[0])) * depth, oracle)


@pytest.mark.parametrize(
    "ensemble",
    # Two in the default run (ungated, gated); the other two in the slow step.
    ["gaussian", pytest.param("masked", marks=pytest.mark.slow), "relu-net"]
    + [pytest.param("orthogonal", marks=pytest.mark.slow)],
)
def test_reortho_every_one_and_four_agree_in_float64(ensemble):
    ens = jaxspec.make_ensemble(ensemble, 6, 203)  # 203 = 50 blocks of 4 plus a remainder of 3
    kwargs = dict(
        seeds=2,
        dtype="float64",
        method="direct",
        condition="K>=k" if ensemble in ("masked", "relu-net") else "K>=i",
    )
    a = jaxspec.lyapunov_spectrum(ens, k=2, reortho_every=1, **kwargs)
    b = jaxspec.lyapunov_spectrum(ens, k=2, reortho_every=4, **kwargs)
    if ensemble in ("masked", "relu-net"):
        # Blocks are excluded as a whole under rank collapse, so only layers counted by both agree exactly;
        # with k = 2 on width 6 collapses are rare: compare where the counts agree.
        same = np.asarray(a.counted_layers) == np.asarray(b.counted_layers)
        assert_close(np.asarray(a.exponents)[same], np.asarray(b.exponents)[same])
    else:
        assert_close(a.exponents, b.exponents)


def test_float32_agrees_with_float64_on_a_fixed_network():
    rng = np.random.default_rng(3)
    n, depth = 16, 200
    weights = [rng.standard_normal((n, n)) * np.sqrt(2.0 / n) for _ in range(depth)]
    masks = [(rng.random(n) < 0.5).astype(float) for _ in range(depth)]
    for m in masks:
        # After a collapse (K_l < i) column i restarts from a rounding-noise direction, which legitimately
        # differs between dtypes; keep K_l >= 8 so that only rounding error is measured.
        m[:8] = 1.0
    ens = jaxspec.fixed_network(weights, masks)
    r32 = jaxspec.lyapunov_spectrum(ens, k=4, dtype="float32", condition="K>=k", method="direct")
    r64 = jaxspec.lyapunov_spectrum(ens, k=4, dtype="float64", condition="K>=k", method="direct")
    assert_close(r32.exponents, r64.exponents, "float32")


def test_float32_agrees_with_float64_in_distribution():
    ens = jaxspec.gaussian(width=8, depth=500)
    r32 = jaxspec.lyapunov_spectrum(ens, seeds=8, dtype="float32", method="direct")
    r64 = jaxspec.lyapunov_spectrum(ens, seeds=8, dtype="float64", seed=1, method="direct")
    se = theory.predicted_stderr(ens, seeds=8) * np.sqrt(2)  # two independent runs
    assert np.all(np.abs(zscores(r32.mean, r64.mean, se)) < Z_MAX)
    assert r32.exponents.dtype == jnp.float64  # log-accumulators use the widest enabled float


@pytest.mark.slow  # eager mode runs the scan op by op
def test_jit_equals_no_jit():
    ens = jaxspec.masked(width=5, depth=9, p=0.7)  # eager mode runs the scan op by op: keep it short
    a = jaxspec.lyapunov_spectrum(ens, seeds=2, dtype="float64", jit=True, method="direct")
    b = jaxspec.lyapunov_spectrum(ens, seeds=2, dtype="float64", jit=False, method="direct")
    assert_close(a.exponents, b.exponents)
    np.testing.assert_array_equal(np.asarray(a.active_counts), np.asarray(b.active_counts))


class VmapTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_vmap_over_seeds_equals_a_loop(self):
        ens = jaxspec.relu_net(width=6, depth=50)
        config = make_config(6, max_k=6, dtype="float64")
        keys = seed_keys(7, 4)
        batched = jaxspec.lyapunov_spectrum(ens, seeds=4, seed=7, dtype="float64", method="direct")
        frame_sums = self.variant(ensemble_frame_sums, static_argnames="config")
        for s in range(4):
            sums = frame_sums(ens, keys[s], config=config)
            assert_close(exponents_from_sums(sums), batched.exponents[s])


def test_per_seed_results_do_not_depend_on_the_number_of_seeds():
    ens = jaxspec.masked(width=6, depth=60, p=0.5)
    a = jaxspec.lyapunov_spectrum(ens, seeds=3, dtype="float64", method="direct")
    b = jaxspec.lyapunov_spectrum(ens, seeds=7, dtype="float64", method="direct")
    np.testing.assert_array_equal(np.asarray(a.exponents), np.asarray(b.exponents[:3]))


def test_sample_returns_the_layers_the_engine_propagated():
    ens = jaxspec.relu_net(width=5, depth=12)
    seed_key = seed_keys(0, 1)[0]
    stack = ens.sample(jaxspec.engine.realisation_key(seed_key), dtype=jnp.float64)
    res = jaxspec.lyapunov_spectrum(ens, k=3, dtype="float64", condition="none", method="direct")
    np.testing.assert_array_equal(
        np.asarray(res.active_counts[0]), np.asarray(stack.masks.sum(1)).astype(int)
    )
    fixed = jaxspec.fixed_network(list(np.asarray(stack.weights)), list(np.asarray(stack.masks)))
    res_fixed = jaxspec.lyapunov_spectrum(fixed, k=3, dtype="float64", condition="none", method="direct")
    assert_close(res.exponents, res_fixed.exponents)


def test_local_rates_average_to_the_exponents():
    ens = jaxspec.gaussian(width=4, depth=120)
    res = jaxspec.lyapunov_spectrum(
        ens, seeds=2, dtype="float64", reortho_every=2, rates_every=10, method="direct"
    )
    chex.assert_shape(res.local_rates, (2, 12, 4))
    assert_close(np.asarray(res.local_rates).mean(axis=1), res.exponents)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(k=9), "k must be"),
        (dict(reortho_every=0), "reortho_every"),
        (dict(dtype="float16"), "dtype"),
        (dict(condition="sometimes"), "condition"),
        (dict(seeds=0), "seeds"),
        (dict(seed=-1), "seed must lie in"),
        (dict(seed=2**32), "seed must lie in"),
        (dict(seed=0.5), "seed must lie in"),
        (dict(rates_every=3, reortho_every=2), "rates_every"),
    ],
)
def test_bad_engine_arguments_raise_input_errors(kwargs, message):
    with pytest.raises(jaxspec.InputError, match=message):
        jaxspec.lyapunov_spectrum(jaxspec.gaussian(width=8, depth=10), **kwargs)


def test_seed_keys_refuse_bad_seeds_and_counts_but_take_traced_seeds():
    with pytest.raises(jaxspec.InputError, match="num_seeds"):
        jaxspec.engine.seed_keys(0, 0)
    with pytest.raises(jaxspec.InputError, match="seed"):
        jaxspec.engine.seed_keys(-3, 2)
    traced = jax.jit(lambda s: jax.random.key_data(jaxspec.engine.seed_keys(s, 2)))(5)
    np.testing.assert_array_equal(traced, jax.random.key_data(jaxspec.engine.seed_keys(5, 2)))


@pytest.mark.parametrize("method", ["direct", "chi"])
def test_a_weight_variance_beyond_the_dtypes_range_is_refused_and_float64_takes_it(method):
    # sigma2 = 1e50 overflows float32 where the layers are drawn (it gave NaN on both paths, silently).
    ens = jaxspec.gaussian(width=8, depth=40, sigma2=1e50)
    with pytest.raises(jaxspec.InputError, match=r"sigma2 = 1e\+50 leaves float32's range.*use float64"):
        jaxspec.lyapunov_spectrum(ens, k=2, seeds=2, method=method)
    # In float64 the exponents are the unit-variance ones shifted by ln(sigma2) / 2 (the closed form).
    res = jaxspec.lyapunov_spectrum(ens, k=2, seeds=16, dtype="float64", method=method)
    z = zscores(res.mean, theory.lyapunov_exponents(ens, k=2), theory.predicted_stderr(ens, k=2, seeds=16))
    assert np.all(np.abs(z) < Z_MAX), z
    shift = theory.lyapunov_exponents(ens, k=2) - theory.gaussian_exponents(8, k=2)
    np.testing.assert_allclose(shift, 0.5 * np.log(1e50), rtol=1e-12)


def test_rank_collapse_completion_is_deterministic_float32_equals_float64():
    # Masked full spectrum: every layer has K_l < k. The columns beyond K_l are zeroed before the QR, so the
    # orthonormal completion is the exact-arithmetic one and float32 stays on the float64 realisation.
    # (Left to Householder, rounding noise steered the completion: max |diff| was 1.7 here.)
    ens = jaxspec.masked(width=16, depth=200, p=0.5, sigma2=2.0)
    r32 = jaxspec.lyapunov_spectrum(ens, seeds=8, dtype="float32", method="direct")
    r64 = jaxspec.lyapunov_spectrum(ens, seeds=8, dtype="float64", method="direct")
    counted = np.asarray(r64.counted_layers) > 0
    assert counted[:, -1].sum() < 8  # the bottom index really collapses
    # Rounding of 200 float32 layers, rank-collapse completions included: 20 x the table.
    assert_close(np.asarray(r32.exponents)[counted], np.asarray(r64.exponents)[counted], "float32", scale=20)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("gaussian", "chi"), ("masked", "chi"), ("relu-net", "direct"), ("orthogonal", "direct")],
)
def test_default_method_is_the_exact_fast_sampler_only_where_exact(name, expected):
    ens = jaxspec.make_ensemble(name, 6, 300)
    res = jaxspec.lyapunov_spectrum(ens, seeds=8, dtype="float64")
    assert res.config.method == expected
    th = theory.lyapunov_exponents(ens)
    if th is not None and name != "orthogonal":
        z = zscores(res.mean, th, theory.predicted_stderr(ens, seeds=8))
        assert np.all(np.abs(z) < Z_MAX), z
