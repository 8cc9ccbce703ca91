"""``jaxspec ufm``: the collapsed optimum of a deep linear UFM, predictions beside Lanczos measurements."""

from __future__ import annotations

import time

import jax
import numpy as np
import typer

from jaxspec import ufm
from jaxspec._checks import InputError
from jaxspec.cli._common import finite_list, print_json, runtime_info, setup_dtype


def _count_close(values: np.ndarray, target: float, rtol: float) -> int:
    return int(np.sum(np.abs(values - target) <= rtol * abs(target)))


def run_ufm(
    num_classes: int,
    per_class: int,
    depth: int,
    lam: float | None,
    lam_w: float | None,
    lam_h: float | None,
    width: int | None,
    dtype: str,
    lanczos_steps: int | None,
    seed: int,
) -> dict:
    """Build the analytic optimum, measure it, and return the JSON payload of ``jaxspec ufm``."""
    setup_dtype(dtype)
    lam_w = lam if lam_w is None else lam_w
    lam_h = lam if lam_h is None else lam_h
    if lam_w is None or lam_h is None:
        raise InputError("give --lam (both decays) or both --lam-w and --lam-h")
    model = ufm.make_ufm(num_classes, per_class, depth, lam_w, lam_h, width=width, dtype=dtype)
    theory = ufm.collapsed_optimum(model)
    K, d = model.num_classes, model.width
    k = min(K * K + 1, K * d)  # the K^2 outliers and, when there is room, the first bulk eigenvalue
    if lanczos_steps is not None and not (1 <= lanczos_steps and k <= lanczos_steps <= K * d):
        raise InputError(
            f"--lanczos-steps must be between {k} and the head size K d = {K * d}, got {lanczos_steps}"
        )
    start = time.perf_counter()
    params = ufm.collapsed_params(model)
    measure = jax.jit(
        lambda p, key: (
            ufm.loss(model, p),
            ufm.layer_top_eigenvalues(model, p, k, num_steps=lanczos_steps, key=key),
            ufm.gram_eigenvalues(model, p),
            ufm.feature_gram_eigenvalues(model, p),
        )
    )
    loss, eigs, gram, feature_gram = jax.device_get(measure(params, jax.random.key(seed)))
    wall = time.perf_counter() - start

    eps = float(np.finfo(dtype).eps)
    rtol = 1e4 * eps
    eigs, gram = np.asarray(eigs, float), np.asarray(gram, float)
    layers = []
    for layer in range(depth):
        outliers = eigs[layer, : K * K]
        layers.append(
            {
                "layer": layer + 1,
                "lanczos_top": float(eigs[layer, 0]),
                "lanczos_outliers": finite_list(outliers),
                "next_eigenvalue": float(eigs[layer, K * K]) if eigs.shape[1] > K * K else None,
                "count_at_prediction": _count_close(eigs[layer], theory.outlier, rtol),
                "max_rel_error": float(np.max(np.abs(outliers - theory.outlier)) / theory.outlier),
            }
        )
    return {
        "gamma": theory.gamma,
        "sigma2": theory.sigma2,
        "s2": theory.s2,
        "loss": {
            "theory": theory.loss,
            "measured": float(loss),
            "zero_solution": 0.5,
            "collapsed_is_global": theory.is_global,
        },
        "outlier": {
            "theory": theory.outlier,
            "multiplicity": theory.outlier_multiplicity,
            "count_rtol": rtol,
            "layers": layers,
        },
        "gram": {
            "theory": theory.weight_gram,
            "multiplicity": theory.gram_multiplicity,
            "layers": [finite_list(row) for row in gram],
        },
        "feature_gram": {"theory": theory.feature_gram, "measured": finite_list(feature_gram)},
        "config": {
            "K": K,
            "n": model.per_class,
            "L": depth,
            "d": d,
            "lam_w": model.lam_w,
            "lam_h": model.lam_h,
            "dtype": dtype,
            "lanczos_steps": lanczos_steps,
            "seed": seed,
        },
        "wall_seconds": wall,
        **runtime_info(),
    }


def register(app: typer.Typer) -> None:
    @app.command()
    def ufm(
        num_classes: int = typer.Option(..., "--K", help="number of classes K (>= 2)"),
        per_class: int = typer.Option(..., "--n", help="samples per class n"),
        depth: int = typer.Option(..., "--L", help="number of weight matrices L"),
        lam: float = typer.Option(None, "--lam", help="weight and feature decay (both)"),
        lam_w: float = typer.Option(None, "--lam-w", help="weight decay lam_W (overrides --lam)"),
        lam_h: float = typer.Option(None, "--lam-h", help="feature decay lam_H (overrides --lam)"),
        width: int = typer.Option(None, "--d", help="feature width d >= K (default K)"),
        dtype: str = typer.Option("float32", help="float32 or float64"),
        lanczos_steps: int = typer.Option(None, help="Lanczos steps per layer (default min(P, 2k + 20))"),
        seed: int = typer.Option(0, help="seed of the Lanczos start vectors"),
        json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
    ) -> None:
        """Deep linear UFM at its collapsed optimum: gamma, loss, layer-wise Hessian outliers (Lanczos) and
        Gram eigenvalues, each beside its closed form (Garrod & Keating, arXiv:2404.06106)."""
        payload = run_ufm(num_classes, per_class, depth, lam, lam_w, lam_h, width, dtype, lanczos_steps, seed)
        if json_out:
            print_json(payload)
            return
        cfg, out = payload["config"], payload["outlier"]
        print(
            f"deep linear UFM: K={cfg['K']} n={cfg['n']} L={cfg['L']} d={cfg['d']} lam_W={cfg['lam_w']:g} "
            f"lam_H={cfg['lam_h']:g} ({cfg['dtype']}, {payload['wall_seconds']:.2f} s on "
            f"{payload['backend']})"
        )
        print(
            f"gamma = {payload['gamma']:.6f}   loss: theory {payload['loss']['theory']:.6f}, "
            f"at the analytic point {payload['loss']['measured']:.6f}"
            + ("" if payload["loss"]["collapsed_is_global"] else "   (the zero solution is lower: 0.5)")
        )
        print(f"layer-wise Hessian outliers: theory {out['theory']:.6f} x {out['multiplicity']}")
        print(
            f"{'layer':>6} {'lanczos top':>12} {'# at theory':>12} {'max rel err':>12} {'next':>12} "
            f"{'Gram eig (theory ' + format(payload['gram']['theory'], '.6f') + ')'}"
        )
        for row, gram in zip(out["layers"], payload["gram"]["layers"], strict=True):
            nxt = "-" if row["next_eigenvalue"] is None else f"{row['next_eigenvalue']:.3g}"
            print(
                f"{row['layer']:>6} {row['lanczos_top']:12.6f} {row['count_at_prediction']:>12} "
                f"{row['max_rel_error']:12.2e} {nxt:>12}  " + " ".join(f"{g:.6f}" for g in gram)
            )
        fg = payload["feature_gram"]
        print(
            f"feature Gram H H^T: theory {fg['theory']:.6f} x {cfg['K']}, measured "
            + " ".join(f"{g:.6f}" for g in fg["measured"])
        )
