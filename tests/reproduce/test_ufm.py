"""``run_ufm``: layer-wise Hessians of deep UFMs and the outliers of a digits MLP."""

from __future__ import annotations

import numpy as np
import pytest

from jaxspec.reproduce import count_outliers, run_ufm

UFM_FILES = [
    "ufm_spectrum.png",
    "ufm_outliers_training.png",
    "ufm_alignment.png",
    "ufm_nc1.png",
    "digits_spectrum.png",
    "ufm_training.nc",
    "digits_spectrum.nc",
    "ufm_summary.json",
    "ufm_summary.md",
]
# The UFMs run in float32: eigvalsh of a Hessian is exact to about eps_32 ||Hessian||; allow 80 times that.
FLOAT32_RTOL = 1e-5


def test_count_outliers_stops_at_the_largest_gap():
    assert count_outliers(np.array([5.0, 4.0, 3.0, 0.01, 0.009, 0.008]), 5) == (3, 300.0)
    assert count_outliers(np.array([50.0, 4.0, 3.0, 0.01, np.nan]), 3, min_count=2) == (3, 300.0)


@pytest.mark.slow
def test_ufm_reproduction_has_the_exact_bulk_and_writes_its_files(written):
    xr = pytest.importorskip("xarray")
    K, d, lam = 2, 3, 5e-3
    result = run_ufm(
        num_classes=K,
        per_class=3,
        depth=2,
        width=d,
        lam=lam,
        steps=200,
        records=10,
        slq_steps=10,
        slq_probes=2,
        digits_classes=(2, 3),
        digits_hidden=8,
        digits_steps=100,
        progress=False,
    )
    linear = result.runs["linear"]
    assert linear.final_spectrum.shape == (2, d * d)
    assert linear.tracked.top_eigenvalues.shape[:2] == (linear.steps.size, 2)
    hidden, head = linear.final_spectrum[0], linear.final_spectrum[1][: K * d]
    # Linear layer, MSE: the data Hessian of W_1 is (H H^T) x (W_2^T W_2), of rank <= d K, and PSD; with the
    # weight decay every eigenvalue is >= lam and at least d^2 - d K of them equal lam (the bulk), at any
    # step of training.
    atol = FLOAT32_RTOL * hidden.max()
    assert np.all(hidden >= lam - atol)
    assert np.sum(np.abs(hidden - lam) <= atol) >= d * d - d * K
    # The head's Hessian is I_K x (H H^T) + lam: every eigenvalue K times.
    np.testing.assert_allclose(head[0::K], head[1::K], rtol=0, atol=FLOAT32_RTOL * head.max())
    for run in result.runs.values():
        density = run.slq.density
        assert np.all(density >= 0)
        np.testing.assert_allclose(np.trapezoid(density, run.slq.grid), 1.0, atol=1e-3)  # a density
    digits = result.digits
    assert digits.classes.tolist() == [2, 3] and digits.eigenvalues["head"].shape[0] == 2
    assert np.all(digits.outlier_count["full"] >= 1)
    assert result.summary["digits"]["predicted_count"] == [4, 9]

    out = written(result, UFM_FILES)
    ds = xr.open_dataset(out / "ufm_training.nc", engine="scipy")
    assert ds["linear_top_eigenvalues"].dims == ("linear_step", "layer", "rank")
    assert (out / "ufm_summary.md").read_text().startswith("# Deep UFM and digits")
