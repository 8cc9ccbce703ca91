"""Throughput of a 10,000-run sweep on 1 and on N (fake) CPU devices.

The sweep: masked Gaussian products, width {8, 16} x depth {50, 100} x 5 gains x 5 gate probabilities = 100
grid points (4 compiled shapes), 100 seeds each, top-4 exponents in float32. Each device count runs in its own
subprocess (the CPU device count is fixed per process), into a fresh output directory.

Reported per device count: end-to-end wall time and runs/s (compile, store and consolidation included), the
time spent compiling (from JAX's monitoring events), and the compute throughput ``runs / (wall - compile)``.
On a CPU the fake devices share the machine's cores, so more devices add XLA threads, not arithmetic units:
expect a gain only where cores are idle.

Usage:
    python benchmarks/sweep_throughput.py                      # 1 and 4 devices, 10,000 runs
    python benchmarks/sweep_throughput.py --devices 1 2 4 8 --seeds 20 --chunk-size 1024
    python benchmarks/sweep_throughput.py --method chi          # exact-in-law chi sampler, O(k) per layer
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def spec_dict(seeds: int, chunk_size: int | None, method: str = "direct") -> dict:
    return {
        "name": "throughput",
        "seeds": seeds,
        "seed": 0,
        "chunk_size": chunk_size,
        "params": {"ensemble": "masked", "k": 4, "dtype": "float32", "method": method},
        "axes": {
            "width": [8, 16],
            "depth": [50, 100],
            "sigma2": [0.5, 1.0, 1.5, 2.0, 4.0],
            "p": [0.2, 0.4, 0.6, 0.8, 1.0],
        },
    }


def worker(devices: int, seeds: int, chunk_size: int | None, out: Path, method: str = "direct") -> dict:
    """Run the sweep on ``devices`` fake CPU devices in this process; return the measurements."""
    import jax

    jax.config.update("jax_num_cpu_devices", devices)
    jax.config.update("jax_enable_x64", True)
    from jax import monitoring

    compile_seconds = []

    def on_duration(event: str, duration: float, **kwargs) -> None:
        if event.startswith("/jax/core/compile/"):
            compile_seconds.append(duration)

    monitoring.register_event_duration_secs_listener(on_duration)
    from jaxspec.sweeps import SweepSpec, run_sweep

    spec = SweepSpec.from_dict(spec_dict(seeds, chunk_size, method))
    start = time.perf_counter()
    ds = run_sweep(spec, out, devices=devices, progress=False)
    wall = time.perf_counter() - start
    assert ds.attrs["complete"] and ds.attrs["num_runs_done"] == spec.num_runs
    compile_time = sum(compile_seconds)
    return {
        "devices": devices,
        "runs": spec.num_runs,
        "chunks": ds.attrs["num_chunks"],
        "wall_s": wall,
        "method": method,
        "runs_per_s": spec.num_runs / wall,
        "compile_s": compile_time,
        "compute_runs_per_s": spec.num_runs / max(wall - compile_time, 1e-9),
        "backend": jax.default_backend(),
        "cpu_count": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seeds", type=int, default=100, help="seeds per grid point (100 points)")
    parser.add_argument(
        "--chunk-size", type=int, default=None, help="runs per chunk (default: memory budget)"
    )
    parser.add_argument("--method", default="direct", help="engine method: direct, gaussian_frame or chi")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.seeds, args.chunk_size, args.out, args.method)))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for devices in args.devices:
            command = [
                sys.executable,
                __file__,
                "--worker",
                str(devices),
                "--seeds",
                str(args.seeds),
                "--method",
                args.method,
                "--out",
                str(Path(tmp) / f"d{devices}"),
            ]
            if args.chunk_size:
                command += ["--chunk-size", str(args.chunk_size)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            r = results[-1]
            print(
                f"{r['method']}, {r['devices']} device(s): {r['runs']} runs in {r['chunks']} chunks, "
                f"{r['wall_s']:.1f} s wall -> {r['runs_per_s']:.0f} runs/s end to end; "
                f"compile {r['compile_s']:.1f} s -> "
                f"{r['compute_runs_per_s']:.0f} runs/s computing ({r['backend']}, {r['cpu_count']} cores)",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
