"""``jaxspec train`` and ``jaxspec figures dynamics``: labelled datasets, figures, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from tests.conftest import run_cli


def test_train_writes_a_labelled_dataset_and_a_figure(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "model: linear\ninit: aligned\nsigma0: 0.05\ndepth: 2\nwidth: 6\nsteps: 300\n"
        "log_every: 20\nteacher_sv: [2.0, 1.0]\ntop_k: 2\ninput_dim: 5\noutput_dim: 3\n"
        "num_samples: 20\n"
    )
    code, out, err = run_cli(
        capsys,
        "train",
        "--config",
        str(config),
        "--lr",
        "0.02",
        "--dtype",
        "float64",
        "--out",
        str(tmp_path / "out"),
        "--format",
        "nc",
        "--quiet",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["config"]["learning_rate"] == 0.02 and summary["config"]["depth"] == 2
    ds = xr.open_dataset(tmp_path / "out" / "trajectories.nc")
    assert ds.sizes["step"] == 16 and ds.sizes["mode"] == 2 and ds.sizes["layer"] == 2
    assert ds["sigma"].dims == ("step", "mode") and ds["u"].dims == ("step", "out_dim", "mode")
    np.testing.assert_allclose(ds["time"].values, ds["step"].values * 0.02)
    for name in ("predicted_saxe", "predicted_balanced", "predicted_mode_ode", "predicted_arora"):
        assert name in ds
    # Aligned, balanced, two layers: Saxe's closed form holds up to the GD discretisation error (lr 0.02).
    assert np.all(ds["max_relative_error_saxe"].values < 0.1)
    assert json.loads(ds.attrs["config"])["init"] == "aligned"
    assert (tmp_path / "out" / "dynamics.png").stat().st_size > 10_000


@pytest.mark.slow  # the default run writes a labelled dataset in the test above
def test_train_zarr_output_and_fixed_gates(capsys, tmp_path):
    code, out, err = run_cli(
        capsys,
        "train",
        "--model",
        "fixed_gates",
        "--steps",
        "40",
        "--log-every",
        "10",
        "--width",
        "8",
        "--num-samples",
        "16",
        "--teacher-sv",
        "2,1",
        "--top-k",
        "2",
        "--out",
        str(tmp_path),
        "--quiet",
    )
    assert code == 0, err
    assert "wrote" in out and "mode_ode" in out
    ds = xr.open_zarr(tmp_path / "trajectories.zarr", consolidated=False)
    assert ds["factors"].dims == ("step", "layer", "mode") and ds.sizes["step"] == 5


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "conv"], "model must be one of"),
        (["--init", "aligned", "--model", "relu"], "aligned"),
        (["--data", "mnist"], "mnist_path"),
        (["--data", "mnist", "--mnist-path", "/nonexistent/mnist"], "no such MNIST path"),
        (["--steps", "0"], "steps"),
        (["--teacher-sv", "a,b"], "teacher-sv"),
        (["--format", "csv"], "format"),
        (["--config", "/nonexistent.yaml"], "no such config file"),
    ],
)
def test_bad_options_give_one_line_errors(capsys, tmp_path, args, message):
    code, _, err = run_cli(capsys, "train", "--out", str(tmp_path), "--quiet", *args)
    assert code == 2
    assert err.startswith("jaxspec: error:") and message in err and len(err.strip().splitlines()) == 1


def test_unknown_config_keys_are_named(capsys, tmp_path):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"depht": 3}))
    code, _, err = run_cli(capsys, "train", "--config", str(config), "--out", str(tmp_path), "--quiet")
    assert code == 2 and "depht" in err


@pytest.mark.slow
def test_figures_dynamics_runs_one_experiment(capsys, tmp_path):
    code, out, err = run_cli(
        capsys,
        "figures",
        "dynamics",
        "--out",
        str(tmp_path),
        "--experiment",
        "linear_teacher_aligned",
        "--quiet",
    )
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    errors = summary["linear_teacher_aligned"]["max_relative_error"]
    assert max(errors["mode_ode"]) < 0.05 and (tmp_path / "linear_teacher_aligned.png").exists()
    # One .png/.nc per experiment and the summaries; no overview without a random-init experiment, and no
    # temporary file left over by the atomic writes.
    expected = ["linear_teacher_aligned.nc", "linear_teacher_aligned.png", "summary.json", "summary.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    assert "linear_teacher_aligned: best prediction" in out and f"wrote {tmp_path}/" in out
