"""``jaxspec theory`` (closed forms of an ensemble) and ``jaxspec svals`` (exact finite-depth singular
values)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import typer

import jaxspec
from jaxspec import theory
from jaxspec._checks import (
    LOG_FLOAT64_MAX,
    InputError,
    check_choice,
    check_int,
    check_positive,
    check_probability,
    check_scale_range,
)
from jaxspec.analysis import ensemble_log_svals, product_log_svals
from jaxspec.cli._common import (
    CompileClock,
    check_memory,
    check_seed,
    count_law_support,
    finite_list,
    fmt_number,
    print_json,
    runtime_info,
    setup_dtype,
    svals_memory,
    theory_memory,
)

THEORY_ENSEMBLES = ("gaussian", "complex-gaussian", "orthogonal", "masked", "relu-net")


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
    max_memory: str | None = None,
) -> dict:
    """The JSON payload of ``jaxspec theory``: exponents, per-layer sd, ``P(K >= i)``, offsets, rates, and a
    reason (``notes``) for every non-finite entry. Memory is estimated (``O(k x support of the count law)``)
    and refused before anything is allocated."""
    if ensemble not in THEORY_ENSEMBLES:
        raise InputError(f"unknown ensemble {ensemble!r}; choose one of {', '.join(THEORY_ENSEMBLES)}")
    check_choice("--condition", condition, theory.CONDITIONS)
    seeds = check_int("--seeds", seeds, minimum=1)
    width = check_int("--width", width, minimum=1)
    depth = check_int("--depth", depth, minimum=1)
    kk = width if k is None else check_int("--k", k, minimum=1, maximum=width)
    if fixed_count is not None:
        fixed_count = check_int("--fixed-count", fixed_count, minimum=0, maximum=width)
    gate = {"masked": 0.5 if p is None else p, "relu-net": 0.5}.get(ensemble)
    if ensemble == "masked" and p is not None:
        gate = check_probability("--p", p)
    support = count_law_support(width, gate, fixed_count is not None)
    check_memory(
        theory_memory(width, kk, support, depth),
        f"theory of {ensemble} at width {width} with k = {kk} (a {kk} x {support} table per count law)",
        max_memory,
        on_device=False,
    )
    if ensemble == "complex-gaussian":
        if p is not None or fixed_count is not None:
            raise InputError("--p and --fixed-count only apply to the masked ensemble")
        s2 = 1.0 if sigma2 is None else check_positive("--sigma2", sigma2, allow_array=False)
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
    with np.errstate(invalid="ignore"):
        sd = np.sqrt(var)
    gaps = theory.spectral_gaps(exps) if kk > 1 else np.zeros(0)
    payload = {
        "exponents": finite_list(exps),
        "per_layer_sd": finite_list(sd),
        "prob_active_at_least": finite_list(prob),
        "predicted_stderr": finite_list(stderr),
        "offsets": finite_list(offsets),
        "gaps": finite_list(gaps),
        "separation_rate": float(gaps[0]) if kk > 1 and np.isfinite(gaps[0]) else None,
        "alignment_slope": float(gaps[0]) if kk > 1 and np.isfinite(gaps[0]) else None,
        "notes": theory_notes(exps, sd, prob, stderr, condition=condition, large_n=large_n, p=resolved["p"]),
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
        overflow = [
            f"E||Ju||^{2 * m} = exp({log:.2f}) exceeds float64 (largest exp({LOG_FLOAT64_MAX:.2f})): "
            "null, see "
            f"log_{name}"
            for m, name, log in ((1, "second", moments.log_second), (2, "fourth", moments.log_fourth))
            if log > LOG_FLOAT64_MAX
        ]
        payload["relu_log_norm"] = {
            "mean": moments.mean,
            "variance": moments.variance,
            "second": moments.second if np.isfinite(moments.second) else None,
            "fourth": moments.fourth if np.isfinite(moments.fourth) else None,
            "log_second": moments.log_second,
            "log_fourth": moments.log_fourth,
            "prob_nonzero": moments.prob_nonzero,
            "notes": overflow or None,
        }
    return payload, (exps, sd, prob, stderr, offsets)


def theory_notes(
    exps, sd, prob, stderr, *, condition: str, large_n: bool, p: float | None
) -> list[str | None]:
    """The reason for every non-finite entry of a ``theory`` row."""
    notes: list[str | None] = []
    for j in range(len(exps)):
        i = j + 1
        reason = None
        values = (exps[j], sd[j], stderr[j])
        if all(np.isfinite(v) for v in values):
            notes.append(None)
            continue
        if exps[j] == -np.inf:
            if condition == "none":
                reason = (
                    f"-inf: K<{i} has positive probability on a layer (condition none counts every layer)"
                )
            else:
                reason = f"-inf: P(K>={i}) = 0, no layer can have {i} active units"
        elif np.isnan(exps[j]) and large_n:
            gate = 1.0 if p is None else p
            reason = f"large-N expansion undefined for i - 1 >= pN = {gate:g} N: use the exact sums"
        elif not np.isfinite(sd[j]) or not np.isfinite(stderr[j]):
            reason = f"no fluctuation predicted: P(counted) = {float(prob[j]):.3g}"
        notes.append(reason)
    return notes


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
            raise InputError(f"{path}: 'weights' must hold real numbers, got dtype {weights.dtype}")
        if masks is not None and masks.dtype.kind not in "iufb":
            raise InputError(f"{path}: 'masks' must hold 0 and 1, got dtype {masks.dtype}")
        return weights.astype(np.float64), None if masks is None else masks.astype(np.float64)
    depth = 0
    while f"weights_{depth}" in arrays:
        depth += 1
    if depth == 0:
        raise InputError(
            f"{path}: expected an array 'weights' (L, N, N) or 'weights_0', 'weights_1', ...; "
            f"found {', '.join(sorted(arrays)) or 'nothing'}"
        )
    for name in [f"weights_{l}" for l in range(depth)] + [f"masks_{l}" for l in range(depth)]:
        if name in arrays and arrays[name].dtype.kind not in "iufb":
            raise InputError(f"{path}: '{name}' must hold real numbers, got dtype {arrays[name].dtype}")
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
    seeds: int = 1,
    max_memory: str | None = None,
) -> tuple[dict, tuple]:
    """The JSON payload of ``jaxspec svals`` and the raw ``(log_svals, stderr, theory, z)`` of its table.

    With ``seeds = S > 1`` the realisations of seeds ``0..S-1`` (keys ``seed_keys(seed, S)``, the first being
    the single-seed run) give the mean of each ``log s_i``, its standard error ``std(ddof=1)/sqrt(S)`` and
    ``z = (mean - (L lambda_i + c_i)) / stderr``. An index that collapsed (``-inf``) in any seed has mean
    ``-inf`` and a note.
    """
    setup_dtype(dtype)
    seeds = check_int("--seeds", seeds, minimum=1)
    seed = check_seed(seed)
    if npz is not None:
        if ensemble is not None:
            raise InputError("give either --npz or --ensemble, not both")
        if seeds != 1:
            raise InputError("--seeds applies to --ensemble (an .npz holds one product)")
        weights, masks = _load_npz(npz)
        n = max(w.shape[0] for w in weights) if isinstance(weights, list) else weights.shape[-1]
        layers = len(weights) if isinstance(weights, list) else weights.shape[0]
        check_memory(
            svals_memory(n, n, layers, 1, dtype, prefixes), f"svals of {npz} (width {n})", max_memory
        )
        with CompileClock() as clock:
            if isinstance(weights, list):
                out = product_log_svals(weights, masks, prefixes=prefixes)
            else:
                stack_masks = None if masks is None else jnp.asarray(masks, dtype)
                out = product_log_svals(jnp.asarray(weights, dtype), stack_masks, prefixes=prefixes)
            per_seed = np.asarray(jax.block_until_ready(out.log_svals), np.float64)[None]
        theory_pred, config = None, {"npz": str(npz), "depth": layers, "dtype": dtype, "seeds": 1}
    else:
        if ensemble is None or width is None or depth is None:
            raise InputError("give --ensemble, --width and --depth (or --npz FILE)")
        width = check_int("--width", width, minimum=1)
        depth = check_int("--depth", depth, minimum=1)
        what = f"svals at width {width}, depth {depth} with {seeds} seed(s)"
        check_memory(svals_memory(width, width, depth, seeds, dtype, prefixes), what, max_memory)
        ens = jaxspec.make_ensemble(ensemble, width, depth, sigma2=sigma2, p=p)
        check_scale_range("--sigma2", float(ens.sigma2), dtype, block=1, width=ens.max_width)
        keys = jaxspec.engine.seed_keys(seed, seeds)
        with CompileClock() as clock:
            out = jax.vmap(
                lambda key: ensemble_log_svals(ens, key, prefixes=prefixes, dtype=dtype).log_svals
            )(keys)
            per_seed = np.asarray(jax.block_until_ready(out), np.float64)
        layers = depth
        lam = theory.lyapunov_exponents(ens)
        offsets = np.zeros(width) if ensemble == "orthogonal" else theory.singular_value_offsets(width)
        theory_pred = None if lam is None else theory.predicted_log_svals(lam, offsets, depth)
        config = {
            "ensemble": ensemble,
            "width": width,
            "depth": depth,
            "seed": seed,
            "seeds": seeds,
            "dtype": dtype,
            "p": float(ens.p) if ensemble == "masked" else None,
            "sigma2": float(ens.sigma2),
        }
    final_per_seed = per_seed[:, -1] if prefixes else per_seed  # (S, n)
    mean, stderr = _seed_mean(final_per_seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = None if theory_pred is None or seeds < 2 else (mean - theory_pred) / stderr
    notes = svals_notes(final_per_seed, theory_pred, dtype)
    payload = {
        "log_svals": finite_list(mean),
        "stderr": finite_list(stderr) if seeds > 1 else None,
        "per_layer": finite_list(mean / layers),
        "theory": finite_list(theory_pred),
        "z": finite_list(z),
        "rank": int(np.isfinite(mean).sum()),
        "notes": notes,
        "config": config,
        "wall_seconds": clock.wall_seconds,
        "compile_seconds": clock.compile_seconds,
        "run_seconds": clock.run_seconds,
        **runtime_info(),
    }
    if prefixes:
        prefix_mean = _seed_mean(per_seed)[0] if seeds > 1 else per_seed[0]
        payload["prefix_log_svals"] = [finite_list(row) for row in prefix_mean]
    return payload, (mean, stderr if seeds > 1 else None, theory_pred, z)


def _seed_mean(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the first axis and its standard error; ``-inf`` in any seed gives ``-inf`` (and NaN)."""
    count = values.shape[0]
    collapsed = np.any(values == -np.inf, axis=0)
    safe = np.where(collapsed, 0.0, values)
    mean = np.where(collapsed, -np.inf, safe.mean(axis=0))
    if count < 2:
        return mean, np.full(mean.shape, np.nan)
    stderr = np.where(collapsed, np.nan, safe.std(axis=0, ddof=1) / np.sqrt(count))
    return mean, stderr


def svals_notes(per_seed: np.ndarray, theory_pred, dtype: str) -> list[str | None]:
    """The reason for every non-finite entry of an ``svals`` row (``per_seed``: ``(S, n)``)."""
    seeds = per_seed.shape[0]
    notes: list[str | None] = []
    for j in range(per_seed.shape[1]):
        column = per_seed[:, j]
        collapsed = int(np.sum(column == -np.inf))
        if collapsed:
            notes.append(
                f"rank collapse: min_l K_l < {j + 1} in {collapsed} of {seeds} seed(s), so s_{j + 1} = 0 "
                "exactly (log -inf)"
            )
        elif not np.all(np.isfinite(column)):
            notes.append(f"non-finite in {dtype} (overflow or underflow)")
        elif theory_pred is not None and not np.isfinite(theory_pred[j]):
            notes.append("theory -inf: the exponent is -inf (P(K>=i) = 0)")
        else:
            notes.append(None)
    return notes


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
        max_memory: str = typer.Option(
            None, "--max-memory", help="memory the closed forms may use, e.g. 8GB (default: the host's)"
        ),
        json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
    ) -> None:
        """Closed-form exponents, per-layer standard deviations, P(K >= i) and finite-depth offsets."""
        payload, (exps, sd, prob, se, offsets) = theory_payload(
            ensemble, width, depth, k, p, sigma2, fixed_count, condition, seeds, large_n, max_memory
        )
        if json_out:
            print_json(payload)
            return
        cfg = payload["config"]
        print(
            f"{ensemble}: width {width}, sigma2 {cfg['sigma2']}, p {cfg['p']}, condition {condition}"
            f"{', large-N' if large_n else ''}"
        )
        print(f"{'i':>4} {'lambda_i':>12} {'sd/layer':>10} {'P(K>=i)':>9} {'stderr(L)':>10} {'c_i':>9}")
        for i in range(len(exps)):
            c = "-" if offsets is None else fmt_number(offsets[i], 9, 5)
            note = payload["notes"][i]
            print(
                f"{i + 1:>4} {fmt_number(exps[i], 12, 6)} {fmt_number(sd[i], 10, 6)} "
                f"{fmt_number(prob[i], 9, 5)} "
                f"{_sci(se[i]):>10} {c:>9}" + (f"  {note}" if note else "")
            )
        if payload["separation_rate"] is not None:
            print(
                f"separation rate lambda_1 - lambda_2 = {payload['separation_rate']:.6f} per layer "
                f"(s_1/s_2 ~ exp(L x rate); alignment slope of log sin angle = -rate)"
            )
        for note in (payload.get("relu_log_norm") or {}).get("notes") or []:
            print(note)

    @app.command("svals")
    def svals_command(
        ensemble: str = typer.Option(None, help="gaussian, orthogonal, masked or relu-net"),
        width: int = typer.Option(None, help="layer width N"),
        depth: int = typer.Option(None, help="number of layers L"),
        seed: int = typer.Option(0, help="random seed (seed 0 of jaxspec lyapunov --seed)"),
        seeds: int = typer.Option(
            1, help="realisations: with S > 1, mean +- standard error of each log s_i and z against theory"
        ),
        p: float = typer.Option(None, help="gate probability of the masked ensemble (default 0.5)"),
        sigma2: float = typer.Option(None, help="weight variance times fan-in (default 1, relu-net 2)"),
        npz: Path = typer.Option(  # noqa: B008
            None, help=".npz with 'weights' (L, N, N) [+ 'masks' (L, N)] or weights_0, weights_1, ..."
        ),
        prefixes: bool = typer.Option(False, "--prefixes", help="also every prefix A_l ... A_1"),
        dtype: str = typer.Option("float64", help="float64 (default, exact to ~1e-12) or float32"),
        max_memory: str = typer.Option(
            None, "--max-memory", help="memory the run may use, e.g. 8GB (default: what the device has)"
        ),
        json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
    ) -> None:
        """Exact finite-depth log singular values of a product (stratified QR), beside L lambda_i + c_i."""
        payload, (logs, stderr, th, z) = svals_payload(
            ensemble, width, depth, seed, p, sigma2, npz, prefixes, dtype, seeds, max_memory
        )
        if json_out:
            print_json(payload)
            return
        layers = payload["config"]["depth"]
        count = payload["config"]["seeds"]
        what = "mean over " + f"{count} seeds" if count > 1 else "one realisation"
        print(
            f"exact log singular values of a depth-{layers} product, {what} (rank {payload['rank']}, "
            f"{payload['wall_seconds']:.2f} s)"
        )
        header = f"{'i':>4} {'log s_i':>14}"
        if stderr is not None:
            header += f" {'stderr':>10}"
        header += f" {'(1/L) log s_i':>14} {'L lam_i + c_i':>14}"
        if z is not None:
            header += f" {'z':>7}"
        print(header)
        for i in range(len(logs)):
            row = f"{i + 1:>4} {fmt_number(logs[i], 14, 4)}"
            if stderr is not None:
                row += f" {fmt_number(stderr[i], 10, 4)}"
            row += (
                f" {fmt_number(logs[i] / layers, 14, 6)} {fmt_number(None if th is None else th[i], 14, 4)}"
            )
            if z is not None:
                row += f" {fmt_number(z[i], 7, 2)}"
            note = payload["notes"][i]
            print(row + (f"  {note}" if note else ""))
        if z is not None:
            print(
                "z = (mean - theory) / stderr; L lam_i + c_i holds once L (lambda_i - lambda_{i+1}) >> 1 "
                "(math §2)"
            )


def _sci(value: float) -> str:
    value = float(value)
    return f"{value:.2e}" if np.isfinite(value) else ("inf" if value > 0 else "-inf" if value < 0 else "nan")
