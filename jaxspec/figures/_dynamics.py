"""The overview figure and the Markdown table of the deep-linear / fixed-gates dynamics, from a
:class:`DynamicsResult`. The per-experiment figures are :func:`jaxspec.training.plot_dynamics`'s."""

from __future__ import annotations

import matplotlib as mpl
from matplotlib.figure import Figure

from jaxspec.reproduce import DynamicsResult

_OVERVIEW_PANELS = ("linear_teacher_random", "fixed_gates_teacher", "linear_digits", "fixed_gates_digits")
_SHOWN = {
    "mode_ode": ("--", "mode ODE, measured factors"),
    "mode_ode_kernel": ("-.", "mode ODE, measured kernel ratio"),
    "arora": (":", "Arora end-to-end law"),
}


def _overview(result: DynamicsResult, panels: list[str]) -> Figure:
    fig = Figure(figsize=(4.8 * len(panels), 4.4), dpi=110)
    axes = fig.subplots(1, len(panels), squeeze=False)
    colors = mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, name in zip(axes[0], panels, strict=True):
        ds = result.runs[name].dataset
        t = ds["time"].values
        for r in range(ds.sizes["mode"]):
            c = colors[r % len(colors)]
            ax.plot(
                t, ds["sigma"].values[:, r], color=c, lw=2.6, alpha=0.45, label="measured" if r == 0 else None
            )
            for pred, (style, label) in _SHOWN.items():
                ax.plot(
                    t,
                    ds[f"predicted_{pred}"].values[:, r],
                    color=c,
                    ls=style,
                    lw=1.1,
                    label=label if r == 0 else None,
                )
            ax.axhline(ds["target_strength"].values[r], color=c, lw=0.5, ls=(0, (1, 4)))
        errs = result.summary[name]["max_relative_error"]
        lines = [result.runs[name].description] + [
            f"max rel. error, {_SHOWN[p][1]}: " + ", ".join(f"{e:.0%}" for e in errs[p]) for p in _SHOWN
        ]
        ax.set_title("\n".join(lines), fontsize=7)
        ax.set_xlabel("gradient-flow time t = step x learning rate")
        ax.set_ylabel("end-to-end singular value sigma_r")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(
        "Decoupled singular-value dynamics: measured (thick) against predictions started when each "
        "mode aligns with the target (thin); colour = mode",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def dynamics_figures(result: DynamicsResult) -> dict[str, Figure]:
    """The overview figure: measured against predicted ``sigma_r(t)``, deep linear beside fixed gates.

    Args:
        result: from :func:`jaxspec.reproduce.run_dynamics`.

    Returns:
        ``{"overview.png": figure}`` with one panel per random-init experiment that ran (empty when none did).
    """
    panels = [n for n in _OVERVIEW_PANELS if n in result.runs]
    return {"overview.png": _overview(result, panels)} if panels else {}


def dynamics_markdown(summary: dict) -> str:
    """The Markdown table of ``summary.md``: per experiment and prediction, the errors per mode.

    Args:
        summary: ``DynamicsResult.summary``.

    Returns:
        A table with the largest relative error, the learning-time error and the start step of every mode.
    """
    lines = [
        "| experiment | prediction | max relative error per mode | learning-time error per mode "
        "| start steps |",
        "|---|---|---|---|---|",
    ]
    for name, entry in summary.items():
        for pred, errs in entry["max_relative_error"].items():
            lines.append(
                f"| {name} | {pred} | {', '.join(f'{e:.2%}' for e in errs)} | "
                f"{', '.join(f'{e:+.1%}' for e in entry['half_time_error'][pred])} | "
                f"{entry['prediction_start_step']} |"
            )
    return "\n".join(lines) + "\n"
