"""The sweep plan: grid points grouped by static shape, (point x seed) runs, and chunks sized to a memory
budget.

Pure bookkeeping (numpy only, no devices). Conventions that make the numbers independent of how a sweep is
executed:

* ``point_id`` is the C-order flat index of a point's axis indices (``numpy.ravel_multi_index``): it depends
  on the grid alone. Run ``(point_id, s)`` uses the key ``fold_in(fold_in(key(seed), point_id), s)``.
* Points that share their static parameters (``width``, ``depth``, ``k``, ``dtype``...) form a **group**; a
  group's runs are ordered point-major (``point_id`` ascending, then seed) and compile once.
* A group's runs are cut into **chunks** of ``chunk_runs`` consecutive runs. The chunk size is fixed when the
  store is created and saved with it, so a resumed sweep finds the same chunks whatever its device count.

Example:
    >>> from jaxspec.sweeps import SweepSpec
    >>> from jaxspec.sweeps._plan import make_plan
    >>> spec = SweepSpec(axes={"width": [4, 8], "sigma2": [1.0, 2.0]}, seeds=3, params={"depth": 10},
    ...                  chunk_size=4)
    >>> plan = make_plan(spec, num_devices=1)
    >>> [len(g.point_ids) for g in plan.groups], len(plan.chunks)
    ([2, 2], 4)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxspec._checks import InputError
from jaxspec.sweeps._spec import SweepSpec


class Chunk(NamedTuple):
    """A slice of one group's runs.

    Attributes:
        index: global chunk number (the store's file name).
        group: index of the group in :attr:`SweepPlan.groups`.
        start: first run (within the group's point-major run list).
        stop: one past the last run.
    """

    index: int
    group: int
    start: int
    stop: int

    @property
    def num_runs(self) -> int:
        return self.stop - self.start


@dataclasses.dataclass(frozen=True, eq=False)
class Group:
    """Grid points with equal static parameters (one compiled kernel).

    Attributes:
        index: position in the plan.
        static: ``{static axis: value}`` shared by the group's points.
        point_ids: ``(P_g,)`` ascending point ids.
        chunk_runs: runs per chunk.
        run_bytes: estimated peak memory of one run.
    """

    index: int
    static: Mapping[str, Any]
    point_ids: np.ndarray
    chunk_runs: int
    run_bytes: int

    def runs(self, start: int, stop: int, seeds: int) -> tuple[np.ndarray, np.ndarray]:
        """``(point_ids, seeds)`` of runs ``start..stop-1``, each ``(stop - start,)``."""
        r = np.arange(start, stop)
        return self.point_ids[r // seeds], r % seeds


@dataclasses.dataclass(frozen=True, eq=False)
class SweepPlan:
    """Groups and chunks of a sweep.

    Attributes:
        spec: the :class:`SweepSpec`.
        groups: the :class:`Group` s, in order of their first point.
        chunks: every :class:`Chunk`, group by group.
    """

    spec: SweepSpec
    groups: tuple[Group, ...]
    chunks: tuple[Chunk, ...]

    def chunk_sizes(self) -> list[int]:
        """Runs per chunk of each group (what a store saves to replay the same chunks)."""
        return [g.chunk_runs for g in self.groups]


def point_indices(spec: SweepSpec, point_ids: np.ndarray) -> np.ndarray:
    """``(P, num_axes)`` axis indices of the given point ids."""
    return np.stack(np.unravel_index(np.asarray(point_ids), spec.grid_shape), axis=-1)


def point_params(spec: SweepSpec, point_id: int) -> dict[str, Any]:
    """All kernel parameters (fixed and axis values) of one grid point, as Python values."""
    idx = point_indices(spec, np.array([point_id]))[0]
    return {**spec.params, **{a: spec.axes[a][int(i)] for a, i in zip(spec.axes, idx, strict=True)}}


def _budget_chunk_runs(spec: SweepSpec, run_bytes: int, num_devices: int) -> int:
    per_device = max(1, int(spec.memory_budget_mb * 2**20) // max(run_bytes, 1))
    return per_device * num_devices


def make_plan(spec: SweepSpec, num_devices: int = 1, chunk_sizes: list[int] | None = None) -> SweepPlan:
    """Group the grid by static parameters and cut each group into chunks.

    Args:
        spec: the sweep.
        num_devices: devices one host computes on; the budget is per device.
        chunk_sizes: runs per chunk of each group, from an existing store (overrides the spec and budget).

    Returns:
        A :class:`SweepPlan`.
    """
    kernel = spec.kernel_object()
    static_axes = [a for a in spec.axes if kernel.parameters[a].static]
    all_ids = np.arange(spec.num_points)
    indices = point_indices(spec, all_ids)
    axis_pos = {a: i for i, a in enumerate(spec.axes)}
    if static_axes:
        cols = indices[:, [axis_pos[a] for a in static_axes]]
        # Group key: the static axis indices; order groups by their first point.
        keys, first, inverse = np.unique(cols, axis=0, return_index=True, return_inverse=True)
        order = np.argsort(first)
        inverse = inverse.reshape(-1)
    else:
        keys, order, inverse = np.zeros((1, 0), int), np.array([0]), np.zeros(spec.num_points, int)
    if chunk_sizes is not None and len(chunk_sizes) != len(order):
        raise InputError(f"the store's plan has {len(chunk_sizes)} groups but the spec has {len(order)}")
    # Point ids of each group key, ascending (a stable sort keeps point order within a key).
    by_key = np.argsort(inverse, kind="stable")
    ids_of_key = np.split(all_ids[by_key], np.cumsum(np.bincount(inverse, minlength=len(keys)))[:-1])
    groups, chunks = [], []
    for g, key_row in enumerate(order):
        static = {a: spec.axes[a][int(i)] for a, i in zip(static_axes, keys[key_row], strict=True)}
        ids = ids_of_key[key_row]
        static_params = {n: v for n, v in spec.params.items() if kernel.parameters[n].static} | static
        run_bytes = int(kernel.run_bytes(static_params, spec.record)) if kernel.run_bytes else 1 << 20
        total = len(ids) * spec.seeds
        if chunk_sizes is not None:
            chunk_runs = int(chunk_sizes[g])
        elif spec.chunk_size is not None:
            chunk_runs = spec.chunk_size
        else:
            chunk_runs = _budget_chunk_runs(spec, run_bytes, num_devices)
        chunk_runs = max(1, min(chunk_runs, total))
        groups.append(Group(g, static, ids, chunk_runs, run_bytes))
        for start in range(0, total, chunk_runs):
            chunks.append(Chunk(len(chunks), g, start, min(start + chunk_runs, total)))
    return SweepPlan(spec, tuple(groups), tuple(chunks))


def padded_size(num_runs: int, num_devices: int) -> int:
    """``num_runs`` rounded up to a multiple of ``num_devices`` (each device gets an equal shard)."""
    return math.ceil(num_runs / num_devices) * num_devices


def run_key(base_seed: int, point_id, seed) -> jax.Array:
    """The key of run ``(point_id, seed)``: ``fold_in(fold_in(key(base_seed), point_id), seed)``."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(base_seed), point_id), seed)


@functools.lru_cache(maxsize=256)
def _output_shapes(spec: SweepSpec, static_items: tuple) -> dict[str, tuple[int, ...]]:
    kernel = spec.kernel_object()
    static = {**spec.params, **dict(static_items), "record": spec.record}
    dynamic = {a: jnp.zeros((), float) for a in spec.axes if not kernel.parameters[a].static}
    shapes = jax.eval_shape(lambda d: kernel.fn({**static, **d}, run_key(spec.seed, 0, 0)), dynamic)
    return {name: tuple(s.shape) for name, s in shapes.items()}


def group_output_shapes(spec: SweepSpec, group: Group) -> dict[str, tuple[int, ...]]:
    """``{variable: shape}`` of one run's outputs in ``group`` (traced abstractly, nothing is computed)."""
    return _output_shapes(spec, tuple(sorted(group.static.items())))
