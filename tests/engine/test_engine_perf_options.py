"""The engine's performance options: QR backends, reortho_every='auto', the orthogonality guard, defaults."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import jaxspec
from jaxspec import InputError, theory
from jaxspec.engine import OrthogonalityWarning, choose_reortho_every, reortho_limits, resolve_qr
from tests.conftest import Z_MAX, assert_close, zscores

# The finite-depth transient of the QR estimator: the exponents of a depth-L product differ from the average
# log stretch of its layers by Delta_i / L (math §2.3: log-determinants of minors of the initial frame).
TRANSIENT_ATOL = 0.03


def test_defaults_are_unchanged():
    res = jaxspec.lyapunov_spectrum(jaxspec.gaussian(width=6, depth=20), seeds=2, method="direct")
    assert (res.config.qr, res.config.method, res.config.reortho_every) == ("householder", "direct", 1)


@pytest.mark.parametrize("qr", ["cholesky2", "shifted_cholesky3", "blocked_householder"])
def test_qr_backends_give_the_householder_result_in_float64(qr):
    ens = jaxspec.gaussian(width=16, depth=60)
    ref = jaxspec.lyapunov_spectrum(ens, k=6, seeds=3, dtype="float64", method="direct")
    res = jaxspec.lyapunov_spectrum(ens, k=6, seeds=3, dtype="float64", qr=qr, method="direct")
    assert_close(res.exponents, ref.exponents)


def test_cholesky_backend_falls_back_exactly_on_rank_deficient_masked_layers():
    # p = 0.5, k = width: most layers have K_l < k, so the Gram matrix is singular; the Householder fallback
    # must reproduce the Householder run (same realisation, same conventions).
    ens = jaxspec.masked(width=6, depth=40, p=0.5)
    ref = jaxspec.lyapunov_spectrum(ens, seeds=2, dtype="float64", method="direct")
    res = jaxspec.lyapunov_spectrum(ens, seeds=2, dtype="float64", qr="cholesky2", method="direct")
    assert_close(res.exponents, ref.exponents)


def test_blocked_householder_is_exact_under_rank_collapse():
    # Most layers have K_l < k: the columns beyond K_min are zeroed and completed. The indices no layer
    # collapsed are the Householder run's to rounding, in float64 and float32; the collapse-conditioned ones
    # depend on the completion, which both backends take from LAPACK's conventions except for the sign tie
    # of an exact zero on the diagonal (see make_qr).
    ens = jaxspec.masked(width=10, depth=20, p=0.5)
    ref = jaxspec.lyapunov_spectrum(ens, seeds=3, dtype="float64", method="direct")
    never = np.arange(1, 11) <= np.asarray(ref.min_active)[:, None]
    assert 3 <= never.sum() < never.size  # collapse is real
    for dtype in ("float64", "float32"):
        res = jaxspec.lyapunov_spectrum(ens, seeds=3, dtype=dtype, qr="blocked_householder", method="direct")
        assert_close(np.asarray(res.exponents)[never], np.asarray(ref.exponents)[never], dtype, scale=10)
        assert np.array_equal(np.isnan(res.exponents), np.isnan(ref.exponents))


def test_qr_auto_picks_cholesky_only_where_frames_keep_full_rank():
    gaussian = jaxspec.gaussian(width=8, depth=4)
    assert (
        jaxspec.lyapunov_spectrum(gaussian, k=2, seeds=1, qr="auto", method="direct").config.qr == "cholesky2"
    )
    assert resolve_qr(gaussian, "auto", 3) == "householder"  # not tall (n < 4 k): LAPACK is faster
    assert resolve_qr(jaxspec.masked(width=8, depth=4), "auto", 2) == "householder"
    fixed = jaxspec.masked(width=24, depth=4, fixed_count=5)
    assert resolve_qr(fixed, "auto", 5) == "cholesky2"
    assert resolve_qr(fixed, "auto", 6) == "householder"


def test_choose_reortho_every_is_the_largest_m_within_budget():
    mean = np.array([-0.01, -0.05, -0.12])
    var = np.array([0.002, 0.003, 0.004])
    m = choose_reortho_every(mean, var, 10_000, "float32")
    budget, _ = reortho_limits("float32")

    def spread(m):
        return m * 0.11 + 4 * math.sqrt(2 * m * 0.004)

    largest = max(j for j in range(1, 2000) if spread(j) <= budget)
    # Balanced blocks: as many QRs as with the largest safe m, no short remainder block.
    assert m == math.ceil(10_000 / math.ceil(10_000 / largest)) and spread(m) <= budget
    assert choose_reortho_every(mean, var, 5, "float32") == min(largest, 5)
    assert choose_reortho_every(mean, var, 2 * largest - 2, "float32") == largest - 1  # two equal blocks
    assert choose_reortho_every(np.array([0.0, -np.inf]), var[:2], 100, "float32") == 1
    assert 24 % choose_reortho_every(mean, var, 10_000, "float32", rates_every=24) == 0
    assert choose_reortho_every(mean, var, 10_000, "float64") > m


def test_auto_reortho_equals_every_layer_in_float64_and_float32_stays_within_tolerance():
    ens = jaxspec.gaussian(width=64, depth=200)
    ref = jaxspec.lyapunov_spectrum(ens, k=6, seeds=2, dtype="float64", method="direct")
    kw = dict(k=6, seeds=2, reortho_every="auto", method="direct")
    auto64 = jaxspec.lyapunov_spectrum(ens, dtype="float64", **kw)
    auto32 = jaxspec.lyapunov_spectrum(ens, dtype="float32", **kw)
    assert auto64.config.reortho_every > 10 and auto32.config.reortho_every > 10
    # Same realisation: in exact arithmetic the block QR telescopes to the per-layer product of diagonals.
    assert_close(auto64.exponents, ref.exponents)
    assert_close(auto32.exponents, ref.exponents, "float32")
    assert float(np.max(auto32.max_block_spread)) <= reortho_limits("float32")[1]


def test_auto_reortho_uses_a_pilot_for_fixed_networks():
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal((24, 24)) / np.sqrt(24) for _ in range(60)]
    ens = jaxspec.fixed_network(weights)
    ref = jaxspec.lyapunov_spectrum(ens, k=3, dtype="float64", method="direct")
    auto = jaxspec.lyapunov_spectrum(ens, k=3, dtype="float64", reortho_every="auto", method="direct")
    assert auto.config.reortho_every > 1
    assert_close(auto.exponents, ref.exponents)


def test_guard_reports_a_too_large_explicit_reortho_every():
    ens = jaxspec.gaussian(width=16, depth=200)
    with pytest.warns(OrthogonalityWarning, match="log condition"):
        res = jaxspec.lyapunov_spectrum(ens, seeds=2, reortho_every=25, method="direct")
    assert float(np.max(res.max_block_spread)) > reortho_limits("float32")[1]
    # The auto choice for the same case stays quiet and close to the theory.
    with warnings.catch_warnings():
        warnings.simplefilter("error", OrthogonalityWarning)
        auto = jaxspec.lyapunov_spectrum(ens, seeds=4, dtype="float64", reortho_every="auto", method="direct")
    z = zscores(auto.mean, theory.gaussian_exponents(16), theory.predicted_stderr(ens, seeds=4))
    assert np.all(np.abs(z) < Z_MAX), z


def test_auto_reortho_reruns_with_smaller_m_when_the_guard_trips():
    # A fixed network whose first layers are isotropic (the pilot sees no spread) and whose later layers
    # stretch two directions hard: the pilot over-estimates m, the guard must catch it and re-run.
    n, depth = 8, 88
    weights = [np.eye(n) for _ in range(40)] + [np.diag(np.r_[np.full(2, 3.0), np.full(n - 2, 0.3)])] * 48
    ens = jaxspec.fixed_network(weights)
    with pytest.warns(OrthogonalityWarning, match="re-running"):
        auto = jaxspec.lyapunov_spectrum(ens, k=n, reortho_every="auto", method="direct")
    assert float(np.max(auto.max_block_spread)) <= reortho_limits("float32")[1]
    assert auto.config.reortho_every < 10
    # Same realisation as the per-layer float64 run (the finite-depth QR estimator, transient included).
    ref = jaxspec.lyapunov_spectrum(ens, k=n, dtype="float64", method="direct")
    assert_close(auto.exponents, ref.exponents, "float32")
    assert np.allclose(
        np.sort(np.asarray(ref.exponents[0]))[::-1][[0, -1]],
        np.log([3.0, 0.3]) * 48 / depth,
        atol=TRANSIENT_ATOL,
    )


def test_bad_option_values_raise_input_error():
    ens = jaxspec.gaussian(width=4, depth=3)
    for kw in (dict(qr="lq"), dict(method="fast"), dict(reortho_every="often")):
        with pytest.raises(InputError):
            jaxspec.lyapunov_spectrum(ens, **kw)
