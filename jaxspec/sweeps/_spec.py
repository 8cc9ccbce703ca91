"""The sweep specification: a frozen, validated description of a grid of runs.

A sweep runs one kernel (by default ``lyapunov``: the spectrum of one realisation of an ensemble) at every
point of a grid, ``seeds`` times. The grid is the Cartesian product of its **axes**; every other kernel
parameter is fixed for the whole sweep (**params**). A spec file in TOML (or YAML, or JSON)::

    name = "small"
    kernel = "lyapunov"          # optional, the default
    seeds = 16
    seed = 0                     # base seed; run (point, s) uses fold_in(fold_in(key(seed), point_id), s)
    record = ["exponents", "rates"]

    [params]                     # fixed for every point (kernel parameters may also sit at the top level)
    ensemble = "masked"
    k = 4
    rates_every = 10

    [axes]                       # the grid, in this order
    width = [8, 16]
    depth = [50, 100]
    sigma2 = [1.0, 2.0]
    p = [0.5, 0.75, 1.0]

Execution settings (``chunk_size``, ``memory_budget_mb``) may sit in the file too; they never change the
numbers, so a resumed sweep may use different ones.

Everything is validated up front (unknown keys, empty axes, impossible values), with the kernel's and the
ensemble's own checks run on Python values before anything is traced.

Example:
    >>> from jaxspec.sweeps import SweepSpec
    >>> spec = SweepSpec(axes={"width": [8, 16], "p": [0.5, 1.0]}, seeds=4, params={"depth": 50, "k": 2})
    >>> spec.num_points, spec.num_runs
    (4, 16)
    >>> spec.with_overrides(["seeds=8", "axes.p=[0.25, 0.5]"]).axes["p"]
    (0.25, 0.5)

References:
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib.resources
import itertools
import json
import math
import tomllib
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxspec._checks import InputError
from jaxspec._extras import optional_import
from jaxspec.sweeps._kernels import REQUIRED, Kernel, get_kernel

SCIENCE_KEYS = ("name", "kernel", "seeds", "seed", "record", "params", "axes")
"""Top-level keys that define the numbers (``name`` is a label only)."""
EXECUTION_KEYS = ("chunk_size", "memory_budget_mb")
"""Top-level keys that only change how the runs are batched, never the numbers."""
DEFAULT_MEMORY_BUDGET_MB = 256.0


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _freeze(mapping: Mapping[str, Any]) -> types.MappingProxyType:
    return types.MappingProxyType(dict(mapping))


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


@dataclasses.dataclass(frozen=True, eq=False)
class SweepSpec:
    """A validated sweep: a kernel, its fixed parameters, its grid axes, seeds and what to record.

    Construct it directly, with :func:`load_spec` from a file, or with :meth:`from_dict`; derive variants with
    :meth:`with_overrides` (the CLI's ``--set key=value``). Construction validates everything and fills the
    kernel's defaults into ``params``, so two specs describing the same sweep compare equal.

    Attributes:
        axes: ``{name: values}``, the grid (Cartesian product, in this order); values are coerced to the
            parameter's kind, non-empty and distinct. Point ``point_id`` is the C-order flat index of its axis
            indices, so it depends on the grid only, never on chunking, devices or hosts.
        seeds: runs per grid point.
        params: ``{name: value}``: every kernel parameter that is not an axis (defaults filled in).
        kernel: registry name of the kernel (:mod:`jaxspec.sweeps.kernels`).
        record: what to record beyond what the kernel always records (``lyapunov``: ``"rates"``,
            ``"svals"``, ``"svals_prefixes"``; ``"exponents"`` is always recorded).
        seed: base seed.
        name: a label for humans and figure titles.
        chunk_size: runs per chunk (overrides the memory budget).
        memory_budget_mb: memory one chunk may take per device, in MiB; chunks are sized from it.
    """

    axes: Mapping[str, Sequence[Any]]
    seeds: int
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    kernel: str = "lyapunov"
    record: tuple[str, ...] = ()
    seed: int = 0
    name: str = "sweep"
    chunk_size: int | None = None
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB

    def __post_init__(self) -> None:
        kernel = get_kernel(self.kernel) if isinstance(self.kernel, str) else None
        if kernel is None:
            raise InputError(f"kernel must be a string, got {self.kernel!r}")
        if not _is_positive_int(self.seeds):
            raise InputError(f"seeds must be a positive integer, got {self.seeds!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            raise InputError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        if not isinstance(self.name, str) or not self.name:
            raise InputError(f"name must be a non-empty string, got {self.name!r}")
        if self.chunk_size is not None and not _is_positive_int(self.chunk_size):
            raise InputError(f"chunk_size must be a positive integer, got {self.chunk_size!r}")
        budget = self.memory_budget_mb
        if (
            isinstance(budget, bool)
            or not isinstance(budget, int | float)
            or not math.isfinite(budget)
            or budget <= 0
        ):
            raise InputError(f"memory_budget_mb must be a positive number, got {budget!r}")
        object.__setattr__(self, "memory_budget_mb", float(budget))
        object.__setattr__(self, "record", self._check_record(kernel))
        object.__setattr__(self, "axes", _freeze(self._check_axes(kernel)))
        object.__setattr__(self, "params", _freeze(self._check_params(kernel)))
        self._check_points(kernel)

    # -- validation -------------------------------------------------------------------------------------

    def _check_record(self, kernel: Kernel) -> tuple[str, ...]:
        record = (self.record,) if isinstance(self.record, str) else self.record
        if not isinstance(record, Sequence) or not all(isinstance(r, str) for r in record):
            raise InputError(f"record must be a list of names, got {self.record!r}")
        for r in record:
            if r not in kernel.records:
                raise InputError(
                    f"unknown record {r!r} for kernel {kernel.name!r}{_suggest(r, kernel.records)}; "
                    f"choose from {', '.join(kernel.records)}"
                )
        always = [r for r, rec in kernel.records.items() if rec.always]
        # Canonical order: the kernel's, so that equal requests compare (and fingerprint) equal.
        return tuple(r for r in kernel.records if r in record or r in always)

    def _check_axes(self, kernel: Kernel) -> dict[str, tuple]:
        if not isinstance(self.axes, Mapping) or not self.axes:
            raise InputError("a sweep needs at least one axis, e.g. axes = {width = [8, 16]}")
        axes = {}
        for name, values in self.axes.items():
            if name not in kernel.parameters:
                raise InputError(
                    f"unknown axis {name!r} for kernel {kernel.name!r}{_suggest(name, kernel.parameters)}"
                    f"; axes are kernel parameters: {', '.join(kernel.parameters)}"
                )
            if isinstance(values, str | bytes) or not isinstance(values, Sequence):
                values = [values]
            if len(values) == 0:
                raise InputError(f"axis {name!r} is empty")
            par = kernel.parameters[name]
            coerced = tuple(par.coerce(name, v) for v in values)
            if any(v is None for v in coerced):
                raise InputError(f"axis {name!r} may not hold empty values")
            if len(set(coerced)) != len(coerced):
                raise InputError(f"axis {name!r} repeats a value: {list(coerced)}")
            axes[name] = coerced
        return axes

    def _check_params(self, kernel: Kernel) -> dict[str, Any]:
        if not isinstance(self.params, Mapping):
            raise InputError(f"params must be a table of name = value, got {self.params!r}")
        params = {}
        for name, value in self.params.items():
            if name not in kernel.parameters:
                raise InputError(
                    f"unknown parameter {name!r} for kernel {kernel.name!r}"
                    f"{_suggest(name, kernel.parameters)}; known: {', '.join(kernel.parameters)}"
                )
            if name in self.axes:
                raise InputError(f"{name!r} is both a fixed parameter and an axis; keep one")
            params[name] = kernel.parameters[name].coerce(name, value)
        for name, par in kernel.parameters.items():
            if name in self.axes or name in params:
                continue
            if par.default is REQUIRED:
                raise InputError(
                    f"kernel {kernel.name!r} needs {name!r}: set it in params or make it an axis"
                )
            params[name] = par.default
        return {name: params[name] for name in kernel.parameters if name in params}

    def _check_points(self, kernel: Kernel) -> None:
        """Run the kernel's cross-parameter check on every static group, with each dynamic value in turn."""
        if kernel.check is None:
            return
        static_axes = [a for a in self.axes if kernel.parameters[a].static]
        dynamic_axes = [a for a in self.axes if not kernel.parameters[a].static]
        static_fixed = {n: v for n, v in self.params.items() if kernel.parameters[n].static}
        dynamic_fixed = {n: v for n, v in self.params.items() if not kernel.parameters[n].static}
        dynamic_first = {**dynamic_fixed, **{a: self.axes[a][0] for a in dynamic_axes}}
        for combo in itertools.product(*(self.axes[a] for a in static_axes)):
            static = {**static_fixed, **dict(zip(static_axes, combo, strict=True))}
            try:
                kernel.check(static, dynamic_first, self.record)
                for a in dynamic_axes:
                    for value in self.axes[a][1:]:
                        kernel.check(static, {**dynamic_first, a: value}, self.record)
            except InputError as err:
                where = ", ".join(f"{a}={v}" for a, v in zip(static_axes, combo, strict=True))
                raise InputError(f"{err}{f' (at {where})' if where else ''}") from None

    # -- the grid ---------------------------------------------------------------------------------------

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Length of each axis, in order."""
        return tuple(len(v) for v in self.axes.values())

    @property
    def num_points(self) -> int:
        return math.prod(self.grid_shape)

    @property
    def num_runs(self) -> int:
        return self.num_points * self.seeds

    def kernel_object(self) -> Kernel:
        return get_kernel(self.kernel)

    # -- (de)serialisation ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_dict` turns back into an equal spec."""
        return {
            "name": self.name,
            "kernel": self.kernel,
            "seeds": self.seeds,
            "seed": self.seed,
            "record": list(self.record),
            "params": dict(self.params),
            "axes": {a: list(v) for a, v in self.axes.items()},
            "chunk_size": self.chunk_size,
            "memory_budget_mb": self.memory_budget_mb,
        }

    def science_dict(self) -> dict[str, Any]:
        """The part of :meth:`to_dict` that determines the numbers (no label, no execution settings)."""
        full = self.to_dict()
        return {key: full[key] for key in SCIENCE_KEYS if key != "name"}

    def fingerprint(self) -> str:
        """SHA-256 of :meth:`science_dict`: equal exactly when two specs produce the same numbers."""
        text = json.dumps(self.science_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def __eq__(self, other) -> bool:
        return isinstance(other, SweepSpec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepSpec:
        """Build a spec from a parsed file: top-level keys, ``[params]``, ``[axes]``.

        Kernel parameters written at the top level (``ensemble = "masked"``) count as fixed parameters.
        """
        if not isinstance(data, Mapping):
            raise InputError("a sweep spec must be a table of key = value")
        data = dict(data)
        kernel_name = data.get("kernel", "lyapunov")
        kernel = get_kernel(kernel_name) if isinstance(kernel_name, str) else None
        known = set(SCIENCE_KEYS) | set(EXECUTION_KEYS)
        params = dict(data.pop("params", None) or {})
        for key in list(data):
            if key in known:
                continue
            if kernel is not None and key in kernel.parameters:
                if key in params:
                    raise InputError(f"{key!r} is set both at the top level and in [params]; keep one")
                params[key] = data.pop(key)
                continue
            hint = _suggest(key, known | set(kernel.parameters if kernel else ()))
            raise InputError(
                f"unknown key {key!r} in sweep spec{hint}; top-level keys are "
                f"{', '.join(SCIENCE_KEYS + EXECUTION_KEYS)} and the kernel's parameters"
            )
        if "axes" not in data:
            raise InputError("a sweep spec needs an [axes] table (the grid)")
        if "seeds" not in data:
            raise InputError("a sweep spec needs seeds = <runs per grid point>")
        record = data.get("record", ())
        if isinstance(record, list):
            record = tuple(record)
        return cls(
            axes=data["axes"],
            seeds=data["seeds"],
            params=params,
            kernel=kernel_name,
            record=record,
            seed=data.get("seed", 0),
            name=data.get("name", "sweep"),
            chunk_size=data.get("chunk_size"),
            memory_budget_mb=data.get("memory_budget_mb", DEFAULT_MEMORY_BUDGET_MB),
        )

    def with_overrides(self, assignments: Sequence[str]) -> SweepSpec:
        """A new spec with ``key=value`` assignments applied (values parsed as TOML, else taken as strings).

        Keys: a top-level key (``seeds=32``), ``axes.NAME=[...]`` (makes ``NAME`` an axis), ``params.NAME=v``
        (makes it a fixed parameter), or a bare kernel parameter ``NAME=v`` (updates the axis if ``NAME`` is
        one, else the fixed parameter).
        """
        data = self.to_dict()
        for assignment in assignments:
            key, value = parse_override(assignment)
            section, _, sub = key.partition(".")
            if sub and section in ("axes", "params"):
                other = "params" if section == "axes" else "axes"
                data[other].pop(sub, None)
                data[section][sub] = value
            elif sub:
                raise InputError(f"cannot set {key!r}: dotted keys start with axes. or params.")
            elif key in SCIENCE_KEYS + EXECUTION_KEYS and key not in ("axes", "params"):
                data[key] = tuple(value) if key == "record" and isinstance(value, list) else value
            elif key in data["axes"]:
                data["axes"][key] = value
            else:
                data["params"][key] = value
        return SweepSpec.from_dict(data)


def spec_template() -> str:
    """A commented example spec (TOML) to start from; ``jaxspec sweep --template`` prints it.

    It ships inside the package, so it is there on any install.

    Example:
        >>> import tomllib
        >>> tomllib.loads(spec_template())["kernel"]
        'lyapunov'
    """
    return importlib.resources.files("jaxspec.sweeps").joinpath("template.toml").read_text(encoding="utf-8")


def parse_override(assignment: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)`` with ``value`` parsed as a TOML value (``16``, ``[1.0, 2.0]``,
    ``true``, ``"text"``); anything that is not valid TOML (``masked``, ``K>=i``) stays a string."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InputError(f"--set expects key=value, got {assignment!r}")
    text = text.strip()
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        value = text
    return key, value


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> SweepSpec:
    """Read a spec from a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file and apply ``key=value`` overrides.

    Args:
        path: the spec file.
        overrides: assignments as for :meth:`SweepSpec.with_overrides`.

    Returns:
        The validated :class:`SweepSpec`.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such spec file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"cannot parse {path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror or err}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = optional_import("yaml", "sweep").safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise InputError(f"spec file must end in .toml, .yaml, .yml or .json, got {path.name}")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"cannot parse {path}: {err}") from None
    except Exception as err:
        if type(err).__module__.startswith("yaml"):
            raise InputError(f"cannot parse {path}: {' '.join(str(err).split())}") from None
        raise
    spec = SweepSpec.from_dict(data)
    return spec.with_overrides(overrides) if overrides else spec
