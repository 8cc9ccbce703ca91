"""Diagnostics against closed forms: the public check values of math §7, exact least-squares variances, Newman offsets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from jaxspec import theory
from jaxspec.analysis import (
    fit_slopes,
    network_theory,
    per_layer_log_svals,
    predicted_separation,
    separation_ratios,
    singular_value_offsets,
    zscores,
)
from jaxspec import InputError


def test_offsets_match_math_check_values():
    np.testing.assert_allclose(singular_value_offsets(8, 4), [1.60981, 0.84019, 0.44315, 0.14019], atol=5e-6)
    c = singular_value_offsets(8)
    np.testing.assert_allclose(c, -c[::-1], atol=1e-14)  # antisymmetric: sum of offsets is 0


def test_network_theory_relu_is_masked_half_and_linear_is_newman():
    relu = network_theory((32,) * 11, k=4, final_activation=True)
    np.testing.assert_allclose(relu.exponents, [-0.041270, -0.077195, -0.116062, -0.158443], atol=5e-7)
    linear = network_theory((8,) * 5, activation="linear", sigma2=1.0)
    np.testing.assert_allclose(linear.exponents, theory.gaussian_exponents(8), atol=1e-14)
    # A linear last layer (K = n, not Bin(n, 1/2)) is averaged in; under K>=i each layer weighs P(K_l >= i).
    mixed = network_theory((16,) * 5, k=2)
    gated = theory.masked_exponents(16, 0.5, 2.0, k=2)
    full = theory.gaussian_exponents(16, 2.0, k=2)
    p_gated = stats.binom.sf(np.arange(1, 3) - 1, 16, 0.5)  # P(K >= i) = sf(i - 1), i = 1, 2
    np.testing.assert_allclose(mixed.exponents, (3 * p_gated * gated + full) / (3 * p_gated + 1), atol=1e-14)
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
    assert np.all(np.abs(zscores(fit.slope, mu, predicted_se)) < 4)
    # The reported (empirical) standard error estimates the predicted one: chi-square spread ~ 1/sqrt(2S).
    assert np.all(np.abs(fit.stderr / predicted_se - 1) < 4 / np.sqrt(2 * samples))
    assert fit.per_sample.shape == (samples, 2)


def test_fit_slopes_recovers_exact_line_and_window():
    l = np.arange(1, 31)[None, :, None]
    lines = np.concatenate([0.2 * l - 1.0, -0.5 * l + 3.0], axis=2) * np.ones((3, 1, 1))
    fit = fit_slopes(lines, start=5, stop=20)
    np.testing.assert_allclose(fit.slope, [0.2, -0.5], atol=1e-12)
    np.testing.assert_allclose(fit.intercept, [-1.0, 3.0], atol=1e-12)
    with pytest.raises(InputError):
        fit_slopes(lines, start=20, stop=5)


def test_per_layer_and_separation():
    logs = np.cumsum(np.tile([-0.1, -0.2, -0.4], (10, 1)), axis=0)[None]  # (1, 10, 3)
    np.testing.assert_allclose(per_layer_log_svals(logs)[0], np.tile([-0.1, -0.2, -0.4], (10, 1)))
    ratios, x = separation_ratios(logs, width=5)
    np.testing.assert_allclose(ratios[0, :, 0], 0.1 * np.arange(1, 11))
    np.testing.assert_allclose(x, np.arange(1, 11) / 5)
    pred = predicted_separation([-0.1, -0.2], [1.0, 0.5], 4)
    np.testing.assert_allclose(pred[:, 0], 0.1 * np.arange(1, 5) + 0.5)


@pytest.mark.slow
def test_init_reproduction_writes_labelled_data_and_figures(tmp_path):
    xr = pytest.importorskip("xarray")
    from jaxspec.reproduce import InitSizes, run

    sizes = InitSizes(width=8, depth=24, seeds=3, alignment_seeds=3, gaussian_alignment_width=4, k=2,
                      separation_widths=(8,), separation_depth_over_width=2.0, segment_depth=6, segments=3)
    summary = run(tmp_path, sizes=sizes, progress=False)
    for name in ("init_a_scaling.png", "init_b_separation.png", "init_c_alignment.png", "init_d_sandwich.png",
                 "init_overlaps.png", "init.nc", "init_summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    ds = xr.open_dataset(tmp_path / "init.nc", engine="scipy")
    assert ds["relu_log_svals"].dims == ("seed", "depth", "index")
    assert ds["sandwich_aligned_ratio"].shape == (3, 6)
    # The sandwich inequality is a theorem: it holds on every instance the job measured.
    assert all(entry["fraction_bounds_hold"] == 1.0 for entry in summary["d_sandwich"].values())
