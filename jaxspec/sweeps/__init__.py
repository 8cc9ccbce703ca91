"""Sweeps at scale: grids of runs sharded over devices and hosts, chunked, resumable, with labelled results.

A sweep runs a kernel (default ``lyapunov``: the spectrum of one realisation of an ensemble) at every point of
a grid (width x depth x gain x gate probability ...) for several seeds. Points that share their static shape
compile once; (point x seed) runs are flattened into one batch, vmapped, and sharded over the local devices
with ``jax.sharding``; batches are cut into chunks sized to a memory budget and written atomically, so a
killed sweep resumes where it stopped. Results are an xarray Dataset (zarr) plus a tidy parquet summary.

Modules:

* :mod:`~jaxspec.sweeps._kernels`: what one run computes; the registry of kernels.
* :mod:`~jaxspec.sweeps._spec`: the specification (axes, seeds, parameters, records).
* :mod:`~jaxspec.sweeps._plan`: groups of points sharing static shapes, chunks, run keys, output shapes.
* :mod:`~jaxspec.sweeps._store`: the output directory (zarr + parquet), provenance, resume, checksums, repair.
* :mod:`~jaxspec.sweeps._lock`: the lock that keeps two runs off one directory.
* :mod:`~jaxspec.sweeps._memory`: the memory a sweep needs, checked before anything is written.
* :mod:`~jaxspec.sweeps._execute`: devices and hosts (``jax.sharding``, ``jax.distributed``).
* :mod:`~jaxspec.sweeps._report`: summary figures.

Example:
    >>> from jaxspec.sweeps import SweepSpec, run_sweep
    >>> spec = SweepSpec(axes={"width": [8, 16], "sigma2": [1.0, 2.0], "p": [0.5, 1.0]}, seeds=8,
    ...                  params={"ensemble": "masked", "depth": 100, "k": 4})
    >>> ds = run_sweep(spec, "sweep_out")                         # doctest: +SKIP
    >>> ds.exponents.sel(index=1).mean("seed")                    # doctest: +SKIP

References:
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from jaxspec._memory import parse_memory
from jaxspec.sweeps._execute import CpuLapackWarning, local_mesh, make_group_runner, run_sweep
from jaxspec.sweeps._kernels import KERNELS, Kernel, Parameter, Record, get_kernel, register_kernel
from jaxspec.sweeps._lock import StoreLock
from jaxspec.sweeps._memory import MemoryEstimate, check_memory, estimate_memory
from jaxspec.sweeps._plan import (
    Chunk,
    Group,
    SweepPlan,
    group_output_shapes,
    make_plan,
    point_params,
    run_key,
)
from jaxspec.sweeps._report import draw_report
from jaxspec.sweeps._spec import SweepSpec, load_spec, parse_override, spec_template
from jaxspec.sweeps._store import (
    DamagedChunkError,
    PartialSweepWarning,
    StoreRepairWarning,
    SweepStore,
    load_sweep,
    missing_points,
    prepare_directory,
    repair_store,
    summary_frame,
)

__all__ = [
    "KERNELS",
    "Chunk",
    "CpuLapackWarning",
    "DamagedChunkError",
    "Group",
    "Kernel",
    "MemoryEstimate",
    "Parameter",
    "PartialSweepWarning",
    "Record",
    "StoreLock",
    "StoreRepairWarning",
    "SweepPlan",
    "SweepSpec",
    "SweepStore",
    "check_memory",
    "draw_report",
    "estimate_memory",
    "get_kernel",
    "group_output_shapes",
    "load_spec",
    "load_sweep",
    "local_mesh",
    "make_group_runner",
    "make_plan",
    "missing_points",
    "parse_memory",
    "parse_override",
    "prepare_directory",
    "point_params",
    "register_kernel",
    "repair_store",
    "run_key",
    "run_sweep",
    "spec_template",
    "summary_frame",
]
