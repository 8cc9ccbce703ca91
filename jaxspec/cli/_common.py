"""Helpers shared by the CLI subcommands: dtype set-up, JSON encoding, run metadata, memory estimates before
allocating, compile/run timing, and the reasons printed beside every non-finite number."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.monitoring
import numpy as np

from jaxspec._checks import DTYPES, InputError, check_choice
from jaxspec._checks import check_seed as _check_seed
from jaxspec._memory import device_memory, format_bytes, host_memory, parse_memory

# ----------------------------------------------------------------------------------------------------------
# dtype, JSON, metadata


def setup_dtype(dtype: str) -> None:
    """Enable 64-bit JAX when float64 is requested (must run before any array is made)."""
    check_choice("--dtype", dtype, DTYPES)
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)


def finite_list(values) -> list[float | None] | None:
    """A JSON-safe list: non-finite entries (``-inf`` for collapsed ranks, NaN) become ``null``; the
    payload's ``notes`` say why."""
    if values is None:
        return None
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(values, dtype=float).ravel()]


def runtime_info() -> dict[str, Any]:
    return {
        "backend": jax.default_backend(),
        "device_count": jax.device_count(),
        "jax_version": jax.__version__,
    }


def print_json(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, allow_nan=False))


def check_seed(seed: Any, name: str = "--seed") -> int:
    """A base seed as JAX keys take it (:func:`jaxspec._checks.check_seed`), named as the option."""
    return _check_seed(seed, name)


# ----------------------------------------------------------------------------------------------------------
# memory: estimate from the configuration, refuse before allocating

#: What the JAX runtime, compiled programs and the Python process hold besides the arrays of a run.
RUNTIME_OVERHEAD_BYTES = 256 * 2**20


def check_memory(estimate: float, what: str, max_memory: str | None, *, on_device: bool = True) -> None:
    """Refuse (one line) when ``estimate`` bytes exceed what the machine has, or ``--max-memory``.

    ``--max-memory`` overrides the machine's figure in both directions: a larger value lets a run try anyway,
    a smaller one caps it.
    """
    override = None if max_memory is None else parse_memory(max_memory)
    if override is not None:
        limit, where = override, "--max-memory"
    elif on_device:
        limit, where = device_memory(jax.devices()[0])
    else:
        limit, where = host_memory(), "host memory"
    if estimate > limit:
        raise InputError(
            f"{what} needs about {format_bytes(estimate)} but {where} is {format_bytes(limit)}: reduce the "
            "size, or pass --max-memory SIZE (e.g. --max-memory 64G) to try anyway"
        )


def dtype_bytes(dtype: str) -> int:
    return 8 if dtype == "float64" else 4


def lyapunov_memory(
    width: int, depth: int, k: int, seeds: int, dtype: str, method: str, *, haar: bool = False
) -> float:
    """Bytes a ``lyapunov_spectrum`` run holds at once, from its configuration.

    The direct path draws every seed's ``(N, N)`` layer at once (vmapped): the float32 normal draw, the scaled
    weight and the product, with a QR of ``(N, k)`` frames (Haar layers add an ``N x N`` QR). Measured on CPU
    (width 1024-2048, 4-16 seeds): about ``4.3 N^2`` values per seed plus the frames and ~190 MB of runtime,
    so ``6 N^2 + 8 N k`` values per seed is an upper estimate. The exact samplers hold ``O(k)`` per seed. Both
    keep the ``(seeds, L)`` active counts.
    """
    b = dtype_bytes(dtype)
    per_seed = 16.0 * k * 8 + depth * 8.0
    if method == "direct":
        per_seed += (6.0 + (6.0 if haar else 0.0)) * width * width * b + 8.0 * width * k * b
    return (
        seeds * per_seed
        + ENSEMBLE_BYTES_PER_LAYER * depth
        + OUTPUT_BYTES_PER_INDEX * k
        + RUNTIME_OVERHEAD_BYTES
    )


def svals_memory(width: int, input_width: int, depth: int, seeds: int, dtype: str, prefixes: bool) -> float:
    """Bytes of the exact singular values of ``seeds`` realisations (vmapped): per seed the ``(N, N)`` layer,
    the ``(N, n_0)`` frame, the ``(n_0, n_0)`` graded core and its Jacobi tables, and ``(L, n_0)``
    prefixes."""
    b = dtype_bytes(dtype)
    per_seed = 6.0 * width * width * b + 8.0 * width * input_width * b + 12.0 * input_width**2 * 8
    output = (
        OUTPUT_BYTES_PER_INDEX * input_width * (depth if prefixes else 1) + ENSEMBLE_BYTES_PER_LAYER * depth
    )
    if prefixes:
        per_seed += 2.0 * depth * input_width * 8
    return seeds * per_seed + output + RUNTIME_OVERHEAD_BYTES


def count_law_support(width: int, p: float | None, fixed: bool) -> int:
    """How many active counts of a layer's law have a probability that float64 represents (``pmf > 0``):
    one for a deterministic count, about ``2 sqrt(2 * 745 * N p (1 - p))`` for a binomial (its pmf
    underflows below ``e^-745`` beyond that)."""
    if fixed or p is None or p >= 1.0:
        return 1
    return int(min(width + 1, 2 * math.ceil(math.sqrt(2 * 745 * width * p * (1 - p))) + 3))


#: Bytes per layer of an ensemble's static description (its ``widths`` tuple) and of the theory's per-layer
#: count laws (one small tuple per layer).
ENSEMBLE_BYTES_PER_LAYER = 8
LAW_BYTES_PER_LAYER = 200
#: Bytes per printed index: the Python floats and lists of the JSON payload and its text (measured: 5.4 GB
#: peak for ``theory --width 10000000 --json``, about 540 B per index).
OUTPUT_BYTES_PER_INDEX = 600


def theory_memory(width: int, k: int, support: int, depth: int = 1) -> float:
    """Bytes of the closed forms: about ten ``(k, support)`` float64 tables of the count-law sums, the
    binomial pmf's ``(N + 1,)`` temporaries, one count law per layer and the printed output."""
    tables = 10.0 * 8 * k * support + 6.0 * 8 * (width + 1)
    return tables + LAW_BYTES_PER_LAYER * depth + OUTPUT_BYTES_PER_INDEX * k + 64 * 2**20


# ----------------------------------------------------------------------------------------------------------
# compile / run timing

_COMPILE_PREFIX = "/jax/core/compile/"
_spans: list[tuple[float, float]] | None = None
_lock = threading.Lock()


def _record_span(event: str, start: float, end: float, **_kwargs) -> None:
    if _spans is not None and event.startswith(_COMPILE_PREFIX):
        with _lock:
            _spans.append((start, end))


class CompileClock:
    """Wall time of a block split into compilation and the rest.

    JAX reports every trace, lowering and backend compile (or persistent-cache retrieval) as a time span
    (``jax.monitoring``); ``compile_seconds`` is the length of their union inside the block (nested traces are
    counted once) and ``run_seconds = wall_seconds - compile_seconds``: the execution, which the block ends
    with ``block_until_ready``.

    Example:
        >>> with CompileClock() as clock:
        ...     _ = jax.jit(lambda x: x + 1)(1.0).block_until_ready()
        >>> clock.wall_seconds >= clock.compile_seconds >= 0
        True
    """

    def __enter__(self) -> CompileClock:
        global _spans
        _spans = []
        jax.monitoring.register_event_time_span_listener(_record_span)
        self._start = time.perf_counter()
        self._wall_start = time.time()
        return self

    def __exit__(self, *exc) -> None:
        global _spans
        self.wall_seconds = time.perf_counter() - self._start
        jax.monitoring.unregister_event_time_span_listener(_record_span)
        spans, _spans = sorted(_spans or []), None
        total, current_end = 0.0, -math.inf
        for start, end in spans:
            start = max(start, self._wall_start)
            if end <= current_end:
                continue
            total += end - max(start, current_end)
            current_end = end
        self.compile_seconds = min(total, self.wall_seconds)
        self.run_seconds = self.wall_seconds - self.compile_seconds


# ----------------------------------------------------------------------------------------------------------
# non-finite numbers and their reasons


def fmt_number(value: float | None, width: int, digits: int) -> str:
    """A right-aligned number; ``-inf``, ``inf`` and ``nan`` printed as such, ``-`` for None."""
    if value is None:
        return f"{'-':>{width}}"
    value = float(value)
    if math.isfinite(value):
        return f"{value:{width}.{digits}f}"
    return f"{'-inf' if value == -math.inf else 'inf' if value > 0 else 'nan':>{width}}"


def join_notes(*parts: str | None) -> str | None:
    kept = [p for p in parts if p]
    return "; ".join(kept) if kept else None


def lyapunov_notes(
    per_seed: np.ndarray,
    counted: np.ndarray,
    theory_values: np.ndarray | None,
    theory_se: np.ndarray | None,
    *,
    depth: int,
    condition: str,
    dtype: str,
) -> list[str | None]:
    """The reason for every non-finite entry of one ``lyapunov`` row (``None`` where all are finite).

    Args:
        per_seed: ``(seeds, k)`` exponents per seed.
        counted: ``(seeds, k)`` layers that entered each index's estimate.
        theory_values, theory_se: the closed form and its predicted standard error (or ``None``).
        depth, condition, dtype: of the run.
    """
    per_seed = np.asarray(per_seed, float)
    counted = np.asarray(counted)
    seeds, k = per_seed.shape
    rule = {"K>=i": "K>={i}", "K>=k": f"K>={k}", "none": "K>={i}"}[condition]
    notes: list[str | None] = []
    for j in range(k):
        i = j + 1
        column = per_seed[:, j]
        finite = np.isfinite(column)
        layers = int(np.sum(counted[:, j]))
        collapsed = int(np.sum(column == -np.inf))
        nan_seeds = int(np.sum(np.isnan(column)))
        sim = None
        if collapsed:
            sim = (
                f"rank collapse: some layer had K<{i} in {collapsed} of {seeds} seeds, so the exponent is "
                "-inf "
                "under condition none"
            )
        elif not finite.any():
            if layers == 0:
                sim = (
                    f"{rule.format(i=i)} on 0 of {depth} layers in every one of {seeds} seeds: not estimated"
                )
            else:
                sim = f"non-finite in {dtype} on {layers} counted layers (overflow or underflow)"
        elif finite.sum() < 2:
            sim = (
                f"estimated in {int(finite.sum())} of {seeds} seeds ({rule.format(i=i)} on {layers} of "
                f"{depth * seeds} layers): no standard error"
            )
        elif nan_seeds:
            # Seeds with no counted layer are left out of the mean, which stays finite: say how thin it is.
            sim = (
                f"estimated in {int(finite.sum())} of {seeds} seeds ({rule.format(i=i)} on {layers} of "
                f"{depth * seeds} layers)"
            )
        th = None
        if theory_values is not None:
            t = float(theory_values[j])
            if t == -np.inf:
                th = (
                    f"theory -inf: K<{i} has positive probability on a layer (condition none counts "
                    "every layer)"
                    if condition == "none"
                    else f"theory -inf: P({rule.format(i=i)}) = 0 on every layer"
                )
            elif not math.isfinite(t):
                th = "theory not finite"
            elif theory_se is not None:
                s = float(theory_se[j])
                if s == 0:
                    th = "exact theory (zero variance): no z"
                elif not math.isfinite(s):
                    th = f"no predicted standard error: P({rule.format(i=i)}) = 0"
        notes.append(join_notes(sim, th))
    return notes


def spectrum_table(mean, stderr, theory, theory_se=None, notes: Sequence[str | None] | None = None) -> str:
    """A readable table: index, simulation, standard error, theory, the z-score and, for any non-finite
    entry, its reason."""
    lines = [f"{'i':>4} {'simulated':>12} {'stderr':>10} {'theory':>12} {'z':>7}"]
    mean = np.asarray(mean, float)
    stderr = np.asarray(stderr, float)
    for i, m in enumerate(mean):
        se = float(stderr[i])
        th = None if theory is None else float(theory[i])
        scale = se if theory_se is None else float(theory_se[i])
        z = None
        if (
            th is not None
            and math.isfinite(th)
            and math.isfinite(float(m))
            and scale > 0
            and math.isfinite(scale)
        ):
            z = (float(m) - th) / scale
        row = (
            f"{i + 1:>4} {fmt_number(m, 12, 6)} {fmt_number(se, 10, 6)} {fmt_number(th, 12, 6)} "
            f"{fmt_number(z, 7, 2)}"
        )
        note = None if notes is None else notes[i]
        lines.append(row + (f"  {note}" if note else ""))
    return "\n".join(lines)
