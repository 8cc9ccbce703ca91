"""Reproduce the low-rank escape from the saddle at the origin of deep ReLU networks.

``jaxspec figures saddle [--out DIR] [--full]`` (or ``python scripts/reproduce_saddle.py``) runs

* **optimal escape directions** (projected gradient ascent of ``-L0`` on ``||theta||^2 = L``, vmapped restarts)
  of a deep bias-free ReLU net for three localised losses: a teacher of three ReLU ridges (MSE), scikit-learn's
  digits (MSE on centred one-hot targets) and the 8-point unit-circle example;
* **training from a tiny initialisation** on the ridge teacher with ``eta = c ||theta||^(2-L)``
  (``c = c0 L^((L-2)/2)``, the step that is scale-free on the sphere ``||theta||^2 = L``): the plateaus are
  detected and the direction at the end of the first plateau is compared with the optimal one;
* a **saddle-to-saddle** run (shallower net, moderate initialisation) whose loss goes through several plateaus
  while the number of dominant singular values of every layer rises at each escape;

and writes

* ``saddle_escape_ratios.png``: per layer ``s_1/s_2`` (with the ``l^(1/4)`` reference) and the non-leading
  energy fraction of the weights and activations (with the ``l^(-1/2)`` reference), at the optimal directions and
  at the end of the first plateau;
* ``saddle_first_plateau.png``: loss and escape speed of the current direction during the tiny-init run;
* ``saddle_to_saddle.png``: the loss curve with its plateaus and the dominant-singular-value counts;
* ``saddle_escape.nc``, ``saddle_training.nc`` (labelled xarray datasets), ``saddle_summary.json`` / ``.md``.

References:
    Bantzis, Simon, Jacot, "Saddle-to-Saddle Dynamics in Deep ReLU Networks: Low-Rank Bias in the First Saddle
    Escape", ICLR 2026, arXiv:2505.21722.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import typer

__all__ = ["CASES", "SaddleSizes", "default_sizes", "print_summary", "register", "run"]

CASES = ("ridge", "digits", "unit_circle")
RATIO_CLIP = 1e6
ENERGY_FLOOR = 1e-10


@dataclass(frozen=True)
class SaddleSizes:
    """Problem sizes of one reproduction run.

    Attributes:
        depth: depth ``L`` of the escape-direction and tiny-init experiments.
        width: their hidden width.
        restarts: random restarts of the ascent.
        ascent_steps: ascent steps per restart.
        num_points: training points of the ridge teacher.
        digits_limit: digits samples.
        digits_dim: PCA-whitened digits dimension.
        plateau_init: scale of the tiny initialisation (times a He-initialised net).
        plateau_steps: GD steps of the tiny-init run.
        step_scale0: ``c0`` in ``c = c0 L^((L-2)/2)``.
        s2s_depth: depth of the saddle-to-saddle run.
        s2s_width: its width.
        s2s_init: its initialisation scale.
        s2s_steps: its GD steps.
    """

    depth: int = 8
    width: int = 16
    restarts: int = 8
    ascent_steps: int = 1500
    num_points: int = 256
    digits_limit: int = 300
    digits_dim: int = 16
    plateau_init: float = 1e-3
    plateau_steps: int = 20000
    step_scale0: float = 0.5
    s2s_depth: int = 4
    s2s_width: int = 16
    s2s_init: float = 0.05
    s2s_steps: int = 20000


def default_sizes(full: bool = False) -> SaddleSizes:
    """CPU-sized defaults (a few minutes), or GPU sizes with ``full``."""
    if full:
        return SaddleSizes(depth=16, width=48, restarts=64, ascent_steps=4000, num_points=1024, digits_limit=1797,
                           digits_dim=32, plateau_init=1e-4, plateau_steps=80000, s2s_depth=6, s2s_width=32,
                           s2s_init=0.1, s2s_steps=100000)
    return SaddleSizes()


# ----------------------------------------------------------------------------------------------------------
# Experiments.


def _ridge(sizes: SaddleSizes, seed: int):
    import jax

    from jaxspec.saddle._saddle import ridge_target

    return ridge_target(jax.random.key(seed), sizes.num_points, input_dim=8, output_dim=4, amplitudes=(4.0, 2.0, 1.0))


def _case_data(case: str, sizes: SaddleSizes, seed: int):
    from jaxspec.saddle._saddle import mse_output_gradient, unit_circle_example

    if case == "ridge":
        x, y = _ridge(sizes, seed)
        return x, mse_output_gradient(y)
    if case == "digits":
        from jaxspec.data._datasets import digits

        data = digits(whiten_dim=sizes.digits_dim, limit=sizes.digits_limit, centre_targets=True)
        return data.x, mse_output_gradient(data.y)
    return unit_circle_example()


def _ratios_dict(lr) -> dict:
    return {"s1_over_s2": np.asarray(lr.s1_over_s2, dtype=float),
            "weight_tail": np.asarray(lr.weight_tail_energy, dtype=float),
            "activation_tail": np.asarray(lr.activation_tail_energy, dtype=float)}


def _escape_case(case: str, sizes: SaddleSizes, seed: int) -> dict:
    import jax

    from jaxspec.saddle._saddle import layer_ratios, optimal_escape_direction

    x, g = _case_data(case, sizes, seed)
    widths = (x.shape[1],) + (sizes.width,) * (sizes.depth - 1) + (g.shape[1],)
    start = time.perf_counter()
    esc = optimal_escape_direction(jax.random.key(seed + 17), widths, x, g, num_restarts=sizes.restarts,
                                   num_steps=sizes.ascent_steps)
    ratios = _ratios_dict(layer_ratios(esc.params, x))
    return {"case": case, "speed": float(esc.speed), "kkt_residual": float(esc.kkt_residual),
            "layer_norms_sq": np.asarray(esc.layer_norms_sq, dtype=float),
            "restart_speeds": np.asarray(esc.restart_speeds, dtype=float),
            "speed_history": np.asarray(esc.speed_history, dtype=float),
            "seconds": time.perf_counter() - start, **ratios}


def _train_run(x, y, depth: int, width: int, init_scale: float, steps: int, step_scale0: float, seed: int,
               progress: bool, log_every: int) -> dict:
    import jax

    from jaxspec.networks._mlp import init_mlp
    from jaxspec.saddle._saddle import (
        detect_plateaus,
        dominant_counts,
        escape_speed,
        mse_output_gradient,
        train_from_small_init,
    )

    widths = (x.shape[1],) + (width,) * (depth - 1) + (y.shape[1],)
    params = [{"w": init_scale * p["w"]} for p in init_mlp(jax.random.key(seed + 5), widths)]
    c = step_scale0 * depth ** ((depth - 2) / 2)
    start = time.perf_counter()
    res = train_from_small_init(params, x, y, step_scale=c, num_steps=steps, log_every=log_every,
                                progress=progress)
    g = mse_output_gradient(y)
    speeds = jax.jit(jax.vmap(lambda p: escape_speed(p, x, g)))(res.tracked["params"])
    loss = np.asarray(res.loss, dtype=float)
    plateaus = detect_plateaus(loss)
    counts = np.asarray(dominant_counts(res.tracked["singular_values"]))
    return {"res": res, "steps": np.asarray(res.steps), "loss": loss, "speed": np.asarray(speeds, dtype=float),
            "counts": counts, "singular_values": np.asarray(res.tracked["singular_values"], dtype=float),
            "norm_sq": np.asarray(res.tracked["norm_sq"], dtype=float), "plateaus": plateaus,
            "step_scale": c, "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------------------------------------
# Figures.


def _plot_ratios(escapes: dict, plateau: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4))
    colors = {"ridge": "C0", "digits": "C1", "unit_circle": "C2", "gd": "C3"}
    entries = [(f"optimal escape, {c} (speed {e['speed']:.3g})", e, colors[c], "-") for c, e in escapes.items()]
    entries.append((f"GD at the end of the first plateau, ridge (speed {plateau['speed_at_end']:.3g})",
                    plateau["ratios"], colors["gd"], "--"))
    depth = None
    for label, e, color, ls in entries:
        r = np.minimum(e["s1_over_s2"], RATIO_CLIP)
        layers = np.arange(1, r.size + 1)
        depth = r.size
        ax1.plot(layers, r, ls, marker="o", ms=4, color=color, label=label)
        clipped = e["s1_over_s2"] >= RATIO_CLIP
        ax1.plot(layers[clipped], r[clipped], "^", ms=8, color=color, mfc="none")
        wt = np.maximum(e["weight_tail"], ENERGY_FLOOR)
        at = np.maximum(e["activation_tail"], ENERGY_FLOOR)
        ax2.plot(layers, wt, ls, marker="o", ms=4, color=color, label=f"{label.split(' (')[0]}: weights")
        ax2.plot(layers, at, ":", marker="s", ms=3, color=color, alpha=0.8, label="  activations")
    layers = np.arange(1, depth + 1)
    ax1.plot(layers, layers**0.25, "k--", lw=1.5, label="l^(1/4) (the lower bound on s_1/s_2)")
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xticks(layers)
        ax.set_xticklabels([str(v) for v in layers])
        ax.minorticks_off()
    ax1.set_yscale("log")
    ax1.set_xlabel("layer l")
    ax1.set_ylabel("s_1(W_l) / s_2(W_l)")
    ax1.set_title(f"Leading singular-value ratio (clipped at {RATIO_CLIP:g}, open triangles: numerically rank one)",
                  fontsize=8)
    ax1.legend(fontsize=6)
    ax2.plot(layers, layers**-0.5, "k--", lw=1.5, label="l^(-1/2)")
    ax2.set_yscale("log")
    ax2.set_xlabel("layer l")
    ax2.set_ylabel("non-leading energy 1 - s_1^2 / sum s_i^2")
    ax2.set_title(f"Non-leading energy fraction (floored at {ENERGY_FLOOR:g})", fontsize=8)
    ax2.legend(fontsize=5.5, ncol=2)
    fig.suptitle(f"Low-rank bias of the escape from the origin, depth-{depth} bias-free ReLU nets", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _shade_plateaus(ax, steps, plateaus) -> None:
    for i, (a, b) in enumerate(zip(plateaus.start, plateaus.end, strict=True)):
        ax.axvspan(steps[a], steps[b], color="0.88" if i % 2 == 0 else "0.75", zorder=0,
                   label="detected plateaus (alternating shades)" if i == 0 else None)


def _plot_first_plateau(plateau: dict, optimal_speed: float, path: Path) -> None:
    import matplotlib.pyplot as plt

    run = plateau["run"]
    steps = run["steps"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    _shade_plateaus(ax1, steps, run["plateaus"])
    ax1.plot(steps, run["loss"], "C0-", label="loss C(theta)")
    end = steps[plateau["end_index"]]
    ax1.axvline(end, color="C3", ls="--", label="end of the first plateau")
    ax1.set_ylabel("loss")
    ax1.set_yscale("log")
    ax1.legend(fontsize=7)
    speed = run["speed"]
    # A random initial direction can have a (tiny) negative speed: plot |speed|, dotted where negative.
    ax2.plot(steps, np.where(speed > 0, speed, np.nan), "C1-",
             label="speed -L0 of theta projected on ||theta||^2 = L")
    if np.any(speed <= 0):
        ax2.plot(steps, np.where(speed <= 0, np.abs(speed), np.nan), color="0.4", ls=":",
                 label="|speed| where it is negative")
    ax2.axhline(optimal_speed, color="k", ls=":", label=f"optimal escape speed {optimal_speed:.4g} (ascent)")
    ax2.axvline(end, color="C3", ls="--")
    ax2.set_yscale("log")
    ax2.set_xlabel("GD step (eta = c ||theta||^(2-L))")
    ax2.set_ylabel("escape speed")
    ax2.legend(fontsize=7)
    fig.suptitle(f"Tiny initialisation (scale {plateau['init_scale']:g}), depth {plateau['depth']}, "
                 f"c = {run['step_scale']:.3g}: the direction aligns during the plateau", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_s2s(run: dict, depth: int, path: Path) -> None:
    import matplotlib.pyplot as plt

    steps = run["steps"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    _shade_plateaus(ax1, steps, run["plateaus"])
    ax1.plot(steps, run["loss"], "C0-", label="loss")
    ax1.set_yscale("log")
    ax1.set_ylabel("loss C(theta)")
    ax1.legend(fontsize=7)
    _shade_plateaus(ax2, steps, run["plateaus"])
    for l in range(run["counts"].shape[1]):
        ax2.plot(steps, run["counts"][:, l] + 0.06 * (l - depth / 2), lw=1.4, label=f"layer {l + 1}")
    ax2.set_ylabel("# dominant singular values\n(s_i > 0.1 s_1)")
    ax2.set_xlabel("GD step")
    ax2.set_ylim(0, min(np.max(run["counts"]) + 1, 8) if np.max(run["counts"][-1]) < 8 else None)
    ax2.legend(fontsize=6, ncol=2)
    fig.suptitle(f"Saddle-to-saddle: depth {depth}, ridge teacher with amplitudes (4, 2, 1); the rank rises at "
                 "each escape", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------
# Entry points.


def run(out_dir: str | Path = "figures/saddle", full: bool = False, seed: int = 0, progress: bool = True,
        sizes: SaddleSizes | None = None) -> dict:
    """Optimal escape directions, the tiny-init run and the saddle-to-saddle run; figures, datasets, summary.

    Args:
        out_dir: output folder.
        full: GPU sizes.
        seed: base random seed.
        progress: tqdm bars.
        sizes: explicit :class:`SaddleSizes` (overrides ``full``).

    Returns:
        The summary dict (speeds, KKT residuals, per-layer ratios against ``l^(1/4)``, plateaus, counts).

    Example:
        >>> summary = run("out/saddle")  # doctest: +SKIP
    """
    import jax
    import xarray as xr

    from jaxspec.saddle._saddle import layer_ratios

    sizes = sizes or default_sizes(full)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(CASES) + 2, desc="saddle", unit="job", disable=not progress)
    escapes = {}
    for case in CASES:
        escapes[case] = _escape_case(case, sizes, seed)
        bar.update(1)

    x, y = _ridge(sizes, seed)
    tiny = _train_run(x, y, sizes.depth, sizes.width, sizes.plateau_init, sizes.plateau_steps, sizes.step_scale0,
                      seed, False, max(sizes.plateau_steps // 400, 1))
    bar.update(1)
    end = int(tiny["plateaus"].end[0])
    direction = jax.tree.map(lambda a: a[end], tiny["res"].tracked["params"])
    plateau = {"run": tiny, "end_index": end, "end_step": int(tiny["steps"][end]), "depth": sizes.depth,
               "init_scale": sizes.plateau_init, "speed_at_end": float(tiny["speed"][end]),
               "ratios": _ratios_dict(layer_ratios(direction, x))}

    s2s = _train_run(x, y, sizes.s2s_depth, sizes.s2s_width, sizes.s2s_init, sizes.s2s_steps, sizes.step_scale0,
                     seed + 1, False, max(sizes.s2s_steps // 400, 1))
    bar.update(1)
    bar.close()

    _plot_ratios(escapes, plateau, out / "saddle_escape_ratios.png")
    _plot_first_plateau(plateau, escapes["ridge"]["speed"], out / "saddle_first_plateau.png")
    _plot_s2s(s2s, sizes.s2s_depth, out / "saddle_to_saddle.png")

    layers = np.arange(1, sizes.depth + 1)
    names = list(CASES) + ["ridge_gd_first_plateau"]
    stacks = [escapes[c] for c in CASES] + [plateau["ratios"]]
    xr.Dataset(
        {"s1_over_s2": (("case", "layer"), np.stack([np.minimum(e["s1_over_s2"], 1e300) for e in stacks])),
         "weight_tail_energy": (("case", "layer"), np.stack([e["weight_tail"] for e in stacks])),
         "activation_tail_energy": (("case", "layer"), np.stack([e["activation_tail"] for e in stacks])),
         "speed": (("case",), np.array([e["speed"] for e in escapes.values()] + [plateau["speed_at_end"]])),
         "restart_speeds": (("case3", "restart"), np.stack([escapes[c]["restart_speeds"] for c in CASES]))},
        coords={"case": names, "layer": layers, "case3": list(CASES), "restart": np.arange(sizes.restarts)},
        attrs={"depth": sizes.depth, "width": sizes.width, "ratio_of_exact_rank_one": "stored as 1e300"},
    ).to_netcdf(out / "saddle_escape.nc", engine="scipy")
    ds_train = {}
    for name, r in (("tiny", tiny), ("s2s", s2s)):
        ds_train[f"{name}_loss"] = ((f"{name}_record",), r["loss"])
        ds_train[f"{name}_speed"] = ((f"{name}_record",), r["speed"])
        ds_train[f"{name}_norm_sq"] = ((f"{name}_record",), r["norm_sq"])
        ds_train[f"{name}_dominant_counts"] = ((f"{name}_record", f"{name}_layer"), r["counts"])
        ds_train[f"{name}_singular_values"] = ((f"{name}_record", f"{name}_layer", f"{name}_index"),
                                               r["singular_values"])
    coords = {"tiny_record": tiny["steps"], "s2s_record": s2s["steps"]}
    xr.Dataset(ds_train, coords=coords, attrs={"tiny_step_scale": tiny["step_scale"],
                                               "s2s_step_scale": s2s["step_scale"]}).to_netcdf(
        out / "saddle_training.nc", engine="scipy")

    def versus_quarter(r):
        deep = np.arange(2, r.size + 1)
        vals = np.minimum(r[1:], RATIO_CLIP) / deep**0.25
        return float(np.min(vals))

    summary = {"sizes": asdict(sizes), "escape": {}, "first_plateau": {}, "saddle_to_saddle": {}}
    for case, e in escapes.items():
        summary["escape"][case] = {
            "speed": e["speed"], "kkt_residual": e["kkt_residual"],
            "restart_speeds": e["restart_speeds"].tolist(), "layer_norms_sq": e["layer_norms_sq"].tolist(),
            "s1_over_s2": [min(v, RATIO_CLIP) for v in e["s1_over_s2"].tolist()],
            "weight_tail": e["weight_tail"].tolist(), "activation_tail": e["activation_tail"].tolist(),
            "min_ratio_over_l_quarter_deep_layers": versus_quarter(e["s1_over_s2"]), "seconds": e["seconds"]}
    pr = plateau["ratios"]
    summary["first_plateau"] = {
        "end_step": plateau["end_step"], "speed_at_end": plateau["speed_at_end"],
        "optimal_speed": escapes["ridge"]["speed"],
        "speed_ratio": plateau["speed_at_end"] / escapes["ridge"]["speed"],
        "s1_over_s2": [min(v, RATIO_CLIP) for v in pr["s1_over_s2"].tolist()],
        "weight_tail": pr["weight_tail"].tolist(), "activation_tail": pr["activation_tail"].tolist(),
        "min_ratio_over_l_quarter_deep_layers": versus_quarter(pr["s1_over_s2"]),
        "plateaus_steps": [[int(tiny["steps"][a]), int(tiny["steps"][b])]
                           for a, b in zip(tiny["plateaus"].start, tiny["plateaus"].end, strict=True)],
        "step_scale": tiny["step_scale"], "seconds": tiny["seconds"]}
    pl = s2s["plateaus"]
    summary["saddle_to_saddle"] = {
        "depth": sizes.s2s_depth, "step_scale": s2s["step_scale"],
        "plateaus_steps": [[int(s2s["steps"][a]), int(s2s["steps"][b])] for a, b in zip(pl.start, pl.end, strict=True)],
        "loss_at_plateau_end": [float(s2s["loss"][b]) for b in pl.end],
        "median_dominant_count_at_plateau_end": [float(np.median(s2s["counts"][b])) for b in pl.end],
        "dominant_counts_at_plateau_end": [s2s["counts"][b].tolist() for b in pl.end],
        "seconds": s2s["seconds"]}
    (out / "saddle_summary.json").write_text(json.dumps(summary, indent=2))
    (out / "saddle_summary.md").write_text(_markdown(summary))
    return summary


def _markdown(summary: dict) -> str:
    lines = ["| direction | speed | KKT residual | s1/s2 per layer | min over l>=2 of (s1/s2) / l^(1/4) |",
             "|---|---|---|---|---|"]
    for case, e in summary["escape"].items():
        lines.append(f"| optimal, {case} | {e['speed']:.4g} | {e['kkt_residual']:.2g} | "
                     f"{', '.join(f'{v:.3g}' for v in e['s1_over_s2'])} | "
                     f"{e['min_ratio_over_l_quarter_deep_layers']:.3g} |")
    fp = summary["first_plateau"]
    lines.append(f"| GD end of first plateau, ridge | {fp['speed_at_end']:.4g} ({fp['speed_ratio']:.4f} of optimal) | "
                 f"- | {', '.join(f'{v:.3g}' for v in fp['s1_over_s2'])} | "
                 f"{fp['min_ratio_over_l_quarter_deep_layers']:.3g} |")
    s2s = summary["saddle_to_saddle"]
    lines += ["", f"Saddle-to-saddle (depth {s2s['depth']}): plateaus (steps) {s2s['plateaus_steps']}, loss at their "
              f"ends {[round(v, 4) for v in s2s['loss_at_plateau_end']]}, dominant counts per layer at their ends "
              f"{s2s['dominant_counts_at_plateau_end']}", ""]
    return "\n".join(lines)


def print_summary(summary: dict) -> None:
    """Print the speeds, the ratios against ``l^(1/4)`` and the plateaus."""
    for case, e in summary["escape"].items():
        print(f"optimal escape, {case}: speed {e['speed']:.4g}, KKT residual {e['kkt_residual']:.2g}, "
              f"min_(l>=2) (s1/s2)/l^(1/4) = {e['min_ratio_over_l_quarter_deep_layers']:.3g}")
    fp = summary["first_plateau"]
    print(f"GD from tiny init: first plateau ends at step {fp['end_step']}, speed {fp['speed_at_end']:.4g} = "
          f"{fp['speed_ratio']:.4f} x optimal, min_(l>=2) (s1/s2)/l^(1/4) = "
          f"{fp['min_ratio_over_l_quarter_deep_layers']:.3g}")
    s2s = summary["saddle_to_saddle"]
    print(f"saddle-to-saddle: plateaus {s2s['plateaus_steps']}, median dominant counts at their ends "
          f"{s2s['median_dominant_count_at_plateau_end']}")


def register(figures_app: typer.Typer) -> None:
    @figures_app.command("saddle")
    def saddle_command(
        out: Path = typer.Option(Path("figures/saddle"), "--out", help="output directory"),
        full: bool = typer.Option(False, "--full", help="GPU sizes: deeper, wider, more restarts"),
        seed: int = typer.Option(0, "--seed", help="base random seed"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    ) -> None:
        """Escape from the saddle at the origin: optimal directions, per-layer ratios vs l^(1/4), plateaus."""
        summary = run(out, full=full, seed=seed, progress=not quiet)
        print_summary(summary)
        print(f"wrote saddle_escape_ratios.png, saddle_first_plateau.png, saddle_to_saddle.png, saddle_escape.nc, "
              f"saddle_training.nc and saddle_summary.json/.md to {out}")
