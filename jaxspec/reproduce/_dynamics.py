"""``jaxspec figures dynamics``: decoupled singular-value dynamics of deep linear and fixed-gates networks.

Trains, with full-batch gradient descent and every spectral quantity tracked, a deep linear network and a
fixed-gates ReLU network (gates frozen per training input) on the synthetic teacher and on scikit-learn's
digits, and integrates the predictions of [math §5](https://jaxspec.github.io/jaxspec/math/#s5) beside each run: the shared-basis mode ODE from the
measured factors (with and without the measured kernel ratio), the balanced L-layer law (Saxe / Arora) and
Arora's end-to-end matrix ODE. Each prediction of mode ``r`` starts once that mode is aligned with the target's
(``|<u_r, u*_r>| |<v_r, v*_r>| >= 0.9``), or at step 0 for the aligned initialisations.

Writes one ``<experiment>.png`` and ``<experiment>.nc`` per run, ``overview.png`` (measured against predicted
``sigma_r(t)``, deep linear beside fixed gates) and ``summary.json`` / ``summary.md`` (per prediction and mode: the
largest relative error ``|measured / predicted - 1|`` after the start, and the relative error of the learning
time, the time to reach half the target).

References:
    Saxe et al., arXiv:1312.6120; Arora et al., arXiv:1802.06509, arXiv:1905.13655;
    Haas, Gatine, Cosse, Bouraoui, arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import typer

from jaxspec.training._experiment import TrainConfig

__all__ = ["EXPERIMENTS", "register", "run"]

_TEACHER = {"data": "teacher", "input_dim": 8, "output_dim": 4, "num_samples": 64, "teacher_sv": (3.0, 2.0, 1.0)}
_DIGITS = {"data": "digits", "whiten_dim": 16, "limit": 600}

# name -> (description, config). Quick sizes; ``full`` multiplies the training length and tightens the step.
EXPERIMENTS: dict[str, tuple[str, TrainConfig]] = {
    "linear_teacher_aligned": ("deep linear, teacher, aligned balanced init", TrainConfig(
        model="linear", init="aligned", sigma0=1e-2, depth=3, width=16, steps=5000, learning_rate=2e-3,
        log_every=25, **_TEACHER)),
    "linear_teacher_unbalanced": ("deep linear, teacher, aligned unbalanced init (ratio 2)", TrainConfig(
        model="linear", init="aligned", sigma0=1e-2, imbalance=2.0, depth=3, width=16, steps=5000,
        learning_rate=2e-3, log_every=25, **_TEACHER)),
    "linear_teacher_random": ("deep linear, teacher, small random init", TrainConfig(
        model="linear", init="random", init_scale=0.1, depth=3, width=16, steps=7500, learning_rate=2e-3,
        log_every=25, predict_from=-1, **_TEACHER)),
    "fixed_gates_teacher": ("fixed-gates ReLU, teacher, small random init", TrainConfig(
        model="fixed_gates", init="random", init_scale=0.1, depth=3, width=64, steps=7500, learning_rate=4e-3,
        log_every=25, predict_from=-1, **_TEACHER)),
    "linear_digits": ("deep linear, digits (16 whitened components), small random init", TrainConfig(
        model="linear", init="random", init_scale=0.1, depth=3, width=32, steps=6000, learning_rate=2e-2,
        log_every=25, predict_from=-1, **_DIGITS)),
    "fixed_gates_digits": ("fixed-gates ReLU, digits (16 whitened components), small random init", TrainConfig(
        model="fixed_gates", init="random", init_scale=0.1, depth=3, width=64, steps=6000, learning_rate=2e-2,
        log_every=25, predict_from=-1, **_DIGITS)),
}


def _full(cfg: TrainConfig) -> TrainConfig:
    return dataclasses.replace(cfg, steps=cfg.steps * 4, learning_rate=cfg.learning_rate / 2,
                               log_every=cfg.log_every * 2, limit=None if cfg.data == "digits" else cfg.limit)


def _overview(results: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    panels = [n for n in ("linear_teacher_random", "fixed_gates_teacher", "linear_digits", "fixed_gates_digits")
              if n in results]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.4), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    shown = {"mode_ode": ("--", "mode ODE, measured factors"),
             "mode_ode_kernel": ("-.", "mode ODE, measured kernel ratio"),
             "arora": (":", "Arora end-to-end law")}
    for ax, name in zip(axes[0], panels, strict=True):
        ds = results[name]["dataset"]
        t = ds["time"].values
        for r in range(ds.sizes["mode"]):
            c = colors[r % len(colors)]
            ax.plot(t, ds["sigma"].values[:, r], color=c, lw=2.6, alpha=0.45, label="measured" if r == 0 else None)
            for pred, (style, label) in shown.items():
                ax.plot(t, ds[f"predicted_{pred}"].values[:, r], color=c, ls=style, lw=1.1,
                        label=label if r == 0 else None)
            ax.axhline(ds["target_strength"].values[r], color=c, lw=0.5, ls=(0, (1, 4)))
        errs = results[name]["max_relative_error"]
        lines = [f"{EXPERIMENTS[name][0]}"] + [
            f"max rel. error, {shown[p][1]}: " + ", ".join(f"{e:.0%}" for e in errs[p]) for p in shown]
        ax.set_title("\n".join(lines), fontsize=7)
        ax.set_xlabel("gradient-flow time t = step x learning rate")
        ax.set_ylabel("end-to-end singular value sigma_r")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Decoupled singular-value dynamics: measured (thick) against predictions started when each mode "
                 "aligns with the target (thin); colour = mode", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(out_dir: str | Path = "figures/dynamics", full: bool = False, experiments=None,
        progress: bool = True) -> dict:
    """Run the comparisons and write figures, datasets and the error summary into ``out_dir``.

    Args:
        out_dir: output folder.
        full: longer runs with half the learning rate (smaller discretisation error) and all of digits.
        experiments: names from :data:`EXPERIMENTS` (default: all).
        progress: tqdm progress bars.

    Returns:
        The summary dict: experiment -> max relative error per prediction and mode, final loss, seconds.

    Example:
        >>> summary = run("out/dynamics", experiments=["linear_teacher_aligned"])  # doctest: +SKIP
    """
    import jax

    from jaxspec._checks import InputError
    from jaxspec.training._experiment import plot_dynamics, run_experiment

    jax.config.update("jax_enable_x64", True)
    names = list(EXPERIMENTS) if experiments is None else list(experiments)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise InputError(f"unknown experiments {unknown}; known: {', '.join(EXPERIMENTS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results, summary = {}, {}
    for name in names:
        description, cfg = EXPERIMENTS[name]
        cfg = dataclasses.replace(_full(cfg) if full else cfg, dtype="float64")
        start = time.perf_counter()
        result, comparison, ds = run_experiment(cfg, progress=progress)
        seconds = time.perf_counter() - start
        ds.to_netcdf(out_dir / f"{name}.nc")
        plot_dynamics(ds, out_dir / f"{name}.png",
                      title=f"{description}: depth {cfg.depth}, width {cfg.width}, GD lr {cfg.learning_rate:g}")
        errors = {k: [float(x) for x in v] for k, v in comparison.max_relative_error.items()}
        half = {k: [float(x) for x in v] for k, v in comparison.half_time_error.items()}
        summary[name] = {"description": description, "max_relative_error": errors, "half_time_error": half,
                         "prediction_start_step": [int(result.steps[i]) for i in comparison.start_index],
                         "final_loss": float(result.loss[-1]), "final_sigma": comparison.measured[-1].tolist(),
                         "target": comparison.target.tolist(),
                         "final_alignment_min": float(np.min(np.asarray(result.tracked["alignment"][-1]))),
                         "seconds": seconds, "config": cfg.to_dict()}
        results[name] = {"dataset": ds, "max_relative_error": errors}
    _overview(results, out_dir / "overview.png")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    lines = ["| experiment | prediction | max relative error per mode | learning-time error per mode | start steps |",
             "|---|---|---|---|---|"]
    for name, entry in summary.items():
        for pred, errs in entry["max_relative_error"].items():
            lines.append(f"| {name} | {pred} | {', '.join(f'{e:.2%}' for e in errs)} | "
                         f"{', '.join(f'{e:+.1%}' for e in entry['half_time_error'][pred])} | "
                         f"{entry['prediction_start_step']} |")
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")
    return summary


def register(figures_app: typer.Typer) -> None:
    @figures_app.command("dynamics")
    def dynamics_command(
        out: Path = typer.Option(Path("figures/dynamics"), "--out", help="output directory"),
        full: bool = typer.Option(False, "--full", help="longer runs, smaller step, all of digits"),
        experiment: list[str] = typer.Option(None, "--experiment", help=f"run only these: {', '.join(EXPERIMENTS)}"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bars"),
    ) -> None:
        """Deep-linear and fixed-gates training: measured singular-value dynamics against the predictions."""
        summary = run(out, full=full, experiments=experiment or None, progress=not quiet)
        for name, entry in summary.items():
            errs = entry["max_relative_error"]
            best = min(errs, key=lambda k: np.nanmax(errs[k]))
            print(f"{name}: best prediction {best}, max relative error per mode "
                  + ", ".join(f"{e:.2%}" for e in errs[best]) + f" ({entry['seconds']:.0f} s)")
        print(f"wrote {out}/overview.png, {out}/summary.md and one .png/.nc per experiment")
