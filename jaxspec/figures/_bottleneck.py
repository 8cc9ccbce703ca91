"""Figures and the Markdown table of the bottleneck rank, from a :class:`BottleneckResult`."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from jaxspec.reproduce import BottleneckResult


def _weights(result: BottleneckResult) -> Figure:
    targets, depths = list(result.targets.values()), result.sizes.depths
    fig = Figure(figsize=(3.3 * len(depths), 2.8 * len(targets)), dpi=110)
    axes = fig.subplots(len(targets), len(depths), squeeze=False, sharey="row")
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, target in enumerate(targets):
        for col, net in enumerate(target.networks):
            ax = axes[row, col]
            sv = net.weight_sv
            layers = np.arange(1, sv.shape[0] + 1)
            for i in range(min(6, sv.shape[1])):
                ax.plot(layers, sv[:, i], "o-", ms=3, lw=1, color=colors[i % len(colors)], label=f"s_{i + 1}")
            ax.axhline(1.0, color="k", ls="--", lw=0.8)
            ax.set_yscale("log")
            ax.set_ylim(1e-3, 10)
            ax.set_title(
                f"{target.name} (lambda {target.weight_decay:g}), L = {net.depth}: "
                f"plateau {net.plateau_count}",
                fontsize=7,
            )
            ax.set_xlabel("layer l")
            if col == 0:
                ax.set_ylabel("singular values of W_l")
            if row == 0 and col == 0:
                ax.legend(fontsize=6, ncol=2)
    fig.suptitle(
        "Weight spectra after training with weight decay lambda (dashed: 1). "
        "Bottleneck: R0 singular values near 1, the rest small; 'plateau' = median #{s_i > 0.5} "
        "over the middle layers",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def _representations(result: BottleneckResult) -> Figure:
    targets = list(result.targets.values())
    fig = Figure(figsize=(4.8 * len(targets), 4.0), dpi=110)
    axes = fig.subplots(1, len(targets), squeeze=False)
    cmap = mpl.colormaps["viridis"]
    for ax, target in zip(axes[0], targets, strict=True):
        nets = target.networks
        for i, net in enumerate(nets):
            c = cmap(i / max(len(nets) - 1, 1))
            pos = np.arange(net.rep_rank.size) / net.depth
            ax.plot(pos, net.rep_rank, "o-", ms=3, color=c, label=f"L = {net.depth}")
            ax.plot(pos, net.rep_stable_rank, "s--", ms=2, lw=0.8, color=c, alpha=0.7)
        if target.bottleneck_rank is not None:
            ax.axhline(target.bottleneck_rank, color="k", ls=":", lw=1, label=f"k = {target.bottleneck_rank}")
        ax.set_ylim(0, None)
        ax.set_xlabel("relative depth l / L (0 = input, 1 = output)")
        ax.set_ylabel("rank of the representation H_l")
        ax.set_title(f"{target.name}: numerical (solid) and stable (dashed) rank", fontsize=9)
        ax.legend(fontsize=6, ncol=2, loc="best", framealpha=0.6)
    fig.suptitle(
        "Representation rank across layers (numerical: #{s_i > 1e-2 s_1}; stable: ||H||_F^2/||H||_2^2)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def _norm(result: BottleneckResult) -> Figure:
    targets = list(result.targets.values())
    fig = Figure(figsize=(4.6 * len(targets), 7.4), dpi=110)
    axes = fig.subplots(2, len(targets), squeeze=False)
    cmap = mpl.colormaps["viridis"]
    for col, target in enumerate(targets):
        nets, fit = target.networks, target.fit
        depths = np.array([r.depth for r in nets], dtype=float)
        ax = axes[0, col]
        ax.plot(depths, [r.norm_sq for r in nets], "o", ms=6, label="trained ||theta||^2")
        grid = np.linspace(0, depths.max() * 1.05, 100)
        ax.plot(
            grid,
            fit["r0"] * grid + fit["r1"],
            "-",
            lw=1.2,
            label=f"fit: R0 = {fit['r0']:.2f} +- {fit['r0_stderr']:.2f}, R1 = {fit['r1']:.2f}",
        )
        if target.exact_rank is not None:
            ax.plot(
                target.optimum_depths,
                target.optimum_norm_sq,
                "k--",
                lw=1,
                label="exact optimum at this lambda",
            )
            ax.plot(
                grid,
                target.exact_rank * grid + target.exact_r1,
                "k:",
                lw=1,
                label=f"L rank A + 2 log|A|_+ (rank {target.exact_rank})",
            )
        ax.set_xlabel("depth L")
        ax.set_ylabel("||theta||^2")
        ax.set_title(target.name, fontsize=9)
        ax.legend(fontsize=6)
        ax = axes[1, col]
        top = 0.0
        for i, r in enumerate(nets):
            ax.plot(
                r.ineq_lhs,
                r.ineq_rhs,
                ".",
                ms=3,
                alpha=0.6,
                color=cmap(i / max(len(nets) - 1, 1)),
                label=f"L = {r.depth}",
            )
            top = max(top, float(np.max(r.ineq_rhs)), float(np.max(r.ineq_lhs)))
        ax.plot([0, top], [0, top], "k--", lw=1, label="equality")
        ax.set_xlabel("sum_l e_l")
        ax.set_ylabel("||theta||^2 - L k - 2 log|Jf(x)|_+")
        ax.set_title(
            f"one point per input: all on or above the diagonal; min margin "
            f"{min(float(r.ineq_margin.min()) for r in nets):.2g}",
            fontsize=8,
        )
        ax.legend(fontsize=6, markerscale=3)
    fig.suptitle(
        "||theta||^2 = L R0 + R1 + O(1/L) and the per-network inequality (k = rank Jf(x) at 1e-3)", fontsize=9
    )
    fig.tight_layout()
    return fig


def bottleneck_figures(result: BottleneckResult) -> dict[str, Figure]:
    """The three figures of the bottleneck rank, keyed by their file names.

    Args:
        result: from :func:`jaxspec.reproduce.run_bottleneck`.

    Returns:
        ``bottleneck_weights.png`` (singular values of every weight matrix, one panel per target and depth),
        ``bottleneck_representations.png`` (numerical and stable rank of the representations against
        ``l / L``) and ``bottleneck_norm.png`` (``||theta||^2`` against ``L`` with the fit and, for the linear
        target, the exact optimum; both sides of the per-network inequality) -> matplotlib figures.
    """
    return {
        "bottleneck_weights.png": _weights(result),
        "bottleneck_representations.png": _representations(result),
        "bottleneck_norm.png": _norm(result),
    }


def bottleneck_markdown(summary: dict) -> str:
    """The Markdown table of ``bottleneck_summary.md``: per target and depth, then the fits.

    Args:
        summary: ``BottleneckResult.summary``.

    Returns:
        The table and one line per target with ``R0``, ``R1`` (and their exact values for the linear target).
    """
    lines = [
        "| target | L | plateau #{s_i > 0.5} | middle rep. rank | Jf rank (mode) | min margin | "
        "sum e_l | bound | norm^2 | data loss |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in summary["targets"].items():
        for d in t["depths"]:
            lines.append(
                f"| {name} | {d['depth']} | {d['plateau_count']} | "
                f"{d['middle_representation_rank']} | {d['jacobian_rank_mode']} | "
                f"{d['min_inequality_margin']:.3g} | {d['mean_sum_e_l']:.2f} | "
                f"{d['mean_bound']:.2f} | {d['norm_sq']:.2f} | {d['final_data_loss']:.3g} |"
            )
    lines.append("")
    for name, t in summary["targets"].items():
        f = t["fit"]
        exact = f"; exact R0 = {t['exact_R0']}, R1 = {t['exact_R1']:.2f}" if "exact_R0" in t else ""
        lines.append(
            f"- {name}: fit R0 = {f['r0']:.2f} +- {f['r0_stderr']:.2f}, R1 = {f['r1']:.2f} +- "
            f"{f['r1_stderr']:.2f}{exact}"
        )
    return "\n".join(lines) + "\n"
