"""``jaxspec sweep SPEC --out DIR``, ``jaxspec sweep --repair DIR`` and ``jaxspec report DIR``: sweeps at
scale, their repair, and their summary figures."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import jax
import typer

from jaxspec._checks import InputError
from jaxspec.sweeps import (
    CpuLapackWarning,
    PartialSweepWarning,
    StoreRepairWarning,
    SweepStore,
    draw_report,
    load_spec,
    load_sweep,
    missing_points,
    parse_memory,
    prepare_directory,
    repair_store,
    run_sweep,
    spec_template,
)

_NOTES = (PartialSweepWarning, StoreRepairWarning, CpuLapackWarning)


def _prepare_jax(devices: int | None) -> None:
    """64-bit accumulators, and enough CPU devices for ``--devices`` (only matters on the CPU backend)."""
    jax.config.update("jax_enable_x64", True)
    if devices is not None:
        if devices < 1:
            raise InputError(f"--devices must be a positive integer, got {devices}")
        # Must precede backend initialisation; GPUs/TPUs ignore it.
        jax.config.update("jax_num_cpu_devices", max(int(devices), jax.config.jax_num_cpu_devices))


def _print_notes(caught, file=sys.stderr) -> None:
    """One ``note:`` line per store warning; other warnings are shown as Python shows them."""
    for warning in caught:
        if issubclass(warning.category, _NOTES):
            print(f"note: {' '.join(str(warning.message).split())}", file=file)
        else:
            warnings.showwarning(
                warning.message, warning.category, warning.filename, warning.lineno, warning.file
            )


def run_sweep_command(
    spec_file: Path | None,
    out: Path,
    resume: bool,
    devices: int | None,
    quiet: bool,
    overrides: list[str],
    chunk_size: int | None,
    max_memory: str | None = None,
) -> None:
    """Load the spec (from ``spec_file``, or from the store when resuming without one), run (or resume) it,
    and print where the results are."""
    limit = parse_memory(max_memory) if max_memory is not None else None
    _prepare_jax(devices)
    if spec_file is None:
        spec = SweepStore.open(out).spec
        spec = spec.with_overrides(overrides) if overrides else spec
    else:
        spec = load_spec(spec_file, overrides)
    if not quiet:
        print(
            f"sweep {spec.name!r}: {spec.num_points} points x {spec.seeds} seeds = {spec.num_runs} runs "
            f"-> {out}"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StoreRepairWarning)
        try:
            ds = run_sweep(
                spec,
                out,
                resume=resume,
                devices=devices,
                progress=not quiet,
                chunk_size=chunk_size,
                max_memory=limit,
            )
        finally:
            _print_notes(caught)
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
        spec: Path = typer.Argument(
            None, help="sweep spec file (.toml, .yaml or .json); with --resume, default: the stored spec"
        ),
        out: Path = typer.Option(
            None, "--out", help="output directory (new or empty; or this sweep's with --resume)"
        ),
        template: bool = typer.Option(
            False,
            "--template",
            help="print a commented example spec to stdout and exit (jaxspec sweep --template > s.toml)",
        ),
        resume: bool = typer.Option(
            False,
            "--resume",
            help="continue an interrupted sweep, skipping finished chunks (damaged ones are recomputed)",
        ),
        repair: Path = typer.Option(
            None,
            "--repair",
            help="rebuild a sweep directory's manifest and consolidated store from its chunk files, "
            "setting damaged files aside (then --resume recomputes what is missing)",
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
        max_memory: str = typer.Option(
            None,
            "--max-memory",
            help="memory one device may use, e.g. 8G or 512M (default: what the device has); "
            "larger sweeps are refused before anything is written",
        ),
    ) -> None:
        """Run a sweep over a grid of ensembles and seeds, sharded over devices, chunked and resumable."""
        if template:
            sys.stdout.write(spec_template())
            return
        if repair is not None:
            if spec is not None or out is not None or resume:
                raise InputError("--repair DIR takes no spec, --out or --resume: repair first, then resume")
            for line in repair_store(repair):
                print(line)
            return
        if out is None:
            raise InputError("--out DIR is needed: where the sweep writes its results")
        if spec is None and not resume:
            raise InputError(
                "a spec file is needed: jaxspec sweep SPEC --out DIR (start from jaxspec sweep --template; "
                "jaxspec sweep --out DIR --resume continues a stored sweep)"
            )
        run_sweep_command(spec, out, resume, devices, quiet, list(overrides or []), chunk_size, max_memory)

    @app.command()
    def report(
        directory: Path = typer.Argument(..., help="a sweep's output directory"),
        out: Path = typer.Option(None, "--out", help="where to write the figures (default DIR/report)"),
    ) -> None:
        """Summary figures of a sweep: exponents against width, depth or gain with theory, separation
        against L/N, and the phase diagram of the top exponent over (sigma2, p). Every chunk file is checked
        against its checksum first."""
        figures = directory / "report" if out is None else out
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PartialSweepWarning)
            warnings.simplefilter("always", StoreRepairWarning)
            try:
                SweepStore.open(directory)  # a sweep store, before a figure folder is made beside it
                prepare_directory(figures, "--out")
                ds = load_sweep(directory, verify=True)
                draw_report(ds, figures, verbose=True)
            finally:
                _print_notes(caught, sys.stdout)
