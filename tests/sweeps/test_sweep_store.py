"""The sweep results store: one-call loading, provenance, resume, and refusal of foreign or corrupted
directories.

A toy kernel with an exact oracle (a scaled uniform draw from the run's key) keeps these tests cheap.
"""

from __future__ import annotations

import json

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
    StoreRepairWarning,
    SweepSpec,
    SweepStore,
    load_sweep,
    register_kernel,
    run_sweep,
)
from jaxspec.sweeps._kernels import REQUIRED
from tests.conftest import run_cli


def _toy(params, key):
    return {
        "values": params["scale"] * jax.random.uniform(key, (params["n"],), dtype=jnp.float64),
        "count": jnp.int32(params["n"]),
    }


register_kernel(
    Kernel(
        name="test-store-uniform",
        fn=_toy,
        parameters={"n": Parameter(int, True, REQUIRED), "scale": Parameter(float, False, 1.0)},
        records={
            "values": Record({"values": ("index",), "count": ()}, always=True, doc="scaled uniform draws")
        },
    ),
    replace=True,
)


def _spec(**changes):
    kwargs = dict(
        kernel="test-store-uniform",
        axes={"n": [2, 3], "scale": [1.0, 2.0]},
        seeds=3,
        seed=1,
        chunk_size=2,
        name="store-test",
    )
    kwargs.update(changes)
    return SweepSpec(**kwargs)


def _oracle(spec):
    out = np.full((*spec.grid_shape, spec.seeds, max(spec.axes["n"])), np.nan)
    for i, n in enumerate(spec.axes["n"]):
        for j, scale in enumerate(spec.axes["scale"]):
            point_id = np.ravel_multi_index((i, j), spec.grid_shape)
            for s in range(spec.seeds):
                key = jax.random.fold_in(jax.random.fold_in(jax.random.key(spec.seed), point_id), s)
                out[i, j, s, :n] = scale * np.asarray(jax.random.uniform(key, (n,), dtype=jnp.float64))
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    spec = _spec()
    out = tmp_path_factory.mktemp("store") / "done"
    ds = run_sweep(spec, out, progress=False)
    return spec, out, ds


def _snapshot(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_zarr_loads_in_xarray_and_parquet_in_pandas_with_one_call(finished):
    spec, out, ds = finished
    oracle = _oracle(spec)
    zarr = xr.open_zarr(out / "results.zarr")
    assert zarr["values"].dims == ("n", "scale", "seed", "index")
    np.testing.assert_array_equal(zarr["values"].values, oracle)
    np.testing.assert_array_equal(
        zarr["count"].values, np.broadcast_to(np.array([2, 3])[:, None, None], (2, 2, 3))
    )
    assert zarr["done"].values.all()
    frame = pd.read_parquet(out / "summary.parquet")
    assert len(frame) == spec.num_runs
    assert list(frame.columns[:4]) == ["point_id", "n", "scale", "seed"]
    for row in frame.itertuples():
        i, j = spec.axes["n"].index(row.n), spec.axes["scale"].index(row.scale)
        assert row.point_id == np.ravel_multi_index((i, j), spec.grid_shape)
        assert row.values_1 == oracle[i, j, row.seed, 0] and row.count == row.n
        if row.n == 2:
            assert np.isnan(row.values_3)


def test_attributes_record_spec_versions_backend_devices_and_commit(finished):
    spec, out, _ = finished
    attrs = xr.open_zarr(out / "results.zarr").attrs
    assert SweepSpec.from_dict(json.loads(attrs["spec"])) == spec
    assert attrs["spec_fingerprint"] == spec.fingerprint()
    versions = json.loads(attrs["versions"])
    assert versions["jax"] == jax.__version__ and "numpy" in versions and "xarray" in versions
    assert attrs["backend"] == "cpu" and attrs["devices_used"] == [4] and attrs["process_count"] == 1
    assert attrs["git_commit"]  # a hash, or "unknown" outside a checkout
    assert attrs["complete"] and attrs["num_runs_done"] == spec.num_runs


def test_resuming_a_finished_sweep_recomputes_nothing(finished):
    spec, out, ds = finished
    before = _snapshot(out / "chunks")
    again = run_sweep(
        spec, out, resume=True, progress=False, on_chunk=lambda i: pytest.fail(f"chunk {i} redone")
    )
    np.testing.assert_array_equal(again["values"].values, ds["values"].values)
    assert _snapshot(out / "chunks") == before


def test_same_sweep_without_resume_is_refused(finished):
    spec, out, _ = finished
    with pytest.raises(InputError, match=r"already holds this sweep \(6 of 6 chunks done\); pass --resume"):
        run_sweep(spec, out, progress=False)


def test_a_different_sweep_is_refused_and_nothing_is_touched(finished):
    spec, out, _ = finished
    before = _snapshot(out)
    with pytest.raises(InputError, match="holds a different sweep .*seeds: stored 3, asked 4.*new --out"):
        run_sweep(_spec(seeds=4), out, resume=True, progress=False)
    assert _snapshot(out) == before


def test_a_foreign_directory_is_refused_and_left_alone(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("precious")
    for resume in (False, True):
        with pytest.raises(InputError, match="not empty and is not a jaxspec sweep store"):
            run_sweep(_spec(), foreign, resume=resume, progress=False)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert (foreign / "notes.txt").read_text() == "precious"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(InputError, match="is not a directory"):
        run_sweep(_spec(), a_file, progress=False)
    with pytest.raises(InputError, match="not a jaxspec sweep store"):
        load_sweep(foreign)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda m: "{not json", "is corrupted"),
        (
            lambda m: json.dumps({**json.loads(m), "format": "something-else"}),
            "is not a jaxspec-sweep/1 manifest",
        ),
        (
            lambda m: json.dumps({k: v for k, v in json.loads(m).items() if k != "chunk_sizes"}),
            "missing chunk_sizes",
        ),
        (
            lambda m: json.dumps({**json.loads(m), "spec": {**json.loads(m)["spec"], "seeds": 9}}),
            "its spec does not match its fingerprint",
        ),
    ],
)
def test_a_corrupted_manifest_is_refused(tmp_path, finished, damage, message):
    _, out, _ = finished
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "jaxspec-sweep.json").write_text(damage((out / "jaxspec-sweep.json").read_text()))
    before = _snapshot(copy)
    for action in (lambda: run_sweep(_spec(), copy, resume=True, progress=False), lambda: load_sweep(copy)):
        with pytest.raises(InputError, match=message):
            action()
    assert _snapshot(copy) == before


def _half_done(tmp_path, spec=None):
    spec = spec or _spec()
    out = tmp_path / "half"
    run_sweep(spec, out, progress=False, process_index=0, process_count=2)
    return spec, out


def test_a_corrupted_chunk_is_named_when_read_and_recomputed_on_resume(tmp_path):
    spec, out = _half_done(tmp_path)
    chunk = out / "chunks" / "chunk-000002.npz"
    chunk.write_bytes(chunk.read_bytes()[:100])  # truncated, as by a crash of a non-atomic writer
    before = _snapshot(out)
    with pytest.raises(DamagedChunkError, match="chunk-000002.npz is damaged .*--repair"):
        load_sweep(out)
    assert _snapshot(out) == before  # reading never changes a store
    with pytest.warns(StoreRepairWarning, match="chunk 2 .* was damaged .*set aside"):
        ds = run_sweep(spec, out, resume=True, progress=False)
    assert ds.attrs["complete"]
    np.testing.assert_array_equal(ds["values"].values, _oracle(spec))
    assert [p.name.split(".npz")[0] for p in (out / "damaged").iterdir()] == ["chunk-000002"]


def test_a_chunk_of_another_sweep_is_refused(tmp_path):
    spec, out = _half_done(tmp_path)
    other = tmp_path / "other"
    run_sweep(_spec(seed=2), other, progress=False, process_index=0, process_count=2)
    (out / "chunks" / "chunk-000002.npz").write_bytes((other / "chunks" / "chunk-000002.npz").read_bytes())
    with pytest.raises(InputError, match="belongs to another sweep"):
        run_sweep(spec, out, resume=True, progress=False, process_index=1, process_count=2)
    (out / "chunks" / "chunk-000099.npz").write_bytes(b"")
    with pytest.raises(InputError, match="does not belong to this sweep's plan"):
        load_sweep(out)


def test_leftovers_of_an_interrupted_write_are_ignored_then_cleaned(tmp_path):
    spec, out = _half_done(tmp_path)
    stale = out / "chunks" / ".tmp-host-123-chunk-000001.npz"
    stale.write_bytes(b"half a chunk")
    store = SweepStore.open(out)
    assert store.done_chunks() == {0, 2, 4}
    ds = run_sweep(spec, out, resume=True, progress=False, process_index=1, process_count=2)
    assert ds.attrs["complete"] and not stale.exists()
    np.testing.assert_array_equal(ds["values"].values, _oracle(spec))


def test_cli_refuses_a_foreign_directory_with_one_line(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "data.csv").write_text("1,2")
    spec_file = tmp_path / "s.toml"
    spec_file.write_text("seeds = 2\n[params]\ndepth = 5\n[axes]\nwidth = [2]\n")
    code, _, err = run_cli(capsys, "sweep", spec_file, "--out", foreign, "--quiet")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("jaxspec: error: ") and "not a jaxspec sweep store" in err
    assert (foreign / "data.csv").read_text() == "1,2"
