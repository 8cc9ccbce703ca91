"""Timing, roofline and machine-state helpers shared by the benchmarks."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np


@dataclass
class Timing:
    """Wall times (seconds) of repeated runs after one warm-up run."""

    times: list[float]
    warmup: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    result: object = field(default=None, repr=False)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def spread(self) -> tuple[float, float]:
        return min(self.times), max(self.times)


def block(x):
    """Wait for every array in a pytree (numpy arrays pass through)."""
    return jax.block_until_ready(x)


def time_it(fn: Callable[[], object], repeats: int = 5, warmup: bool = True) -> Timing:
    """Median-of-``repeats`` wall time of ``fn()`` after a warm-up call (compilation, caches);
    ``warmup=False`` for code with nothing to compile (numpy), whose first run then counts as one of the
    ``repeats``."""
    load_before = os.getloadavg()
    times = []
    start = time.perf_counter()
    result = block(fn())
    first = time.perf_counter() - start
    if not warmup:
        times.append(first)
    while len(times) < repeats:
        start = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - start)
    warmup = first
    return Timing(times, warmup, load_before, os.getloadavg(), result)


def gemm_rate(n: int = 1024, repeats: int = 7) -> tuple[float, Timing]:
    """Measured float32 GEMM rate (GFLOP/s) of an ``n x n x n`` product with precision HIGHEST, in this
    process."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(lambda a, b: jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST))
    timing = time_it(lambda: f(a, b), repeats)
    return 2 * n**3 / timing.median / 1e9, timing


def machine_info() -> dict:
    """What the numbers were measured on."""
    devices = jax.devices()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
        "devices": f"{len(devices)} x {devices[0].device_kind}",
        "gpu": any(d.platform == "gpu" for d in devices),
        "loadavg": os.getloadavg(),
        # LAPACK (numpy's and, through scipy, JAX's on CPU) is OpenBLAS: with its default threads on a loaded
        # machine its QRs spin-wait (measured: 1.3 s instead of 12 ms for 32 QRs of 128 x 128).
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
    }


def max_abs_diff(a, b) -> float:
    """``max |a - b|`` over entries finite in both (NaN where none)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.max(np.abs(a[ok] - b[ok]))) if ok.any() else float("nan")
