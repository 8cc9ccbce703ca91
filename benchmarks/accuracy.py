"""Accuracy of long QR blocks: float32 with ``reortho_every="auto"`` against float64 every layer.

    python benchmarks/accuracy.py [WORD ...]   # the cases whose name contains a WORD (default: all); prints
                                               # a markdown table and updates benchmarks/accuracy.json

For every case (ensembles and networks across depth and spectral gap) and every budget fraction of the auto
rule (a block may spend this fraction of the dtype's ``-log u`` digits; the shipped rule spends a quarter),
the float32 run takes the ``m`` that rule picks and is compared with the float64 per-layer run of the same
realisation (the ensembles draw in float32, so float64 is a pure rounding reference). The guard (half the
digits, and the range check of ``range_limits``) stays as shipped: a warning it raises is counted, and its
re-run is what the user gets. Reported: ``m``, the largest block statistic, the guard's warnings, and the
largest ``|float32 - float64|`` over the indices no layer collapsed.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from unittest import mock

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxspec  # noqa: E402
from jaxspec.engine import _reortho  # noqa: E402
from jaxspec.networks import init_mlp, jacobian_spectrum  # noqa: E402

HERE = Path(__file__).resolve().parent
FRACTIONS = (0.25, 0.375, 0.5)


def _limits(fraction):
    def limits(dtype):
        digits = -np.log(float(jnp.finfo(dtype).eps) / 2)
        return fraction * digits, 0.5 * digits

    return limits


def _ensemble_case(ens, k, seeds=2):
    def run(dtype, every):
        res = jaxspec.lyapunov_spectrum(
            ens, k=k, seeds=seeds, dtype=dtype, reortho_every=every, method="direct", qr="householder"
        )
        never = np.arange(1, k + 1) <= np.asarray(res.min_active)[:, None]
        return np.asarray(res.exponents), never, res.config.reortho_every, float(np.max(res.max_block_spread))

    return run


def _network_case(widths, inputs, k, seed=0, final_scale=None):
    params = init_mlp(jax.random.key(seed), widths, dtype=jnp.float64)
    if final_scale is not None:  # a late stretch: the pilot's first layers do not see it
        half = len(params) // 2
        for layer in params[half:]:
            layer["w"] = layer["w"] * final_scale
    xs = jax.random.normal(jax.random.key(seed + 1), (inputs, widths[0]), jnp.float64)

    def run(dtype, every):
        res = jacobian_spectrum(
            params, xs, k=k, dtype=dtype, reortho_every=every, singular_values=False, prefixes=False
        )
        never = np.arange(1, k + 1) <= np.asarray(res.min_active)[:, None]
        return (
            np.asarray(res.growth_rates),
            never,
            res.config.reortho_every,
            float(np.max(res.max_block_spread)),
        )

    return run


def cases():
    return {
        "Gaussian n=64, L=200, k=16 (small gap)": _ensemble_case(jaxspec.gaussian(width=64, depth=200), 16),
        "Gaussian n=64, L=1000, k=64 (full spectrum, gap log n)": _ensemble_case(
            jaxspec.gaussian(width=64, depth=1000), 64
        ),
        "orthogonal n=64, L=500, k=32 (no gap)": _ensemble_case(jaxspec.orthogonal(width=64, depth=500), 32),
        "masked K=32 of 64, sigma2=2, L=500, k=32": _ensemble_case(
            jaxspec.masked(width=64, depth=500, sigma2=2.0, fixed_count=32), 32
        ),
        "ReLU ensemble n=64, L=300, k=16": _ensemble_case(jaxspec.make_ensemble("relu-net", 64, 300), 16),
        "He ReLU MLP 128 x 64, 8 inputs, k=16": _network_case((128,) * 65, 8, 16),
        "He ReLU MLP 128 x 64, 8 inputs, k=64 (larger gap)": _network_case((128,) * 65, 8, 64),
        "He ReLU MLP 64 x 256, 4 inputs, k=8 (deep)": _network_case((64,) * 257, 4, 8, seed=2),
        "ReLU MLP 64 x 96, second half scaled by 0.5 (late shrink)": _network_case(
            (64,) * 97, 4, 8, seed=3, final_scale=0.5
        ),
        "Gaussian n=256, L=400, k=8 (tall, small gap)": _ensemble_case(
            jaxspec.gaussian(width=256, depth=400), 8
        ),
        "He ReLU MLP 256 x 64, 16 inputs, k=32 (W1 quick)": _network_case((256,) * 65, 16, 32, seed=4),
        # Constructed failures of the pilot: 40 identity layers, then 48 layers that the pilot never sees.
        "fixed: 40 identities then 48 x diag(3, 3, 0.3, ...) (late gap)": _ensemble_case(
            jaxspec.fixed_network([np.eye(8)] * 40 + [np.diag(np.r_[3.0, 3.0, np.full(6, 0.3)])] * 48), 8, 1
        ),
        "fixed: 40 identities then 48 x 0.05 I (late underflow)": _ensemble_case(
            jaxspec.fixed_network([np.eye(8)] * 40 + [0.05 * np.eye(8)] * 48), 4, 1
        ),
        "fixed: 40 identities then 48 x 20 I (late overflow)": _ensemble_case(
            jaxspec.fixed_network([np.eye(8)] * 40 + [20.0 * np.eye(8)] * 48), 4, 1
        ),
    }


def main(argv=None) -> int:
    only = (sys.argv[1:] if argv is None else argv) or [""]
    rows = []
    for name, run in cases().items():
        if not any(word in name for word in only):
            continue
        started = time.time()
        ref, never_ref, _, _ = run("float64", 1)
        for fraction in FRACTIONS:
            with mock.patch.object(_reortho, "reortho_limits", _limits(fraction)):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    got, never, m, spread = run("float32", "auto")
            tripped = [str(w.category.__name__) for w in caught if "reortho" in str(w.message)]
            ok = never & never_ref
            err = float(np.max(np.abs(got[ok] - ref[ok]))) if ok.any() else float("nan")
            rows.append(dict(case=name, fraction=fraction, m=m, spread=spread, warnings=tripped, error=err))
            print(
                f"| {name} | {fraction} | {m} | {spread:.1f} | {len(tripped)} | {err:.1e} |",
                flush=True,
            )
        print(f"  ({time.time() - started:.0f} s)", file=sys.stderr, flush=True)
    out = HERE / "accuracy.json"
    done = {r["case"] for r in rows}
    previous = [r for r in json.loads(out.read_text()) if r["case"] not in done] if out.exists() else []
    out.write_text(json.dumps(previous + rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
