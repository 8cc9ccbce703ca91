"""Standard summary figures of a sweep, with the closed forms overlaid.

* ``exponents_vs_<axis>.png`` for each of ``width``, ``depth``, ``sigma2`` (gain) and ``p`` that the grid
  varies: the top exponents (seed mean +- 2 standard errors) against the axis, the closed form as lines.
* ``separation_vs_depth_over_width.png``: the separation ``L (lambda_1 - lambda_2)`` (the growth of
  ``log s_1/s_2``) of every grid point against ``L/N``, with its closed form; with the ``svals`` record also
  the measured ``log s_1 - log s_2`` of the finite product. Large-``N`` theory: ``L/(2 p N)`` ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)).
* ``phase_diagram.png``: the top exponent over the (``sigma2``, ``p``) grid, with the closed-form critical
  line ``lambda_1 = 0`` and its large-``N`` limit ``sigma2 p = 1``.

Other axes are held at their first value; each title says where.

Example:
    >>> from jaxspec.sweeps import draw_report
    >>> paths = draw_report("sweep_out")                         # doctest: +SKIP

References:
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
    Newman, "The distribution of Lyapunov exponents", CMP 104 (1986).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from jaxspec import theory
from jaxspec._checks import InputError
from jaxspec.sweeps._kernels import get_kernel
from jaxspec.sweeps._store import load_sweep

_X_AXES = {"width": "width N", "depth": "depth L", "sigma2": r"gain $\sigma^2$", "p": "gate probability p"}


def seed_mean_and_stderr(values: np.ndarray, seed_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds of the finite values and its standard error ``std(ddof=1)/sqrt(n)``."""
    values = np.asarray(values, float)
    finite = np.isfinite(values)
    n = finite.sum(axis=seed_axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, values, 0.0).sum(axis=seed_axis) / np.where(n > 0, n, np.nan)
        dev = np.where(finite, values - np.expand_dims(mean, seed_axis), 0.0)
        var = (dev**2).sum(axis=seed_axis) / np.where(n > 1, n - 1, np.nan)
        return mean, np.sqrt(var / n)


def _slice_label(ds, keep: tuple[str, ...], axes: tuple[str, ...]) -> str:
    fixed = [f"{a}={ds[a].values[0]}" for a in axes if a not in keep and ds.sizes[a] > 1]
    return f" (at {', '.join(fixed)})" if fixed else ""


def _at_first(ds, keep: tuple[str, ...], axes: tuple[str, ...]):
    return ds.isel({a: 0 for a in axes if a not in keep})


def _spec(ds) -> dict[str, Any]:
    return json.loads(ds.attrs["spec"])


def _exponents_vs_axis(ds, axis: str, axes: tuple[str, ...], out: Path, plt) -> Path:
    sub = _at_first(ds, (axis,), axes)
    x = np.asarray(sub[axis].values, float)
    exps = sub["exponents"].transpose(axis, "seed", "index").values
    mean, se = seed_mean_and_stderr(exps, 1)
    theory = sub["theory_exponents"].transpose(axis, "index").values if "theory_exponents" in sub else None
    x_theory = x
    if theory is not None and axis in ("sigma2", "p"):
        x_theory, theory = _smooth_theory(ds, sub, axis, axes, x, theory)
    shown = min(3, exps.shape[-1])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i in range(shown):
        color = f"C{i}"
        ok = np.isfinite(mean[:, i])
        ax.errorbar(
            x[ok],
            mean[ok, i],
            yerr=2 * np.nan_to_num(se[ok, i]),
            fmt="o",
            ms=5,
            capsize=3,
            color=color,
            label=rf"$\lambda_{i + 1}$ simulated (±2 s.e.)",
        )
        if theory is not None and np.isfinite(theory[:, i]).any():
            ax.plot(
                x_theory, theory[:, i], "-", color=color, alpha=0.7, label=rf"$\lambda_{i + 1}$ closed form"
            )
    if axis in ("width", "sigma2"):
        ax.set_xscale("log", base=2)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel(_X_AXES[axis])
    ax.set_ylabel(r"Lyapunov exponent $\lambda_i$ (per layer)")
    params = _spec(ds)["params"]
    ax.set_title(
        f"{ds.attrs.get('title', 'sweep')}: {params.get('ensemble', '')}{_slice_label(ds, (axis,), axes)}",
        fontsize=9,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / f"exponents_vs_{axis}.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _smooth_theory(ds, sub, axis: str, axes: tuple[str, ...], x: np.ndarray, fallback: np.ndarray):
    """The closed form on a fine grid of a numeric parameter (its values enter only the arithmetic)."""
    spec = _spec(ds)
    kernel = get_kernel(spec["kernel"])
    if kernel.theory is None:
        return x, fallback
    params = dict(spec["params"])
    for a in axes:
        if a != axis:
            params[a] = sub[a].values.item()
    fine = np.geomspace(x.min(), x.max(), 64) if axis == "sigma2" else np.linspace(x.min(), x.max(), 64)
    record = tuple(spec["record"])
    rows = [kernel.theory({**params, axis: float(v)}, record)["theory_exponents"][1] for v in fine]
    return fine, np.array(rows)


def _separation(ds, axes: tuple[str, ...], out: Path, plt) -> Path:
    """Every grid point: ``L (lambda_1 - lambda_2)`` (mean over seeds) against ``L/N``."""
    spec = _spec(ds)
    params = spec["params"]
    stacked = ds.stack(point=axes) if axes else ds.expand_dims(point=[0])

    count = stacked.sizes["point"]

    def axis_or_param(name):
        if name in axes:
            return np.asarray(stacked[name].values, float)
        return np.full(count, float(params[name]))

    width, depth = axis_or_param("width"), axis_or_param("depth")
    exps = stacked["exponents"].transpose("point", "seed", "index").values
    gap_runs = depth[:, None] * (exps[..., 0] - exps[..., 1])
    mean, se = seed_mean_and_stderr(gap_runs, 1)
    x = depth / width
    color_axis = next((a for a in ("p", "sigma2", "width") if a in axes and ds.sizes[a] > 1), None)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if color_axis is not None:
        values = np.asarray(stacked[color_axis].values, float)
        levels = np.unique(values)
        cmap = plt.get_cmap("viridis", max(len(levels), 2))
        for j, level in enumerate(levels):
            sel = values == level
            ax.errorbar(
                x[sel],
                mean[sel],
                yerr=2 * np.nan_to_num(se[sel]),
                fmt="o",
                ms=4,
                capsize=2,
                color=cmap(j),
                label=f"simulated, {color_axis}={level:g}",
            )
    else:
        ax.errorbar(x, mean, yerr=2 * np.nan_to_num(se), fmt="o", ms=4, capsize=2, label="simulated")
    if "theory_exponents" in stacked:
        th = stacked["theory_exponents"].transpose("point", "index").values
        th_gap = depth * (th[:, 0] - th[:, 1])
        ax.plot(x, th_gap, "k_", ms=14, mew=2, label=r"closed form $L(\lambda_1-\lambda_2)$")
    if "log_svals" in stacked:
        ls = stacked["log_svals"].transpose("point", "seed", "index").values
        sv_mean, _ = seed_mean_and_stderr(ls[..., 0] - ls[..., 1], 1)
        ax.plot(x, sv_mean, "s", mfc="none", color="C3", ms=6, label=r"measured $\log s_1 - \log s_2$")
    ax.set_xlabel("depth over width L/N")
    ax.set_ylabel(r"separation $L(\lambda_1-\lambda_2)$ (nats)")
    ax.set_title(f"{ds.attrs.get('title', 'sweep')}: separation grows like L/(2pN)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "separation_vs_depth_over_width.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _phase_diagram(ds, axes: tuple[str, ...], out: Path, plt) -> Path:
    from matplotlib.colors import TwoSlopeNorm

    sub = _at_first(ds, ("sigma2", "p"), axes)
    sigma2 = np.asarray(sub["sigma2"].values, float)
    p = np.asarray(sub["p"].values, float)
    top = sub["exponents"].sel(index=1).transpose("p", "sigma2", "seed").values
    mean, _ = seed_mean_and_stderr(top, 2)
    params = _spec(ds)["params"]
    width = int(sub["width"].values) if "width" in sub.coords else int(params["width"])
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    finite = mean[np.isfinite(mean)]
    span = max(float(np.abs(finite).max()) if finite.size else 1.0, 1e-6)
    mesh = ax.pcolormesh(
        _edges(sigma2, log=True),
        _edges(p, log=False),
        mean,
        cmap="RdBu_r",
        norm=TwoSlopeNorm(0.0, -span, span),
        shading="flat",
    )
    fig.colorbar(mesh, ax=ax, label=r"simulated $\lambda_1$ (seed mean)")
    # Closed-form lambda_1 on a fine grid, and its large-N criticality sigma2 p = 1.
    s_fine = np.geomspace(sigma2.min(), sigma2.max(), 48)
    p_fine = np.linspace(p.min(), p.max(), 40)
    condition = params.get("condition", "K>=i")
    th = np.array(
        [
            [
                theory.masked_exponents(width, float(pp), float(ss), k=1, condition=condition)[0]
                for ss in s_fine
            ]
            for pp in p_fine
        ]
    )
    if np.nanmin(th) < 0 < np.nanmax(th):
        ax.contour(s_fine, p_fine, th, levels=[0.0], colors="k", linewidths=1.5)
        ax.plot([], [], "k-", label=rf"closed form $\lambda_1 = 0$ (N={width})")
    p_line = np.linspace(max(p.min(), 1 / sigma2.max()), p.max(), 100)
    ax.plot(1 / p_line, p_line, "k--", lw=1, label=r"large-N criticality $\sigma^2 p = 1$")
    ax.set_xscale("log", base=2)
    ax.set_xlim(_edges(sigma2, log=True)[[0, -1]])
    ax.set_ylim(_edges(p, log=False)[[0, -1]])
    ax.set_xlabel(r"gain $\sigma^2$")
    ax.set_ylabel("gate probability p")
    ax.set_title(f"top exponent over (σ², p){_slice_label(ds, ('sigma2', 'p'), axes)}", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = out / "phase_diagram.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted centres (geometric midpoints on a log axis)."""
    v = np.log(values) if log else np.asarray(values, float)
    if len(v) == 1:
        step = 0.5 if log else 0.05
        edges = np.array([v[0] - step, v[0] + step])
    else:
        mid = (v[1:] + v[:-1]) / 2
        edges = np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
    return np.exp(edges) if log else edges


def draw_report(source, out_dir: str | Path | None = None, *, verbose: bool = False) -> list[Path]:
    """Draw the standard figures of a sweep (see the module docstring).

    Args:
        source: a sweep directory or its Dataset (:func:`jaxspec.sweeps.load_sweep`).
        out_dir: where to write the PNGs (default ``<sweep dir>/report``).
        verbose: print one line per figure drawn or skipped.

    Returns:
        The paths of the figures written.
    """
    import matplotlib.pyplot as plt

    if isinstance(source, str | Path):
        ds = load_sweep(source)
        out = Path(source) / "report" if out_dir is None else Path(out_dir)
    else:
        ds = source
        if out_dir is None:
            raise InputError("draw_report needs out_dir when given a Dataset")
        out = Path(out_dir)
    if "exponents" not in ds:
        raise InputError("this sweep has no exponents to report (kernel without an 'exponents' record)")
    out.mkdir(parents=True, exist_ok=True)
    spec = _spec(ds)
    axes = tuple(spec["axes"])
    for a in axes:
        if a in ds.coords and ds[a].dtype == object:
            raise InputError(f"the report needs numeric axes; {a!r} holds names: select one value first")
    written, skipped = [], []
    for axis in _X_AXES:
        if axis in axes and ds.sizes[axis] > 1:
            written.append(_exponents_vs_axis(ds, axis, axes, out, plt))
    if ds.sizes["index"] >= 2:
        written.append(_separation(ds, axes, out, plt))
    else:
        skipped.append("separation (needs k >= 2)")
    if all(a in axes and ds.sizes[a] > 1 for a in ("sigma2", "p")):
        written.append(_phase_diagram(ds, axes, out, plt))
    else:
        skipped.append("phase diagram (needs sigma2 and p axes)")
    if not any(p.name.startswith("exponents_vs_") for p in written):
        skipped.append("exponents against an axis (needs a width, depth, sigma2 or p axis with two values)")
    if verbose:
        for path in written:
            print(f"wrote {path}")
        for reason in skipped:
            print(f"skipped {reason}")
    return written
