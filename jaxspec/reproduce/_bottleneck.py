"""Reproduce the bottleneck structure of L2-regularised deep networks at several depths.

``jaxspec figures bottleneck [--out DIR] [--full]`` (or ``python scripts/reproduce_bottleneck.py``) trains bias-free
networks with weight decay, through :func:`jaxspec.training.train` (Adam, cosine-decayed step), at several depths
on three targets:

* ``relu_synthetic``: ReLU nets on ``f = h o g`` through a ``k = 2``-dimensional middle (bottleneck rank 2);
* ``linear_synthetic``: linear nets on a rank-2 matrix ``A`` with whitened inputs, where the regularised optimum
  is known exactly (:func:`jaxspec.bottleneck.deep_linear_weight_decay_optimum`);
* ``relu_digits``: ReLU nets on scikit-learn's digits (PCA-whitened, centred one-hot targets).

and writes

* ``bottleneck_weights.png``: the singular values of every weight matrix against the layer, one panel per target
  and depth (the plateau of ``R0`` singular values near 1, the rest small);
* ``bottleneck_representations.png``: numerical and stable rank of the representations against ``l / L``;
* ``bottleneck_norm.png``: ``||theta||^2`` against ``L`` with the fitted line ``R0 L + R1`` (and, for the linear
  target, the exact optimum and the asymptote ``L rank A + 2 log|A|_+``), beside both sides of the per-network
  inequality ``sum_l e_l <= ||theta||^2 - L k - 2 log|Jf(x)|_+``;
* ``bottleneck_<target>.nc`` (labelled xarray datasets) and ``bottleneck_summary.json`` / ``.md``.

References:
    Jacot, "Bottleneck Structure in Learned Features: Low-Dimension vs Regularity Tradeoff", NeurIPS 2023,
    arXiv:2305.19008.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import typer

__all__ = ["BottleneckSizes", "TARGETS", "default_sizes", "register", "run"]

TARGETS = ("relu_synthetic", "linear_synthetic", "relu_digits")


@dataclass(frozen=True)
class BottleneckSizes:
    """Problem sizes of one reproduction run.

    Attributes:
        depths: network depths ``L``.
        width: hidden width.
        num_points: training points of the synthetic targets.
        digits_limit: digits samples used.
        digits_dim: PCA-whitened input dimension of digits.
        steps: Adam steps per network.
        learning_rate: initial Adam step (cosine-decayed to 1% of it).
        weight_decay: ``lambda`` of ``(1/N) sum ||f(x) - y||^2 + lambda ||theta||^2`` (synthetic targets).
        digits_weight_decay: ``lambda`` for digits (ten centred one-hot outputs: a smaller ``lambda`` keeps the
            deep nets from dropping classes, since each unit of rank costs about ``lambda L``).
        input_dim: input (and output) dimension of the synthetic targets.
        bottleneck_dim: ``k`` of the synthetic targets.
    """

    depths: tuple[int, ...] = (3, 6, 9, 12)
    width: int = 16
    num_points: int = 192
    digits_limit: int = 400
    digits_dim: int = 16
    steps: int = 8000
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    digits_weight_decay: float = 2e-3
    input_dim: int = 8
    bottleneck_dim: int = 2


def default_sizes(full: bool = False) -> BottleneckSizes:
    """CPU-sized defaults (a few minutes), or GPU sizes with ``full``."""
    if full:
        return BottleneckSizes(depths=(4, 8, 12, 16, 20, 24), width=48, num_points=1024, digits_limit=1797,
                               digits_dim=32, steps=60000, learning_rate=2e-3)
    return BottleneckSizes()


# ----------------------------------------------------------------------------------------------------------
# One network.


def _task(target: str, sizes: BottleneckSizes, seed: int):
    import jax
    import jax.numpy as jnp

    from jaxspec.bottleneck._bottleneck import bottleneck_target

    key = jax.random.key(seed)
    if target == "relu_digits":
        from jaxspec.data._datasets import digits

        data = digits(whiten_dim=sizes.digits_dim, limit=sizes.digits_limit, centre_targets=True)
        return data.x, data.y, "relu", None
    kind = "linear" if target == "linear_synthetic" else "relu"
    task = bottleneck_target(key, sizes.num_points, input_dim=sizes.input_dim, bottleneck_dim=sizes.bottleneck_dim,
                             output_dim=sizes.input_dim, kind=kind)
    if kind == "relu":
        return task.x, task.y, "relu", None
    # Whiten the inputs exactly (X^T X / N = I) so that the loss is ||W - A||_F^2 + lambda ||theta||^2.
    x = np.asarray(task.x, dtype=np.float64)
    evals, evecs = np.linalg.eigh(x.T @ x / x.shape[0])
    x = x @ evecs @ np.diag(evals**-0.5) @ evecs.T
    a = np.asarray(task.teacher[0]["w"], dtype=np.float64)
    return jnp.asarray(x, jnp.float32), jnp.asarray(x @ a.T, jnp.float32), "linear", a


def _weight_decay(target: str, sizes: BottleneckSizes) -> float:
    return sizes.digits_weight_decay if target == "relu_digits" else sizes.weight_decay


def _train_one(x, y, activation: str, depth: int, sizes: BottleneckSizes, seed: int, progress: bool,
               weight_decay: float) -> dict:
    import jax
    import optax

    from jaxspec.bottleneck._bottleneck import bottleneck_report, train_weight_decay
    from jaxspec.networks._mlp import init_mlp

    widths = (x.shape[1],) + (sizes.width,) * (depth - 1) + (y.shape[1],)
    params = init_mlp(jax.random.key(1000 * seed + depth), widths, activation=activation)
    schedule = optax.cosine_decay_schedule(sizes.learning_rate, sizes.steps, alpha=0.01)
    start = time.perf_counter()
    res = train_weight_decay(params, x, y, activation=activation, weight_decay=weight_decay,
                             num_steps=sizes.steps, optimizer=optax.adam(schedule), log_every=sizes.steps // 20,
                             progress=progress)
    rep = bottleneck_report(res.params, x, activation=activation)
    rep = jax.device_get(rep)
    return {"depth": depth, "seconds": time.perf_counter() - start,
            "loss": np.asarray(res.loss), "data_loss": np.asarray(res.tracked["data_loss"]),
            "steps": np.asarray(res.steps), "norm_sq": float(rep.norm_sq),
            "weight_sv": np.asarray(rep.weight_singular_values),
            "rep_sv": np.asarray(rep.representations.singular_values),
            "rep_rank": np.asarray(rep.representations.numerical_rank),
            "rep_stable_rank": np.asarray(rep.representations.stable_rank),
            "jac_rank": np.asarray(rep.jacobian.rank), "jac_logdet": np.asarray(rep.jacobian.logdet),
            "ineq_lhs": np.asarray(rep.inequality.lhs), "ineq_rhs": np.asarray(rep.inequality.rhs),
            "ineq_margin": np.asarray(rep.inequality.margin),
            "layer_excess": np.asarray(rep.inequality.layer_excess)}


def _plateau_count(weight_sv: np.ndarray, threshold: float = 0.5) -> int:
    """Median over the middle half of the layers of ``#{s_i > threshold}`` (the bottleneck plateau)."""
    depth = weight_sv.shape[0]
    lo, hi = depth // 4, max(depth - depth // 4, depth // 4 + 1)
    return int(np.median(np.sum(weight_sv[lo:hi] > threshold, axis=1)))


# ----------------------------------------------------------------------------------------------------------
# Datasets and figures.


def _dataset(target: str, runs: list[dict], sizes: BottleneckSizes, extra: dict):
    import xarray as xr

    depths = [r["depth"] for r in runs]
    max_l = max(depths)
    n_sv = max(r["weight_sv"].shape[1] for r in runs)
    n_rep = max(r["rep_sv"].shape[1] for r in runs)
    n_in = runs[0]["jac_rank"].shape[0]

    def pad(key, shape):
        out = np.full((len(runs),) + shape, np.nan)
        for i, r in enumerate(runs):
            v = r[key]
            out[(i,) + tuple(slice(0, s) for s in v.shape)] = v
        return out

    ds = xr.Dataset(
        {
            "weight_singular_values": (("depth", "layer", "index"), pad("weight_sv", (max_l, n_sv))),
            "representation_singular_values": (("depth", "representation", "rep_index"),
                                               pad("rep_sv", (max_l + 1, n_rep))),
            "representation_rank": (("depth", "representation"), pad("rep_rank", (max_l + 1,))),
            "representation_stable_rank": (("depth", "representation"), pad("rep_stable_rank", (max_l + 1,))),
            "jacobian_rank": (("depth", "input"), pad("jac_rank", (n_in,))),
            "jacobian_logdet": (("depth", "input"), pad("jac_logdet", (n_in,))),
            "inequality_lhs": (("depth", "input"), pad("ineq_lhs", (n_in,))),
            "inequality_rhs": (("depth", "input"), pad("ineq_rhs", (n_in,))),
            "inequality_margin": (("depth", "input"), pad("ineq_margin", (n_in,))),
            "layer_excess": (("depth", "input", "layer"), pad("layer_excess", (n_in, max_l))),
            "norm_sq": (("depth",), np.array([r["norm_sq"] for r in runs])),
            "final_data_loss": (("depth",), np.array([r["data_loss"][-1] for r in runs])),
            "loss": (("depth", "record"), np.stack([r["loss"] for r in runs])),
        },
        coords={"depth": depths, "layer": np.arange(1, max_l + 1), "index": np.arange(1, n_sv + 1),
                "representation": np.arange(max_l + 1), "rep_index": np.arange(1, n_rep + 1),
                "input": np.arange(n_in), "record": runs[0]["steps"]},
        attrs={"target": target, "weight_decay": _weight_decay(target, sizes), "width": sizes.width, "steps": sizes.steps,
               "jacobian_rtol": 1e-3, "representation_rtol": 1e-2, **extra},
    )
    return ds


def _plot_weights(results: dict, sizes: BottleneckSizes, path: Path) -> None:
    import matplotlib.pyplot as plt

    targets = list(results)
    depths = sizes.depths
    fig, axes = plt.subplots(len(targets), len(depths), figsize=(3.3 * len(depths), 2.8 * len(targets)),
                             squeeze=False, sharey="row")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, target in enumerate(targets):
        for col, run in enumerate(results[target]["runs"]):
            ax = axes[row, col]
            sv = run["weight_sv"]
            layers = np.arange(1, sv.shape[0] + 1)
            for i in range(min(6, sv.shape[1])):
                ax.plot(layers, sv[:, i], "o-", ms=3, lw=1, color=colors[i % len(colors)], label=f"s_{i + 1}")
            ax.axhline(1.0, color="k", ls="--", lw=0.8)
            ax.set_yscale("log")
            ax.set_ylim(1e-3, 10)
            ax.set_title(f"{target} (lambda {results[target]['weight_decay']:g}), L = {run['depth']}: "
                         f"plateau {_plateau_count(sv)}", fontsize=7)
            ax.set_xlabel("layer l")
            if col == 0:
                ax.set_ylabel("singular values of W_l")
            if row == 0 and col == 0:
                ax.legend(fontsize=6, ncol=2)
    fig.suptitle("Weight spectra after training with weight decay lambda (dashed: 1). "
                 "Bottleneck: R0 singular values near 1, the rest small; 'plateau' = median #{s_i > 0.5} over "
                 "the middle layers", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_representations(results: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    targets = list(results)
    fig, axes = plt.subplots(1, len(targets), figsize=(4.8 * len(targets), 4.0), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, target in zip(axes[0], targets, strict=True):
        runs = results[target]["runs"]
        for i, run in enumerate(runs):
            c = cmap(i / max(len(runs) - 1, 1))
            pos = np.arange(run["rep_rank"].size) / run["depth"]
            ax.plot(pos, run["rep_rank"], "o-", ms=3, color=c, label=f"L = {run['depth']}")
            ax.plot(pos, run["rep_stable_rank"], "s--", ms=2, lw=0.8, color=c, alpha=0.7)
        k = results[target].get("bottleneck_rank")
        if k is not None:
            ax.axhline(k, color="k", ls=":", lw=1, label=f"k = {k}")
        ax.set_ylim(0, None)
        ax.set_xlabel("relative depth l / L (0 = input, 1 = output)")
        ax.set_ylabel("rank of the representation H_l")
        ax.set_title(f"{target}: numerical (solid) and stable (dashed) rank", fontsize=9)
        ax.legend(fontsize=6, ncol=2, loc="best", framealpha=0.6)
    fig.suptitle("Representation rank across layers (numerical: #{s_i > 1e-2 s_1}; stable: ||H||_F^2/||H||_2^2)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_norm(results: dict, sizes: BottleneckSizes, path: Path) -> None:
    import matplotlib.pyplot as plt

    from jaxspec.bottleneck._bottleneck import deep_linear_weight_decay_optimum

    targets = list(results)
    fig, axes = plt.subplots(2, len(targets), figsize=(4.6 * len(targets), 7.4), squeeze=False)
    for col, target in enumerate(targets):
        entry = results[target]
        runs = entry["runs"]
        depths = np.array([r["depth"] for r in runs], dtype=float)
        norms = np.array([r["norm_sq"] for r in runs])
        fit = entry["fit"]
        ax = axes[0, col]
        ax.plot(depths, norms, "o", ms=6, label="trained ||theta||^2")
        grid = np.linspace(0, depths.max() * 1.05, 100)
        ax.plot(grid, fit["r0"] * grid + fit["r1"], "-", lw=1.2,
                label=f"fit: R0 = {fit['r0']:.2f} +- {fit['r0_stderr']:.2f}, R1 = {fit['r1']:.2f}")
        if entry.get("matrix") is not None:
            a = entry["matrix"]
            s = np.linalg.svd(a, compute_uv=False)
            s = s[s > 1e-5 * s[0]]  # A is a float32 product of rank-k factors
            fine = np.arange(2, int(depths.max() * 1.05) + 1)
            opt = [d * np.sum(deep_linear_weight_decay_optimum(s, int(d), entry["weight_decay"]) ** (2.0 / d))
                   for d in fine]
            ax.plot(fine, opt, "k--", lw=1, label="exact optimum at this lambda")
            ax.plot(grid, s.size * grid + 2 * np.sum(np.log(s)), "k:", lw=1,
                    label=f"L rank A + 2 log|A|_+ (rank {s.size})")
        ax.set_xlabel("depth L")
        ax.set_ylabel("||theta||^2")
        ax.set_title(target, fontsize=9)
        ax.legend(fontsize=6)
        ax = axes[1, col]
        cmap = plt.get_cmap("viridis")
        top = 0.0
        for i, r in enumerate(runs):
            ax.plot(r["ineq_lhs"], r["ineq_rhs"], ".", ms=3, alpha=0.6, color=cmap(i / max(len(runs) - 1, 1)),
                    label=f"L = {r['depth']}")
            top = max(top, float(np.max(r["ineq_rhs"])), float(np.max(r["ineq_lhs"])))
        ax.plot([0, top], [0, top], "k--", lw=1, label="equality")
        ax.set_xlabel("sum_l e_l")
        ax.set_ylabel("||theta||^2 - L k - 2 log|Jf(x)|_+")
        ax.set_title(f"one point per input: all on or above the diagonal; min margin "
                     f"{min(float(r['ineq_margin'].min()) for r in runs):.2g}", fontsize=8)
        ax.legend(fontsize=6, markerscale=3)
    fig.suptitle("||theta||^2 = L R0 + R1 + O(1/L) and the per-network inequality (k = rank Jf(x) at 1e-3)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------
# Entry points.


def run(out_dir: str | Path = "figures/bottleneck", full: bool = False, seed: int = 0, targets=None,
        progress: bool = True, sizes: BottleneckSizes | None = None) -> dict:
    """Train at every depth and target, measure, fit, and write figures, datasets and the summary.

    Args:
        out_dir: output folder.
        full: GPU sizes (deeper, wider, longer).
        seed: base random seed.
        targets: names from :data:`TARGETS` (default: all).
        progress: tqdm bars.
        sizes: explicit :class:`BottleneckSizes` (overrides ``full``).

    Returns:
        The summary dict: per target the fit ``(R0, R1)``, and per depth the plateau count, the Jacobian ranks,
        the smallest inequality margin, ``||theta||^2``, the final data loss and the seconds taken.

    Example:
        >>> summary = run("out/bottleneck", targets=["linear_synthetic"])  # doctest: +SKIP
    """
    from jaxspec._checks import InputError
    from jaxspec.bottleneck._bottleneck import fit_rank_terms

    sizes = sizes or default_sizes(full)
    names = list(TARGETS) if targets is None else list(targets)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise InputError(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results, summary = {}, {"sizes": asdict(sizes), "targets": {}}
    from tqdm.auto import tqdm

    jobs = [(t, d) for t in names for d in sizes.depths]
    bar = tqdm(total=len(jobs), desc="bottleneck", unit="net", disable=not progress)
    for target in names:
        x, y, activation, matrix = _task(target, sizes, seed)
        runs = []
        for depth in sizes.depths:
            runs.append(_train_one(x, y, activation, depth, sizes, seed, progress=False,
                                   weight_decay=_weight_decay(target, sizes)))
            bar.update(1)
        fit = fit_rank_terms([r["depth"] for r in runs], [r["norm_sq"] for r in runs])
        k = None if target == "relu_digits" else sizes.bottleneck_dim
        entry = {"runs": runs, "fit": fit._asdict(), "matrix": matrix, "bottleneck_rank": k}
        results[target] = entry
        extra = {"activation": activation, "bottleneck_rank": -1 if k is None else k}
        entry["weight_decay"] = _weight_decay(target, sizes)
        _dataset(target, runs, sizes, extra).to_netcdf(out / f"bottleneck_{target}.nc", engine="scipy")
        per_depth = []
        for r in runs:
            ranks = np.bincount(r["jac_rank"].astype(int))
            per_depth.append({
                "depth": r["depth"], "plateau_count": _plateau_count(r["weight_sv"]),
                "middle_representation_rank": int(r["rep_rank"][r["depth"] // 2]),
                "jacobian_rank_mode": int(np.argmax(ranks)),
                "jacobian_rank_counts": ranks.tolist(),
                "min_inequality_margin": float(r["ineq_margin"].min()),
                "mean_sum_e_l": float(r["ineq_lhs"].mean()), "mean_bound": float(r["ineq_rhs"].mean()),
                "norm_sq": r["norm_sq"], "final_data_loss": float(r["data_loss"][-1]),
                "seconds": r["seconds"]})
        fit_d = {k_: (v.tolist() if isinstance(v, np.ndarray) else v) for k_, v in fit._asdict().items()}
        record = {"activation": activation, "bottleneck_rank": k, "weight_decay": _weight_decay(target, sizes),
                  "fit": fit_d, "depths": per_depth}
        if matrix is not None:
            s = np.linalg.svd(matrix, compute_uv=False)
            s = s[s > 1e-5 * s[0]]  # A is a float32 product of rank-k factors
            record["exact_R0"] = int(s.size)
            record["exact_R1"] = float(2 * np.sum(np.log(s)))
        summary["targets"][target] = record
    bar.close()
    _plot_weights(results, sizes, out / "bottleneck_weights.png")
    _plot_representations(results, out / "bottleneck_representations.png")
    _plot_norm(results, sizes, out / "bottleneck_norm.png")
    (out / "bottleneck_summary.json").write_text(json.dumps(summary, indent=2))
    (out / "bottleneck_summary.md").write_text(_markdown(summary))
    return summary


def _markdown(summary: dict) -> str:
    lines = ["| target | L | plateau #{s_i > 0.5} | middle rep. rank | Jf rank (mode) | min margin | "
             "sum e_l | bound | norm^2 | data loss |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, t in summary["targets"].items():
        for d in t["depths"]:
            lines.append(f"| {name} | {d['depth']} | {d['plateau_count']} | {d['middle_representation_rank']} | "
                         f"{d['jacobian_rank_mode']} | {d['min_inequality_margin']:.3g} | {d['mean_sum_e_l']:.2f} | "
                         f"{d['mean_bound']:.2f} | {d['norm_sq']:.2f} | {d['final_data_loss']:.3g} |")
    lines.append("")
    for name, t in summary["targets"].items():
        f = t["fit"]
        exact = (f"; exact R0 = {t['exact_R0']}, R1 = {t['exact_R1']:.2f}" if "exact_R0" in t else "")
        lines.append(f"- {name}: fit R0 = {f['r0']:.2f} +- {f['r0_stderr']:.2f}, R1 = {f['r1']:.2f} +- "
                     f"{f['r1_stderr']:.2f}{exact}")
    return "\n".join(lines) + "\n"


def print_summary(summary: dict) -> None:
    """Print the fit and the plateau counts per target and depth."""
    for name, t in summary["targets"].items():
        f = t["fit"]
        plateaus = ", ".join(f"L={d['depth']}: {d['plateau_count']}" for d in t["depths"])
        margin = min(d["min_inequality_margin"] for d in t["depths"])
        print(f"{name}: R0 = {f['r0']:.2f} +- {f['r0_stderr']:.2f}, R1 = {f['r1']:.2f}; plateau counts {plateaus}; "
              f"min inequality margin {margin:.3g}")


def register(figures_app: typer.Typer) -> None:
    @figures_app.command("bottleneck")
    def bottleneck_command(
        out: Path = typer.Option(Path("figures/bottleneck"), "--out", help="output directory"),
        full: bool = typer.Option(False, "--full", help="GPU sizes: deeper, wider, longer"),
        seed: int = typer.Option(0, "--seed", help="base random seed"),
        target: list[str] = typer.Option(None, "--target", help=f"run only these: {', '.join(TARGETS)}"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    ) -> None:
        """Bottleneck rank of weight-decayed deep nets: weight spectra, ranks, ||theta||^2 vs depth, inequality."""
        summary = run(out, full=full, seed=seed, targets=target or None, progress=not quiet)
        print_summary(summary)
        print(f"wrote bottleneck_weights.png, bottleneck_representations.png, bottleneck_norm.png, "
              f"bottleneck_<target>.nc and bottleneck_summary.json/.md to {out}")
