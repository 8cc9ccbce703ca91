"""Faults a sweep store must survive: kill -9 at random points, damaged chunk and zarr files, a lost
manifest, two runs on one directory, bad output paths and sweeps too large for memory.

Oracles: an uninterrupted run of the same spec (results must be identical bit for bit), the original chunk
and manifest files (a repair must restore them exactly), the toy kernel's key rule, and the memory estimate's
closed form (``ceil(C / D) * run_bytes``).

The kill-and-resume trials run the real command, ``python -m jaxspec.cli sweep``, in a subprocess killed
with SIGKILL; one trial runs in the default suite, ten under ``-m slow``. Each trial is classified as clean,
traceback (a Python traceback or an exit status other than 0 and 2), silent garbage (exit 0 with numbers
that differ from the uninterrupted run) or data lost (a chunk finished before the kill that the resume
changed or dropped).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from jaxspec import InputError
from jaxspec.sweeps import (
    DamagedChunkError,
    Kernel,
    Parameter,
    Record,
    StoreLock,
    StoreRepairWarning,
    SweepSpec,
    SweepStore,
    check_memory,
    estimate_memory,
    load_spec,
    load_sweep,
    make_plan,
    parse_memory,
    register_kernel,
    repair_store,
    run_sweep,
)
from jaxspec.sweeps._kernels import REQUIRED
from tests.conftest import run_cli


def _toy(params, key):
    return {"values": params["scale"] * jax.random.uniform(key, (params["n"],), dtype=jnp.float64)}


register_kernel(
    Kernel(
        name="test-faults-uniform",
        fn=_toy,
        parameters={"n": Parameter(int, True, REQUIRED), "scale": Parameter(float, False, 1.0)},
        records={"values": Record({"values": ("index",)}, always=True, doc="scaled uniform draws")},
    ),
    replace=True,
)


def _toy_spec(**changes):
    kwargs = dict(
        kernel="test-faults-uniform",
        axes={"n": [2, 3], "scale": [1.0, 2.0]},
        seeds=3,
        seed=4,
        chunk_size=2,
        name="faults-toy",
    )
    kwargs.update(changes)
    return SweepSpec(**kwargs)


def _snapshot(path: Path) -> dict:
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def toy_done(tmp_path_factory):
    spec = _toy_spec()
    out = tmp_path_factory.mktemp("faults") / "done"
    ds = run_sweep(spec, out, progress=False)
    return spec, out, ds


def _copy(src: Path, dst: Path) -> Path:
    for rel, data in _snapshot(src).items():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        (dst / rel).write_bytes(data)
    return dst


def _assert_same(a, b):
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


# -- chunk files describe themselves ---------------------------------------------------------------------


def test_a_chunk_file_describes_itself(toy_done):
    spec, out, _ = toy_done
    store = SweepStore.open(out)
    with np.load(out / "chunks" / "chunk-000001.npz") as data:
        header = json.loads(str(data["__header__"]))
        payload = {k: data[k] for k in data.files if k != "__header__"}
    chunk = store.plan.chunks[1]
    assert header["fingerprint"] == spec.fingerprint() and SweepSpec.from_dict(header["spec"]) == spec
    assert (header["chunk"], header["start"], header["stop"]) == (1, chunk.start, chunk.stop)
    assert header["chunk_sizes"] == store.plan.chunk_sizes() and header["num_chunks"] == len(
        store.plan.chunks
    )
    ids, seeds = store.plan.groups[chunk.group].runs(chunk.start, chunk.stop, spec.seeds)
    np.testing.assert_array_equal(payload["__point_id__"], ids)
    np.testing.assert_array_equal(payload["__seed__"], seeds)
    # Independent oracle of the checksum: hashlib over the documented layout.
    digest = hashlib.sha256()
    for name in sorted(payload):
        array = np.asarray(payload[name])
        digest.update(f"\x1e{name}\x1e".encode())
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    assert header["sha256"] == digest.hexdigest()


def _tamper(file: Path, change) -> None:
    """Rewrite a chunk file whole (a valid zip) with its old header and one payload array changed."""
    with np.load(file) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    file.write_bytes(buffer.getvalue())


def test_a_chunk_whose_payload_fails_its_checksum_is_named_then_recomputed(toy_done, tmp_path):
    spec, out, ds = toy_done
    copy = _copy(out, tmp_path / "copy")
    _tamper(copy / "chunks" / "chunk-000003.npz", lambda a: a["var/values"].__setitem__((0, 0), 0.5))
    with pytest.raises(DamagedChunkError, match=r"chunk-000003.npz is damaged \(checksum mismatch\)"):
        SweepStore.open(copy).verify_chunks()
    with pytest.raises(DamagedChunkError, match="checksum mismatch"):
        load_sweep(copy, verify=True)
    with pytest.warns(StoreRepairWarning, match="chunk 3 .*checksum mismatch"):
        again = run_sweep(spec, copy, resume=True, progress=False)
    _assert_same(again, ds)
    assert (copy / "chunks" / "chunk-000003.npz").is_file() and len(list((copy / "damaged").iterdir())) == 1


# -- the consolidated zarr store ---------------------------------------------------------------------------


def _zarr_chunk(store: Path, variable: str) -> Path:
    return sorted(p for p in (store / "results.zarr" / variable).iterdir() if not p.name.startswith("."))[0]


@pytest.mark.parametrize("damage", ["truncate", "empty", "delete", "flip"])
def test_a_damaged_zarr_store_is_rebuilt_from_the_chunks(toy_done, tmp_path, damage):
    spec, out, ds = toy_done
    copy = _copy(out, tmp_path / "copy")
    target = _zarr_chunk(copy, "values")
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "delete":
        target.unlink()
    else:
        target.write_bytes(data[:-9] + bytes([data[-9] ^ 0x10]) + data[-8:])
    with pytest.warns(StoreRepairWarning, match="results.zarr was damaged .*rebuilt from its 6 chunk files"):
        loaded = load_sweep(copy)
    _assert_same(loaded, ds)
    _assert_same(xr.open_zarr(copy / "results.zarr").load(), ds)  # written back whole
    with warnings_none():
        _assert_same(load_sweep(copy), ds)


class warnings_none:
    """Assert that no StoreRepairWarning is raised in the block."""

    def __enter__(self):
        self._catch = warnings.catch_warnings(record=True)
        self.caught = self._catch.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)
        assert not [w for w in self.caught if issubclass(w.category, StoreRepairWarning)]


def test_resume_of_a_finished_sweep_rebuilds_a_damaged_zarr(toy_done, tmp_path):
    spec, out, ds = toy_done
    copy = _copy(out, tmp_path / "copy")
    _zarr_chunk(copy, "values").write_bytes(b"\x00" * 7)
    with pytest.warns(StoreRepairWarning, match="results.zarr was damaged"):
        again = run_sweep(spec, copy, resume=True, progress=False, on_chunk=pytest.fail)
    _assert_same(again, ds)


def test_a_damaged_zarr_without_all_chunks_is_refused_in_one_line(toy_done, tmp_path):
    _, out, _ = toy_done
    copy = _copy(out, tmp_path / "copy")
    (copy / "chunks" / "chunk-000000.npz").unlink()
    _zarr_chunk(copy, "values").write_bytes(b"")
    with pytest.raises(InputError, match="damaged .*1 chunk files are missing.*--repair"):
        load_sweep(copy)


# -- a lost manifest ----------------------------------------------------------------------------------------


def test_a_deleted_manifest_is_rebuilt_from_the_chunks(toy_done, tmp_path, capsys):
    spec, out, ds = toy_done
    copy = _copy(out, tmp_path / "copy")
    original = json.loads((copy / "jaxspec-sweep.json").read_text())
    (copy / "jaxspec-sweep.json").unlink()
    with pytest.raises(InputError, match="no jaxspec-sweep.json.*--repair"):
        load_sweep(copy)
    with pytest.raises(InputError, match="not a jaxspec sweep store.*--repair"):
        run_sweep(spec, copy, resume=True, progress=False)
    code, stdout, stderr = run_cli(capsys, "sweep", "--repair", copy)
    assert code == 0, stderr
    assert "rebuilt" in stdout and "6 of 6 chunks done" in stdout
    rebuilt = json.loads((copy / "jaxspec-sweep.json").read_text())
    rebuilt["provenance"].pop("manifest_rebuilt")
    assert rebuilt == original
    _assert_same(load_sweep(copy), ds)


def test_a_corrupted_manifest_is_set_aside_and_rebuilt(toy_done, tmp_path):
    spec, out, ds = toy_done
    copy = _copy(out, tmp_path / "copy")
    (copy / "jaxspec-sweep.json").write_text("{truncated")
    (copy / "chunks" / "chunk-000005.npz").unlink()  # and a chunk lost as well
    notes = repair_store(copy)
    assert any("set aside the damaged manifest" in n for n in notes)
    assert notes[-1].endswith(
        "5 of 6 chunks done; jaxspec sweep --out " + str(copy) + " --resume computes the rest"
    )
    assert (copy / "damaged").is_dir()
    _assert_same(run_sweep(spec, copy, resume=True, progress=False), ds)


def test_repair_rewrites_a_damaged_summary_and_leaves_a_whole_store_alone(toy_done, tmp_path):
    _, out, _ = toy_done
    copy = _copy(out, tmp_path / "copy")
    original = (copy / "summary.parquet").read_bytes()
    (copy / "summary.parquet").write_bytes(original[:50])
    notes = repair_store(copy)
    assert notes[0] == "wrote summary.parquet from the 6 chunk files" and len(notes) == 2
    pd.testing.assert_frame_equal(
        pd.read_parquet(copy / "summary.parquet"), pd.read_parquet(out / "summary.parquet")
    )
    before = _snapshot(copy)
    assert repair_store(copy) == [f"{copy}: 6 of 6 chunks done, results.zarr and summary.parquet current"]
    assert _snapshot(copy) == before


def test_repair_refuses_chunks_of_two_sweeps_and_a_directory_without_chunks(toy_done, tmp_path):
    _, out, _ = toy_done
    other = run_sweep(_toy_spec(seed=9), tmp_path / "other", progress=False)
    assert other.attrs["complete"]
    copy = _copy(out, tmp_path / "copy")
    (copy / "jaxspec-sweep.json").unlink()
    (copy / "chunks" / "chunk-000002.npz").write_bytes(
        (tmp_path / "other/chunks/chunk-000002.npz").read_bytes()
    )
    before = _snapshot(copy)
    with pytest.raises(InputError, match="chunk files come from 2 different sweeps"):
        repair_store(copy)
    assert _snapshot(copy) == before
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no jaxspec-sweep.json"):
        repair_store(tmp_path / "empty")
    with pytest.raises(InputError, match="no such directory"):
        repair_store(tmp_path / "nowhere")


# -- the lock ----------------------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_run_on_a_locked_directory_stops_in_one_line(toy_done, tmp_path, capsys):
    spec, out, _ = toy_done
    copy = _copy(out, tmp_path / "copy")
    spec_file = tmp_path / "s.json"
    spec_file.write_text(json.dumps(spec.to_dict()))
    with StoreLock.acquire(copy):
        with pytest.raises(InputError, match=rf"locked by another jaxspec sweep run \(pid {os.getpid()} on "):
            run_sweep(spec, copy, resume=True, progress=False, on_chunk=pytest.fail)
        with pytest.raises(InputError, match="locked by another jaxspec sweep repair"):
            repair_store(copy)
        code, _, err = run_cli(capsys, "sweep", spec_file, "--out", copy, "--resume", "--quiet")
        assert code == 2 and err.count("\n") == 1 and "is locked by another jaxspec sweep run" in err
    assert not (copy / "jaxspec-sweep.lock").exists()  # released and removed
    run_sweep(spec, copy, resume=True, progress=False)  # free again


def test_a_stale_lock_of_a_dead_process_is_taken_over(toy_done, tmp_path):
    spec, out, _ = toy_done
    copy = _copy(out, tmp_path / "copy")
    lock_file = copy / "jaxspec-sweep.lock"
    dead = {"pid": _dead_pid(), "host": os.uname().nodename, "started": "earlier"}
    # (1) the file a kill -9 leaves behind (nobody holds the flock): taken, and the dead run named.
    lock_file.write_text(json.dumps(dead))
    with StoreLock.acquire(copy) as lock:
        assert lock.took_over == dead
    # (2) a flock still held, by a descriptor that outlived its dead owner: stale, broken and taken over.
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps(dead).encode())
        with pytest.warns(StoreRepairWarning, match=f"took over the stale lock .*pid {dead['pid']}"):
            run_sweep(spec, copy, resume=True, progress=False)
    finally:
        os.close(fd)
    # A holder on another host is never stale (its pid means nothing here).
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps({"pid": dead["pid"], "host": "elsewhere"}).encode())
        with pytest.raises(InputError, match=f"pid {dead['pid']} on elsewhere"):
            StoreLock.acquire(copy)
    finally:
        os.close(fd)


# -- paths and memory, before any work ---------------------------------------------------------------------

TINY = "seeds = 2\nseed = 3\n[params]\ndepth = 4\nk = 2\n[axes]\nwidth = [2, 3]\n"


@pytest.mark.parametrize(
    "out, message",
    [
        ("file", "exists and is not a directory"),
        ("file/sub", "a part of that path is a file, not a directory"),
        ("/sys/jaxspec-sweep-test", "cannot be created: permission denied"),
    ],
)
def test_bad_out_paths_stop_in_one_line_before_any_work(tmp_path, capsys, out, message):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(TINY)
    (tmp_path / "file").write_text("x")
    target = out if out.startswith("/") else tmp_path / out
    code, stdout, err = run_cli(capsys, "sweep", spec_file, "--out", target, "--quiet")
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_an_unwritable_out_directory_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(InputError, match="not writable|permission denied"):
        run_sweep(_toy_spec(), ro, progress=False)


def test_an_unwritable_out_directory_is_refused_by_the_probe(tmp_path, monkeypatch):
    # Root may write anywhere, so the probe's failure is simulated: the probe file cannot be opened.
    real_open = open

    def failing_open(file, mode="r", *args, **kwargs):
        if ".tmp-probe-" in str(file):
            raise OSError(30, "Read-only file system")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(InputError, match="--out .* is not writable \\(Read-only file system\\)"):
        run_sweep(_toy_spec(), tmp_path / "new", progress=False)


def test_a_huge_width_is_refused_from_the_memory_estimate_before_anything_is_written(tmp_path, capsys):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(TINY)
    out = tmp_path / "huge"
    code, _, err = run_cli(
        capsys, "sweep", spec_file, "--out", out, "--set", "axes.width=[10000000]", "--quiet"
    )
    assert code == 2 and err.count("\n") == 1, err
    assert "width=10000000" in err and "refused before anything was written" in err and "--max-memory" in err
    assert not out.exists()
    # The estimate: a masked direct run holds 4 N^2 bytes of float32 layer terms, doubled for temporaries.
    spec = load_spec(spec_file, ["axes.width=[10000000]"])
    estimate = estimate_memory(make_plan(spec), 1)
    assert estimate.run_bytes > 2 * 4 * 4 * 10_000_000**2
    # --max-memory overrides the device's limit (the user vouches for it): no refusal then.
    check_memory(make_plan(spec), jax.local_devices()[:1], max_memory=parse_memory("10P"))
    code, _, err = run_cli(capsys, "sweep", spec_file, "--out", out, "--max-memory", "lots", "--quiet")
    assert code == 2 and "--max-memory must be a positive size" in err and not out.exists()


@pytest.mark.parametrize("out", [None, "", 3])
def test_run_sweep_refuses_an_out_that_is_not_a_path(out):
    with pytest.raises(InputError, match="out must be a directory path"):
        run_sweep(_toy_spec(), out, progress=False)


def test_the_memory_estimate_follows_the_chunks_and_devices():
    spec = _toy_spec(chunk_size=5)  # no run_bytes: the plan's 1 MiB per run
    for devices in (1, 2, 4):
        plan = make_plan(spec, num_devices=devices)
        per_device = -(-5 // devices)
        assert estimate_memory(plan, devices).device_bytes == per_device * 2**20
        assert estimate_memory(plan, devices, cpu=True).device_bytes == per_device * devices * 2**20
    assert estimate_memory(make_plan(spec), 1).host_bytes >= 2 * spec.num_runs * 3 * 8
    with pytest.raises(
        InputError, match=r"needs about 5\.0 MiB per device .*more than the 1\.0 MiB of --max-memory"
    ):
        check_memory(make_plan(spec), [_FakeGpu()], max_memory=2**20)


class _FakeGpu:
    platform = "gpu"

    def memory_stats(self):
        return {"bytes_limit": 2**30}


@pytest.mark.parametrize(
    "text, value", [("8G", 8 * 2**30), ("512MiB", 512 * 2**20), ("1.5T", int(1.5 * 2**40)), ("4096", 4096)]
)
def test_parse_memory(text, value):
    assert parse_memory(text) == value


@pytest.mark.parametrize("text", ["", "-1G", "0", "eight", "8X", "nan", True])
def test_parse_memory_refuses_nonsense(text):
    with pytest.raises(InputError, match="--max-memory must be a positive size"):
        parse_memory(text)


# -- kill -9 and resume: the real command in a subprocess --------------------------------------------------

KILL_SPEC = """
name = "faults"
seeds = 3
seed = 5
[params]
ensemble = "masked"
width = 3
depth = 6
k = 2
dtype = "float64"
[axes]
sigma2 = [1.0, 2.0]
p = [0.5, 1.0]
"""
KILL_CHUNK = 1  # 12 chunks of one run (one compiled shape): many places to land a kill


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "jaxspec.cli", "sweep", *map(str, args)]


def _env(cache: Path | None) -> dict[str, str]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    if cache is not None:  # a compilation cache shared by the trials' subprocesses
        env.update(JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return env


@pytest.fixture(scope="module")
def kill_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    spec_file = root / "faults.toml"
    spec_file.write_text(KILL_SPEC)
    # The killed runs' chunk size, so that an in-process resume reuses this compiled runner.
    ds = run_sweep(load_spec(spec_file), root / "reference", progress=False, chunk_size=KILL_CHUNK)
    return spec_file, root, ds


def _run_and_kill(args, out: Path, cache: Path | None, after_chunks: int | None, delay: float):
    """Run the command; SIGKILL it once ``after_chunks`` chunk files exist (0: once its directory exists;
    12: once every chunk is written, during consolidation) or after ``delay`` seconds. Returns
    ``(killed, stderr)``."""
    chunks = out / "chunks"
    proc = subprocess.Popen(_cli(*args), env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = time.monotonic()
    try:
        while proc.poll() is None:
            done = len(list(chunks.glob("chunk-*.npz"))) if chunks.is_dir() else 0
            if (after_chunks is not None and done >= after_chunks and (after_chunks or out.is_dir())) or (
                after_chunks is None and time.monotonic() - started >= delay
            ):
                proc.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() - started < 300, "the sweep hung"
            time.sleep(0.002)
    finally:
        _, err = proc.communicate()
    return proc.returncode == -signal.SIGKILL, err


def _kill_trial(
    spec_file: Path,
    out: Path,
    cache: Path | None,
    rng,
    *,
    resume_in_process: bool,
    mid_chunks: bool = False,
    kill_resume: bool = False,
) -> dict:
    """Start the sweep, SIGKILL it after a random number of chunk files (0 to 12) or after a random delay
    (0 to 6 s: anywhere from start-up to consolidation), optionally kill the first resume too (after 0 to
    3 s), resume it, and collect what the classification needs."""
    chunks = out / "chunks"
    if mid_chunks:
        after_chunks = int(rng.integers(1, 12))
    else:
        after_chunks = int(rng.integers(0, 13)) if rng.random() < 0.7 else None
    delay = float(rng.uniform(0.0, 6.0))
    killed, first_err = _run_and_kill(
        (spec_file, "--out", out, "--chunk-size", KILL_CHUNK, "--quiet"), out, cache, after_chunks, delay
    )
    kept = {p.name: p.read_bytes() for p in chunks.glob("chunk-*.npz")} if chunks.is_dir() else {}
    trial = {"killed": killed, "chunks_at_kill": len(kept), "first_traceback": b"Traceback" in first_err}
    if kill_resume:
        _, err = _run_and_kill(
            ("--out", out, "--resume", "--quiet"), out, cache, None, float(rng.uniform(0.0, 3.0))
        )
        trial["first_traceback"] |= b"Traceback" in err
    if resume_in_process:
        try:
            with warnings.catch_warnings(record=True):  # notes such as "took over the stale lock"
                warnings.simplefilter("always", StoreRepairWarning)
                resumed = run_sweep(load_spec(spec_file), out, resume=True, progress=False)
            code, err = 0, ""
        except InputError as error:
            resumed, code, err = None, 2, str(error)
    else:
        done = subprocess.run(
            _cli(spec_file, "--out", out, "--resume", "--quiet"),
            env=_env(cache),
            capture_output=True,
            text=True,
            timeout=600,
        )
        code, err = done.returncode, done.stderr
        resumed = load_sweep(out) if code == 0 else None
    trial.update(code=code, traceback="Traceback" in err or code not in (0, 2), message=err)
    trial["resumed"] = resumed
    trial["lost"] = [
        n for n, data in kept.items() if not (chunks / n).is_file() or (chunks / n).read_bytes() != data
    ]
    return trial


def _classify(trial: dict, expected) -> str:
    if trial["traceback"] or trial["first_traceback"]:
        return "traceback"
    if trial["code"] != 0:
        return "refused"
    if trial["lost"]:
        return "data lost"
    ds = trial["resumed"]
    same = ds.attrs["complete"] and all(
        np.array_equal(ds[v].values, expected[v].values, equal_nan=np.issubdtype(ds[v].dtype, np.floating))
        for v in expected.data_vars
    )
    return "clean" if same else "silent garbage"


def _tally(outcomes: list[str]) -> dict[str, int]:
    kinds = ("clean", "traceback", "silent garbage", "data lost", "refused")
    return {"cases tried": len(outcomes), **{k: outcomes.count(k) for k in kinds}}


def test_a_sweep_killed_at_a_random_point_resumes_to_identical_results(kill_reference, tmp_path, capsys):
    spec_file, _, expected = kill_reference
    rng = np.random.default_rng(19)
    out = tmp_path / "killed"
    trial = _kill_trial(spec_file, out, None, rng, resume_in_process=True, mid_chunks=True)
    outcome = _classify(trial, expected)
    assert outcome == "clean", (outcome, trial["message"])


_HOLD_LOCK = """
import sys, time
from pathlib import Path
from jaxspec.sweeps import StoreLock
lock = StoreLock.acquire(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_process_is_refused_while_the_first_holds_the_lock_and_not_after_its_kill(
    toy_done, tmp_path, capsys
):
    spec, out, ds = toy_done
    copy = _copy(out, tmp_path / "copy")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(copy)], stdout=subprocess.PIPE, text=True, env=_env(None)
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=rf"locked by another jaxspec sweep run \(pid {holder.pid} on "):
            run_sweep(spec, copy, resume=True, progress=False, on_chunk=pytest.fail)
        holder.send_signal(signal.SIGKILL)
    finally:
        holder.kill()
        holder.wait()
    with pytest.warns(StoreRepairWarning, match=f"took over the stale lock .*pid {holder.pid}"):
        _assert_same(run_sweep(spec, copy, resume=True, progress=False), ds)


@pytest.mark.slow
def test_ten_kill_and_resume_trials_are_all_clean(kill_reference, tmp_path):
    spec_file, _, expected = kill_reference
    rng = np.random.default_rng(2019)
    outcomes, kills = [], []
    for i in range(10):
        trial = _kill_trial(
            spec_file,
            tmp_path / f"t{i}",
            tmp_path / "cache",
            rng,
            resume_in_process=False,
            kill_resume=i % 2 == 1,
        )
        outcomes.append(_classify(trial, expected))
        kills.append((trial["killed"], trial["chunks_at_kill"]))
    tally = _tally(outcomes)
    print(f"\nkill -9 and resume: {tally}; (killed, chunks at kill) per trial: {kills}")
    assert tally["clean"] == 10, (tally, outcomes)
    assert sum(k for k, _ in kills) >= 7, "most trials must be interrupted for real"


# -- the sweep extra ---------------------------------------------------------------------------------------

_WITHOUT_EXTRA = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("xarray", "zarr", "pandas", "pyarrow"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
import jaxspec.sweeps as s
assert not {"xarray", "zarr", "pandas", "pyarrow"} & set(sys.modules)
spec = s.SweepSpec(axes={"width": [2]}, seeds=1, params={"depth": 3})
for call in (lambda: s.run_sweep(spec, sys.argv[1]), lambda: s.load_sweep(sys.argv[2])):
    try:
        call()
    except ImportError as err:
        print(type(err).__name__, err)
"""


def test_the_package_imports_without_the_sweep_extra_and_names_it_when_a_store_is_touched(toy_done, tmp_path):
    _, out, _ = toy_done
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRA, str(tmp_path / "new"), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(None),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("MissingExtraError") for line in lines), lines
    assert "pip install 'jaxspec[sweep]'" in lines[0] and "jaxspec[sweep]" in lines[1]
    assert not (tmp_path / "new").exists()  # refused before any work


# -- hostile invocations of the two commands: one line, exit 2, nothing written ------------------------------

HOSTILE = [
    ("sweep",),
    ("sweep", "s.toml"),
    ("sweep", "--repair", "nowhere"),
    ("sweep", "--repair", "afile"),
    ("sweep", "--repair", "foreign"),
    ("sweep", "--repair", "good", "--out", "x"),
    ("sweep", "--repair", "good", "s.toml"),
    ("sweep", "--out", "nowhere", "--resume"),
    ("sweep", "--out", "foreign", "--resume"),
    ("sweep", "s.toml", "--out", "good"),
    ("sweep", "s.toml", "--out", "good", "--resume", "--set", "seeds=3"),
    ("sweep", "s.toml", "--out", "x", "--devices", "0"),
    ("sweep", "s.toml", "--out", "x", "--chunk-size", "0"),
    ("sweep", "s.toml", "--out", "x", "--chunk-size", "-1"),
    ("sweep", "s.toml", "--out", "x", "--set", "seeds=0"),
    ("sweep", "s.toml", "--out", "x", "--max-memory", "0"),
    ("sweep", "s.toml", "--out", "x", "--max-memory", "-5G"),
    ("sweep", "s.toml", "--out", "x", "--max-memory", "1"),
    ("sweep", "s.toml", "--out", "/dev/null"),
    ("sweep", "s.toml", "--out", "afile/x"),
    ("sweep", "s.toml", "--out", "/sys/jaxspec-sweep-test"),
    ("sweep", "s.toml", "--out", "/proc/self/jaxspec/x"),
    ("sweep", "s.toml", "--out", "foreign"),
    ("sweep", "binary.toml", "--out", "x"),
    ("sweep", "bad.yaml", "--out", "x"),
    ("sweep", "specdir", "--out", "x"),
    ("sweep", "missing.toml", "--out", "x"),
    ("sweep", "s.toml", "--out", "x", "--set", "axes.width=[10000000]"),
    ("sweep", "s.toml", "--out", "x", "--set", "axes.width=[100000]", "--set", "params.k=100000"),
    ("report", "nowhere"),
    ("report", "afile"),
    ("report", "foreign"),
    ("report", "good", "--out", "afile"),
    ("report", "good", "--out", "/sys/jaxspec-sweep-test"),
]


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    (root / "s.toml").write_text(TINY)
    (root / "afile").write_text("x")
    (root / "foreign").mkdir()
    (root / "foreign" / "a").write_text("a")
    (root / "binary.toml").write_bytes(b"\x00\xff\xfe")
    (root / "bad.yaml").write_text("seeds: [\n")
    (root / "specdir").mkdir()
    run_sweep(load_spec(root / "s.toml"), root / "good", progress=False)
    return root


@pytest.mark.parametrize("argv", HOSTILE, ids=" ".join)
def test_hostile_invocations_stop_in_one_line_and_write_nothing(hostile_dir, capsys, monkeypatch, argv):
    monkeypatch.chdir(hostile_dir)
    before = _snapshot(hostile_dir)
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and err.startswith("jaxspec: error: "), err
    assert _snapshot(hostile_dir) == before and not (hostile_dir / "x").exists()


def test_report_names_a_damaged_chunk_and_rebuilds_a_damaged_zarr(hostile_dir, tmp_path, capsys):
    copy = _copy(hostile_dir / "good", tmp_path / "copy")
    _zarr_chunk(copy, "exponents").write_bytes(b"\x01" * 5)
    code, out, err = run_cli(capsys, "report", copy)
    assert code == 0, err
    assert "note: " in out and "results.zarr was damaged" in out and "rebuilt from its" in out
    assert (copy / "report" / "exponents_vs_width.png").is_file()
    _tamper(copy / "chunks" / "chunk-000000.npz", lambda a: a["var/exponents"].__setitem__((0, 0), 0.0))
    code, _, err = run_cli(capsys, "report", copy)
    assert code == 2 and err.count("\n") == 1
    assert "chunk-000000.npz is damaged (checksum mismatch)" in err and "--repair" in err


def _strip_checksums(zarr: Path) -> None:
    """Make a zarr store look written by a jaxspec without checksums (attributes and consolidated copy)."""
    attrs = json.loads((zarr / ".zattrs").read_text())
    for key in ("data_sha256", "chunks_sha256"):
        attrs.pop(key)
    (zarr / ".zattrs").write_text(json.dumps(attrs))
    meta = json.loads((zarr / ".zmetadata").read_text())
    meta["metadata"][".zattrs"] = attrs
    (zarr / ".zmetadata").write_text(json.dumps(meta))


def test_a_zarr_store_without_checksums_is_rebuilt_or_read_unverified(toy_done, tmp_path):
    _, out, ds = toy_done
    copy = _copy(out, tmp_path / "copy")
    _strip_checksums(copy / "results.zarr")
    (copy / "chunks" / "chunk-000004.npz").unlink()  # the chunks cannot rebuild it: read as it is
    with pytest.warns(StoreRepairWarning, match="records no checksum .*read unverified"):
        _assert_same(load_sweep(copy), ds)
    assert any("kept results.zarr unverified" in note for note in repair_store(copy))
    copy = _copy(out, tmp_path / "whole")
    _strip_checksums(copy / "results.zarr")  # every chunk present: rebuilt, with checksums
    with pytest.warns(StoreRepairWarning, match="records no checksum.*rebuilt from its 6 chunk files"):
        _assert_same(load_sweep(copy), ds)
    assert "data_sha256" in xr.open_zarr(copy / "results.zarr").attrs
