"""Sweep execution on the four fake CPU devices: exact oracles per run, and numbers that do not depend on
chunking, device count or host count.

Oracles: (1) a toy kernel whose output is a known function of the run's key, checked against the key rule
``fold_in(fold_in(key(seed), point_id), s)`` computed by hand; (2) the engine called directly on one
unbatched realisation (no vmap, no sharding, no chunks) and a numpy window average for the rates;
(3) the closed-form exponents ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)) with z-scores from the
predicted standard error.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxspec
import jaxspec.sweeps
from jaxspec import theory
from jaxspec.sweeps import (
    Kernel,
    Parameter,
    PartialSweepWarning,
    Record,
    SweepSpec,
    load_sweep,
    missing_points,
    register_kernel,
    run_key,
    run_sweep,
)
from jaxspec.sweeps._kernels import REQUIRED
from tests.conftest import Z_MAX, assert_close, zscores


def _toy(params, key):
    draws = jax.random.uniform(key, (params["n"],), dtype=jnp.float64)
    return {"values": params["scale"] * draws, "first": draws[0]}


TOY = register_kernel(
    Kernel(
        name="test-uniform",
        fn=_toy,
        parameters={
            "n": Parameter(int, True, REQUIRED, "draws per run"),
            "scale": Parameter(float, False, 1.0),
        },
        records={
            "values": Record({"values": ("index",), "first": ()}, always=True, doc="scaled uniform draws")
        },
    ),
    replace=True,
)


def _toy_spec(**changes):
    kwargs = dict(kernel="test-uniform", axes={"n": [2, 3], "scale": [1.0, 2.0, 5.0]}, seeds=5, seed=7)
    kwargs.update(changes)
    return SweepSpec(**kwargs)


def _toy_oracle(spec, scaled=True):
    """Expected ``values`` (or, unscaled, the draws) of every run, from the key rule alone."""
    n_values, scales = spec.axes["n"], spec.axes["scale"]
    out = np.full((len(n_values), len(scales), spec.seeds, max(n_values)), np.nan)
    for i, n in enumerate(n_values):
        for j, scale in enumerate(scales):
            point_id = np.ravel_multi_index((i, j), spec.grid_shape)
            for s in range(spec.seeds):
                key = jax.random.fold_in(jax.random.fold_in(jax.random.key(spec.seed), point_id), s)
                draws = np.asarray(jax.random.uniform(key, (n,), dtype=jnp.float64))
                out[i, j, s, :n] = (scale if scaled else 1.0) * draws
    return out


def test_toy_kernel_follows_the_key_rule_for_every_run(tmp_path):
    spec = _toy_spec(chunk_size=4)
    ds = run_sweep(spec, tmp_path / "a", progress=False)
    assert ds.attrs["complete"]
    assert ds["values"].dims == ("n", "scale", "seed", "index")
    np.testing.assert_array_equal(ds["values"].values, _toy_oracle(spec))
    np.testing.assert_array_equal(ds["first"].values, _toy_oracle(spec, scaled=False)[..., 0])


@pytest.mark.parametrize("devices, chunk_size", [(1, 1), (2, 3), (4, 30), (3, 7)])
def test_toy_numbers_do_not_depend_on_devices_or_chunks(tmp_path, devices, chunk_size):
    spec = _toy_spec()
    ds = run_sweep(spec, tmp_path / "a", progress=False, devices=devices, chunk_size=chunk_size)
    np.testing.assert_array_equal(ds["values"].values, _toy_oracle(spec))
    assert ds.attrs["devices_used"] == [devices]


def test_hosts_write_their_own_chunks_and_the_last_consolidates(tmp_path):
    spec = _toy_spec(chunk_size=4)
    out = tmp_path / "a"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # run_sweep itself never warns about its own partial result
        part = run_sweep(spec, out, progress=False, process_index=0, process_count=2)
    assert not part.attrs["complete"]
    plan_chunks = part.attrs["num_chunks"]
    assert part.attrs["num_chunks_done"] == (plan_chunks + 1) // 2
    with pytest.warns(PartialSweepWarning, match="points miss seeds"):
        partial = load_sweep(out)
    lacking = missing_points(partial)
    # Exactly the points with a run in an odd chunk are missing; finished runs already hold final values.
    done = partial["done"].values
    assert len(lacking) == int((~done.all(axis=-1)).sum()) > 0
    oracle = _toy_oracle(spec)
    np.testing.assert_array_equal(partial["values"].values[done], oracle[done])
    assert np.all(np.isnan(partial["values"].values[~done]))
    full = run_sweep(spec, out, progress=False, resume=True, process_index=1, process_count=2)
    assert full.attrs["complete"]
    assert (out / "results.zarr").is_dir() and (out / "summary.parquet").is_file()
    np.testing.assert_array_equal(full["values"].values, oracle)


# ----------------------------------------------------------------------------------------------------------
# The Lyapunov kernel.

LYAP = dict(
    axes={"sigma2": [1.0, 2.0], "p": [0.5, 1.0]},
    seeds=8,
    seed=3,
    record=("rates",),
    params={"ensemble": "masked", "width": 4, "depth": 12, "k": 3, "dtype": "float64", "rates_every": 4},
)


@pytest.fixture(scope="module")
def lyap_reference(tmp_path_factory):
    spec = SweepSpec(**LYAP, chunk_size=6)
    return spec, run_sweep(spec, tmp_path_factory.mktemp("lyap") / "ref", progress=False)


def test_lyapunov_runs_equal_the_engine_on_one_unbatched_realisation(lyap_reference):
    spec, ds = lyap_reference
    config = jaxspec.engine.make_config(3, max_k=4, dtype="float64", rates_every=4)

    @jax.jit
    def direct(ensemble, key):
        return jaxspec.engine.ensemble_frame_sums(ensemble, key, config)

    for i, sigma2 in enumerate(spec.axes["sigma2"]):
        for j, p in enumerate(spec.axes["p"]):
            point_id = np.ravel_multi_index((i, j), spec.grid_shape)
            for s in (0, 5):
                sums = direct(jaxspec.masked(4, 12, p=p, sigma2=sigma2), run_key(spec.seed, point_id, s))
                run = ds.isel(sigma2=i, p=j, seed=s)
                np.testing.assert_array_equal(
                    run["exponents"].values, np.asarray(jaxspec.engine.exponents_from_sums(sums, "K>=i"))
                )
                np.testing.assert_array_equal(run["counted_layers"].values, np.asarray(sums.layer_count))
                assert int(run["min_active"]) == int(sums.min_active)
                # Rates: numpy mean of the per-block log|R_ii| over each window of 4 layers.
                blocks = np.asarray(sums.block_log_r).reshape(3, 4, 3)
                with np.errstate(invalid="ignore"):
                    counts = np.isfinite(blocks).sum(axis=1)
                    rates = np.where(counts > 0, np.nansum(blocks, axis=1) / np.maximum(counts, 1), np.nan)
                assert_close(run["rates"].values, rates, scale=0.03)


def test_lyapunov_sweep_matches_the_closed_form(lyap_reference):
    spec, ds = lyap_reference
    for sigma2 in spec.axes["sigma2"]:
        for p in spec.axes["p"]:
            expected = theory.masked_exponents(4, p, sigma2, k=3)
            point = ds.sel(sigma2=sigma2, p=p)
            assert_close(point["theory_exponents"].values, expected, scale=0.3)
            ens = jaxspec.masked(4, 12, p=p, sigma2=sigma2)
            se = theory.predicted_stderr(ens, 3, seeds=spec.seeds)
            assert_close(point["theory_run_sd"].values, se * np.sqrt(spec.seeds), scale=0.3)
            z = zscores(np.nanmean(point["exponents"].values, axis=0), expected, se)
            assert np.all(np.abs(z) < Z_MAX), (sigma2, p, z)


@pytest.mark.parametrize("devices, chunk_size", [(1, 6), (4, 32), (2, 5)])
def test_lyapunov_numbers_are_identical_on_1_and_n_devices_and_across_chunks(
    tmp_path, lyap_reference, devices, chunk_size
):
    _, reference = lyap_reference
    ds = run_sweep(SweepSpec(**LYAP), tmp_path / "b", progress=False, devices=devices, chunk_size=chunk_size)
    for name in ("exponents", "counted_layers", "min_active", "rates"):
        np.testing.assert_array_equal(ds[name].values, reference[name].values, err_msg=name)


def test_hosts_launched_on_their_own_need_an_explicit_chunk_size(tmp_path):
    with pytest.raises(jaxspec.InputError, match="explicit chunk_size"):
        run_sweep(_toy_spec(), tmp_path / "x", progress=False, process_index=0, process_count=2)
    assert not (tmp_path / "x").exists()


def test_cpu_minibatches_give_the_same_numbers(tmp_path, lyap_reference, monkeypatch):
    # Several CPU devices map over mini-batches that keep jaxlib's batched LAPACK calls unsplit; force tiny
    # ones (QR cost 2 N k^2 = 72 flop per run -> 2 runs per mini-batch) and check nothing changes.
    from jaxspec.sweeps import _execute as execute

    _, reference = lyap_reference
    monkeypatch.setattr(execute, "_LAPACK_SPLIT_FLOP", 150)
    spec = SweepSpec(**LYAP)
    plan_group = jaxspec.sweeps.make_plan(spec).groups[0]
    assert execute.cpu_minibatch(spec, plan_group, execute.local_mesh(4)) == 2
    assert execute.cpu_minibatch(spec, plan_group, execute.local_mesh(1)) is None
    # 5 runs per device: two mini-batches of 2 and a remainder of 1.
    ds = run_sweep(spec, tmp_path / "m", progress=False, chunk_size=20)
    for name in ("exponents", "counted_layers", "rates"):
        np.testing.assert_array_equal(ds[name].values, reference[name].values, err_msg=name)
