"""File output of the reproduction jobs: figures as PNG, data as netCDF, summaries as JSON / Markdown.

:func:`write_outputs` takes the result of any job of :mod:`jaxspec.reproduce` and writes the files that
``jaxspec figures <name>`` has always written, under the same names. Every file is written atomically: first
to a hidden temporary name in the same folder, then moved over the final name with ``os.replace``, so that an
interrupted run never leaves a truncated figure or dataset behind (and a reader never sees half a file).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from jaxspec._checks import InputError
from jaxspec.figures._bottleneck import bottleneck_figures, bottleneck_markdown
from jaxspec.figures._dynamics import dynamics_figures, dynamics_markdown
from jaxspec.figures._init import init_figures
from jaxspec.figures._saddle import saddle_figures, saddle_markdown
from jaxspec.figures._ufm import ufm_figures, ufm_markdown
from jaxspec.reproduce import BottleneckResult, DynamicsResult, InitResult, SaddleResult, UFMResult
from jaxspec.training import plot_dynamics

#: Writes one file at the path it is given.
Writer = Callable[[Path], Any]


def write_atomic(path: str | Path, write: Writer) -> Path:
    """Write a file through ``write(temporary path)``, then move it over ``path`` with ``os.replace``.

    The temporary name keeps the suffix (matplotlib and xarray choose the format from it) and lives in the
    same folder (``os.replace`` is atomic within one file system); it is removed if ``write`` fails.

    Args:
        path: the final path (its folder must exist).
        write: writes the complete file at the path it is given.

    Returns:
        ``path``.

    Example:
        >>> write_atomic(tmp / "note.txt", lambda p: p.write_text("done"))  # doctest: +SKIP
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _png(fig: Figure) -> Writer:
    return lambda path: fig.savefig(path, dpi="figure", bbox_inches="tight")


def _netcdf(dataset, engine: str | None = "scipy") -> Writer:
    return lambda path: dataset.to_netcdf(path, engine=engine)


def _text(text: str) -> Writer:
    return lambda path: path.write_text(text)


def _figures(figures: Mapping[str, Figure]) -> dict[str, Writer]:
    return {name: _png(fig) for name, fig in figures.items()}


def _init_files(result: InitResult) -> dict[str, Writer]:
    files = {**_figures(init_figures(result)), "init.nc": _netcdf(result.to_dataset())}
    summary = {**result.summary, "files": sorted([*files, "init_summary.json"])}
    return {**files, "init_summary.json": _text(json.dumps(summary, indent=2))}


def _dynamics_files(result: DynamicsResult) -> dict[str, Writer]:
    files = {}
    for name, run in result.runs.items():
        files[f"{name}.nc"] = _netcdf(run.dataset, engine=None)
        files[f"{name}.png"] = lambda path, run=run: plot_dynamics(run.dataset, path, title=run.title)
    return {
        **files,
        **_figures(dynamics_figures(result)),
        "summary.json": _text(json.dumps(result.summary, indent=2)),
        "summary.md": _text(dynamics_markdown(result.summary)),
    }


def _saddle_files(result: SaddleResult) -> dict[str, Writer]:
    return {
        **_figures(saddle_figures(result)),
        "saddle_escape.nc": _netcdf(result.escape_dataset()),
        "saddle_training.nc": _netcdf(result.training_dataset()),
        "saddle_summary.json": _text(json.dumps(result.summary, indent=2)),
        "saddle_summary.md": _text(saddle_markdown(result.summary)),
    }


def _bottleneck_files(result: BottleneckResult) -> dict[str, Writer]:
    data = {
        f"bottleneck_{name}.nc": _netcdf(target.to_dataset(result.sizes))
        for name, target in result.targets.items()
    }
    return {
        **data,
        **_figures(bottleneck_figures(result)),
        "bottleneck_summary.json": _text(json.dumps(result.summary, indent=2)),
        "bottleneck_summary.md": _text(bottleneck_markdown(result.summary)),
    }


def _ufm_files(result: UFMResult) -> dict[str, Writer]:
    return {
        **_figures(ufm_figures(result)),
        "ufm_training.nc": _netcdf(result.training_dataset()),
        "digits_spectrum.nc": _netcdf(result.digits_dataset()),
        "ufm_summary.json": _text(json.dumps(result.summary, indent=2)),
        "ufm_summary.md": _text(ufm_markdown(result.summary)),
    }


_FILES: dict[type, Callable[[Any], dict[str, Writer]]] = {
    InitResult: _init_files,
    DynamicsResult: _dynamics_files,
    SaddleResult: _saddle_files,
    BottleneckResult: _bottleneck_files,
    UFMResult: _ufm_files,
}


def _writers(result) -> dict[str, Writer]:
    if type(result) not in _FILES:
        raise InputError(f"not the result of a reproduction job: {type(result).__name__}")
    return _FILES[type(result)](result)


def write_outputs(
    result: InitResult | DynamicsResult | SaddleResult | BottleneckResult | UFMResult, out_dir: str | Path
) -> list[str]:
    """Write a job's figures (PNG), data (netCDF) and summary (JSON, and Markdown where there is a table).

    Files per job (``out_dir`` is created):

    * init: ``init_a_scaling.png``, ``init_b_separation.png``, ``init_c_alignment.png``,
      ``init_d_sandwich.png``, ``init_overlaps.png``, ``init.nc``, ``init_summary.json`` (the summary plus
      ``files``, this list);
    * dynamics: ``<experiment>.nc`` and ``<experiment>.png`` per experiment, ``overview.png`` (when a
      random-init experiment ran), ``summary.json``, ``summary.md``;
    * saddle: ``saddle_escape_ratios.png``, ``saddle_first_plateau.png``, ``saddle_to_saddle.png``,
      ``saddle_escape.nc``, ``saddle_training.nc``, ``saddle_summary.json`` / ``.md``;
    * bottleneck: ``bottleneck_<target>.nc`` per target, ``bottleneck_weights.png``,
      ``bottleneck_representations.png``, ``bottleneck_norm.png``, ``bottleneck_summary.json`` / ``.md``;
    * ufm: ``ufm_spectrum.png``, ``ufm_outliers_training.png``, ``ufm_alignment.png``, ``ufm_nc1.png``,
      ``digits_spectrum.png``, ``ufm_training.nc``, ``digits_spectrum.nc``, ``ufm_summary.json`` / ``.md``.

    Args:
        result: the result of a :mod:`jaxspec.reproduce` job.
        out_dir: the output folder.

    Returns:
        The names of the files written, in the order written (each atomically, see :func:`write_atomic`).

    Example:
        >>> write_outputs(run_saddle(progress=False), "figures/saddle")  # doctest: +SKIP
        ['saddle_escape_ratios.png', 'saddle_first_plateau.png', ...]
    """
    writers = _writers(result)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, write in writers.items():
        write_atomic(out / name, write)
    return list(writers)
