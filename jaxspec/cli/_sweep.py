"""``jaxspec sweep SPEC --out DIR`` and ``jaxspec report DIR``: sweeps at scale and their summary figures."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import jax
import typer

from jaxspec._checks import InputError
from jaxspec.sweeps import (
    PartialSweepWarning,
    draw_report,
    load_spec,
    missing_points,
    run_sweep,
    spec_template,
)


def _prepare_jax(devices: int | None) -> None:
    """64-bit accumulators, and enough CPU devices for ``--devices`` (only matters on the CPU backend)."""
    jax.config.update("jax_enable_x64", True)
    if devices is not None:
        if devices < 1:
            raise InputError(f"--devices must be a positive integer, got {devices}")
        # Must precede backend initialisation; GPUs/TPUs ignore it.
        jax.config.update("jax_num_cpu_devices", max(int(devices), jax.config.jax_num_cpu_devices))


def run_sweep_command(
    spec_file: Path,
    out: Path,
    resume: bool,
    devices: int | None,
    quiet: bool,
    overrides: list[str],
    chunk_size: int | None,
) -> None:
    """Load the spec, run (or resume) it, and print where the results are."""
    _prepare_jax(devices)
    spec = load_spec(spec_file, overrides)
    if not quiet:
        print(
            f"sweep {spec.name!r}: {spec.num_points} points x {spec.seeds} seeds = {spec.num_runs} runs "
            f"-> {out}"
        )
    ds = run_sweep(spec, out, resume=resume, devices=devices, progress=not quiet, chunk_size=chunk_size)
    if ds.attrs["complete"]:
        if not quiet:
            seconds = ds.attrs["compute_seconds"]
            print(
                f"done: {out / 'results.zarr'} (xarray.open_zarr) and {out / 'summary.parquet'} "
                f"(pandas.read_parquet); {ds.attrs['num_runs']} runs, devices {ds.attrs['devices_used']}, "
                f"{seconds:.1f} s of chunk time"
            )
    else:
        lacking = missing_points(ds)
        print(
            f"partial: {ds.attrs['num_runs_done']} of {ds.attrs['num_runs']} runs done, "
            f"{len(lacking)} points miss seeds (other hosts' chunks, or run again with --resume)"
        )


def register(app: typer.Typer) -> None:
    @app.command()
    def sweep(
        spec: Path = typer.Argument(None, help="sweep spec file (.toml, .yaml or .json)"),
        out: Path = typer.Option(
            None, "--out", help="output directory (new or empty; or this sweep's with --resume)"
        ),
        template: bool = typer.Option(
            False,
            "--template",
            help="print a commented example spec to stdout and exit (jaxspec sweep --template > s.toml)",
        ),
        resume: bool = typer.Option(
            False, "--resume", help="continue an interrupted sweep, skipping finished chunks"
        ),
        devices: int = typer.Option(None, "--devices", help="local devices to shard over (default: all)"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bar or messages"),
        overrides: list[str] = typer.Option(
            None,
            "--set",
            help="override a spec entry: key=value (repeatable), "
            "e.g. seeds=32, axes.width=[8,16], params.k=2",
        ),
        chunk_size: int = typer.Option(
            None, "--chunk-size", help="runs per chunk (default: from the memory budget)"
        ),
    ) -> None:
        """Run a sweep over a grid of ensembles and seeds, sharded over devices, chunked and resumable."""
        if template:
            sys.stdout.write(spec_template())
            return
        if spec is None:
            raise InputError(
                "a spec file is needed: jaxspec sweep SPEC --out DIR (start from jaxspec sweep --template)"
            )
        if out is None:
            raise InputError("--out DIR is needed: where the sweep writes its results")
        run_sweep_command(spec, out, resume, devices, quiet, list(overrides or []), chunk_size)

    @app.command()
    def report(
        directory: Path = typer.Argument(..., help="a sweep's output directory"),
        out: Path = typer.Option(None, "--out", help="where to write the figures (default DIR/report)"),
    ) -> None:
        """Summary figures of a sweep: exponents against width, depth or gain with theory, separation
        against L/N, and the phase diagram of the top exponent over (sigma2, p)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PartialSweepWarning)
            draw_report(directory, out, verbose=True)
        for warning in caught:
            print(f"note: {warning.message}")
