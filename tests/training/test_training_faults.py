"""Faults in training: divergence, bad output paths, changed settings on resume, damaged checkpoints, kill -9.

Oracles: gradient descent on ``a w^2`` is the exact iteration ``w_{k+1} = (1 - 2 a eta) w_k``, so the step
where the loss first overflows is known; an uninterrupted run is the oracle of every resumed one, record for
record and bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import xarray as xr

from jaxspec._checks import InputError
from jaxspec.training import (
    CheckpointFallbackWarning,
    TrainConfig,
    TrainingDivergedError,
    _checkpoint,
    checkpoint_steps,
    latest_checkpoint_step,
    run_experiment,
    run_signature,
    train,
)
from jaxspec.training._experiment import _make_data
from tests.conftest import run_cli

# ---------------------------------------------------------------------------------------------- divergence


def _overflow_oracle(a: float, eta: float, w0: float, num_steps: int):
    """GD on a w^2 in float64 numpy: the loss after each step, and the first step whose loss is not finite."""
    w, losses = np.float64(w0), [a * w0**2]
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(num_steps):
            w = w - eta * (2 * a * w)
            losses.append(a * w * w)
    losses = np.asarray(losses)
    return losses, int(np.nonzero(~np.isfinite(losses))[0][0])


def test_divergence_names_the_exact_step_and_keeps_the_finite_records():
    a, eta, w0 = 1.0, 1e10, 1.0
    losses, first_bad = _overflow_oracle(a, eta, w0, 40)
    assert 8 < first_bad < 40  # the loss grows by (2e10)^2 per step: it overflows near step 15
    with pytest.raises(TrainingDivergedError) as info:
        train(
            lambda w: a * w[0] ** 2,
            jnp.array([w0]),
            num_steps=40,
            log_every=4,
            learning_rate=eta,
            progress=False,
        )
    err = info.value
    assert err.step == first_bad and not np.isfinite(err.value)
    assert str(err).startswith(f"training diverged at step {first_bad}: loss = ")
    kept = err.result
    last = (first_bad - 1) // 4 * 4  # the last record at or before the last finite step
    assert err.last_good_step == last
    np.testing.assert_array_equal(np.asarray(kept.steps), np.arange(0, last + 1, 4))
    np.testing.assert_allclose(np.asarray(kept.loss), losses[: last + 1 : 4], rtol=1e-12)
    assert np.isfinite(np.asarray(kept.params)).all()
    np.testing.assert_allclose(
        float(kept.params[0]) ** 2, losses[last], rtol=1e-12
    )  # the kept record's params


def test_divergence_keeps_earlier_checkpoints(tmp_path):
    # A step size that jumps from 0.01 to 1e10 at step 40: the run is finite for 40 steps, then overflows.
    optimizer = optax.sgd(lambda n: jnp.where(n < 40, 0.01, 1e10))
    with pytest.raises(TrainingDivergedError) as info:
        train(
            lambda w: jnp.sum(w**2),
            jnp.ones(2),
            optimizer,
            num_steps=200,
            log_every=10,
            checkpoint_dir=tmp_path,
            checkpoint_every=20,
            progress=False,
        )
    assert 40 < info.value.step < 60 and info.value.last_good_step == (info.value.step - 1) // 10 * 10
    assert checkpoint_steps(tmp_path) == [20, 40]  # kept, and nothing written after the divergence


def test_cli_divergence_is_one_line_and_keeps_the_records(capsys, monkeypatch, tmp_path):
    # The command's handling, fast: the experiment raises as a diverged run does, with two records kept.
    kept = xr.Dataset({"loss": ("step", [1.0, 2.0])}, coords={"step": [0, 10]})

    def diverge(*args, **kwargs):
        err = TrainingDivergedError(17, float("inf"), None, 10)
        err.dataset = kept
        raise err

    monkeypatch.setattr("jaxspec.cli._train.run_experiment", diverge)
    (tmp_path / "dynamics.png").write_bytes(b"an earlier run's figure")
    code, _, err = run_cli(capsys, "train", "--out", tmp_path, "--quiet", "--format", "nc")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.strip() == (
        "jaxspec: error: training diverged at step 17: loss = inf; records up to step 10 kept in "
        f"{tmp_path}/trajectories.nc"
    )
    assert xr.open_dataset(tmp_path / "trajectories.nc")["loss"].values.tolist() == [1.0, 2.0]
    assert json.loads((tmp_path / "summary.json").read_text())["diverged"]["step"] == 17
    assert not (tmp_path / "dynamics.png").exists()  # it described another run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json", "trajectories.nc"]  # no temporaries


@pytest.mark.slow
def test_cli_lr_1e6_diverges_in_one_line_and_keeps_the_records(capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "train", "--lr", "1e6", "--steps", "100", "--log-every", "1", "--depth", "2", "--width", "3",
        "--input-dim", "3", "--output-dim", "2", "--teacher-sv", "2,1", "--top-k", "2", "--num-samples", "8",
        "--out", tmp_path, "--quiet", "--format", "nc",
    )  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("jaxspec: error: training diverged at step ") and "records up to step" in err
    step = int(err.split("at step ")[1].split(":")[0])
    ds = xr.open_dataset(tmp_path / "trajectories.nc")
    assert int(ds["step"].values[-1]) == step - 1 and np.isfinite(ds["loss"].values).all()


# ------------------------------------------------------------------------------------------- output paths


def _no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the output paths were checked")

    monkeypatch.setattr("jaxspec.cli._train.run_experiment", refuse)


@pytest.mark.parametrize(
    "make, flag, message",
    [
        (lambda p: (p / "f").write_text("x") and p / "f", "--out", "exists and is not a directory"),
        (lambda p: (p / "f").write_text("x") and p / "f" / "sub", "--out", "cannot create the directory"),
        (
            lambda p: (p / "f").write_text("x") and p / "f",
            "--checkpoint-dir",
            "exists and is not a directory",
        ),
        (lambda p: (p / "summary.json").mkdir() or p, "--out", "is a folder where jaxspec train writes"),
        (lambda p: (p / "trajectories.zarr").write_text("x") and p, "--out", "is not a zarr store"),
    ],
)
def test_bad_output_paths_are_refused_before_training(capsys, monkeypatch, tmp_path, make, flag, message):
    _no_training(monkeypatch)
    bad = make(tmp_path)
    args = ["--out", bad] if flag == "--out" else ["--out", tmp_path / "ok", "--checkpoint-dir", bad]
    code, _, err = run_cli(capsys, "train", "--quiet", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_an_unwritable_out_is_refused_before_training(capsys, monkeypatch, tmp_path):
    _no_training(monkeypatch)
    tmp_path.chmod(0o500)
    try:
        code, _, err = run_cli(capsys, "train", "--quiet", "--out", tmp_path)
    finally:
        tmp_path.chmod(0o700)
    assert code == 2 and "not writable" in err


# ---------------------------------------------------------------------------------------------------- resume

TINY = dict(depth=2, width=4, input_dim=4, output_dim=3, num_samples=12, teacher_sv=(2.0, 1.0), top_k=2)


def _tiny(**changes) -> TrainConfig:
    return TrainConfig(**{**TINY, "steps": 60, "log_every": 10, "learning_rate": 0.05, **changes})


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """The checkpoints of a tiny experiment (the predictions after training are skipped: not needed here)."""
    directory = tmp_path_factory.mktemp("ckpt")

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("jaxspec.training._experiment.compare_dynamics", stop)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(_tiny(), progress=False, checkpoint_dir=directory, checkpoint_every=20)
    assert checkpoint_steps(directory) == [40, 60]
    return directory


@pytest.mark.parametrize(
    "change, field",
    [
        ({"learning_rate": 0.01}, "learning_rate"),
        ({"seed": 1}, "seed"),
        ({"width": 5}, "width"),
        ({"depth": 3}, "depth"),
        ({"optimizer": "momentum"}, "optimizer"),
        ({"num_samples": 16}, "num_samples"),
        ({"teacher_sv": (2.0, 0.5)}, "teacher_sv"),
        ({"init_scale": 0.2}, "init_scale"),
        ({"log_every": 20}, "log_every"),
    ],
)
def test_resume_refuses_a_changed_setting_and_names_it(checkpointed, change, field):
    before = checkpoint_steps(checkpointed)
    with pytest.raises(InputError, match=f"cannot resume from .*: {field} was "):
        run_experiment(_tiny(steps=80, **change), progress=False, checkpoint_dir=checkpointed, resume=True)
    assert checkpoint_steps(checkpointed) == before  # nothing written


def test_only_the_number_of_steps_is_free_on_resume():
    data = _make_data(_tiny(), jnp.float64)
    assert run_signature(_tiny(steps=60), data) == run_signature(_tiny(steps=1000, predict_from=-1), data)
    assert (
        run_signature(_tiny(), data)["data_sha256"]
        != run_signature(_tiny(), _make_data(_tiny(seed=1), jnp.float64))["data_sha256"]
    )


@pytest.mark.slow
def test_resume_may_extend_the_run_and_equals_the_uninterrupted_one(tmp_path):
    run_experiment(_tiny(), progress=False, checkpoint_dir=tmp_path, checkpoint_every=20)
    resumed, _, _ = run_experiment(_tiny(steps=100), progress=False, checkpoint_dir=tmp_path, resume=True)
    straight, _, _ = run_experiment(_tiny(steps=100), progress=False)
    for got, want in zip(jax.tree.leaves(resumed), jax.tree.leaves(straight), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _quadratic_run(directory, num_steps, resume=False):
    return train(
        lambda w: jnp.sum((w - 3.0) ** 2),
        jnp.zeros(3),
        num_steps=num_steps,
        log_every=5,
        learning_rate=0.01,
        track_fn=lambda w: {"w": w},
        checkpoint_dir=directory,
        checkpoint_every=None if directory is None else 10,
        resume=resume,
        progress=False,
    )


def test_a_truncated_latest_checkpoint_falls_back_to_the_newest_good_one(tmp_path):
    _quadratic_run(tmp_path, 40)
    assert checkpoint_steps(tmp_path) == [30, 40]
    data = sorted(p for p in (tmp_path / "40" / "state" / "d").iterdir())
    with open(data[0], "r+b") as fh:
        fh.truncate(3)
    with pytest.warns(CheckpointFallbackWarning, match="step 40 .* resuming from step 30 instead"):
        resumed = _quadratic_run(tmp_path, 60, resume=True)
    straight = _quadratic_run(None, 60)
    for got, want in zip(jax.tree.leaves(resumed), jax.tree.leaves(straight), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert (tmp_path / "damaged-40").is_dir() and checkpoint_steps(tmp_path) == [50, 60]


def test_a_checkpoint_whose_arrays_differ_from_the_checksum_is_damaged(tmp_path, monkeypatch):
    _quadratic_run(tmp_path, 20)
    monkeypatch.setattr(_checkpoint, "checksum", lambda tree: "0" * 64)  # as if a byte had flipped
    with pytest.raises(InputError, match="damaged: its arrays do not match the checksum"):
        _checkpoint.restore_checkpoint(tmp_path, jnp.zeros(3), optax.sgd(0.01).init(jnp.zeros(3)))


@pytest.mark.slow
def test_cli_resume_with_another_lr_is_one_line(capsys, tmp_path):
    args = ["train", "--steps", "40", "--log-every", "10", "--width", "4", "--num-samples", "12", "--quiet"]
    args += ["--out", tmp_path / "out", "--checkpoint-dir", tmp_path / "ck", "--checkpoint-every", "20"]
    assert run_cli(capsys, *args)[0] == 0
    code, _, err = run_cli(capsys, *args, "--resume", "--lr", "0.01", "--steps", "60")
    assert code == 2 and "learning_rate was 0.005" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------- kill -9

# A run of the generic loop with tracked quantities and frequent checkpoints, as the killed process runs it.
_KILL_TARGET = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_num_cpu_devices", 4)
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jaxspec.training import train

    def run(directory, resume):
        x = jax.random.normal(jax.random.key(0), (16, 5))
        y = x @ jnp.diag(jnp.array([3.0, 2.0, 1.0, 0.5, 0.1]))[:, :3]
        keys = jax.random.split(jax.random.key(1))
        w = (0.1 * jax.random.normal(keys[0], (5, 6)), 0.1 * jax.random.normal(keys[1], (6, 3)))
        loss = lambda p: 0.5 * jnp.mean((x @ p[0] @ p[1] - y) ** 2)
        track = lambda p: {"sv": jnp.linalg.svd(p[0] @ p[1], compute_uv=False), "w0": p[0]}
        every = None if directory is None else 20
        return train(loss, w, num_steps=NUM_STEPS, log_every=5, learning_rate=0.05, track_fn=track,
                     checkpoint_dir=directory, checkpoint_every=every, resume=resume, progress=False)

    if __name__ == "__main__":
        run(sys.argv[1], True)
    """
)


def _kill_trials(tmp_path, trials: int, num_steps: int, seed: int) -> list[int | None]:
    """Kill the run at random times, resume each here; return the step of the checkpoint each kill left."""
    source = _KILL_TARGET.replace("NUM_STEPS", str(num_steps))
    script = tmp_path / "kill_target.py"
    script.write_text(source)
    namespace: dict = {}
    exec(compile(source.replace('if __name__ == "__main__":', "if False:"), str(script), "exec"), namespace)
    straight = namespace["run"](None, False)
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    reached = []
    for trial in range(trials):
        directory = tmp_path / f"trial{trial}"
        proc = subprocess.Popen([sys.executable, str(script), str(directory)], env=env)
        deadline = time.monotonic() + 120
        while not directory.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the folder appears with the first checkpoint: training is under way
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reached.append(latest_checkpoint_step(directory))
        resumed = namespace["run"](directory, True)  # resume in this process, to the end
        for got, want in zip(jax.tree.leaves(resumed), jax.tree.leaves(straight), strict=True):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    return reached


def test_kill_minus_nine_then_resume_gives_the_uninterrupted_records(tmp_path):
    _kill_trials(tmp_path, trials=1, num_steps=200, seed=0)


@pytest.mark.slow
def test_kill_minus_nine_at_ten_random_points(tmp_path):
    reached = _kill_trials(tmp_path, trials=10, num_steps=200, seed=1)
    assert sum(step is not None and step < 200 for step in reached) >= 5, reached  # most kills land mid-run


@pytest.mark.slow
def test_kill_minus_nine_of_the_command_then_resume_gives_the_uninterrupted_dataset(tmp_path):
    args = ["train", "--steps", "400", "--log-every", "5", "--depth", "2", "--width", "4", "--top-k", "2"]
    args += ["--teacher-sv", "2,1", "--input-dim", "4", "--output-dim", "3", "--num-samples", "12", "--quiet"]
    args += ["--format", "nc", "--checkpoint-every", "20"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "JAXSPEC_COMPILE_CACHE": "0"}
    command = [sys.executable, "-m", "jaxspec.cli", *args]
    straight = tmp_path / "straight"
    subprocess.run([*command, "--out", straight, "--checkpoint-dir", straight / "ck"], env=env, check=True)
    want = xr.open_dataset(straight / "trajectories.nc").load()
    rng = random.Random(2)
    for trial in range(3):
        out = tmp_path / f"trial{trial}"
        run = [*command, "--out", out, "--checkpoint-dir", out / "ck"]
        proc = subprocess.Popen(run, env=env)
        while not (out / "ck").exists() and proc.poll() is None:
            time.sleep(0.01)
        while not checkpoint_steps(out / "ck") and proc.poll() is None:
            time.sleep(0.01)  # training is under way once the first checkpoint is there
        time.sleep(rng.uniform(0.0, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        subprocess.run([*run, "--resume"], env=env, check=True)
        got = xr.open_dataset(out / "trajectories.nc").load()
        for name in ("loss", "sigma", "u", "v", "factors", "end_to_end"):
            np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)


@pytest.mark.parametrize("flags", [["--resume"], ["--checkpoint-every", "20"]])
def test_checkpoint_flags_without_a_checkpoint_dir_are_named(capsys, monkeypatch, tmp_path, flags):
    _no_training(monkeypatch)
    code, _, err = run_cli(capsys, "train", "--quiet", "--out", tmp_path, *flags)
    assert code == 2 and err.strip() == f"jaxspec: error: {flags[0]} needs --checkpoint-dir"
