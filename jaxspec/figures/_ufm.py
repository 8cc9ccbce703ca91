"""Figures and the Markdown summary of the deep-UFM and digits spectra, from a :class:`UFMResult`."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from jaxspec.reproduce import UFMResult


def _spectrum(result: UFMResult) -> Figure:
    sizes, theory = result.sizes, result.theory
    K2 = sizes.num_classes**2
    fig = Figure(figsize=(15, 4.3), dpi=130)
    axes = fig.subplots(1, 3)
    for ax, (activation, run) in zip(axes[:2], result.runs.items(), strict=True):
        for layer, row in enumerate(run.final_spectrum):
            row = row[np.isfinite(row)]
            ax.semilogy(np.arange(1, row.size + 1), row, "o-", ms=3, lw=0.8, label=f"layer {layer + 1}")
        ax.axhline(
            sizes.lam / theory.one_minus_gamma,
            color="k",
            ls="--",
            lw=1,
            label=r"outliers $\lambda_W/(1-\gamma)$ (linear theory)",
        )
        ax.axhline(sizes.lam, color="grey", ls=":", lw=1, label=r"bulk $\lambda_W$")
        ax.axvline(K2 + 0.5, color="tab:red", ls=":", lw=1, label=f"$K^2$ = {K2}")
        ax.set_xscale("log")
        ax.set_xlabel("eigenvalue index")
        ax.set_ylabel("eigenvalue of the layer-wise Hessian")
        ax.set_title(f"{activation} UFM after {sizes.steps} GD steps")
        ax.legend(fontsize=7)
    ax = axes[2]
    for (activation, run), color in zip(result.runs.items(), ("tab:blue", "tab:orange"), strict=True):
        ax.semilogy(
            run.slq.grid, np.maximum(run.slq.density, 1e-8), color=color, label=f"{activation} UFM (SLQ)"
        )
    ax.axvline(
        sizes.lam / theory.one_minus_gamma, color="k", ls="--", lw=1, label="layer-wise outlier (theory)"
    )
    ax.set_ylim(1e-6, None)
    ax.set_xlabel("eigenvalue of the full Hessian (all parameters)")
    ax.set_ylabel("spectral density")
    ax.set_title("full Hessian: bulk plus outliers")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _outliers(result: UFMResult, layer: int) -> Figure:
    K2 = result.sizes.num_classes**2
    fig = Figure(figsize=(11, 4.2), dpi=130)
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (activation, run) in zip(axes, result.runs.items(), strict=True):
        eigs = run.tracked.top_eigenvalues[:, layer]
        for i in range(eigs.shape[1]):
            ax.plot(
                run.steps,
                np.maximum(eigs[:, i], 1e-9),
                color="tab:blue" if i < K2 else "tab:grey",
                lw=1.2 if i < K2 else 0.8,
                label=(f"top {K2} (outliers)" if i == 0 else ("next (bulk)" if i == K2 else None)),
            )
        ax.axhline(
            result.theory.outlier, color="k", ls="--", lw=1, label=r"theory $\lambda_W\gamma/(1-\gamma)$"
        )
        ax.set_yscale("log")
        ax.set_ylim(1e-7, None)
        ax.set_xlabel("GD step")
        ax.set_title(f"{activation} UFM, layer {layer + 1}: data Hessian")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("top eigenvalues (Lanczos)")
    fig.tight_layout()
    return fig


def _alignment(result: UFMResult) -> Figure:
    sizes = result.sizes
    fig = Figure(figsize=(11, 4.2), dpi=130)
    axes = fig.subplots(1, 2)
    colors = mpl.colormaps["viridis"](np.linspace(0, 0.9, sizes.depth))
    for (activation, run), ls in zip(result.runs.items(), ("-", "--"), strict=True):
        tr = run.tracked
        for layer in range(sizes.depth):
            axes[0].plot(
                run.steps,
                tr.alignment[:, layer].mean(axis=(1, 2)),
                ls,
                color=colors[layer],
                label=f"{activation}, layer {layer + 1}",
            )
        axes[1].plot(
            run.steps,
            tr.overlap_data.mean(axis=1),
            ls,
            color="tab:blue",
            label=f"{activation}: data gradient",
        )
        axes[1].plot(
            run.steps,
            tr.overlap_total.mean(axis=1),
            ls,
            color="tab:orange",
            label=f"{activation}: full gradient (-> 0 at the optimum)",
        )
    axes[0].axhline(1.0, color="k", ls=":", lw=1, label="theory (collapse): 1")
    axes[0].set_xlabel("GD step")
    axes[0].set_ylabel(r"mean over $c, c'$ of $f_{cc'}$")
    axes[0].set_title(r"$f_{cc'} = |v^T H v|^2 / (\|v\|^2 \|Hv\|^2)$, $v$ = class-mean gradients")
    axes[0].legend(fontsize=6, ncol=2)
    axes[1].axhline(1.0, color="k", ls=":", lw=1, label="theory (data gradient at collapse): 1")
    axes[1].set_xlabel("GD step")
    axes[1].set_ylabel(r"$\|P_{top} g\|^2 / \|g\|^2$ (mean over layers)")
    axes[1].set_title(f"gradient in the top-{sizes.num_classes**2} Hessian subspace")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def _nc1(result: UFMResult) -> Figure:
    sizes = result.sizes
    fig = Figure(figsize=(6.5, 4.2), dpi=130)
    ax = fig.subplots()
    colors = mpl.colormaps["viridis"](np.linspace(0, 0.9, sizes.depth))
    for (activation, run), ls in zip(result.runs.items(), ("-", "--"), strict=True):
        nc1 = run.tracked.collapse.nc1
        for layer in range(sizes.depth):
            ax.semilogy(
                run.steps,
                np.maximum(nc1[:, layer], 1e-15),
                ls,
                color=colors[layer],
                label=f"{activation}, " + ("H (input)" if layer == 0 else f"h after layer {layer}"),
            )
    ax.set_xlabel("GD step")
    ax.set_ylabel(r"NC1 = Tr$(\Sigma_W \Sigma_B^+)/K$")
    ax.set_title("within-class variability collapses at every layer (theory: 0)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def _digits(result: UFMResult) -> Figure:
    digits = result.digits
    fig = Figure(figsize=(15, 4.3), dpi=130)
    axes = fig.subplots(1, 3)
    c_max = int(digits.classes[-1])
    ax = axes[0]
    ax.semilogy(digits.slq.grid, np.maximum(digits.slq.density, 1e-10), color="tab:blue", label="SLQ density")
    full_top = digits.eigenvalues["full"][-1][: digits.outlier_count["full"][-1]]
    ax.plot(
        full_top,
        np.full(full_top.size, 2e-6),
        "|",
        color="tab:red",
        ms=12,
        label=f"{full_top.size} outliers counted (Lanczos)",
    )
    ax.set_ylim(1e-7, None)
    ax.set_xlabel("eigenvalue of the full Hessian (data term)")
    ax.set_ylabel("spectral density")
    ax.set_title(f"ReLU MLP on digits, {c_max} classes ({digits.num_params} parameters)")
    ax.legend(fontsize=8)
    ax = axes[1]
    colors = mpl.colormaps["plasma"](np.linspace(0, 0.85, len(digits.classes)))
    for c, eigs, color in zip(digits.classes, digits.eigenvalues["head"], colors, strict=True):
        valid = eigs[np.isfinite(eigs)][: 2 * c**2 + 10]
        ax.semilogy(
            np.arange(1, valid.size + 1),
            np.maximum(valid, 1e-9),
            ".-",
            color=color,
            lw=0.8,
            ms=3,
            label=f"C = {c}",
        )
        ax.axvline(c**2 + 0.5, color=color, ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("eigenvalue index (dotted: $C^2$)")
    ax.set_ylabel("head-layer Hessian eigenvalue")
    ax.set_title("head layer: outliers then bulk")
    ax.legend(fontsize=7)
    ax = axes[2]
    c = digits.classes
    fine = np.linspace(c.min(), c.max(), 100)
    ax.plot(fine, fine**2, "k--", lw=1, label="$C^2$ (UFM layer-wise prediction)")
    ax.plot(fine, fine, "k:", lw=1, label="$C$")
    ax.plot(
        c,
        digits.outlier_count_any_gap["head"],
        "x",
        color="tab:red",
        ms=8,
        label="head layer, largest gap anywhere",
    )
    for name, marker, color, label in (
        ("head", "o", "tab:red", "head layer"),
        ("hidden", "s", "tab:green", "last hidden layer"),
        ("full", "^", "tab:blue", "full Hessian"),
    ):
        counts, gaps = digits.outlier_count[name], digits.gap_ratio[name]
        ax.plot(c, counts, "-", color=color, lw=1)
        clear = gaps >= 2.0
        ax.plot(c[clear], counts[clear], marker, color=color, label=f"{label} (gap >= 2)")
        ax.plot(
            c[~clear],
            counts[~clear],
            marker,
            color=color,
            mfc="none",
            label=f"{label} (gap < 2: no clear edge)",
        )
    ax.set_xlabel("number of classes C")
    ax.set_ylabel(r"outliers counted (largest gap $\lambda_i/\lambda_{i+1}$, $i > C$)")
    ax.set_title("outlier count against the number of classes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ufm_figures(result: UFMResult) -> dict[str, Figure]:
    """The five figures of the UFM and digits spectra, keyed by their file names.

    Args:
        result: from :func:`jaxspec.reproduce.run_ufm`.

    Returns:
        ``ufm_spectrum.png`` (every eigenvalue of each layer's Hessian beside the predicted bulk and outliers;
        the SLQ density of the full Hessian), ``ufm_outliers_training.png`` (top eigenvalues of the second
        layer, or the only one, during training), ``ufm_alignment.png`` (``f_cc'`` and the gradient-outlier
        overlaps), ``ufm_nc1.png`` (NC1 per layer) and ``digits_spectrum.png`` (density, head eigenvalues and
        outlier counts against ``C^2``) -> matplotlib figures.
    """
    return {
        "ufm_spectrum.png": _spectrum(result),
        "ufm_outliers_training.png": _outliers(result, min(1, result.sizes.depth - 1)),
        "ufm_alignment.png": _alignment(result),
        "ufm_nc1.png": _nc1(result),
        "digits_spectrum.png": _digits(result),
    }


def ufm_markdown(summary: dict) -> str:
    """The Markdown summary of ``ufm_summary.md`` (also what ``jaxspec figures ufm`` prints).

    Args:
        summary: ``UFMResult.summary``.

    Returns:
        The linear theory, a table per UFM and layer, and a table per number of digits classes.
    """
    th = summary["theory"]
    lines = [
        "# Deep UFM and digits: spectra beside predictions",
        "",
        f"Linear theory: gamma = {th['gamma']:.6f}, loss = {th['loss']:.6f}, "
        f"outlier = {th['outlier']:.6f} x {th['outlier_multiplicity']}, "
        f"Gram = {th['weight_gram']:.6f} x {th['gram_multiplicity']}.",
        "",
        "| model | final loss | layer | outliers (min..max) | first bulk | NC1 | mean f_cc' "
        "| overlap (data) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for activation, row in summary["ufm"].items():
        for layer, outs in enumerate(row["outliers_per_layer"]):
            bulk = row["first_bulk_eigenvalue"]
            bulk_cell = "-" if bulk is None else format(bulk[layer], ".2e")
            lines.append(
                f"| {activation} | {row['final_loss']:.6f} | {layer + 1} "
                f"| {min(outs):.6f}..{max(outs):.6f} | {bulk_cell} | {row['nc1_final'][layer]:.2e} "
                f"| {row['f_cc_final_mean'][layer]:.4f} | {row['overlap_data_final'][layer]:.4f} |"
            )
    dg = summary["digits"]
    lines += [
        "",
        "Outliers = eigenvalues before the largest gap lambda_i / lambda_(i+1), i > C (gap ratio "
        "in brackets; in square brackets the count with the largest gap anywhere).",
        "",
        "| digits classes C | C^2 | head outliers | last-hidden outliers "
        "| full-Hessian outliers | train accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(dg["classes"]):
        cells = " | ".join(
            f"{dg[f'{n}_outlier_count'][i]} ({dg[f'{n}_gap_ratio'][i]:.2f}) "
            f"[{dg[f'{n}_outlier_count_any_gap'][i]}]"
            for n in ("head", "hidden", "full")
        )
        lines.append(f"| {c} | {c * c} | {cells} | {dg['train_accuracy'][i]:.3f} |")
    return "\n".join(lines) + "\n"
