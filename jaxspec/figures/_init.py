"""Figures (a)-(d) and the overlaps of the initialisation experiments, drawn from an :class:`InitResult`."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from jaxspec.reproduce import InitResult

_MODEL_TITLES = {
    "masked": "masked model, p = 1/2, sigma2 = 2",
    "relu": "ReLU MLP (He, zero bias), jvp tangents",
}


def _scaling(result: InitResult) -> Figure:
    sizes, lam, offsets = result.sizes, result.theory_exponents, result.theory_offsets
    depth = sizes.depth
    l = np.arange(1, depth + 1)
    colors = mpl.colormaps["viridis"](np.linspace(0, 0.85, sizes.k))
    fig = Figure(figsize=(12, 4.6), dpi=130)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (model, title) in zip(axes, _MODEL_TITLES.items(), strict=True):
        curves = result.scaling[model]
        (sv_m, sv_se), (qr_m, qr_se) = curves.sv_rate, curves.qr_rate
        for i in range(sizes.k):
            c = colors[i]
            ax.plot(l, sv_m[:, i], color=c, lw=1.6, label=f"(1/L) log s_{i + 1}" if i == 0 else None)
            ax.fill_between(l, sv_m[:, i] - sv_se[:, i], sv_m[:, i] + sv_se[:, i], color=c, alpha=0.25)
            ax.plot(l, qr_m[:, i], color=c, lw=1.2, ls="--", label="(1/L) sum log|R_ii|" if i == 0 else None)
            ax.fill_between(l, qr_m[:, i] - qr_se[:, i], qr_m[:, i] + qr_se[:, i], color=c, alpha=0.12)
            ax.axhline(lam[i], color=c, lw=1.0, ls=":", label="theory lambda_i" if i == 0 else None)
            ax.plot(
                l,
                lam[i] + offsets[i] / l,
                color="k",
                lw=0.7,
                ls="-.",
                alpha=0.6,
                label="lambda_i + c_i / L" if i == 0 else None,
            )
            ax.text(depth * 1.01, lam[i], f"i={i + 1}", color=c, va="center", fontsize=8)
        ax.text(
            0.02,
            0.02,
            "seeds with s_i(J_L) > 0 (no rank collapse): "
            + ", ".join(f"i={i + 1}: {100 * a:.0f}%" for i, a in enumerate(curves.fraction_full_rank))
            + "\nexact curves average those seeds; QR curves condition on K_l >= i",
            transform=ax.transAxes,
            fontsize=7.5,
            va="bottom",
        )
        ax.set_title(title)
        ax.set_xlabel("depth L")
        ax.set_xlim(0, depth * 1.08)
    axes[0].set_ylabel("per-layer log singular value")
    axes[0].set_ylim(min(lam.min() - 0.15, -0.4), max(0.25, (lam[0] + offsets[0] / 8)))
    axes[0].legend(loc="upper right", fontsize=8)
    fig.suptitle(
        f"(a) depth-induced scaling of ordered singular values, N = {sizes.width}, "
        f"{sizes.seeds} seeds (bands: +-1 s.e.)"
    )
    fig.tight_layout()
    return fig


def _separation(result: InitResult) -> Figure:
    fig = Figure(figsize=(7, 4.8), dpi=130)
    ax = fig.subplots()
    colors = mpl.colormaps["plasma"](np.linspace(0, 0.8, len(result.separation)))
    for c, (n, sep) in zip(colors, result.separation.items(), strict=True):
        l = np.arange(1, sep.log_svals.shape[1] + 1)
        m, se = sep.log_ratio
        ax.plot(l / n, m, color=c, lw=1.6, label=f"N = {n}")
        ax.fill_between(l / n, m - se, m + se, color=c, alpha=0.25)
        ax.plot(l / n, sep.theory_log_ratio(l), color=c, ls="--", lw=1.0)
    ax.plot([], [], color="gray", ls="--", label="theory L(lambda_1 - lambda_2) + c_1 - c_2")
    x = np.linspace(0, result.sizes.separation_depth_over_width, 50)
    ax.plot(x, x, color="k", lw=0.8, ls=":", label="N -> infinity limit: slope 1/(2p) = 1 per unit L/N")
    ax.set_xlabel("L / N")
    ax.set_ylabel("log(s_1 / s_2)")
    ax.set_title("(b) spectral separation of ReLU-MLP Jacobians (He, p = 1/2)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _alignment(result: InitResult) -> Figure:
    sizes = result.sizes
    depth = sizes.depth
    fig = Figure(figsize=(12, 4.6), dpi=130)
    axes = fig.subplots(1, 2, sharey=True)
    styles = {
        "relu": ("tab:red", f"ReLU MLP, N = {sizes.width}"),
        "gaussian": ("tab:blue", f"Gaussian product, N = {sizes.gaussian_alignment_width}"),
    }
    for ax, side in zip(axes, ["prefix", "suffix"], strict=True):
        floors = set()
        for name, (color, label) in styles.items():
            curve = result.alignment[f"{name}_{side}"]
            x, (m, se) = curve.position, curve.log_sin
            clipped = (
                f" ({curve.clipped} of {curve.sines.shape[0] * x.size} sines < eps clipped at eps)"
                if curve.clipped
                else ""
            )
            ax.plot(x, m, color=color, lw=1.6, label=f"{label}: mean log sin{clipped}")
            ax.fill_between(x, m - se, m + se, color=color, alpha=0.25)
            ref = (x >= 1) & (x <= depth - 1)
            ax.plot(
                x[ref],
                curve.anchor + curve.predicted_slope * x[ref],
                color=color,
                ls="--",
                lw=1.0,
                label=f"predicted slope -(lambda_1 - lambda_2) = {curve.predicted_slope:.4f}",
            )
            if curve.clipped:
                floors.add(curve.floor)
        for floor in sorted(floors):
            ax.axhline(
                np.log(floor),
                color="0.5",
                lw=0.8,
                ls=":",
                label=f"log eps = {np.log(floor):.1f}: "
                "sines below eps (vectors equal to machine precision) are clipped here",
            )
        ax.set_xlabel("l (prefix depth)" if side == "prefix" else "L - l (layers in the suffix)")
        ax.set_title(
            "right vectors: sin angle(v_1(J_l), v_1(J_L))"
            if side == "prefix"
            else "left vectors: sin angle(u_1(A_L...A_{l+1}), u_1(J_L))"
        )
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("log sin angle")
    fig.suptitle(
        f"(c) singular-vector alignment along depth, L = {depth}, "
        f"{sizes.alignment_seeds} seeds (bands: +-1 s.e.)"
    )
    fig.tight_layout()
    return fig


def _sandwich(result: InitResult) -> Figure:
    sizes = result.sizes
    titles = {
        "gaussian": "independent Gaussian segments",
        "relu": "ReLU MLP split (independent at init)",
        "aligned": f"aligned: shared bases + noise {sizes.aligned_noise}",
    }
    fig = Figure(figsize=(14, 4.4), dpi=130)
    axes = fig.subplots(1, 3, sharey=True)
    d = np.arange(1, sizes.segment_depth + 1)
    for ax, (name, title) in zip(axes, titles.items(), strict=True):
        bands = result.sandwich[name].bands
        for key, color, label in [
            ("upper", "tab:gray", "upper bound c + r_A + r_B"),
            ("ratio", "tab:green", "s_1(AB) / (s_1(A) s_1(B))"),
            ("lower", "tab:purple", "lower bound c = |<v_1(A), u_1(B)>|"),
        ]:
            m, se = bands[key]
            ax.plot(d, m, color=color, lw=1.6 if key == "ratio" else 1.1, label=label)
            ax.fill_between(d, m - se, m + se, color=color, alpha=0.25)
        ax.axhline(result.haar_overlap, color="k", ls=":", lw=0.8, label="Haar overlap E|c| ~ sqrt(2/(pi N))")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("segment depth d (A and B each d layers)")
        ax.set_xscale("log")
    axes[0].set_ylabel("sandwich quantity")
    axes[0].set_ylim(0, 1.6)
    axes[-1].legend(fontsize=7.5, loc="lower right")
    fig.suptitle(
        f"(d) sandwich s_1(AB)/(s_1(A)s_1(B)) and its bounds, N = {sizes.width}, {sizes.seeds} seeds"
    )
    fig.tight_layout()
    return fig


def _overlaps(result: InitResult) -> Figure:
    sizes = result.sizes
    fig = Figure(figsize=(13, 3.9), dpi=130)
    axes = fig.subplots(1, 3)
    for index, (ax, (name, entry)) in enumerate(zip(axes, result.sandwich.items(), strict=True)):
        mean = entry.mean_overlaps
        im = ax.imshow(mean, vmin=0, vmax=1, cmap="magma")
        k = mean.shape[0]
        ax.set_xticks(range(k), [f"u_{j + 1}" for j in range(k)])
        ax.set_yticks(range(k), [f"v_{i + 1}" for i in range(k)])
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{mean[i, j]:.2f}",
                    ha="center",
                    va="center",
                    color="w" if mean[i, j] < 0.6 else "k",
                    fontsize=8,
                )
        ax.set_title(name)
        ax.set_xlabel("earlier segment: left basis U_j")
        if index == 0:
            ax.set_ylabel("later segment: right basis V_{j+1}")
    fig.colorbar(im, ax=axes, shrink=0.8, label="mean |<v_i(P_{j+1}), u_j(P_j)>|")
    seg = 2 * sizes.segment_depth // sizes.segments
    fig.suptitle(
        f"overlaps between adjacent segments: {sizes.segments} segments of ~{seg} layers, "
        f"N = {sizes.width}, "
        f"mean over seeds and pairs (Haar level E|c| ~ {result.haar_overlap:.2f})",
        fontsize=10,
    )
    return fig


def init_figures(result: InitResult) -> dict[str, Figure]:
    """The five figures of the initialisation experiments, keyed by their file names.

    Args:
        result: from :func:`jaxspec.reproduce.run_init`.

    Returns:
        ``init_a_scaling.png`` (rates against ``L`` beside ``lambda_i`` and ``lambda_i + c_i / L``),
        ``init_b_separation.png`` (``log(s_1/s_2)`` against ``L / N``), ``init_c_alignment.png`` (log sines
        along depth with the predicted slope; the legend says how many sines were clipped at ``eps``),
        ``init_d_sandwich.png`` (the sandwich and its bounds) and ``init_overlaps.png`` (mean overlaps of
        adjacent segments) -> matplotlib figures (not attached to pyplot: nothing to close).

    Example:
        >>> figs = init_figures(run_init(width=8, depth=24, progress=False))  # doctest: +SKIP
        >>> figs["init_c_alignment.png"].savefig("alignment.png")  # doctest: +SKIP
    """
    return {
        "init_a_scaling.png": _scaling(result),
        "init_b_separation.png": _separation(result),
        "init_c_alignment.png": _alignment(result),
        "init_d_sandwich.png": _sandwich(result),
        "init_overlaps.png": _overlaps(result),
    }
