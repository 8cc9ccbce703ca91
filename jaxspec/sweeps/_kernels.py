"""Sweep kernels: what one run (one grid point, one seed) computes, and the registry that names them.

A kernel is a pure function ``fn(params, seed_key) -> {record: array}`` of one run. ``params`` maps each of
the kernel's parameter names to its value at this grid point: static parameters (those that change shapes or
code paths, such as ``width`` or ``dtype``) arrive as Python values, dynamic ones (numbers that only enter the
arithmetic, such as ``sigma2`` or ``p``) as traced scalars, because the executor ``vmap`` s the kernel over
points that share their static parameters and compiles it once per static shape. ``params["record"]`` is the
tuple of records asked for. The kernel returns one array per record variable, without a batch axis.

Later capabilities add their own kernels with :func:`register_kernel`; :data:`KERNELS` holds them by name.

Example:
    >>> from jaxspec.sweeps._kernels import get_kernel
    >>> kernel = get_kernel("lyapunov")
    >>> sorted(kernel.records)
    ['alignment', 'exponents', 'rates', 'svals', 'svals_prefixes']

References:
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxspec import theory
from jaxspec._checks import DTYPES, PRECISIONS, InputError
from jaxspec.analysis import ensemble_log_svals, prefix_alignment
from jaxspec.engine import (
    CONDITIONS,
    METHODS,
    QR_BACKENDS,
    check_fast_path,
    counted_layers,
    ensemble_frame_sums,
    exponents_from_sums,
    make_config,
    realisation_key,
    window_rates,
)
from jaxspec.ensembles import ENSEMBLE_NAMES, make_ensemble


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()
"""Default of a parameter that every spec must set (as a fixed parameter or as an axis)."""


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One parameter of a kernel.

    Attributes:
        kind: ``int``, ``float``, ``str`` or ``bool``; spec values are coerced to it (``2`` -> ``2.0``).
        static: whether the parameter changes shapes or code paths; points are grouped by their static values
            and each group compiles once. Dynamic parameters are vmapped.
        default: the value when the spec does not set it, :data:`REQUIRED`, or ``None`` (meaning "the
            kernel's own default"; the spec may then also write nothing).
        doc: one line for humans.
        choices: the allowed values, if finite.
        check: ``value -> message or None``: a per-value check (``None`` values are never checked).
    """

    kind: type
    static: bool
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None

    def coerce(self, name: str, value: Any) -> Any:
        """The value in this parameter's kind, or an :class:`InputError` naming the parameter."""
        if value is None:
            if self.default is None:
                return None
            raise InputError(f"parameter {name!r} cannot be empty")
        if self.kind is bool:
            if not isinstance(value, bool | np.bool_):
                raise InputError(f"parameter {name!r} must be true or false, got {value!r}")
            value = bool(value)
        elif self.kind is int:
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float | np.integer | np.floating)
                or float(value) != int(value)
            ):
                raise InputError(f"parameter {name!r} must be an integer, got {value!r}")
            value = int(value)
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
                raise InputError(f"parameter {name!r} must be a number, got {value!r}")
            value = float(value)
            if not np.isfinite(value):
                raise InputError(f"parameter {name!r} must be finite, got {value!r}")
        elif self.kind is str:
            if not isinstance(value, str):
                raise InputError(f"parameter {name!r} must be a string, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise InputError(
                f"parameter {name!r} must be one of {', '.join(map(str, self.choices))}, got {value!r}"
            )
        if self.check is not None:
            message = self.check(value)
            if message:
                raise InputError(f"parameter {name!r} {message}, got {value!r}")
        return value


@dataclasses.dataclass(frozen=True)
class Record:
    """One thing a kernel can record.

    Attributes:
        variables: ``{variable name: dims}``: the arrays this record adds to a run's output and the names of
            their dimensions (without the batch axis), e.g. ``{"exponents": ("index",)}``.
        always: recorded whether or not the spec asks for it.
        doc: one line for humans.
    """

    variables: Mapping[str, tuple[str, ...]]
    always: bool = False
    doc: str = ""


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A named sweep kernel (see the module docstring for the calling convention).

    Attributes:
        name: registry name, used as ``kernel = "..."`` in a spec.
        fn: ``(params, seed_key) -> {variable: array}`` for one run; pure, jit- and vmap-able.
        parameters: ``{name: Parameter}``.
        records: ``{record name: Record}``.
        check: optional cross-parameter check ``(static params, dynamic params, record) -> None`` that raises
            :class:`InputError`; called with Python values before anything is traced.
        run_bytes: optional ``(static params, record) -> int``: the peak memory of one run, used to size
            chunks to a memory budget.
        theory: optional ``(params, record) -> {variable: (dims, array)}`` of closed-form predictions for one
            grid point (Python values), stored next to the simulations.
        lapack_cost: optional ``(static params, record) -> int``: the largest cost (flop, as jaxlib estimates
            it: ``2 m n^2`` for a QR of an ``m x n`` matrix) that one run adds to a batched LAPACK call. On a
            CPU mesh of several devices the executor keeps such batches below jaxlib's threshold for splitting
            them over the shared thread pool (which can deadlock); ``None`` means no LAPACK calls.
    """

    name: str
    fn: Callable[[Mapping[str, Any], jax.Array], dict[str, jax.Array]]
    parameters: Mapping[str, Parameter]
    records: Mapping[str, Record]
    check: Callable[[Mapping[str, Any], Mapping[str, Any], tuple[str, ...]], None] | None = None
    run_bytes: Callable[[Mapping[str, Any], tuple[str, ...]], int] | None = None
    theory: (
        Callable[[Mapping[str, Any], tuple[str, ...]], dict[str, tuple[tuple[str, ...], np.ndarray]]] | None
    ) = None
    lapack_cost: Callable[[Mapping[str, Any], tuple[str, ...]], int] | None = None

    @property
    def static_names(self) -> tuple[str, ...]:
        return tuple(name for name, par in self.parameters.items() if par.static)

    def variables(self, record: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        """``{variable: dims}`` of every array a run returns when ``record`` is asked for."""
        out: dict[str, tuple[str, ...]] = {}
        for name, rec in self.records.items():
            if rec.always or name in record:
                out.update(rec.variables)
        return out


KERNELS: dict[str, Kernel] = {}
"""The registry: kernel name -> :class:`Kernel`."""


def register_kernel(kernel: Kernel, *, replace: bool = False) -> Kernel:
    """Add a kernel to :data:`KERNELS` (returns it, so it can be used as ``KERNEL = register_kernel(...)``).

    Args:
        kernel: the :class:`Kernel`.
        replace: allow replacing a kernel of the same name.
    """
    if not replace and kernel.name in KERNELS:
        raise InputError(f"a sweep kernel named {kernel.name!r} is already registered")
    reserved = {"record", "seed", "seeds", "point_id"} & set(kernel.parameters)
    if reserved:
        raise InputError(f"kernel parameters may not be named {', '.join(sorted(reserved))}")
    KERNELS[kernel.name] = kernel
    return kernel


def get_kernel(name: str) -> Kernel:
    """The registered kernel ``name`` (raises :class:`InputError` listing the known ones)."""
    try:
        return KERNELS[name]
    except KeyError:
        raise InputError(
            f"unknown sweep kernel {name!r}; known kernels: {', '.join(sorted(KERNELS))}"
        ) from None


# ----------------------------------------------------------------------------------------------------------
# The built-in kernel: the Lyapunov spectrum of one realisation of an ensemble (jaxspec.engine).


def _positive(value) -> str | None:
    return None if value > 0 else "must be positive"


def _probability(value) -> str | None:
    return None if 0 < value <= 1 else "must lie in (0, 1]"


def _ensemble(params: Mapping[str, Any]):
    masked = params["ensemble"] == "masked"
    return make_ensemble(
        params["ensemble"],
        params["width"],
        params["depth"],
        sigma2=params.get("sigma2"),
        p=params.get("p") if masked else None,
        fixed_count=params.get("fixed_count") if masked else None,
    )


def _engine_config(params: Mapping[str, Any], record: tuple[str, ...]):
    """The engine's own validated configuration of one point (static parameters are Python values)."""
    k = params["width"] if params.get("k") is None else params["k"]
    rates_every = params.get("rates_every") if "rates" in record else None
    return make_config(
        k,
        max_k=params["width"],
        reortho_every=params["reortho_every"],
        dtype=params["dtype"],
        precision=params["precision"],
        condition=params["condition"],
        rates_every=rates_every,
        qr=params["qr"],
        method=params["method"],
    )


def lyapunov_kernel(params: Mapping[str, Any], seed_key: jax.Array) -> dict[str, jax.Array]:
    """One run of :func:`jaxspec.engine.ensemble_frame_sums` on ``make_ensemble(params...)``, summarised.

    Args:
        params: the kernel parameters of one point (see :data:`LYAPUNOV`), plus ``record``.
        seed_key: this run's key.

    Returns:
        ``exponents (k,)``, ``counted_layers (k,)``, ``min_active ()``; with ``rates``,
        ``rates (windows, k)``; with ``svals``, ``log_svals (k,)``; with ``svals_prefixes``,
        ``log_svals_prefixes (L, k)``; with ``alignment``, ``alignment_log_sin (L,)``:
        ``log sin angle(v_1(J_l), v_1(J_L))`` of the prefixes ``J_l = A_l ... A_1`` of the same realisation.

    References:
        Benettin et al. (1980) for the QR method; Haas et al., arXiv:2602.12384, for masked products.
    """
    record = params["record"]
    ensemble = _ensemble(params)
    config = _engine_config(params, record)
    sums = ensemble_frame_sums(ensemble, seed_key, config)
    out = {
        "exponents": exponents_from_sums(sums, config.condition),
        "counted_layers": counted_layers(sums, config.condition).astype(jnp.int32),
        "min_active": sums.min_active.astype(jnp.int32),
    }
    if "rates" in record:
        out["rates"] = window_rates(
            sums.block_log_r, sums.block_size, config.reortho_every, config.rates_every
        )
    for name, prefixes in (("svals", False), ("svals_prefixes", True)):
        if name in record:
            svals = ensemble_log_svals(
                ensemble, seed_key, prefixes=prefixes, dtype=config.jnp_dtype, precision=config.lax_precision
            )
            out["log_" + name] = getattr(svals, "log_svals", svals)[..., : config.k]
    if "alignment" in record:
        stack = ensemble.sample(realisation_key(seed_key), config.jnp_dtype)
        # log sin angle(v_1(J_l), v_1(J_L)), l = 1..L; the last prefix is J_L itself (-inf).
        out["alignment_log_sin"] = jnp.log(prefix_alignment(stack.weights, stack.masks, k=1)[:, 0])
    return out


def _lyapunov_check(static: Mapping[str, Any], dynamic: Mapping[str, Any], record: tuple[str, ...]) -> None:
    name = static["ensemble"]
    if name != "masked":
        for masked_only in ("p", "fixed_count"):
            if static.get(masked_only, dynamic.get(masked_only)) is not None:
                raise InputError(
                    f"parameter {masked_only!r} only applies to the masked ensemble, not {name!r}"
                )
    # The ensemble's and engine's own validation, with this point's Python values.
    ensemble = make_ensemble(
        name,
        static["width"],
        static["depth"],
        sigma2=dynamic.get("sigma2", static.get("sigma2")),
        p=dynamic.get("p", static.get("p")),
        fixed_count=static.get("fixed_count"),
    )
    rates_every = static.get("rates_every")
    if "rates" in record:
        if rates_every is None:
            raise InputError("record 'rates' needs the parameter rates_every (layers per window)")
        if rates_every > static["depth"]:
            raise InputError(f"rates_every = {rates_every} exceeds depth = {static['depth']}: no full window")
    _engine_config(static, record)
    if static["method"] != "direct":
        check_fast_path(ensemble, static["method"])
        product_records = sorted({"svals", "svals_prefixes", "alignment"} & set(record))
        if product_records:
            raise InputError(
                f"method {static['method']!r} samples exponents only (no product exists); records "
                f"{', '.join(product_records)} need method 'direct'"
            )


def _lyapunov_run_bytes(static: Mapping[str, Any], record: tuple[str, ...]) -> int:
    """Peak memory of one run: a few ``N x N`` draws (Gaussian, QR/SVD workspace), the frame, and per-layer
    bookkeeping; doubled for XLA's temporaries."""
    n, depth = static["width"], static["depth"]
    k = n if static.get("k") is None else static["k"]
    item = np.dtype(static["dtype"]).itemsize
    acc = 8
    method = static.get("method", "direct")
    if method == "chi":
        layer_terms = 8 * k + 4 * n
    elif method == "gaussian_frame":
        layer_terms = 8 * n * k + 4 * n
    else:
        layer_terms = 4 * n * n + 8 * n * k + 4 * n
    per_depth = 4 + (acc * k if "rates" in record else 0)
    svals = 8 * n * n if {"svals", "svals_prefixes"} & set(record) else 0
    svals += acc * depth * k if "svals_prefixes" in record else 0
    # Alignment holds the sampled stack and every prefix product (L x N x N each), plus their SVDs.
    svals += 4 * item * depth * n * n if "alignment" in record else 0
    return 2 * (item * layer_terms + depth * per_depth + acc * 3 * k + svals) + 1024


def _lyapunov_lapack_cost(static: Mapping[str, Any], record: tuple[str, ...]) -> int:
    """Largest per-run cost of a batched LAPACK call (jaxlib's estimate ``2 m n^2`` for ``geqrf`` and
    ``orgqr``)."""
    n, depth = static["width"], static["depth"]
    k = n if static.get("k") is None else static["k"]
    costs = [0]
    method = static.get("method", "direct")
    if method in ("direct", "gaussian_frame"):
        # QR of the (N, k) frame; the Cholesky backends keep a Householder fallback, computed under vmap too.
        costs.append(2 * n * k * k)
    if static["ensemble"] == "orthogonal" and method == "direct":
        costs.append(2 * n**3)  # a Haar layer is the QR of an N x N Gaussian
    if {"svals", "svals_prefixes"} & set(record):
        costs.append(2 * n**3)
    if "alignment" in record:
        costs.append(depth * 8 * n**3)  # one SVD per prefix, L of them per run
    return max(costs)


def _lyapunov_theory(params: Mapping[str, Any], record: tuple[str, ...]) -> dict:
    ensemble = _ensemble({**params, "record": record})
    k = params["width"] if params.get("k") is None else params["k"]
    exponents = theory.lyapunov_exponents(ensemble, k, params["condition"])
    # One run's predicted standard deviation: the standard error of a single seed.
    sd = theory.predicted_stderr(ensemble, k, seeds=1, condition=params["condition"])
    if exponents is None:
        exponents, sd = np.full(k, np.nan), np.full(k, np.nan)
    return {
        "theory_exponents": (("index",), np.asarray(exponents, float)),
        "theory_run_sd": (("index",), np.asarray(sd, float)),
    }


LYAPUNOV = register_kernel(
    Kernel(
        name="lyapunov",
        fn=lyapunov_kernel,
        parameters={
            "ensemble": Parameter(
                str, True, "masked", "gaussian, orthogonal, masked or relu-net", choices=ENSEMBLE_NAMES
            ),
            "width": Parameter(int, True, REQUIRED, "layer width N", check=_positive),
            "depth": Parameter(int, True, REQUIRED, "number of layers L", check=_positive),
            "sigma2": Parameter(
                float, False, None, "weight variance times fan-in (default 1, relu-net 2)", check=_positive
            ),
            "p": Parameter(
                float,
                False,
                None,
                "gate probability of the masked ensemble (default 0.5)",
                check=_probability,
            ),
            "fixed_count": Parameter(
                int,
                True,
                None,
                "masked ensemble: exactly this many active units per layer",
                check=lambda v: None if v >= 0 else "must be non-negative",
            ),
            "k": Parameter(
                int,
                True,
                None,
                "number of exponents (default: the width, the full spectrum)",
                check=_positive,
            ),
            "reortho_every": Parameter(
                int, True, 1, "layers between QR re-orthonormalisations", check=_positive
            ),
            "dtype": Parameter(str, True, "float32", "compute dtype", choices=DTYPES),
            "precision": Parameter(str, True, "highest", "matmul precision", choices=tuple(PRECISIONS)),
            "condition": Parameter(str, True, "K>=i", "rank-collapse convention", choices=CONDITIONS),
            "qr": Parameter(
                str, True, "householder", "QR backend (jaxspec.engine.make_qr)", choices=QR_BACKENDS
            ),
            "method": Parameter(
                str,
                True,
                "direct",
                "direct product, or an exact-in-law fast sampler of jaxspec.engine "
                "(gaussian_frame, chi; gaussian and masked ensembles, exponents only)",
                choices=METHODS,
            ),
            "rates_every": Parameter(
                int, True, None, "layers per window of the local rates (record 'rates')", check=_positive
            ),
        },
        records={
            "exponents": Record(
                {"exponents": ("index",), "counted_layers": ("index",), "min_active": ()},
                always=True,
                doc="Lyapunov exponents, layers counted per index, min active count",
            ),
            "rates": Record(
                {"rates": ("window", "index")},
                doc="local growth rates averaged over windows of rates_every layers",
            ),
            "svals": Record(
                {"log_svals": ("index",)}, doc="log singular values of the depth-L product (jaxspec.analysis)"
            ),
            "svals_prefixes": Record(
                {"log_svals_prefixes": ("layer", "index")},
                doc="log singular values of every prefix product A_l ... A_1 (jaxspec.analysis)",
            ),
            "alignment": Record(
                {"alignment_log_sin": ("layer",)},
                doc="log sin angle between the top right singular vectors of J_l and J_L",
            ),
        },
        check=_lyapunov_check,
        run_bytes=_lyapunov_run_bytes,
        theory=_lyapunov_theory,
        lapack_cost=_lyapunov_lapack_cost,
    )
)
