"""Figures and the Markdown table of the saddle escape, from a :class:`SaddleResult`."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from jaxspec.reproduce import SaddleResult, TrainingRun

#: Energy fractions below this are drawn at it (log axis).
ENERGY_FLOOR = 1e-10


def _ratios(result: SaddleResult) -> Figure:
    clip = result.ratio_clip
    fig = Figure(figsize=(11, 4.4), dpi=110)
    ax1, ax2 = fig.subplots(1, 2)
    colors = {"ridge": "C0", "digits": "C1", "unit_circle": "C2", "gd": "C3"}
    entries = [
        (
            f"optimal escape, {c} (speed {e.speed:.4g}, stationarity {e.stationarity:.1g})",
            e.profile,
            colors[c],
            "-",
        )
        for c, e in result.escapes.items()
    ]
    gd_speed = result.tiny.speed[result.first_plateau_end]
    entries.append(
        (
            f"GD at the end of the first plateau, ridge (speed {gd_speed:.3g})",
            result.first_plateau,
            colors["gd"],
            "--",
        )
    )
    for label, profile, color, ls in entries:
        r = np.minimum(profile.s1_over_s2, clip)
        layers = np.arange(1, r.size + 1)
        ax1.plot(layers, r, ls, marker="o", ms=4, color=color, label=label)
        clipped = profile.s1_over_s2 >= clip
        ax1.plot(layers[clipped], r[clipped], "^", ms=8, color=color, mfc="none")
        ax2.plot(
            layers,
            np.maximum(profile.weight_tail, ENERGY_FLOOR),
            ls,
            marker="o",
            ms=4,
            color=color,
            label=f"{label.split(' (')[0]}: weights",
        )
        ax2.plot(
            layers,
            np.maximum(profile.activation_tail, ENERGY_FLOOR),
            ":",
            marker="s",
            ms=3,
            color=color,
            alpha=0.8,
            label="  activations",
        )
    depth = result.sizes.depth
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
    ax1.set_title(
        f"Leading singular-value ratio (clipped at {clip:g}, open triangles: numerically rank one)",
        fontsize=8,
    )
    ax1.legend(fontsize=6)
    ax2.plot(layers, layers**-0.5, "k--", lw=1.5, label="l^(-1/2)")
    ax2.set_yscale("log")
    ax2.set_xlabel("layer l")
    ax2.set_ylabel("non-leading energy 1 - s_1^2 / sum s_i^2")
    ax2.set_title(f"Non-leading energy fraction (floored at {ENERGY_FLOOR:g})", fontsize=8)
    ax2.legend(fontsize=5.5, ncol=2)
    fig.suptitle(
        f"Low-rank bias of the escape from the origin, depth-{depth} bias-free ReLU nets", fontsize=10
    )
    fig.tight_layout()
    return fig


def _shade_plateaus(ax, run: TrainingRun) -> None:
    for i, (a, b) in enumerate(zip(run.plateau_start, run.plateau_end, strict=True)):
        ax.axvspan(
            run.steps[a],
            run.steps[b],
            color="0.88" if i % 2 == 0 else "0.75",
            zorder=0,
            label="detected plateaus (alternating shades)" if i == 0 else None,
        )


def _first_plateau(result: SaddleResult) -> Figure:
    run, optimal_speed = result.tiny, result.escapes["ridge"].speed
    steps = run.steps
    fig = Figure(figsize=(7, 6), dpi=110)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    _shade_plateaus(ax1, run)
    ax1.plot(steps, run.loss, "C0-", label="loss C(theta)")
    end = steps[result.first_plateau_end]
    ax1.axvline(end, color="C3", ls="--", label="end of the first plateau")
    ax1.set_ylabel("loss")
    ax1.set_yscale("log")
    ax1.legend(fontsize=7)
    speed = run.speed
    # A random initial direction can have a (tiny) negative speed: plot |speed|, dotted where negative.
    ax2.plot(
        steps,
        np.where(speed > 0, speed, np.nan),
        "C1-",
        label="speed -L0 of theta projected on ||theta||^2 = L",
    )
    if np.any(speed <= 0):
        ax2.plot(
            steps,
            np.where(speed <= 0, np.abs(speed), np.nan),
            color="0.4",
            ls=":",
            label="|speed| where it is negative",
        )
    ax2.axhline(optimal_speed, color="k", ls=":", label=f"optimal escape speed {optimal_speed:.4g} (ascent)")
    ax2.axvline(end, color="C3", ls="--")
    ax2.set_yscale("log")
    ax2.set_xlabel("GD step (eta = c ||theta||^(2-L))")
    ax2.set_ylabel("escape speed")
    ax2.legend(fontsize=7)
    fig.suptitle(
        f"Tiny initialisation (scale {run.init_scale:g}), depth {run.depth}, "
        f"c = {run.step_scale:.3g}: the direction aligns during the plateau",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def _saddle_to_saddle(result: SaddleResult) -> Figure:
    run = result.saddle_to_saddle
    steps, counts = run.steps, run.counts
    fig = Figure(figsize=(7, 6), dpi=110)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    _shade_plateaus(ax1, run)
    ax1.plot(steps, run.loss, "C0-", label="loss")
    ax1.set_yscale("log")
    ax1.set_ylabel("loss C(theta)")
    ax1.legend(fontsize=7)
    _shade_plateaus(ax2, run)
    for l in range(counts.shape[1]):
        ax2.plot(steps, counts[:, l] + 0.06 * (l - run.depth / 2), lw=1.4, label=f"layer {l + 1}")
    ax2.set_ylabel("# dominant singular values\n(s_i > 0.1 s_1)")
    ax2.set_xlabel("GD step")
    ax2.set_ylim(0, min(np.max(counts) + 1, 8) if np.max(counts[-1]) < 8 else None)
    ax2.legend(fontsize=6, ncol=2)
    fig.suptitle(
        f"Saddle-to-saddle: depth {run.depth}, ridge teacher with amplitudes (4, 2, 1); the rank "
        "rises at each escape",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def saddle_figures(result: SaddleResult) -> dict[str, Figure]:
    """The three figures of the saddle escape, keyed by their file names.

    Args:
        result: from :func:`jaxspec.reproduce.run_saddle`.

    Returns:
        ``saddle_escape_ratios.png`` (per layer ``s_1/s_2`` with ``l^(1/4)`` and the non-leading energy with
        ``l^(-1/2)``, at the optimal directions and at the end of the first plateau),
        ``saddle_first_plateau.png`` (loss and escape speed of the tiny-init run) and ``saddle_to_saddle.png``
        (plateaus and dominant counts) -> matplotlib figures.
    """
    return {
        "saddle_escape_ratios.png": _ratios(result),
        "saddle_first_plateau.png": _first_plateau(result),
        "saddle_to_saddle.png": _saddle_to_saddle(result),
    }


def saddle_markdown(summary: dict) -> str:
    """The Markdown table of ``saddle_summary.md``: speeds, certificates, ratios against ``l^(1/4)``.

    Args:
        summary: ``SaddleResult.summary``.

    Returns:
        The table (one row per direction) and a line on the saddle-to-saddle run.
    """
    lines = [
        "| direction | speed | stationarity (generalised) | KKT residual (smooth) | s1/s2 per layer "
        "| min over l>=2 of (s1/s2) / l^(1/4) |",
        "|---|---|---|---|---|---|",
    ]
    for case, e in summary["escape"].items():
        lines.append(
            f"| optimal, {case} | {e['speed']:.6g} | {e['stationarity']:.2g} | {e['kkt_residual']:.2g} | "
            f"{', '.join(f'{v:.3g}' for v in e['s1_over_s2'])} | "
            f"{e['min_ratio_over_l_quarter_deep_layers']:.3g} |"
        )
    fp = summary["first_plateau"]
    lines.append(
        f"| GD end of first plateau, ridge | {fp['speed_at_end']:.4g} "
        f"({fp['speed_ratio']:.4f} of optimal) | - | - | "
        f"{', '.join(f'{v:.3g}' for v in fp['s1_over_s2'])} | "
        f"{fp['min_ratio_over_l_quarter_deep_layers']:.3g} |"
    )
    s2s = summary["saddle_to_saddle"]
    lines += [
        "",
        f"Saddle-to-saddle (depth {s2s['depth']}): plateaus (steps) {s2s['plateaus_steps']}, "
        f"loss at their ends {[round(v, 4) for v in s2s['loss_at_plateau_end']]}, "
        f"dominant counts per layer at their ends {s2s['dominant_counts_at_plateau_end']}",
        "",
    ]
    return "\n".join(lines)
