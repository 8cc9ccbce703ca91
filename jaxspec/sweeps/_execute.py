"""Running a sweep: one compiled kernel per static shape, (point x seed) runs sharded over devices, in chunks.

For each group of grid points that share their static parameters, the kernel is vmapped over a flat batch of
runs and jitted once, with the batch axis sharded over the local devices by a ``jax.sharding.Mesh`` and a
``NamedSharding`` (no ``pmap``). Chunks of a group all have the same padded size, so a group compiles once;
padding runs repeat the chunk's last run and are discarded.

Each run's key is ``fold_in(fold_in(key(seed), point_id), s)``, computed on the device from the integer
``point_id`` and seed ``s``: the numbers depend on the grid only, never on chunking, device count or host
count.

Several hosts: call ``jax.distributed.initialize()`` first on every host, then :func:`run_sweep` on every
host with the same spec and output directory (a shared filesystem). Host ``h`` of ``H`` computes chunks
``h, h + H, h + 2H, ...`` on its own devices and writes its own chunk files; after a barrier, host 0 writes
the consolidated zarr store and parquet summary. Without a shared filesystem, copy every host's
``chunks/`` together and run once more with ``resume=True`` to consolidate.

Example:
    >>> from jaxspec.sweeps import SweepSpec, run_sweep
    >>> spec = SweepSpec(axes={"width": [4, 8], "p": [0.5, 1.0]}, seeds=4, params={"depth": 20, "k": 2})
    >>> ds = run_sweep(spec, "out", progress=False)              # doctest: +SKIP
    >>> ds.exponents.dims                                        # doctest: +SKIP
    ('width', 'p', 'seed', 'index')

References:
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from jaxspec._checks import InputError
from jaxspec._extras import require
from jaxspec._memory import parse_memory
from jaxspec.sweeps._memory import check_memory
from jaxspec.sweeps._plan import Group, padded_size, point_indices, run_key
from jaxspec.sweeps._spec import SweepSpec
from jaxspec.sweeps._store import SweepStore, load_sweep

BATCH_AXIS = "runs"


def local_mesh(devices: int | None = None) -> Mesh:
    """A 1-d mesh with axis ``"runs"`` over the first ``devices`` local devices (default: all of them)."""
    local = jax.local_devices()
    if devices is None:
        devices = len(local)
    if isinstance(devices, bool) or int(devices) != devices or not 1 <= devices <= len(local):
        raise InputError(
            f"devices must be an integer in [1, {len(local)}] (this host's devices), got {devices}"
        )
    return Mesh(np.array(local[: int(devices)]), (BATCH_AXIS,))


def _split_params(spec: SweepSpec, group: Group) -> tuple[dict[str, Any], list[str]]:
    """``(static params of the group, dynamic axis names)``; fixed dynamic parameters count as static."""
    kernel = spec.kernel_object()
    static = {**spec.params, **group.static, "record": spec.record}
    dynamic = [a for a in spec.axes if not kernel.parameters[a].static]
    return static, dynamic


def _dynamic_values(spec: SweepSpec, dynamic: list[str], point_ids: np.ndarray) -> dict[str, np.ndarray]:
    """``{axis: (runs,)}`` values of the dynamic axes at each run's point, in the widest enabled float."""
    if not dynamic:
        return {}
    idx = point_indices(spec, point_ids)
    pos = {a: i for i, a in enumerate(spec.axes)}
    # Python floats behave as float64 under x64 (as in jaxspec.lyapunov_spectrum), float32 otherwise.
    dtype = jnp.zeros((), float).dtype
    return {a: np.asarray(spec.axes[a], dtype=dtype)[idx[:, pos[a]]] for a in dynamic}


_RUNNERS: dict[tuple, Callable] = {}


def _cached_runner(spec: SweepSpec, group: Group, mesh: Mesh) -> Callable:
    """One jitted runner per (sweep numbers, static shape, devices), reused across calls in a process."""
    key = (
        spec.fingerprint(),
        tuple(sorted(group.static.items())),
        tuple(d.id for d in mesh.devices.flat),
        cpu_minibatch(spec, group, mesh),
    )
    if key not in _RUNNERS:
        if len(_RUNNERS) >= 64:
            _RUNNERS.clear()
        _RUNNERS[key] = make_group_runner(spec, group, mesh)
    return _RUNNERS[key]


# jaxlib's batched LAPACK kernels (QR, SVD... on CPU) split a batch whose estimated cost reaches this many
# flop over XLA's intra-op thread pool and block the calling pool thread until the pieces finish. Each CPU
# device also executes on that pool, so with several devices every pool thread can end up waiting for pieces
# that no free thread will run: a deadlock (observed with 4 virtual devices on 2 cores). Below the threshold
# the kernels run inline.
_LAPACK_SPLIT_FLOP = 200_000


class CpuLapackWarning(UserWarning):
    """A kernel's LAPACK calls are large enough to deadlock jaxlib on several CPU devices."""


def cpu_minibatch(spec: SweepSpec, group: Group, mesh: Mesh) -> int | None:
    """Runs per vmapped mini-batch on each device, or ``None`` for one vmap over the device's whole shard.

    Only CPU meshes of several devices are limited: the mini-batch keeps every batched LAPACK call of the
    kernel below jaxlib's threshold for splitting it over the shared thread pool (see ``_LAPACK_SPLIT_FLOP``).
    Mini-batches change nothing in the numbers (each run is computed on its own).
    """
    kernel = spec.kernel_object()
    if mesh.devices.size == 1 or mesh.devices.flat[0].platform != "cpu" or kernel.lapack_cost is None:
        return None
    static, _ = _split_params(spec, group)
    cost = int(kernel.lapack_cost(static, spec.record))
    if cost <= 0:
        return None
    if cost >= _LAPACK_SPLIT_FLOP:
        warnings.warn(
            f"kernel {kernel.name!r} makes LAPACK calls of about {cost} flop per run, which jaxlib splits "
            f"over the thread pool shared by {mesh.devices.size} CPU devices and may deadlock; on a CPU "
            "run with devices=1",
            CpuLapackWarning,
            stacklevel=3,
        )
        return 1
    return max(1, (_LAPACK_SPLIT_FLOP - 1) // cost)


def make_group_runner(spec: SweepSpec, group: Group, mesh: Mesh) -> Callable:
    """The jitted, sharded batch function of one group:
    ``(dynamic, point_ids, seeds) -> {variable: (B, ...)}``.

    Each device computes its own contiguous shard of the batch (``shard_map`` over the ``"runs"`` axis, no
    communication): one ``vmap`` over the shard, or ``lax.map`` over mini-batches of :func:`cpu_minibatch`
    runs.

    Args:
        spec: the sweep.
        group: the static-shape group.
        mesh: the device mesh (batch axis ``"runs"``).

    Returns:
        A function of ``dynamic {axis: (B,)}``, ``point_ids (B,)``, ``seeds (B,)`` with ``B`` a multiple of
        the mesh size, returning the kernel's outputs with a leading batch axis, sharded over the mesh.
    """
    kernel = spec.kernel_object()
    static, _ = _split_params(spec, group)
    base_seed = spec.seed
    minibatch = cpu_minibatch(spec, group, mesh)

    def one_run(dynamic, point_id, seed):
        return kernel.fn({**static, **dynamic}, run_key(base_seed, point_id, seed))

    def shard(dynamic, point_ids, seeds):
        if minibatch is None or minibatch >= point_ids.shape[0]:
            return jax.vmap(one_run)(dynamic, point_ids, seeds)
        return jax.lax.map(lambda args: one_run(*args), (dynamic, point_ids, seeds), batch_size=minibatch)

    spec_runs = PartitionSpec(BATCH_AXIS)
    # No collectives: each device's runs are independent, so kernels need no varying-axis annotations.
    sharded = jax.shard_map(shard, mesh=mesh, in_specs=spec_runs, out_specs=spec_runs, check_vma=False)
    sharding = NamedSharding(mesh, spec_runs)
    return jax.jit(sharded, in_shardings=sharding, out_shardings=sharding)


def _barrier(name: str) -> None:
    multihost_utils.sync_global_devices(name)


def _open_store(
    spec: SweepSpec, out: Path, resume: bool, mesh: Mesh, distributed: bool, max_memory: int | None
) -> SweepStore:
    """Open or create the store (memory checked first, then the directory locked); with several JAX
    processes, host 0 decides and locks for all, and the others follow."""
    num_devices = mesh.devices.size

    def check_plan(plan):
        check_memory(plan, list(mesh.devices.flat), max_memory)

    if not distributed:
        return SweepStore.open_for_run(
            out, spec, resume=resume, num_devices=num_devices, check_plan=check_plan
        )
    store, error = None, None
    if jax.process_index() == 0:
        try:
            store = SweepStore.open_for_run(
                out, spec, resume=resume, num_devices=num_devices, check_plan=check_plan
            )
        except InputError as err:
            error = err
    ok = int(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
    if error is not None:
        raise error
    if not ok:
        raise InputError(f"host 0 refused the output directory {out}; see its message")
    return (
        store
        if store is not None
        else SweepStore.open_for_run(out, spec, resume=True, num_devices=num_devices, lock=False)
    )


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    resume: bool = False,
    devices: int | None = None,
    progress: bool = True,
    chunk_size: int | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
    max_memory: int | str | None = None,
):
    """Run (or resume) a sweep into the directory ``out`` and return its xarray Dataset.

    Before anything is computed or written, the plan's memory is estimated and checked against the devices
    (:func:`jaxspec.sweeps.check_memory`); then ``out`` is created, probed for writing and locked, so that
    a second run on the same directory stops at once with an :class:`InputError` naming the first.

    Args:
        spec: the :class:`SweepSpec`.
        out: output directory: new or empty, or (with ``resume``) one that holds this sweep.
        resume: continue an interrupted sweep, skipping every finished chunk.
        devices: local devices to shard over (default all of this host's).
        progress: a tqdm bar over chunks with ETA and runs per second.
        chunk_size: runs per chunk for a new store (overrides ``spec.chunk_size`` and the memory budget).
        process_index, process_count: this host's share of the chunks when hosts are launched without
            ``jax.distributed`` (default: ``jax.process_index()`` and ``jax.process_count()``); needs an
            explicit ``chunk_size`` so that every host cuts the same chunks.
        on_chunk: called with each chunk index after its file is written.
        max_memory: memory one device may use, in bytes or as ``"8G"`` (default: what the device has);
            a sweep whose estimated need exceeds it is refused before anything is written.

    Returns:
        The ``xarray.Dataset`` (see :func:`jaxspec.sweeps.load_sweep`): complete once every chunk of every
        host is done, else partial with a ``done`` mask.

    Example:
        >>> ds = run_sweep(spec, "out", devices=4)               # doctest: +SKIP
    """
    if not isinstance(spec, SweepSpec):
        raise InputError(f"run_sweep needs a SweepSpec, got {type(spec).__name__}")
    if not isinstance(out, str | os.PathLike) or not str(out):
        raise InputError(f"out must be a directory path, got {out!r}")
    require("sweep", "jaxspec.sweeps.run_sweep")  # the store needs it: stop before any work
    if chunk_size is not None:
        spec = dataclasses.replace(spec, chunk_size=chunk_size)
    distributed = jax.process_count() > 1
    if process_index is None and process_count is None:
        process_index, process_count = jax.process_index(), jax.process_count()
    elif distributed:
        raise InputError(
            "process_index/process_count are for hosts launched without jax.distributed; "
            "with jax.distributed they come from JAX"
        )
    elif process_index is None or process_count is None or not 0 <= process_index < process_count:
        raise InputError(f"need 0 <= process_index < process_count, got {process_index}, {process_count}")
    elif process_count > 1 and spec.chunk_size is None:
        raise InputError(
            "hosts launched on their own need an explicit chunk_size, so that every host cuts the "
            "same chunks whatever its devices"
        )
    if max_memory is not None:
        max_memory = parse_memory(max_memory)
    mesh = local_mesh(devices)
    out = Path(out)
    store = _open_store(spec, out, resume, mesh, distributed, max_memory)
    try:
        _run_store(store, mesh, process_index, process_count, distributed, progress, on_chunk)
    finally:
        store.close()
    return load_sweep(out, warn=False)


def _run_store(
    store: SweepStore,
    mesh: Mesh,
    process_index: int,
    process_count: int,
    distributed: bool,
    progress: bool,
    on_chunk: Callable[[int], None] | None,
) -> None:
    """This host's chunks of an open store, then (host 0, or any host finding every chunk) the store."""
    num_devices = mesh.devices.size
    plan = store.plan  # the stored plan: the same chunks whatever this run's devices
    done = store.done_chunks()
    mine = [c for c in plan.chunks if c.index % process_count == process_index]
    todo = [c for c in mine if c.index not in done]
    meta = {
        "devices": num_devices,
        "backend": jax.default_backend(),
        "process_index": process_index,
        "process_count": process_count,
        "host": socket.gethostname(),
    }
    _run_chunks(store, todo, sum(c.num_runs for c in mine), mesh, meta, progress, on_chunk)
    if distributed:
        _barrier("jaxspec-sweep-chunks-written")
    # With jax.distributed host 0 consolidates after the barrier; hosts launched on their own consolidate
    # whenever they find every chunk done (the rename is atomic, so a race leaves one equal copy).
    if (process_index == 0 or not distributed) and store.is_complete:
        store.finalize()
    if distributed:
        _barrier("jaxspec-sweep-finalized")


def _run_chunks(
    store: SweepStore,
    todo: list,
    total_runs: int,
    mesh: Mesh,
    meta: Mapping[str, Any],
    progress: bool,
    on_chunk: Callable[[int], None] | None,
) -> None:
    """Compute the given chunks, one compiled runner per group, writing each as soon as it is fetched.

    The next chunk is dispatched before the previous one is written, so device work overlaps the host's
    file writes; a kill therefore loses at most the two chunks in flight.
    """
    spec, plan = store.spec, store.plan
    num_devices = mesh.devices.size
    sharding = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    bar = tqdm(
        total=total_runs,
        initial=total_runs - sum(c.num_runs for c in todo),
        unit="run",
        unit_scale=True,
        desc=f"sweep {spec.name}",
        disable=not progress,
        dynamic_ncols=True,
        smoothing=0.1,
    )
    runners: dict[int, Callable] = {}

    def dispatch(chunk):
        group = plan.groups[chunk.group]
        if chunk.group not in runners:
            runners[chunk.group] = _cached_runner(spec, group, mesh)
        size = padded_size(group.chunk_runs, num_devices)
        ids, seeds = group.runs(chunk.start, chunk.stop, spec.seeds)
        pad = size - len(ids)
        ids, seeds = np.pad(ids, (0, pad), mode="edge"), np.pad(seeds, (0, pad), mode="edge")
        _, dynamic_axes = _split_params(spec, group)
        dynamic = _dynamic_values(spec, dynamic_axes, ids)
        args = jax.device_put((dynamic, ids.astype(np.int32), seeds.astype(np.int32)), sharding)
        return chunk, runners[chunk.group](*args), time.perf_counter()

    def finish(chunk, outputs, started):
        host = {name: np.asarray(value)[: chunk.num_runs] for name, value in outputs.items()}
        store.write_chunk(chunk.index, host, {**meta, "seconds": time.perf_counter() - started})
        bar.set_postfix_str(f"chunk {chunk.index + 1}/{len(plan.chunks)}", refresh=False)
        bar.update(chunk.num_runs)
        if on_chunk is not None:
            on_chunk(chunk.index)

    try:
        in_flight = None
        for chunk in todo:
            launched = dispatch(chunk)
            if in_flight is not None:
                finish(*in_flight)
            in_flight = launched
        if in_flight is not None:
            finish(*in_flight)
    finally:
        bar.close()
