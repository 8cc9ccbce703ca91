"""``jaxspec demo`` and ``jaxspec lyapunov``: Lyapunov spectra of layer ensembles beside their closed
forms."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import typer

import jaxspec
from jaxspec import theory
from jaxspec._checks import check_choice, check_int, check_scale_range
from jaxspec.cli._common import (
    CompileClock,
    check_memory,
    check_seed,
    finite_list,
    lyapunov_memory,
    lyapunov_notes,
    print_json,
    runtime_info,
    setup_dtype,
    spectrum_table,
)
from jaxspec.cli._demo import run_demo

# QR backends that form the Gram matrix of the frame (CholeskyQR2, shifted CholeskyQR3): the range check
# counts squared lengths for them.
_GRAM_QRS = ("cholesky2", "shifted_cholesky3")


def run_lyapunov(
    ensemble: str,
    width: int,
    depth: int,
    k: int | None,
    seeds: int,
    p: float | None,
    sigma2: float | None,
    reortho: int | str,
    dtype: str,
    seed: int,
    condition: str,
    precision: str,
    method: str = "auto",
    max_memory: str | None = None,
    qr: str = "householder",
) -> tuple[dict, tuple]:
    """Run the engine and its theory; returns the JSON payload of ``jaxspec lyapunov`` and the raw
    ``(mean, stderr, theory, theory_stderr)`` of its table (``-inf`` and NaN kept, which JSON cannot hold).

    Everything is validated before any array is made: the ensemble and its parameters, ``k``, the seeds, the
    weight scale against the compute dtype's range (:func:`jaxspec._checks.check_scale_range`) and the memory
    the run needs (:func:`~jaxspec.cli._common.lyapunov_memory`). ``compile_seconds`` and ``run_seconds``
    split
    ``wall_seconds`` (:class:`~jaxspec.cli._common.CompileClock`); ``notes`` give the reason for every
    non-finite entry (``null`` in the JSON).
    """
    setup_dtype(dtype)
    reortho = _reortho_option(reortho)
    seeds = check_int("--seeds", seeds, minimum=1)
    seed = check_seed(seed)
    width = check_int("--width", width, minimum=1)
    depth = check_int("--depth", depth, minimum=1)
    # Before the ensemble exists (its static widths alone hold L + 1 entries): what the cheapest path needs.
    what = f"lyapunov at width {width}, depth {depth}, {seeds} seeds"
    check_memory(lyapunov_memory(width, depth, 1, seeds, dtype, "chi"), what, max_memory)
    ens = jaxspec.make_ensemble(ensemble, width, depth, sigma2=sigma2, p=p)
    kk = ens.max_width if k is None else check_int("--k", k, minimum=1, maximum=min(ens.widths))
    check_choice("--condition", condition, jaxspec.engine.CONDITIONS)
    resolved = jaxspec.engine.resolve_method(ens, method)
    check_choice("--qr", qr, jaxspec.engine.QR_BACKENDS + ("auto",))
    block = reortho if isinstance(reortho, int) and resolved == "direct" else 1
    # A Gram-based QR (CholeskyQR2, shifted CholeskyQR3) squares the block's lengths: a tighter range.
    gram = resolved == "direct" and jaxspec.engine.resolve_qr(ens, qr, kk) in _GRAM_QRS
    estimate = lyapunov_memory(
        ens.max_width, ens.depth, kk, seeds, dtype, resolved, haar=ensemble == "orthogonal"
    )
    check_memory(estimate, f"{what} (method {resolved})", max_memory)
    check_scale_range(
        "--sigma2", float(ens.sigma2), dtype, block=max(int(block), 1), width=ens.max_width, gram=gram
    )
    with CompileClock() as clock:
        result = jaxspec.lyapunov_spectrum(
            ens,
            k=kk,
            seeds=seeds,
            seed=seed,
            reortho_every=reortho,
            dtype=dtype,
            condition=condition,
            precision=precision,
            method=method,
            qr=qr,
        )
        jax.block_until_ready(result)
    mean = np.asarray(result.mean)
    th = theory.lyapunov_exponents(ens, kk, condition)
    th_se = theory.predicted_stderr(ens, kk, seeds=seeds, condition=condition)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = None if th is None else (mean - th) / th_se
    notes = lyapunov_notes(
        np.asarray(result.exponents),
        np.asarray(result.counted_layers),
        th,
        th_se,
        depth=ens.depth,
        condition=condition,
        dtype=dtype,
    )
    config = {
        "ensemble": ensemble,
        "width": width,
        "depth": depth,
        "k": kk,
        "seeds": seeds,
        "p": float(ens.p) if ensemble == "masked" else None,
        "sigma2": float(ens.sigma2),
        "reortho": reortho,
        "reortho_resolved": result.config.reortho_every,
        "qr": qr,
        "qr_resolved": result.config.qr,
        "dtype": dtype,
        "seed": seed,
        "condition": condition,
        "precision": precision,
        "method": method,
        "method_resolved": result.config.method,
    }
    payload = {
        "exponents": finite_list(mean),
        "stderr": finite_list(result.stderr),
        "theory": finite_list(th),
        "theory_stderr": finite_list(th_se),
        "z": finite_list(z),
        "prob_active_at_least": finite_list(theory.prob_active_at_least(ens, kk)),
        "notes": notes,
        "counted_layers": np.asarray(result.counted_layers).sum(axis=0).tolist(),
        "config": config,
        "wall_seconds": clock.wall_seconds,
        "compile_seconds": clock.compile_seconds,
        "run_seconds": clock.run_seconds,
        "memory_estimate_bytes": int(estimate),
        **runtime_info(),
    }
    return payload, (mean, np.asarray(result.stderr), th, th_se)


def _reortho_option(value: int | str) -> int | str:
    """``--reortho``: an integer, or ``auto``; the engine's own parser validates either."""
    text = str(value).strip()
    return int(text) if text.lstrip("+-").isdigit() else text


def register(app: typer.Typer) -> None:
    @app.command()
    def lyapunov(
        ensemble: str = typer.Option(..., help="gaussian, orthogonal, masked or relu-net"),
        width: int = typer.Option(..., help="layer width N"),
        depth: int = typer.Option(..., help="number of layers L"),
        k: int = typer.Option(None, help="number of exponents (default: the width)"),
        seeds: int = typer.Option(8, help="independent realisations"),
        p: float = typer.Option(None, help="gate probability of the masked ensemble (default 0.5)"),
        sigma2: float = typer.Option(None, help="weight variance times fan-in (default 1, relu-net 2)"),
        reortho: str = typer.Option("1", help="layers between QR re-orthonormalisations, or 'auto'"),
        dtype: str = typer.Option("float32", help="float32 or float64"),
        seed: int = typer.Option(0, help="base random seed"),
        condition: str = typer.Option("K>=i", help="rank-collapse convention: K>=i, K>=k or none"),
        precision: str = typer.Option("highest", help="matmul precision: highest, high or default"),
        method: str = typer.Option(
            "auto",
            help="auto (exact chi sampler for gaussian/masked, else the "
            "product), direct, chi or gaussian_frame",
        ),
        qr: str = typer.Option(
            "householder",
            help="QR of the direct product: householder (LAPACK), cholesky2, shifted_cholesky3, "
            "blocked_householder, or auto (CholeskyQR2 where frames keep full rank and n >= 4k)",
        ),
        max_memory: str = typer.Option(
            None, "--max-memory", help="memory the run may use, e.g. 8GB (default: what the device has)"
        ),
        json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
    ) -> None:
        """Lyapunov exponents of a product of random layers, beside the closed form."""
        payload, table = run_lyapunov(
            ensemble,
            width,
            depth,
            k,
            seeds,
            p,
            sigma2,
            reortho,
            dtype,
            seed,
            condition,
            precision,
            method,
            max_memory,
            qr,
        )
        if json_out:
            print_json(payload)
            return
        cfg = payload["config"]
        print(
            f"{ensemble}: width {width}, depth {depth}, {seeds} seeds, {cfg['dtype']}, "
            f"condition {condition}, "
            f"method {cfg['method_resolved']}"
            + (f", qr {cfg['qr_resolved']}" if cfg["method_resolved"] == "direct" else "")
            + f"  ({payload['wall_seconds']:.2f} s on {payload['backend']}, "
            f"{payload['compile_seconds']:.2f} s of it compiling)"
        )
        print(spectrum_table(*table, notes=payload["notes"]))

    @app.command()
    def demo(
        out: Path = typer.Option(Path("jaxspec_demo.png"), help="where to write the figure"),
        width: int = typer.Option(16, help="layer width N"),
        depth: int = typer.Option(1000, help="number of layers L"),
        seeds: int = typer.Option(8, help="independent realisations"),
        max_memory: str = typer.Option(
            None, "--max-memory", help="memory the run may use, e.g. 8GB (default: what the device has)"
        ),
    ) -> None:
        """Spectra of Gaussian, masked and ReLU products beside their closed forms, and a figure."""
        run_demo(out, width, depth, seeds, max_memory)
