"""Scaling of the engine: time against width, depth, k and seeds; compiled memory against depth."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from _common import time_it  # noqa: E402

import jaxspec  # noqa: E402
from jaxspec.engine import make_config, seed_keys
from jaxspec.engine._spectrum import _run  # noqa: E402

AXES = {
    # parameter: (values, base sizes); base: width, depth, k, seeds
    "quick": (
        dict(
            width=[32, 64, 128, 256, 512],
            depth=[50, 100, 200, 400, 800],
            k=[4, 8, 16, 32, 64],
            seeds=[1, 2, 4, 8, 16],
        ),
        dict(width=128, depth=100, k=16, seeds=2),
    ),
    "full": (
        dict(
            width=[64, 128, 256, 512, 1024],
            depth=[100, 200, 400, 800, 1600],
            k=[8, 16, 32, 64, 128],
            seeds=[1, 2, 4, 8, 16, 32],
        ),
        dict(width=256, depth=200, k=32, seeds=4),
    ),
}
METHODS = {"direct (the product)": dict(method="direct"), "default (method='auto': chi)": {}}


def _time_point(sizes: dict, kw: dict, repeats: int) -> float:
    ens = jaxspec.gaussian(width=sizes["width"], depth=sizes["depth"])
    k = min(sizes["k"], sizes["width"])
    return time_it(
        lambda: jaxspec.lyapunov_spectrum(ens, k=k, seeds=sizes["seeds"], **kw).exponents, repeats
    ).median


def time_scaling(mode: str, repeats: int, log=print) -> dict:
    values, base = AXES[mode]
    out = {}
    for param, grid in values.items():
        for label, kw in METHODS.items():
            times = []
            for v in grid:
                sizes = dict(base, **{param: v})
                log(f"  scaling {param}={v} {label}")
                times.append(_time_point(sizes, kw, repeats))
            slope = float(np.polyfit(np.log(grid[1:]), np.log(times[1:]), 1)[0])
            out.setdefault(param, {})[label] = dict(values=list(grid), times=times, slope=slope)
    return out


def memory_scaling(depths, width: int = 128, k: int = 16, seeds: int = 4) -> dict:
    """XLA's compiled buffer sizes of the engine against depth: temporaries stay flat; the output holds the
    ``(seeds, L)`` int32 active counts (4 bytes per layer and seed), nothing else grows."""
    rows = []
    for depth in depths:
        ens = jaxspec.gaussian(width=width, depth=depth)
        cfg = make_config(k, max_k=width)
        stats = _run.lower(ens, seed_keys(0, seeds), cfg).compile().memory_analysis()
        rows.append(
            dict(
                depth=depth,
                temp=int(stats.temp_size_in_bytes),
                output=int(stats.output_size_in_bytes),
                argument=int(stats.argument_size_in_bytes),
            )
        )
    return dict(width=width, k=k, seeds=seeds, rows=rows)


def figures(time_data: dict, memory: dict, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), constrained_layout=True)
    for ax, (param, per_method) in zip(axes, time_data.items(), strict=True):
        for (label, d), marker in zip(per_method.items(), "os", strict=False):
            ax.loglog(d["values"], d["times"], marker=marker, label=f"{label} (slope {d['slope']:.2f})")
        direct = next(iter(per_method.values()))  # the direct path is timed first (METHODS)
        x = np.asarray(direct["values"], float)
        t0 = direct["times"][-1]
        ax.loglog(x, t0 * x / x[-1], "k:", lw=1, label="slope 1 (linear)")
        if param == "width":
            ax.loglog(x, t0 * (x / x[-1]) ** 2, "k--", lw=1, label="slope 2 (n^2 k per layer)")
        ax.set_xlabel(param)
        ax.set_ylabel("wall time [s] (median)")
        ax.set_title(f"time vs {param}")
        ax.legend(fontsize=7)
    path = out_dir / "scaling_time.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(path)

    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    depth = [r["depth"] for r in memory["rows"]]
    ax.loglog(depth, [r["temp"] for r in memory["rows"]], "o-", label="temporaries (XLA)")
    ax.loglog(
        depth,
        [r["output"] for r in memory["rows"]],
        "s-",
        label="output (incl. active counts, 4 B/layer/seed)",
    )
    ax.loglog(depth, [r["argument"] for r in memory["rows"]], "^-", label="arguments")
    ax.set_xlabel("depth L")
    ax.set_ylabel("bytes")
    ax.set_title(f"engine memory vs depth (n={memory['width']}, k={memory['k']}, seeds={memory['seeds']})")
    ax.legend(fontsize=7)
    path = out_dir / "scaling_memory.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    paths.append(path)
    return paths
