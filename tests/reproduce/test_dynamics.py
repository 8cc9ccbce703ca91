"""``run_dynamics``: a deep linear network from an aligned balanced start follows the closed-form mode law."""

from __future__ import annotations

import numpy as np

from jaxspec.reproduce import run_dynamics


def test_aligned_deep_linear_run_matches_the_balanced_law_and_writes_its_files(written):
    result = run_dynamics(experiments=["linear_teacher_aligned"], steps=2500, progress=False)
    run = result.runs["linear_teacher_aligned"]
    ds = run.dataset
    records = 2500 // 25 + 1
    assert ds["sigma"].dims == ("step", "mode") and ds["sigma"].shape == (records, 3)
    assert ds["time"].dims == ("step",)
    np.testing.assert_allclose(ds["time"].values, ds["step"].values * run.config.learning_rate)
    summary = result.summary["linear_teacher_aligned"]
    assert summary["prediction_start_step"] == [0, 0, 0]  # aligned start: every prediction from step 0
    # The balanced L-layer law (Saxe / Arora, a closed form for this start) and the mode ODE track the
    # measured singular values to within the discretisation error of gradient descent.
    for prediction in ("balanced", "mode_ode", "arora"):
        errors = np.asarray(summary["max_relative_error"][prediction])
        assert np.all(np.isfinite(errors)) and np.all(errors < 0.05), prediction
    # The two strongest modes are learned (sigma_r -> s_r), the weakest is still on its way, in that order.
    sigma, target = np.asarray(summary["final_sigma"]), np.asarray(summary["target"])
    np.testing.assert_allclose(sigma[:2], target[:2], rtol=1e-3)
    assert sigma[2] < 0.5 * target[2]
    written(result, ["linear_teacher_aligned.nc", "linear_teacher_aligned.png", "summary.json", "summary.md"])
