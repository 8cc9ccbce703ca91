"""Memory of a sweep, estimated from its plan before anything is allocated or written.

The plan (:func:`~jaxspec.sweeps.make_plan`) already knows the peak memory of one run of each group
(``Kernel.run_bytes``) and cuts each group into chunks sized to a per-device budget. A chunk of ``C`` runs
on ``D`` devices holds ``ceil(C / D)`` runs per device, so a device needs ``ceil(C / D) * run_bytes`` at once
(all of them share the host's memory on the CPU backend). The assembled Dataset needs, on the host, every
run's outputs padded to the largest record shape, held twice while the chunks are copied in. A sweep whose
need exceeds what the device (or host) has is refused before its directory is touched; ``max_memory``
(``--max-memory``, parsed by ``jaxspec._memory.parse_memory``) replaces the device's limit for those who
know better.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax

from jaxspec._checks import InputError
from jaxspec._memory import device_memory, format_bytes, host_memory
from jaxspec.sweeps._plan import SweepPlan, group_output_shapes, padded_size

# Bytes per recorded number in the host estimate (float64 / int64: an upper bound for every dtype).
_HOST_ITEM = 8


class MemoryEstimate(NamedTuple):
    """What a sweep needs at its peak.

    Attributes:
        device_bytes: the largest chunk's memory on one device (all devices together on a CPU).
        host_bytes: the assembled Dataset on the host (twice the padded outputs, plus closed forms).
        worst: the static parameters of the group with the largest device need, for the message.
        run_bytes: the peak of one run of that group.
    """

    device_bytes: int
    host_bytes: int
    worst: dict
    run_bytes: int


def estimate_memory(plan: SweepPlan, num_devices: int, *, cpu: bool = False) -> MemoryEstimate:
    """Peak memory of running ``plan`` on ``num_devices`` devices, from shapes alone (nothing computed).

    Args:
        plan: the sweep plan (its groups know ``run_bytes`` and ``chunk_runs``).
        num_devices: devices the chunks are sharded over.
        cpu: the devices are CPU devices sharing the host's memory (their needs add up).

    Returns:
        A :class:`MemoryEstimate`.
    """
    spec = plan.spec
    device, worst, worst_run = 0, {}, 0
    record_sizes: dict[str, int] = {}
    for group in plan.groups:
        per_device = padded_size(group.chunk_runs, num_devices) // num_devices
        need = per_device * group.run_bytes * (num_devices if cpu else 1)
        if need > device:
            device, worst, worst_run = need, dict(group.static), group.run_bytes
        for name, shape in group_output_shapes(spec, group).items():  # traced abstractly: no memory
            record_sizes[name] = max(record_sizes.get(name, 0), math.prod(shape))
    per_run = sum(record_sizes.values()) * _HOST_ITEM + 1
    theory = spec.num_points * 2 * max(record_sizes.values(), default=0) * _HOST_ITEM
    host = 2 * spec.num_runs * per_run + theory
    return MemoryEstimate(int(device), int(host), worst, int(worst_run))


def check_memory(plan: SweepPlan, devices, max_memory: int | None = None) -> MemoryEstimate:
    """Refuse a plan that needs more memory than the devices (or the host) have, before any work.

    Args:
        plan: the sweep plan.
        devices: the devices the chunks are sharded over (a sequence of ``jax.Device``).
        max_memory: bytes a device may use, replacing its own limit (``--max-memory``); the host limit
            becomes ``max(max_memory, host memory)``.

    Returns:
        The :class:`MemoryEstimate`.

    Raises:
        InputError: one line naming the need, the limit and ``--max-memory``.
    """
    devices = list(devices) or jax.local_devices()[:1]
    cpu = devices[0].platform == "cpu"
    estimate = estimate_memory(plan, len(devices), cpu=cpu)
    limit, source = device_memory(devices[0])
    host_limit = host_memory()
    if max_memory is not None:
        limit, source = int(max_memory), "--max-memory"
        host_limit = max(host_limit, limit)
    where = ", ".join(f"{k}={v}" for k, v in estimate.worst.items())
    hint = "lower the width, depth, k or --chunk-size, or pass --max-memory SIZE to allow more"
    if estimate.device_bytes > limit:
        one = f"one run{f' at {where}' if where else ''} needs about {format_bytes(estimate.run_bytes)}"
        raise InputError(
            f"sweep {plan.spec.name!r} needs about {format_bytes(estimate.device_bytes)} per "
            f"{'host (all CPU devices)' if cpu else 'device'} ({one}), more than the "
            f"{format_bytes(limit)} of {source}: refused before anything was written; {hint}"
        )
    if estimate.host_bytes > host_limit:
        raise InputError(
            f"sweep {plan.spec.name!r} would assemble about {format_bytes(estimate.host_bytes)} of results "
            f"({plan.spec.num_runs} runs), more than the {format_bytes(host_limit)} of host memory: refused "
            f"before anything was written; use fewer seeds, points or k, or pass --max-memory SIZE"
        )
    return estimate
