"""``run_init``: scaling, separation, alignment and sandwich at initialisation, against the closed forms."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from jaxspec.figures import init_figures
from jaxspec.reproduce import run_init
from jaxspec.reproduce._init import _alignment_curve
from tests.conftest import Z_MAX, zscores

INIT_FILES = [
    "init_a_scaling.png",
    "init_b_separation.png",
    "init_c_alignment.png",
    "init_d_sandwich.png",
    "init_overlaps.png",
    "init.nc",
    "init_summary.json",
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("side", ["prefix", "suffix"])
def test_sines_below_eps_are_clipped_at_eps_and_counted(side, dtype):
    depth = 12
    rng = np.random.default_rng(0)
    sines = np.exp(-0.5 * np.arange(depth))[None] * rng.uniform(0.5, 1.5, (3, depth))
    sines[:, -1 if side == "prefix" else 0] = 0.0  # the product against itself: left out of the curve
    sines[0, 5] = 0.0  # vectors equal to the last bit
    sines[1, 6] = 1e-3 * np.finfo(dtype).eps  # below the resolution, but not zero
    sines = sines.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "divide by zero encountered in log"
        curve = _alignment_curve(sines, side, depth, gap=0.5)
    eps = np.finfo(dtype).eps
    assert curve.floor == eps
    assert curve.clipped == 2
    assert np.all(np.isfinite(curve.log_sin.mean)) and np.all(np.isfinite(curve.log_sin.se))
    assert curve.position.tolist() == list(range(1, depth))
    # A clipped point enters the mean at log(eps) (three seeds, so the mean moves by (log eps - log s) / 3).
    position = 6 if side == "prefix" else depth - 5  # where column 5 of the sines lands on the curve
    expected = np.mean(np.log(np.maximum(sines[:, 5], eps)).astype(np.float64))
    np.testing.assert_allclose(curve.log_sin.mean[curve.position == position], expected, rtol=1e-12)


@pytest.mark.slow
def test_init_reproduction_writes_labelled_data_and_figures(written):
    xr = pytest.importorskip("xarray")
    result = run_init(
        width=8,
        depth=24,
        seeds=8,
        alignment_seeds=3,
        gaussian_alignment_width=4,
        k=2,
        separation_widths=(8,),
        separation_depth_over_width=2.0,
        segment_depth=6,
        segments=3,
        progress=False,
    )
    # Shapes and labels.
    assert result.scaling["relu"].log_svals.shape == (8, 24, 2)
    assert result.separation[8].log_svals.shape == (8, 16, 2)
    assert result.alignment["relu_suffix"].sines.shape == (3, 24)
    assert result.sandwich["aligned"].ratio.shape == (8, 6)
    assert result.sandwich["relu"].overlaps.shape == (8, 2, 4, 4)
    for model in ("masked", "relu"):
        curves = result.scaling[model]
        assert np.all(np.isfinite(curves.qr_rate.mean)) and np.all(np.isfinite(curves.sv_rate.mean))
        # The QR rates at depth L estimate lambda_i without bias, and the exact log singular values follow
        # lambda_i + c_i / L: both within Z_MAX standard errors across the seeds.
        assert np.all(
            np.abs(zscores(curves.qr_rate.mean[-1], result.theory_exponents, curves.qr_rate.se[-1])) < Z_MAX
        )
        finite_depth = result.theory_exponents + result.theory_offsets / 24
        assert np.all(np.abs(zscores(curves.sv_rate.mean[-1], finite_depth, curves.sv_rate.se[-1])) < Z_MAX)
    # Every sine enters the alignment curves: no -inf, the clipped ones are counted.
    for name, curve in result.alignment.items():
        assert np.all(np.isfinite(curve.log_sin.mean)), name
        kept = curve.sines[:, :-1] if name.endswith("prefix") else curve.sines[:, 1:]
        assert curve.clipped == int(np.sum(kept < np.finfo(np.float64).eps))
        assert result.summary["c_alignment"][name]["clipped_points"] == curve.clipped
    # The sandwich inequality is a theorem: it holds on every instance the job measured.
    assert all(entry["fraction_bounds_hold"] == 1.0 for entry in result.summary["d_sandwich"].values())

    clipped = result.alignment["relu_suffix"].clipped
    assert clipped > 0  # these sizes have sines equal to the last bit: the figure says how many it clipped
    suffix_axes = init_figures(result)["init_c_alignment.png"].axes[1]
    legend = [t.get_text() for t in suffix_axes.get_legend().get_texts()]
    assert any(f"{clipped} of 69 sines < eps clipped" in text for text in legend)

    out = written(result, INIT_FILES)
    ds = xr.open_dataset(out / "init.nc", engine="scipy")
    assert ds["relu_log_svals"].dims == ("seed", "depth", "index")
    assert ds["sandwich_aligned_ratio"].shape == (8, 6)
    assert ds["relu_suffix_sin"].dims == ("alignment_seed", "suffix_start")
