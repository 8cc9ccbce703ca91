"""The Lyapunov kernel's optional records and engine methods against independent oracles.

Finite-depth singular values and prefix alignment against dense float64 products (numpy SVD, sines as
projection residuals); the exact-in-law chi sampler against its own direct call and the closed form (z-scores
from the predicted standard error, [math §1-3](https://jaxspec.github.io/jaxspec/math/#s1)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxspec
from jaxspec import theory
from jaxspec.sweeps import SweepSpec, run_key, run_sweep
from tests.conftest import Z_MAX, assert_close, zscores


def test_singular_values_and_alignment_equal_dense_float64_products(tmp_path):
    spec = SweepSpec(
        axes={"p": [0.75, 1.0]},
        seeds=2,
        seed=5,
        record=("svals", "svals_prefixes", "alignment"),
        params={"ensemble": "masked", "width": 3, "depth": 6, "k": 3, "dtype": "float64"},
    )
    ds = run_sweep(spec, tmp_path / "sv", progress=False)
    assert ds["log_svals_prefixes"].dims[-2:] == ("layer", "index")
    assert ds["alignment_log_sin"].dims[-1] == "layer"
    for j, p in enumerate(spec.axes["p"]):
        for s in range(spec.seeds):
            key = jaxspec.engine.realisation_key(run_key(spec.seed, j, s))
            stack = jaxspec.masked(3, 6, p=p).sample(key, jnp.float64)
            layers = np.asarray(stack.masks)[:, :, None] * np.asarray(stack.weights)
            prefixes, m = [], np.eye(3)
            for a in layers:
                m = a @ m
                prefixes.append(m)
            run = ds.isel(p=j, seed=s)
            rank = int(run["min_active"])
            svals = np.linalg.svd(prefixes[-1], compute_uv=False)
            assert_close(run["log_svals"].values[:rank], np.log(svals[:rank]))
            assert np.all(np.isneginf(run["log_svals"].values[rank:]))
            for l, prefix in enumerate(prefixes):
                alive = int(np.asarray(stack.masks)[: l + 1].sum(axis=1).min())
                assert_close(
                    run["log_svals_prefixes"].values[l, :alive],
                    np.log(np.linalg.svd(prefix, compute_uv=False)[:alive]),
                )
            # log sin angle(v_1(J_l), v_1(J_L)) as the norm of a projection residual.
            v_last = np.linalg.svd(prefixes[-1])[2][0]
            for l, prefix in enumerate(prefixes[:-1]):
                v = np.linalg.svd(prefix)[2][0]
                sine = np.linalg.norm(v - (v @ v_last) * v_last)
                # Sines near rounding (a rank-one product aligns exactly) are compared absolutely.
                assert_close(np.exp(run["alignment_log_sin"].values[l]), sine)


def test_fast_chi_sampler_equals_its_direct_call_and_the_closed_form(tmp_path):
    from jaxspec.engine import chi_frame_sums

    spec = SweepSpec(
        axes={"p": [0.5, 1.0]},
        seeds=16,
        seed=2,
        params={"ensemble": "masked", "width": 8, "depth": 400, "k": 3, "dtype": "float64", "method": "chi"},
    )
    ds = run_sweep(spec, tmp_path / "chi", progress=False, chunk_size=8)
    config = jaxspec.engine.make_config(3, max_k=8, dtype="float64", method="chi")
    direct = jax.jit(lambda ensemble, key: chi_frame_sums(ensemble, key, config))
    for j, p in enumerate(spec.axes["p"]):
        ens = jaxspec.masked(8, 400, p=p)
        for s in (0, 15):
            sums = direct(ens, run_key(spec.seed, j, s))
            np.testing.assert_array_equal(
                ds["exponents"].isel(p=j, seed=s).values,
                np.asarray(jaxspec.engine.exponents_from_sums(sums, "K>=i")),
            )
        z = zscores(
            ds["exponents"].isel(p=j).mean("seed").values,
            theory.masked_exponents(8, p, k=3),
            theory.predicted_stderr(ens, 3, seeds=spec.seeds),
        )
        assert np.all(np.abs(z) < Z_MAX), (p, z)
