"""``jaxspec figures <name>``: run a reproduction job, write its figures and data, print its summary.

Each command parses its options, calls the job of :mod:`jaxspec.reproduce`, hands the result to
:func:`jaxspec.figures.write_outputs` and prints the headline numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import typer

from jaxspec.figures import ufm_markdown, write_outputs
from jaxspec.reproduce import (
    EXPERIMENTS,
    TARGETS,
    run_bottleneck,
    run_dynamics,
    run_init,
    run_saddle,
    run_ufm,
)

# The options the commands share (typer reads them from the defaults).
_OUT = {
    name: typer.Option(Path(f"figures/{name}"), "--out", help="output directory")
    for name in ("dynamics", "init", "bottleneck", "saddle", "ufm")
}
_SEED = typer.Option(0, "--seed", help="base random seed")
_QUIET = typer.Option(False, "--quiet", help="no progress bar")
_EXPERIMENT = typer.Option(None, "--experiment", help=f"run only these: {', '.join(EXPERIMENTS)}")
_TARGET = typer.Option(None, "--target", help=f"run only these: {', '.join(TARGETS)}")


def _write_and_print(result, out: Path, print_summary: Callable[[dict], None], wrote: str) -> None:
    """Write the result's files, print its summary, then ``wrote`` formatted with ``files`` and ``out``."""
    files = write_outputs(result, out)
    print_summary(result.summary)
    print(wrote.format(files=", ".join(files), out=out))


def print_init_summary(summary: dict) -> None:
    """Rates at ``L`` against theory, separation, alignment slopes, sandwich: ``jaxspec figures init``."""
    lam = summary["theory_exponents"]
    for name in ("masked", "relu"):
        s = summary["a_scaling"][name]
        print(
            f"(a) {name}: QR rates at L {np.round(s['qr_at_L'], 4).tolist()} +- "
            f"{np.round(s['qr_se_at_L'], 4).tolist()}; theory {np.round(lam, 4).tolist()}"
        )
    for n, s in summary["b_separation"].items():
        print(
            f"(b) N={n}: log(s1/s2) at L={summary['sizes']['separation_depth_over_width']}N: "
            f"{s['mean_at_L']:.2f} +- {s['se_at_L']:.2f} (theory {s['theory_at_L']:.2f})"
        )
    for name, s in summary["c_alignment"].items():
        print(
            f"(c) {name}: slope {s['fitted_slope']:.4f} vs predicted {s['predicted_slope']:.4f} "
            f"({100 * s['relative_error']:.1f}%)"
        )
    for name, s in summary["d_sandwich"].items():
        print(
            f"(d) {name}: ratio {s['ratio_at_max_depth']:.3f}, c {s['overlap_at_max_depth']:.3f}, "
            f"bounds hold in {100 * s['fraction_bounds_hold']:.1f}% of cases"
        )
    print("seconds:", {k: round(v, 1) for k, v in summary["seconds"].items()})


def print_dynamics_summary(summary: dict) -> None:
    """Per experiment of ``jaxspec figures dynamics``: the best prediction and its largest error per mode."""
    for name, entry in summary.items():
        errs = entry["max_relative_error"]
        best = min(errs, key=lambda k: np.nanmax(errs[k]))
        print(
            f"{name}: best prediction {best}, max relative error per mode "
            + ", ".join(f"{e:.2%}" for e in errs[best])
            + f" ({entry['seconds']:.0f} s)"
        )


def print_saddle_summary(summary: dict) -> None:
    """Speeds, the ratios against ``l^(1/4)`` and the plateaus of ``jaxspec figures saddle``."""
    for case, e in summary["escape"].items():
        print(
            f"optimal escape, {case}: speed {e['speed']:.4g}, stationarity {e['stationarity']:.2g}, "
            f"KKT residual {e['kkt_residual']:.2g}, "
            f"min_(l>=2) (s1/s2)/l^(1/4) = {e['min_ratio_over_l_quarter_deep_layers']:.3g}"
        )
    fp = summary["first_plateau"]
    print(
        f"GD from tiny init: first plateau ends at step {fp['end_step']}, speed {fp['speed_at_end']:.4g} = "
        f"{fp['speed_ratio']:.4f} x optimal, min_(l>=2) (s1/s2)/l^(1/4) = "
        f"{fp['min_ratio_over_l_quarter_deep_layers']:.3g}"
    )
    s2s = summary["saddle_to_saddle"]
    print(
        f"saddle-to-saddle: plateaus {s2s['plateaus_steps']}, median dominant counts at their ends "
        f"{s2s['median_dominant_count_at_plateau_end']}"
    )


def print_bottleneck_summary(summary: dict) -> None:
    """The fit and the plateau counts per target and depth of ``jaxspec figures bottleneck``."""
    for name, t in summary["targets"].items():
        f = t["fit"]
        plateaus = ", ".join(f"L={d['depth']}: {d['plateau_count']}" for d in t["depths"])
        margin = min(d["min_inequality_margin"] for d in t["depths"])
        print(
            f"{name}: R0 = {f['r0']:.2f} +- {f['r0_stderr']:.2f}, R1 = {f['r1']:.2f}; "
            f"plateau counts {plateaus}; min inequality margin {margin:.3g}"
        )


def print_ufm_summary(summary: dict) -> None:
    """The Markdown summary of ``jaxspec figures ufm``."""
    print(ufm_markdown(summary), end="")


def register(app: typer.Typer) -> None:
    figures = typer.Typer(
        help="Reproduce the papers' figures (PNG plus the underlying data).", no_args_is_help=True
    )

    @figures.command("dynamics")
    def dynamics_command(
        out: Path = _OUT["dynamics"],
        full: bool = typer.Option(False, "--full", help="longer runs, smaller step, all of digits"),
        experiment: list[str] = _EXPERIMENT,
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
    ) -> None:
        """Deep-linear and fixed-gates training: measured singular-value dynamics against the predictions."""
        result = run_dynamics(full=full, experiments=experiment or None, progress=not quiet)
        _write_and_print(
            result,
            out,
            print_dynamics_summary,
            wrote="wrote {out}/overview.png, {out}/summary.md and one .png/.nc per experiment",
        )

    @figures.command("init")
    def init_command(
        out: Path = _OUT["init"],
        full: bool = typer.Option(False, "--full", help="paper-scale sizes (meant for a GPU)"),
        seed: int = _SEED,
        quiet: bool = _QUIET,
    ) -> None:
        """Scaling, separation, alignment and the sandwich at initialisation (paper figures a-d)."""
        _write_and_print(
            run_init(full=full, seed=seed, progress=not quiet),
            out,
            print_init_summary,
            wrote="wrote {files} to {out}",
        )

    @figures.command("bottleneck")
    def bottleneck_command(
        out: Path = _OUT["bottleneck"],
        full: bool = typer.Option(False, "--full", help="GPU sizes: deeper, wider, longer"),
        seed: int = _SEED,
        target: list[str] = _TARGET,
        quiet: bool = _QUIET,
    ) -> None:
        """Bottleneck rank of weight-decayed deep nets: weight spectra, ranks, ||theta||^2 vs depth, inequality."""  # noqa: E501
        result = run_bottleneck(full=full, seed=seed, targets=target or None, progress=not quiet)
        _write_and_print(
            result,
            out,
            print_bottleneck_summary,
            wrote="wrote bottleneck_weights.png, bottleneck_representations.png, "
            "bottleneck_norm.png, bottleneck_<target>.nc and bottleneck_summary.json/.md "
            "to {out}",
        )

    @figures.command("saddle")
    def saddle_command(
        out: Path = _OUT["saddle"],
        full: bool = typer.Option(False, "--full", help="GPU sizes: deeper, wider, more restarts"),
        seed: int = _SEED,
        quiet: bool = _QUIET,
    ) -> None:
        """Escape from the saddle at the origin: optimal directions, per-layer ratios vs l^(1/4), plateaus."""
        _write_and_print(
            run_saddle(full=full, seed=seed, progress=not quiet),
            out,
            print_saddle_summary,
            wrote="wrote saddle_escape_ratios.png, saddle_first_plateau.png, "
            "saddle_to_saddle.png, saddle_escape.nc, saddle_training.nc and "
            "saddle_summary.json/.md to {out}",
        )

    @figures.command("ufm")
    def ufm_command(
        out: Path = _OUT["ufm"],
        full: bool = typer.Option(False, "--full", help="GPU sizes: more classes, deeper, longer training"),
        seed: int = _SEED,
        quiet: bool = _QUIET,
    ) -> None:
        """Deep UFM Hessian outliers, f_cc', NC1 in training; outliers of a ReLU MLP on digits vs classes."""
        _write_and_print(
            run_ufm(full=full, seed=seed, progress=not quiet),
            out,
            print_ufm_summary,
            wrote="wrote ufm_spectrum.png, ufm_outliers_training.png, ufm_alignment.png, "
            "ufm_nc1.png, digits_spectrum.png, ufm_training.nc, digits_spectrum.nc and "
            "ufm_summary.json/.md to {out}",
        )

    app.add_typer(figures, name="figures")
