"""The ``jaxspec demo`` job: three ensembles against their closed forms, printed and plotted."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np
from scipy import special

import jaxspec
from jaxspec import theory
from jaxspec._checks import InputError, check_int
from jaxspec.cli._common import check_memory, lyapunov_memory, lyapunov_notes, spectrum_table


def chance_max_abs_z(count: int, level: float = 0.95) -> float:
    """The value that the largest of ``count`` independent ``|z|`` stays below with probability ``level``.

    With ``P(|z| < y) = 2 Phi(y) - 1`` per index, ``P(max |z| < y) = (2 Phi(y) - 1)^count``; solving for
    ``level`` gives ``y = Phi^{-1}((1 + level^{1/count}) / 2)``.

    Example:
        >>> round(chance_max_abs_z(1), 2)  # the familiar two-sided 95% point
        1.96
    """
    return float(special.ndtri((1.0 + level ** (1.0 / count)) / 2.0))


def check_output_path(out: Path) -> Path:
    """Create ``out``'s folder and probe that a file can be written there, before any work (one line if
    not)."""
    out = Path(out)
    if out.exists() and out.is_dir():
        raise InputError(f"--out {out} is a directory; give a file name such as {out / 'jaxspec_demo.png'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".jaxspec-probe-"):
            pass
    except OSError as err:
        raise InputError(f"--out {out}: cannot write there ({err.strerror or err})") from None
    return out


def run_demo(out: Path, width: int, depth: int, seeds: int, max_memory: str | None = None) -> None:
    jax.config.update("jax_enable_x64", True)
    width = check_int("--width", width, minimum=2)
    depth = check_int("--depth", depth, minimum=1)
    seeds = check_int("--seeds", seeds, minimum=2)
    out = check_output_path(out)
    k = min(width, 8)
    # The ReLU network runs the direct product (its gates follow the activation): the largest of the three.
    check_memory(
        lyapunov_memory(width, depth, k, seeds, "float64", "direct"), f"demo at width {width}", max_memory
    )
    cases = [
        ("Gaussian (Newman)", jaxspec.gaussian(width, depth)),
        ("masked, p = 0.5", jaxspec.masked(width, depth, p=0.5)),
        ("ReLU net, He init", jaxspec.relu_net(width, depth)),
    ]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    # The top indices: deeper ones need K_l >= i, which Bernoulli(1/2) gates rarely give at small width.
    index = np.arange(1, k + 1)
    all_z = []
    for (label, ens), color in zip(cases, ("C0", "C1", "C2"), strict=True):
        start = time.perf_counter()
        res = jaxspec.lyapunov_spectrum(ens, k=k, seeds=seeds, dtype="float64")
        mean = np.asarray(res.mean)
        th = theory.lyapunov_exponents(ens, k)
        th_se = theory.predicted_stderr(ens, k, seeds=seeds)
        notes = lyapunov_notes(
            np.asarray(res.exponents),
            np.asarray(res.counted_layers),
            th,
            th_se,
            depth=depth,
            condition="K>=i",
            dtype="float64",
        )
        print(f"\n{label}: width {width}, depth {depth}, {seeds} seeds ({time.perf_counter() - start:.1f} s)")
        print(spectrum_table(mean, res.stderr, th, th_se, notes=notes))
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.abs((mean - th) / th_se)
        finite_z = z[np.isfinite(z)]
        all_z.extend(finite_z)
        if finite_z.size:
            print(
                f"max |z| = {finite_z.max():.2f} over {finite_z.size} estimated indices; chance alone "
                "keeps it "
                f"below {chance_max_abs_z(finite_z.size):.2f} in 95% of runs"
            )
        else:
            print("no index estimated: see the reasons in the table")
        ax.errorbar(
            index,
            mean,
            yerr=2 * np.asarray(res.stderr),
            fmt="o",
            ms=4,
            color=color,
            label=f"{label}: simulated (±2 s.e.)",
        )
        ax.plot(index, th, "-", color=color, alpha=0.7, label=f"{label}: closed form")
    if all_z:
        print(
            f"\nz = (simulated - theory) / predicted standard error, one per index and ensemble. Over all "
            f"{len(all_z)} of them the largest is {max(all_z):.2f}; chance alone keeps it below "
            f"{chance_max_abs_z(len(all_z)):.2f} in 95% of runs; deep indices of gated products have skewed, "
            "heavier tails, so an occasional larger one is expected."
        )
    ax.set_xlabel("index i")
    ax.set_ylabel(r"Lyapunov exponent $\lambda_i$ (per layer)")
    ax.set_title(
        f"Top Lyapunov exponents, N = {width}, L = {depth}, {seeds} seeds (conditioned on K ≥ i)", fontsize=9
    )
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"\nfigure written to {out}")
