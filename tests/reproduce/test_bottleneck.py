"""``run_bottleneck``: weight-decayed deep linear networks reach the closed-form optimum."""

from __future__ import annotations

import numpy as np
import pytest

from jaxspec.bottleneck import deep_linear_weight_decay_optimum
from jaxspec.reproduce import run_bottleneck

# Adam in float32 for 3000 steps: the loss and ||theta||^2 reach the exact optimum to about 3e-5 (depth 2).
CONVERGED_RTOL = 1e-3
# The per-network inequality holds up to float32 rounding of O(10) quantities.
MARGIN_ATOL = 1e-4


def test_linear_target_reaches_the_exact_weight_decay_optimum_and_writes_its_files(written):
    xr = pytest.importorskip("xarray")
    result = run_bottleneck(
        targets=["linear_synthetic"],
        depths=(2, 3),
        width=6,
        num_points=32,
        steps=3000,
        learning_rate=0.02,
        progress=False,
    )
    target = result.targets["linear_synthetic"]
    assert target.activation == "linear" and target.bottleneck_rank == 2
    assert target.exact_rank == 2  # A is a rank-2 matrix
    a = np.linalg.svd(target.matrix, compute_uv=False)
    for net in target.networks:
        depth = net.depth
        assert net.weight_sv.shape[0] == depth and net.rep_rank.shape == (depth + 1,)
        np.testing.assert_allclose(net.norm_sq, np.nansum(net.weight_sv**2), rtol=1e-5)  # = sum of s_i^2
        # Whitened inputs: the loss is ||W - A||_F^2 + lambda ||theta||^2, minimised in closed form.
        s = deep_linear_weight_decay_optimum(a, depth, target.weight_decay)
        optimum = np.sum((s - a) ** 2) + target.weight_decay * depth * np.sum(s ** (2.0 / depth))
        assert net.loss[-1] >= optimum * (1 - 1e-5)  # it is the global minimum
        np.testing.assert_allclose(net.loss[-1], optimum, rtol=CONVERGED_RTOL)
        np.testing.assert_allclose(net.norm_sq, depth * np.sum(s ** (2.0 / depth)), rtol=CONVERGED_RTOL)
        assert net.ineq_margin.min() > -MARGIN_ATOL
        assert np.all(net.jac_rank == 2)
    depths = [2, 3]
    np.testing.assert_allclose(
        target.optimum_norm_sq[:2],
        [
            d
            * np.sum(
                deep_linear_weight_decay_optimum(a[a > 1e-5 * a[0]], d, target.weight_decay) ** (2.0 / d)
            )
            for d in depths
        ],
    )
    assert result.summary["targets"]["linear_synthetic"]["exact_R0"] == 2

    out = written(
        result,
        [
            "bottleneck_linear_synthetic.nc",
            "bottleneck_weights.png",
            "bottleneck_representations.png",
            "bottleneck_norm.png",
            "bottleneck_summary.json",
            "bottleneck_summary.md",
        ],
    )
    ds = xr.open_dataset(out / "bottleneck_linear_synthetic.nc", engine="scipy")
    assert ds["weight_singular_values"].dims == ("depth", "layer", "index")
    assert ds["depth"].values.tolist() == depths
