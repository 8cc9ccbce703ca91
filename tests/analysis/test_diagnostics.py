"""Diagnostics against closed forms: the public check values of math §7, exact least-squares variances,
Newman offsets."""

from __future__ import annotations

import chex
import numpy as np
import pytest
from scipy import stats

from jaxspec import InputError, theory
from jaxspec.analysis import (
    fit_slopes,
    network_theory,
    per_layer_log_svals,
    predicted_separation,
    separation_ratios,
    singular_value_offsets,
    zscores,
)
from tests.conftest import PRINTED_5_DECIMALS, PRINTED_6_DECIMALS, Z_MAX, assert_close


def test_offsets_match_math_check_values():
    np.testing.assert_allclose(
        singular_value_offsets(8, 4), [1.60981, 0.84019, 0.44315, 0.14019], atol=PRINTED_5_DECIMALS
    )
    c = singular_value_offsets(8)
    assert_close(c, -c[::-1])  # antisymmetric: sum of offsets is 0


def test_network_theory_relu_is_masked_half_and_linear_is_newman():
    relu = network_theory((32,) * 11, k=4, final_activation=True)
    np.testing.assert_allclose(
        relu.exponents, [-0.041270, -0.077195, -0.116062, -0.158443], atol=PRINTED_6_DECIMALS
    )
    linear = network_theory((8,) * 5, activation="linear", sigma2=1.0)
    assert_close(linear.exponents, theory.gaussian_exponents(8))
    # A linear last layer (K = n, not Bin(n, 1/2)) is averaged in; under K>=i each layer weighs P(K_l >= i).
    mixed = network_theory((16,) * 5, k=2)
    gated = theory.masked_exponents(16, 0.5, 2.0, k=2)
    full = theory.gaussian_exponents(16, 2.0, k=2)
    p_gated = stats.binom.sf(np.arange(1, 3) - 1, 16, 0.5)  # P(K >= i) = sf(i - 1), i = 1, 2
    assert_close(mixed.exponents, (3 * p_gated * gated + full) / (3 * p_gated + 1))
    assert network_theory((8,) * 4, activation="leaky_relu").exponents is None


def _walk_slope_variance(depth, sigma):
    """Exact Var of the OLS slope of y_l = sum_{m<=l} (mu + sigma xi_m) on l = 1..L."""
    l = np.arange(1, depth + 1, dtype=float)
    w = (l - l.mean()) / np.sum((l - l.mean()) ** 2)
    tail = np.cumsum(w[::-1])[::-1]  # coefficient of xi_m is sum_{l >= m} w_l
    return sigma**2 * np.sum(tail**2)


def test_fit_slopes_on_random_walks_matches_predicted_standard_error(rng):
    samples, depth, mu, sigma = 400, 60, np.array([-0.1, -0.3]), 0.5
    walks = np.cumsum(mu + sigma * rng.normal(size=(samples, depth, 2)), axis=1)
    fit = fit_slopes(walks)
    predicted_se = np.sqrt(_walk_slope_variance(depth, sigma) / samples)
    assert np.all(np.abs(zscores(fit.slope, mu, predicted_se)) < Z_MAX)
    # The reported (empirical) standard error estimates the predicted one: chi-square spread ~ 1/sqrt(2S).
    assert np.all(np.abs(zscores(fit.stderr / predicted_se, 1.0, 1 / np.sqrt(2 * samples))) < Z_MAX)
    chex.assert_shape(fit.per_sample, (samples, 2))


def test_fit_slopes_recovers_exact_line_and_window():
    l = np.arange(1, 31)[None, :, None]
    lines = np.concatenate([0.2 * l - 1.0, -0.5 * l + 3.0], axis=2) * np.ones((3, 1, 1))
    fit = fit_slopes(lines, start=5, stop=20)
    assert_close(fit.slope, np.array([0.2, -0.5]))
    assert_close(fit.intercept, np.array([-1.0, 3.0]))
    with pytest.raises(InputError):
        fit_slopes(lines, start=20, stop=5)


def test_per_layer_and_separation():
    logs = np.cumsum(np.tile([-0.1, -0.2, -0.4], (10, 1)), axis=0)[None]  # (1, 10, 3)
    assert_close(per_layer_log_svals(logs)[0], np.tile([-0.1, -0.2, -0.4], (10, 1)))
    ratios, x = separation_ratios(logs, width=5)
    assert_close(ratios[0, :, 0], 0.1 * np.arange(1, 11))
    assert_close(x, np.arange(1, 11) / 5)
    pred = predicted_separation([-0.1, -0.2], [1.0, 0.5], np.arange(1, 5))
    assert_close(pred[:, 0], 0.1 * np.arange(1, 5) + 0.5)
