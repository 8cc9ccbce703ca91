"""``jaxspec sweep`` and ``jaxspec report`` end to end, in real subprocesses.

The oracle of the resume test is an uninterrupted in-process run (on the four fake devices): a sweep killed by
SIGKILL in a one-device subprocess and resumed in another must end with identical numbers, keeping every
chunk the killed process had finished.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from jaxspec.sweeps import PartialSweepWarning, SweepStore, load_spec, load_sweep, missing_points, run_sweep
from tests.conftest import run_cli

SPEC = """
name = "resume"
seeds = 80
seed = 11
record = ["rates"]

[params]
ensemble = "masked"
width = 6
depth = 40
k = 3
dtype = "float64"
rates_every = 10

[axes]
sigma2 = [1.0, 2.0]
p = [0.5, 0.75, 1.0]
"""
VARIABLES = ("exponents", "counted_layers", "min_active", "rates")


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "jaxspec.cli", "sweep", *map(str, args)]


def _env(cache: Path) -> dict[str, str]:
    # A compilation cache shared by the two subprocesses (not by this one), so the resumed run skips the
    # compile.
    return {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PLATFORMS": "cpu",
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep_cli")
    spec_file = root / "resume.toml"
    spec_file.write_text(SPEC)
    ds = run_sweep(load_spec(spec_file), root / "reference", progress=False, chunk_size=96)
    return spec_file, root, ds


@pytest.mark.slow  # the default run kills a sweep in tests/sweeps/test_sweep_faults.py
def test_a_killed_sweep_resumes_to_the_uninterrupted_result(reference, tmp_path):
    spec_file, _, expected = reference
    out, cache = tmp_path / "killed", tmp_path / "cache"
    chunks = out / "chunks"
    proc = subprocess.Popen(
        _cli(spec_file, "--out", out, "--devices", 1, "--chunk-size", 4, "--quiet"),
        env=_env(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    try:
        while not (chunks.is_dir() and len(list(chunks.glob("chunk-*.npz"))) >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sweep wrote no chunk in time"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    finished = sorted(chunks.glob("chunk-*.npz"))
    assert 3 <= len(finished) < 120, "the kill must land mid-way (120 chunks of 4 runs)"
    kept = {path.name: path.read_bytes() for path in finished}

    # The partial store reads, says what is missing, and already holds final values.
    with pytest.warns(PartialSweepWarning):
        partial = load_sweep(out)
    assert not partial.attrs["complete"] and len(missing_points(partial)) > 0
    done = partial["done"].values
    np.testing.assert_array_equal(partial["exponents"].values[done], expected["exponents"].values[done])

    # Resume in a fresh process; a different --chunk-size is ignored (the stored plan wins).
    resumed = subprocess.run(
        _cli(spec_file, "--out", out, "--resume", "--devices", 1, "--chunk-size", 7, "--quiet"),
        env=_env(cache),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    for name, data in kept.items():
        assert (chunks / name).read_bytes() == data, f"{name} was recomputed"
    final = load_sweep(out)
    assert final.attrs["complete"] and final.attrs["devices_used"] == [1]
    for name in VARIABLES:
        np.testing.assert_array_equal(final[name].values, expected[name].values, err_msg=name)


def test_report_draws_the_standard_figures(reference, capsys):
    _, root, _ = reference
    code, out, _ = run_cli(capsys, "report", root / "reference")
    assert code == 0
    names = {
        "exponents_vs_sigma2.png",
        "exponents_vs_p.png",
        "separation_vs_depth_over_width.png",
        "phase_diagram.png",
    }
    written = {p.name for p in (root / "reference" / "report").glob("*.png")}
    assert written == names
    for name in names:
        data = (root / "reference" / "report" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert "skipped" not in out or "exponents against" not in out


def test_cli_shows_progress_and_applies_overrides(reference, tmp_path, capsys):
    spec_file, _, expected = reference
    out = tmp_path / "small"
    code, stdout, stderr = run_cli(
        capsys,
        "sweep",
        spec_file,
        "--out",
        out,
        "--set",
        "seeds=2",
        "--set",
        "params.rates_every=20",
        "--chunk-size",
        "6",
    )
    assert code == 0
    assert "run/s" in stderr and "chunk 2/2" in stderr  # tqdm: throughput and chunks
    assert "6 points x 2 seeds = 12 runs" in stdout
    ds = load_sweep(out)
    assert ds.sizes["seed"] == 2 and ds.sizes["window"] == 2  # 40 layers in windows of 20
    # Same grid, same key rule: these runs are the reference's first two seeds (rates aside, exponents agree).
    np.testing.assert_array_equal(ds["exponents"].values, expected["exponents"].isel(seed=[0, 1]).values)


@pytest.mark.slow
def test_two_hosts_under_jax_distributed_equal_one_host(reference, tmp_path):
    spec_file, _, expected = reference
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = textwrap.dedent(f"""
        import sys, jax
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_num_cpu_devices", 2)
        jax.distributed.initialize("127.0.0.1:{port}", num_processes=2, process_id=int(sys.argv[1]))
        from jaxspec.sweeps import load_spec, run_sweep
        ds = run_sweep(load_spec(sys.argv[2], ["seeds=8"]), sys.argv[3], progress=False, chunk_size=6)
        print("complete", ds.attrs["complete"], ds.attrs["process_count"])
        jax.distributed.shutdown()
    """)
    out = tmp_path / "two_hosts"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(i), str(spec_file), str(out)],
            env=_env(tmp_path / "c"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (stdout, stderr) in zip(procs, results, strict=True):
        assert proc.returncode == 0, stderr
        assert "complete True 2" in stdout
    ds = load_sweep(out)
    store = SweepStore.open(out)
    # Each host wrote its part.
    assert {store.read_chunk(i)[0]["process_index"] for i in store.done_chunks()} == {0, 1}
    for name in VARIABLES:
        np.testing.assert_array_equal(
            ds[name].values, expected[name].isel(seed=slice(0, 8)).values, err_msg=name
        )


@pytest.mark.slow
def test_large_chunks_on_more_cpu_devices_than_cores_do_not_deadlock(tmp_path):
    # 625 runs per device make jaxlib split each batched QR over the intra-op pool that the four devices
    # share; without mini-batches this hung for ever on a 2-core machine.
    spec_file = tmp_path / "big.toml"
    spec_file.write_text(
        "seeds = 1250\n[params]\nwidth = 16\ndepth = 20\nk = 4\n[axes]\nsigma2 = [1.0, 2.0]\n"
    )
    done = subprocess.run(
        _cli(spec_file, "--out", tmp_path / "big", "--devices", 4, "--quiet"),
        env=_env(tmp_path / "cache"),
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert done.returncode == 0, done.stderr
    ds = load_sweep(tmp_path / "big")
    assert ds.attrs["complete"] and ds.attrs["num_chunks"] == 1 and ds.attrs["devices_used"] == [4]
