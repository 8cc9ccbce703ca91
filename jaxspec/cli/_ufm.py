"""``jaxspec ufm``: the collapsed optimum of a deep linear UFM, predictions beside Lanczos measurements.

Without ``--train`` nothing is optimised: the loss printed beside the closed form is the loss *evaluated at
the closed-form point* (a check of the formulas), and the Hessian and Gram measurements are taken there. With
``--train`` the model is also trained by full-batch gradient descent (:func:`jaxspec.ufm.train_ufm_seeds`,
through :func:`jaxspec.training.train`) from several random initialisations, at a width (default ``8K``) where
GD reaches full collapse; the command prints the measured minimum beside the closed-form optimum, and how many
runs stopped at each lower-rank optimum, with that optimum's closed-form loss beside their losses.
"""

from __future__ import annotations

import time

import jax
import numpy as np
import typer

from jaxspec import ufm
from jaxspec._checks import InputError
from jaxspec.cli._common import finite_list, print_json, runtime_info, setup_dtype

# --train defaults. K = 3, n = 40, L = 5, lam = 1e-2, 8 seeds, lr 0.2 x 8000 steps (float32): at d = 8K and 4K
# every run reached full collapse, at the closed-form loss to rounding; at d = K every run stopped at a
# lower-rank optimum (6 at rank 1, 2 at rank 0, each at that optimum's closed-form loss).
TRAIN_WIDTH_FACTOR = 8
TRAIN_DEFAULTS = {"seeds": 8, "steps": 8000, "lr": 0.2, "init_scale": 1.0}


def _count_close(values: np.ndarray, target: float, rtol: float) -> int:
    return int(np.sum(np.abs(values - target) <= rtol * abs(target)))


def _check_train_options(seeds: int, steps: int, lr: float, init_scale: float) -> None:
    for name, value in (("--seeds", seeds), ("--steps", steps)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("--lr", lr), ("--init-scale", init_scale)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
            raise InputError(f"{name} must be a positive finite number, got {value!r}")


def _train_payload(model, optimum: float, seed: int, *, seeds: int, steps: int, lr: float, init_scale: float):
    """GD from ``seeds`` initialisations: the measured minimum and the runs counted by the optimum reached."""
    start = time.perf_counter()
    runs = ufm.train_ufm_seeds(
        model, seeds, num_steps=steps, learning_rate=lr, init_scale=init_scale, key=jax.random.key(seed)
    )
    wall = time.perf_counter() - start
    by_rank = []
    for r, closed in enumerate(runs.rank_loss):
        stopped = runs.loss[runs.rank == r]
        by_rank.append(
            {
                "rank": r,
                "closed_form_loss": float(closed),
                "runs": int(stopped.size),
                "losses": finite_list(stopped),
                "max_abs_gap": float(np.max(np.abs(stopped - closed))) if stopped.size else None,
            }
        )
    best = int(np.argmin(runs.loss))
    return {
        "optimizer": "sgd (full-batch GD, jaxspec.training.train)",
        "seeds": seeds,
        "steps": steps,
        "lr": lr,
        "init_scale": init_scale,
        "measured_min_loss": float(runs.loss[best]),
        "closed_form_loss": optimum,
        "gap": float(runs.loss[best] - optimum),
        "losses": finite_list(runs.loss),
        "ranks": [int(r) for r in runs.rank],
        "full_collapse_runs": int(np.sum(runs.rank == model.num_classes)),
        "by_rank": by_rank,
        "wall_seconds": wall,
    }


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
    train: dict | None = None,
) -> dict:
    """Build the analytic optimum, measure it, and return the JSON payload of ``jaxspec ufm``.

    ``train`` (``seeds``, ``steps``, ``lr``, ``init_scale``) also runs gradient descent from that many seeds
    and adds the ``"train"`` entry; ``width`` then defaults to ``8K``.
    """
    setup_dtype(dtype)
    lam_w = lam if lam_w is None else lam_w
    lam_h = lam if lam_h is None else lam_h
    if lam_w is None or lam_h is None:
        raise InputError("give --lam (both decays) or both --lam-w and --lam-h")
    if train is not None:
        _check_train_options(**train)
        if width is None and isinstance(num_classes, int):
            width = TRAIN_WIDTH_FACTOR * num_classes
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
    trained = None if train is None else _train_payload(model, theory.loss, seed, **train)
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
            "at_closed_form": float(loss),
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
        **({} if trained is None else {"train": trained}),
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
        seed: int = typer.Option(
            0, help="seed of the Lanczos start vectors and of the --train initialisations"
        ),
        train: bool = typer.Option(
            False, "--train", help="also train by full-batch GD from several seeds (width 8K by default)"
        ),
        seeds: int = typer.Option(TRAIN_DEFAULTS["seeds"], help="--train: number of random initialisations"),
        steps: int = typer.Option(TRAIN_DEFAULTS["steps"], help="--train: GD steps"),
        lr: float = typer.Option(TRAIN_DEFAULTS["lr"], "--lr", help="--train: GD step size"),
        init_scale: float = typer.Option(
            TRAIN_DEFAULTS["init_scale"], help="--train: scale of the random init"
        ),
        json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
    ) -> None:
        """Deep linear UFM at its collapsed optimum: gamma, loss, layer-wise Hessian outliers (Lanczos) and
        Gram eigenvalues, each beside its closed form (Garrod & Keating, arXiv:2404.06106); with --train, the
        minimum reached by gradient descent and the lower-rank optima where runs stopped."""
        options = {"seeds": seeds, "steps": steps, "lr": lr, "init_scale": init_scale} if train else None
        payload = run_ufm(
            num_classes, per_class, depth, lam, lam_w, lam_h, width, dtype, lanczos_steps, seed, options
        )
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
            f"gamma = {payload['gamma']:.6f}   loss: closed form {payload['loss']['theory']:.6f}, "
            f"loss at the closed-form point {payload['loss']['at_closed_form']:.6f}"
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
            f"feature Gram H H^T: theory {fg['theory']:.6f} x {cfg['K']}, at the closed-form point "
            + " ".join(f"{g:.6f}" for g in fg["measured"])
        )
        if "train" in payload:
            _print_train(payload["train"], cfg)


def _print_train(tr: dict, cfg: dict) -> None:
    print(
        f"trained: GD (jaxspec.training, sgd lr {tr['lr']:g}, {tr['steps']} steps, init scale "
        f"{tr['init_scale']:g}) from {tr['seeds']} seeds at d={cfg['d']} ({tr['wall_seconds']:.1f} s)"
    )
    print(
        f"  measured minimum loss {tr['measured_min_loss']:.6f}   closed-form optimum "
        f"{tr['closed_form_loss']:.6f}   gap {tr['gap']:.2e}   full collapse in "
        f"{tr['full_collapse_runs']} of {tr['seeds']} runs"
    )
    print(f"  {'rank r':>6} {'closed-form loss':>17} {'runs':>5}  measured losses of those runs")
    for row in reversed(tr["by_rank"]):
        losses = " ".join(f"{x:.6f}" for x in row["losses"] or [])
        print(f"  {row['rank']:>6} {row['closed_form_loss']:17.6f} {row['runs']:>5}  {losses}")
