"""``jaxspec theory`` (closed forms of an ensemble) and ``jaxspec svals`` (exact finite-depth singular
values)."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import typer

import jaxspec
from jaxspec import theory
from jaxspec._checks import InputError
from jaxspec.analysis import ensemble_log_svals, product_log_svals
from jaxspec.cli._common import finite_list, print_json, runtime_info, setup_dtype

THEORY_ENSEMBLES = ("gaussian", "complex-gaussian", "orthogonal", "masked", "relu-net")


def _nan_array(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], float)


def theory_payload(
    ensemble: str,
    width: int,
    depth: int,
    k: int | None,
    p: float | None,
    sigma2: float | None,
    fixed_count: int | None,
    condition: str,
    seeds: int,
    large_n: bool,
) -> dict:
    """The JSON payload of ``jaxspec theory``: exponents, per-layer sd, ``P(K >= i)``, offsets, rates."""
    if ensemble not in THEORY_ENSEMBLES:
        raise InputError(f"unknown ensemble {ensemble!r}; choose one of {', '.join(THEORY_ENSEMBLES)}")
    if condition not in theory.CONDITIONS:
        raise InputError(f"--condition must be one of {', '.join(theory.CONDITIONS)}, got {condition!r}")
    if seeds < 1:
        raise InputError(f"--seeds must be a positive integer, got {seeds}")
    if width is None or width < 1:
        raise InputError(f"--width must be a positive integer, got {width}")
    if depth < 1:
        raise InputError(f"--depth must be a positive integer, got {depth}")
    kk = width if k is None else int(k)
    if not 1 <= kk <= width:
        raise InputError(f"--k must lie in [1, {width}], got {kk}")
    if ensemble == "complex-gaussian":
        if p is not None or fixed_count is not None:
            raise InputError("--p and --fixed-count only apply to the masked ensemble")
        s2 = 1.0 if sigma2 is None else float(sigma2)
        if s2 <= 0:
            raise InputError(f"sigma2 must be positive, got {s2}")
        exps = theory.complex_gaussian_exponents(width, s2, kk, large_n=large_n)
        var = theory.complex_gaussian_variance(width, kk)
        prob = np.ones(kk)
        stderr = np.sqrt(var / (depth * seeds))
        offsets = None
        resolved = {"p": None, "sigma2": s2}
    else:
        ens = jaxspec.make_ensemble(ensemble, width, depth, sigma2=sigma2, p=p, fixed_count=fixed_count)
        exps = theory.lyapunov_exponents(ens, kk, condition)
        var = theory.per_layer_variance(ens, kk, condition)
        prob = theory.prob_active_at_least(ens, kk)
        stderr = theory.predicted_stderr(ens, kk, seeds=seeds, condition=condition)
        s2 = float(ens.sigma2)
        gate_p = {"masked": float(ens.p) if ensemble == "masked" else None, "relu-net": 0.5}.get(ensemble)
        if large_n and ensemble in ("gaussian", "masked", "relu-net"):
            exps = theory.masked_exponents(
                width, 1.0 if gate_p is None else gate_p, s2, kk, fixed_count=fixed_count, large_n=True
            )
        offsets = np.zeros(kk) if ensemble == "orthogonal" else theory.singular_value_offsets(width, kk)
        resolved = {"p": gate_p, "sigma2": s2}
    gaps = theory.spectral_gaps(exps) if kk > 1 else np.zeros(0)
    payload = {
        "exponents": finite_list(exps),
        "per_layer_sd": finite_list(np.sqrt(var)),
        "prob_active_at_least": finite_list(prob),
        "predicted_stderr": finite_list(stderr),
        "offsets": finite_list(offsets),
        "gaps": finite_list(gaps),
        "separation_rate": float(gaps[0]) if kk > 1 and np.isfinite(gaps[0]) else None,
        "alignment_slope": float(gaps[0]) if kk > 1 and np.isfinite(gaps[0]) else None,
        "config": {
            "ensemble": ensemble,
            "width": width,
            "depth": depth,
            "k": kk,
            "seeds": seeds,
            "fixed_count": fixed_count,
            "condition": condition,
            "large_n": large_n,
            **resolved,
        },
    }
    if ensemble == "relu-net":
        moments = theory.relu_log_norm_moments((width,) * (depth + 1), sigma2=s2, large_n=large_n)
        payload["relu_log_norm"] = {
            "mean": moments.mean,
            "variance": moments.variance,
            "second": moments.second,
            "fourth": moments.fourth,
            "prob_nonzero": moments.prob_nonzero,
        }
    return payload


def _load_npz(path: Path):
    """Weights and masks from an ``.npz`` (``allow_pickle=False``): either ``weights (L, N, N)`` with optional
    ``masks (L, N)``, or ``weights_0 .. weights_{L-1}`` (rectangular) with optional ``masks_0 ..``."""
    if not path.exists():
        raise FileNotFoundError(2, "no such file", str(path))
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path} is not an .npz archive (expected arrays 'weights' and optionally 'masks')")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise InputError(f"cannot read {path} as an .npz of weights and masks: {err}") from None
    if "weights" in arrays:
        weights, masks = arrays["weights"], arrays.get("masks")
        if weights.ndim != 3:
            raise InputError(f"{path}: 'weights' must be a (L, N, N) array, got shape {weights.shape}")
        if not np.issubdtype(weights.dtype, np.floating) and not np.issubdtype(weights.dtype, np.integer):
            raise InputError(f"{path}: 'weights' must hold numbers, got dtype {weights.dtype}")
        return weights.astype(np.float64), None if masks is None else masks.astype(np.float64)
    depth = 0
    while f"weights_{depth}" in arrays:
        depth += 1
    if depth == 0:
        raise InputError(
            f"{path}: expected an array 'weights' (L, N, N) or 'weights_0', 'weights_1', ...; "
            f"found {', '.join(sorted(arrays)) or 'nothing'}"
        )
    weights = [np.asarray(arrays[f"weights_{l}"], np.float64) for l in range(depth)]
    masks = None
    if any(f"masks_{l}" in arrays for l in range(depth)):
        missing = [l for l in range(depth) if f"masks_{l}" not in arrays]
        if missing:
            raise InputError(f"{path}: masks_{missing[0]} is missing (give every masks_l or none)")
        masks = [np.asarray(arrays[f"masks_{l}"], np.float64) for l in range(depth)]
    return weights, masks


def svals_payload(
    ensemble: str | None,
    width: int | None,
    depth: int | None,
    seed: int,
    p: float | None,
    sigma2: float | None,
    npz: Path | None,
    prefixes: bool,
    dtype: str,
) -> dict:
    """The JSON payload of ``jaxspec svals``."""
    setup_dtype(dtype)
    start = time.perf_counter()
    if npz is not None:
        if ensemble is not None:
            raise InputError("give either --npz or --ensemble, not both")
        weights, masks = _load_npz(npz)
        if isinstance(weights, list):
            out = product_log_svals(weights, masks, prefixes=prefixes)
            layers = len(weights)
        else:
            stack_masks = None if masks is None else jnp.asarray(masks, dtype)
            out = product_log_svals(jnp.asarray(weights, dtype), stack_masks, prefixes=prefixes)
            layers = weights.shape[0]
        theory_pred, config = None, {"npz": str(npz), "depth": layers, "dtype": dtype}
    else:
        if ensemble is None or width is None or depth is None:
            raise InputError("give --ensemble, --width and --depth (or --npz FILE)")
        ens = jaxspec.make_ensemble(ensemble, width, depth, sigma2=sigma2, p=p)
        key = jaxspec.engine.seed_keys(seed, 1)[0]
        out = ensemble_log_svals(ens, key, prefixes=prefixes, dtype=dtype)
        layers = depth
        lam = theory.lyapunov_exponents(ens)
        offsets = np.zeros(width) if ensemble == "orthogonal" else theory.singular_value_offsets(width)
        theory_pred = None if lam is None else theory.predicted_log_svals(lam, offsets, depth)
        config = {
            "ensemble": ensemble,
            "width": width,
            "depth": depth,
            "seed": seed,
            "dtype": dtype,
            "p": float(ens.p) if ensemble == "masked" else None,
            "sigma2": float(ens.sigma2),
        }
    log_svals = np.asarray(out.log_svals, np.float64)
    final = log_svals[-1] if prefixes else log_svals
    payload = {
        "log_svals": finite_list(final),
        "per_layer": finite_list(final / layers),
        "theory": finite_list(theory_pred),
        "rank": int(np.isfinite(final).sum()),
        "config": config,
        "wall_seconds": time.perf_counter() - start,
        **runtime_info(),
    }
    if prefixes:
        payload["prefix_log_svals"] = [finite_list(row) for row in log_svals]
    return payload


def register(app: typer.Typer) -> None:
    @app.command("theory")
    def theory_command(
        ensemble: str = typer.Option(..., help="gaussian, complex-gaussian, orthogonal, masked or relu-net"),
        width: int = typer.Option(..., help="layer width N"),
        depth: int = typer.Option(1000, help="depth L for the predicted standard error (and ReLU moments)"),
        k: int = typer.Option(None, help="number of exponents (default: the width)"),
        p: float = typer.Option(None, help="gate probability of the masked ensemble (default 0.5)"),
        sigma2: float = typer.Option(None, help="weight variance times fan-in (default 1, relu-net 2)"),
        fixed_count: int = typer.Option(None, "--fixed-count", help="masked: exactly K active units"),
        condition: str = typer.Option("K>=i", help="rank-collapse convention: K>=i, K>=k or none"),
        seeds: int = typer.Option(1, help="seeds, for the predicted standard error of the mean"),
        large_n: bool = typer.Option(False, "--large-n", help="large-N expansions instead of the exact sums"),
        json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
    ) -> None:
        """Closed-form exponents, per-layer standard deviations, P(K >= i) and finite-depth offsets."""
        payload = theory_payload(ensemble, width, depth, k, p, sigma2, fixed_count, condition, seeds, large_n)
        if json_out:
            print_json(payload)
            return
        cfg = payload["config"]
        print(
            f"{ensemble}: width {width}, sigma2 {cfg['sigma2']}, p {cfg['p']}, condition {condition}"
            f"{', large-N' if large_n else ''}"
        )
        exps, sd = _nan_array(payload["exponents"]), _nan_array(payload["per_layer_sd"])
        prob, se = _nan_array(payload["prob_active_at_least"]), _nan_array(payload["predicted_stderr"])
        offsets = None if payload["offsets"] is None else _nan_array(payload["offsets"])
        print(f"{'i':>4} {'lambda_i':>12} {'sd/layer':>10} {'P(K>=i)':>9} {'stderr(L)':>10} {'c_i':>9}")
        for i in range(len(exps)):
            c = "-" if offsets is None else f"{offsets[i]:9.5f}"
            print(f"{i + 1:>4} {exps[i]:12.6f} {sd[i]:10.6f} {prob[i]:9.5f} {se[i]:10.2e} {c:>9}")
        if payload["separation_rate"] is not None:
            print(
                f"separation rate lambda_1 - lambda_2 = {payload['separation_rate']:.6f} per layer "
                f"(s_1/s_2 ~ exp(L x rate); alignment slope of log sin angle = -rate)"
            )

    @app.command("svals")
    def svals_command(
        ensemble: str = typer.Option(None, help="gaussian, orthogonal, masked or relu-net"),
        width: int = typer.Option(None, help="layer width N"),
        depth: int = typer.Option(None, help="number of layers L"),
        seed: int = typer.Option(0, help="random seed (seed 0 of jaxspec lyapunov --seed)"),
        p: float = typer.Option(None, help="gate probability of the masked ensemble (default 0.5)"),
        sigma2: float = typer.Option(None, help="weight variance times fan-in (default 1, relu-net 2)"),
        npz: Path = typer.Option(  # noqa: B008
            None, help=".npz with 'weights' (L, N, N) [+ 'masks' (L, N)] or weights_0, weights_1, ..."
        ),
        prefixes: bool = typer.Option(False, "--prefixes", help="also every prefix A_l ... A_1"),
        dtype: str = typer.Option("float64", help="float64 (default, exact to ~1e-12) or float32"),
        json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
    ) -> None:
        """Exact finite-depth log singular values of a product (stratified QR), beside L lambda_i + c_i."""
        payload = svals_payload(ensemble, width, depth, seed, p, sigma2, npz, prefixes, dtype)
        if json_out:
            print_json(payload)
            return
        layers = payload["config"]["depth"]
        print(
            f"exact log singular values of a depth-{layers} product (rank {payload['rank']}, "
            f"{payload['wall_seconds']:.2f} s)"
        )
        logs, per = _nan_array(payload["log_svals"]), _nan_array(payload["per_layer"])
        th = None if payload["theory"] is None else _nan_array(payload["theory"])
        print(f"{'i':>4} {'log s_i':>14} {'(1/L) log s_i':>14} {'L lam_i + c_i':>14}")
        for i in range(len(logs)):
            t = "-" if th is None else f"{th[i]:14.4f}"
            print(f"{i + 1:>4} {logs[i]:14.4f} {per[i]:14.6f} {t:>14}")
