"""``jaxspec demo`` and ``jaxspec lyapunov``: Lyapunov spectra of layer ensembles beside their closed forms."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer

import jaxspec
from jaxspec import theory
from jaxspec.cli._common import finite_list, print_json, runtime_info, setup_dtype, spectrum_table
from jaxspec.cli._demo import run_demo


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
) -> dict:
    """Run the engine and its theory; returns the JSON payload of ``jaxspec lyapunov``."""
    setup_dtype(dtype)
    reortho = _reortho_option(reortho)
    ens = jaxspec.make_ensemble(ensemble, width, depth, sigma2=sigma2, p=p)
    start = time.perf_counter()
    result = jaxspec.lyapunov_spectrum(
        ens,
        k=k,
        seeds=seeds,
        seed=seed,
        reortho_every=reortho,
        dtype=dtype,
        condition=condition,
        precision=precision,
        method=method,
    )
    mean = np.asarray(result.mean)
    wall = time.perf_counter() - start
    kk = result.config.k
    th = theory.lyapunov_exponents(ens, kk, condition)
    th_se = theory.predicted_stderr(ens, kk, seeds=seeds, condition=condition)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = None if th is None else (mean - th) / th_se
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
        "qr": result.config.qr,
        "dtype": dtype,
        "seed": seed,
        "condition": condition,
        "precision": precision,
        "method": method,
        "method_resolved": result.config.method,
    }
    return {
        "exponents": finite_list(mean),
        "stderr": finite_list(result.stderr),
        "theory": finite_list(th),
        "theory_stderr": finite_list(th_se),
        "z": finite_list(z),
        "prob_active_at_least": finite_list(theory.prob_active_at_least(ens, kk)),
        "config": config,
        "wall_seconds": wall,
        **runtime_info(),
    }


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
        json_out: bool = typer.Option(False, "--json", help="print one JSON object"),
    ) -> None:
        """Lyapunov exponents of a product of random layers, beside the closed form."""
        payload = run_lyapunov(
            ensemble, width, depth, k, seeds, p, sigma2, reortho, dtype, seed, condition, precision, method
        )
        if json_out:
            print_json(payload)
            return
        cfg = payload["config"]
        print(
            f"{ensemble}: width {width}, depth {depth}, {seeds} seeds, {cfg['dtype']}, "
            f"condition {condition}, method {cfg['method_resolved']}  ({payload['wall_seconds']:.2f} s on {payload['backend']})"
        )
        nan = float("nan")
        as_arr = lambda xs: None if xs is None else np.array([nan if x is None else x for x in xs])  # noqa: E731
        print(
            spectrum_table(
                as_arr(payload["exponents"]),
                as_arr(payload["stderr"]),
                as_arr(payload["theory"]),
                as_arr(payload["theory_stderr"]),
            )
        )

    @app.command()
    def demo(
        out: Path = typer.Option(Path("jaxspec_demo.png"), help="where to write the figure"),
        width: int = typer.Option(16, help="layer width N"),
        depth: int = typer.Option(1000, help="number of layers L"),
        seeds: int = typer.Option(8, help="independent realisations"),
    ) -> None:
        """Spectra of Gaussian, masked and ReLU products beside their closed forms, and a figure."""
        run_demo(out, width, depth, seeds)
