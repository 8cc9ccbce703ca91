"""The results store of a sweep: a local directory of atomic per-chunk files, consolidated into zarr and parquet.

Layout of an output directory::

    DIR/jaxspec-sweep.json     manifest: format tag, the spec, its fingerprint, the chunk plan, provenance
    DIR/chunks/chunk-000012.npz  one file per finished chunk (written to a temporary name, then renamed)
    DIR/results.zarr           the labelled xarray Dataset (written once every chunk is done)
    DIR/summary.parquet        a tidy table, one row per (point, seed)

Guarantees:

* A chunk file appears whole or not at all (write, fsync, ``os.replace``), so a sweep killed at any moment
  loses at most the chunks in flight; ``--resume`` skips every chunk whose file exists.
* A directory is only written to if it is new or empty, or holds this very sweep (same spec fingerprint) and
  ``resume`` is asked for. A foreign directory (files but no manifest), a corrupted manifest or chunk, or a
  different sweep is refused with a one-line :class:`InputError` and left untouched.
* The Dataset has named dimensions (the grid axes, ``seed``, ``index``, ``window``, ``layer``), a ``done``
  mask, closed-form predictions next to the simulations where the kernel has them, and attributes recording
  the spec, the package versions, the JAX backend and device counts, and the git commit when available.
* :func:`load_sweep` reads a finished store from zarr, and a partial one from its chunk files, saying which
  points are missing (:func:`missing_points`).

Example:
    >>> import xarray as xr, pandas as pd
    >>> ds = xr.open_zarr("out/results.zarr")           # doctest: +SKIP
    >>> df = pd.read_parquet("out/summary.parquet")     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxspec._checks import InputError
from jaxspec.sweeps._plan import group_output_shapes, make_plan, point_indices, point_params
from jaxspec.sweeps._spec import SweepSpec

FORMAT = "jaxspec-sweep/1"
MANIFEST = "jaxspec-sweep.json"
CHUNK_DIR = "chunks"
ZARR = "results.zarr"
PARQUET = "summary.parquet"
_CHUNK_RE = re.compile(r"^chunk-(\d{6,})\.npz$")
_TMP_PREFIX = ".tmp-"
# Integer variables have no NaN: runs not (yet) computed hold this value, and ``done`` says which.
INT_FILL = -1


class PartialSweepWarning(UserWarning):
    """A sweep store was read before every chunk was done."""


def _chunk_name(index: int) -> str:
    return f"chunk-{index:06d}.npz"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.parent / f"{_TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{path.name}"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _checkout_root() -> Path | None:
    """The jaxspec source checkout this package was imported from, or ``None`` for an installed package."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    if not (root / ".git").exists() or not pyproject.is_file():
        return None
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return root if re.search(r'^name\s*=\s*"jaxspec"', text, flags=re.MULTILINE) else None


def _git_commit() -> str | None:
    """The commit (``-dirty`` when modified) of the jaxspec checkout, only when the package sits in one."""
    root = _checkout_root()
    if root is None:
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def provenance(num_devices: int | None = None) -> dict[str, Any]:
    """Package versions, JAX backend, device counts, host and git commit: recorded with every store."""
    import importlib.metadata

    import jax

    versions = {"python": sys.version.split()[0]}
    for package in ("jaxspec", "jax", "jaxlib", "numpy", "flax", "xarray", "zarr", "pyarrow", "pandas"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return {
        "versions": versions,
        "backend": jax.default_backend(),
        "device_kind": jax.local_devices()[0].device_kind,
        "local_device_count": jax.local_device_count(),
        "devices_used": num_devices if num_devices is not None else jax.local_device_count(),
        "process_count": jax.process_count(),
        "x64": bool(jax.config.jax_enable_x64),
        "git_commit": _git_commit(),
        "host": socket.gethostname(),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _first_difference(a: Mapping, b: Mapping, prefix: str = "") -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            if isinstance(a.get(key), Mapping) and isinstance(b.get(key), Mapping):
                return _first_difference(a[key], b[key], f"{prefix}{key}.")
            return f"{prefix}{key}: stored {a.get(key)!r}, asked {b.get(key)!r}"
    return "no visible difference"


class SweepStore:
    """One sweep's output directory. Open it with :meth:`open_for_run` (to compute) or :meth:`open` (to read).

    Attributes:
        path: the directory.
        manifest: the parsed manifest (``spec``, ``fingerprint``, ``chunk_sizes``, ``num_chunks``, ...).
        spec: the stored :class:`SweepSpec`.
        plan: the stored :class:`SweepPlan` (the chunks this store expects).
    """

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = Path(path)
        self.manifest = manifest
        try:
            self.spec = SweepSpec.from_dict(manifest["spec"])
        except InputError as err:
            raise InputError(
                f"{self.path / MANIFEST} holds an invalid spec ({err}); refusing to touch it"
            ) from None
        if self.spec.fingerprint() != manifest["fingerprint"]:
            raise InputError(
                f"{self.path / MANIFEST} is corrupted (its spec does not match its fingerprint); "
                "refusing to touch it"
            )
        try:
            self.plan = make_plan(self.spec, chunk_sizes=manifest["chunk_sizes"])
        except InputError as err:
            raise InputError(f"{self.path / MANIFEST} is corrupted ({err}); refusing to touch it") from None
        if len(self.plan.chunks) != manifest["num_chunks"]:
            raise InputError(
                f"{self.path / MANIFEST} is corrupted (it expects {manifest['num_chunks']} chunks, "
                f"its plan makes {len(self.plan.chunks)}); refusing to touch it"
            )

    # -- opening ----------------------------------------------------------------------------------------

    @staticmethod
    def _read_manifest(path: Path) -> dict[str, Any]:
        file = path / MANIFEST
        try:
            manifest = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(
                f"{file} is corrupted ({type(err).__name__}); refusing to touch {path}"
            ) from None
        required = ("format", "spec", "fingerprint", "chunk_sizes", "num_chunks", "provenance")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else None
            raise InputError(
                f"{file} is not a {FORMAT} manifest (format {found!r}); refusing to touch {path}"
            )
        missing = [key for key in required if key not in manifest]
        if missing:
            raise InputError(f"{file} is corrupted (missing {', '.join(missing)}); refusing to touch {path}")
        return manifest

    @classmethod
    def open(cls, path: str | Path) -> SweepStore:
        """Open an existing store for reading (raises :class:`InputError` if it is not one)."""
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"no sweep store at {path}")
        if not (path / MANIFEST).is_file():
            raise InputError(f"{path} is not a jaxspec sweep store (no {MANIFEST})")
        return cls(path, cls._read_manifest(path))

    @classmethod
    def open_for_run(
        cls,
        path: str | Path,
        spec: SweepSpec,
        *,
        resume: bool,
        num_devices: int,
        info: dict[str, Any] | None = None,
    ) -> SweepStore:
        """Create a store for ``spec``, or reopen one to resume it; refuse anything else.

        Args:
            path: the output directory (created if absent; may exist if empty).
            spec: the sweep.
            resume: continue a store that holds this same sweep.
            num_devices: devices per host, to size chunks from the memory budget (new stores only).
            info: provenance to record (default :func:`provenance`).

        Returns:
            The :class:`SweepStore`.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError(f"--out {path} exists and is not a directory; refusing to overwrite it")
        if path.is_dir() and (path / MANIFEST).exists():
            return cls._reopen(path, spec, resume)
        if path.is_dir() and any(path.iterdir()):
            raise InputError(
                f"{path} is not empty and is not a jaxspec sweep store (no {MANIFEST}); "
                "refusing to write into it: choose a new or empty --out directory"
            )
        path.mkdir(parents=True, exist_ok=True)
        plan = make_plan(spec, num_devices=num_devices)
        manifest = {
            "format": FORMAT,
            "spec": spec.to_dict(),
            "fingerprint": spec.fingerprint(),
            "chunk_sizes": plan.chunk_sizes(),
            "num_chunks": len(plan.chunks),
            "provenance": info if info is not None else provenance(num_devices),
        }
        (path / CHUNK_DIR).mkdir(exist_ok=True)
        tmp = path / f"{_TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{MANIFEST}"
        tmp.write_text(json.dumps(manifest, indent=1))
        try:
            # A hard link creates the name atomically and fails if another host made it first.
            os.link(tmp, path / MANIFEST)
        except FileExistsError:
            return cls._reopen(path, spec, resume=True)
        finally:
            tmp.unlink(missing_ok=True)
        return cls(path, manifest)

    @classmethod
    def _reopen(cls, path: Path, spec: SweepSpec, resume: bool) -> SweepStore:
        manifest = cls._read_manifest(path)
        if manifest["fingerprint"] != spec.fingerprint():
            stored = manifest["spec"] if isinstance(manifest["spec"], dict) else {}
            diff = _first_difference({k: stored.get(k) for k in spec.science_dict()}, spec.science_dict())
            raise InputError(
                f"{path} holds a different sweep ({diff}); refusing to overwrite it: "
                "use a new --out directory"
            )
        store = cls(path, manifest)
        if not resume:
            done = len(store.done_chunks())
            raise InputError(
                f"{path} already holds this sweep ({done} of {len(store.plan.chunks)} chunks done); "
                "pass --resume to continue it, or choose a new --out directory"
            )
        store.verify_chunks()
        return store

    # -- chunks -----------------------------------------------------------------------------------------

    @property
    def chunk_dir(self) -> Path:
        return self.path / CHUNK_DIR

    def done_chunks(self) -> set[int]:
        """Indices of the chunks whose files exist (their contents are checked when read)."""
        if not self.chunk_dir.is_dir():
            return set()
        found = set()
        for entry in os.listdir(self.chunk_dir):
            match = _CHUNK_RE.match(entry)
            if match:
                index = int(match.group(1))
                if index >= len(self.plan.chunks):
                    raise InputError(
                        f"{self.chunk_dir / entry} does not belong to this sweep's plan "
                        f"({len(self.plan.chunks)} chunks); refusing to touch {self.path}"
                    )
                found.add(index)
        return found

    @property
    def is_complete(self) -> bool:
        return len(self.done_chunks()) == len(self.plan.chunks)

    def write_chunk(self, index: int, outputs: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Write one finished chunk atomically.

        Args:
            index: the chunk's index in the plan.
            outputs: ``{variable: (runs, ...)}`` for exactly the chunk's runs.
            meta: provenance of this chunk (devices, host, seconds...).
        """
        chunk = self.plan.chunks[index]
        point_ids, seeds = self.plan.groups[chunk.group].runs(chunk.start, chunk.stop, self.spec.seeds)
        header = {"fingerprint": self.spec.fingerprint(), "chunk": index, **meta}
        arrays = {f"var/{name}": np.asarray(value) for name, value in outputs.items()}
        buffer = io.BytesIO()
        np.savez(
            buffer, __header__=np.array(json.dumps(header)), __point_id__=point_ids, __seed__=seeds, **arrays
        )
        _atomic_write_bytes(self.chunk_dir / _chunk_name(index), buffer.getvalue())

    def read_chunk(self, index: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(header, {variable: (runs, ...)})`` of a finished chunk, checked against the plan."""
        file = self.chunk_dir / _chunk_name(index)
        advice = "; refusing to use it (delete that file and run again with --resume to recompute it)"
        chunk = self.plan.chunks[index]
        try:
            with np.load(file, allow_pickle=False) as data:
                header = json.loads(str(data["__header__"]))
                point_ids, seeds = data["__point_id__"], data["__seed__"]
                arrays = {key[4:]: data[key] for key in data.files if key.startswith("var/")}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as err:
            raise InputError(f"chunk file {file} is corrupted ({type(err).__name__}){advice}") from None
        if header.get("fingerprint") != self.spec.fingerprint() or header.get("chunk") != index:
            raise InputError(f"chunk file {file} belongs to another sweep or chunk{advice}")
        want_ids, want_seeds = self.plan.groups[chunk.group].runs(chunk.start, chunk.stop, self.spec.seeds)
        if not (np.array_equal(point_ids, want_ids) and np.array_equal(seeds, want_seeds)):
            raise InputError(f"chunk file {file} holds other runs than the plan's chunk {index}{advice}")
        for name, value in arrays.items():
            if value.shape[:1] != (chunk.num_runs,):
                raise InputError(
                    f"chunk file {file} has {value.shape[:1]} runs of {name!r}, expected "
                    f"{chunk.num_runs}{advice}"
                )
        return header, arrays

    def verify_chunks(self) -> None:
        """Read every finished chunk once, so that a damaged store is refused before any work is done."""
        for index in sorted(self.done_chunks()):
            self.read_chunk(index)

    def remove_stale_temporaries(self) -> None:
        """Delete leftovers of interrupted atomic writes (only files this module names ``.tmp-*``)."""
        for folder in (self.path, self.chunk_dir):
            if folder.is_dir():
                for entry in folder.iterdir():
                    if entry.name.startswith(_TMP_PREFIX):
                        if entry.is_dir():
                            shutil.rmtree(entry, ignore_errors=True)
                        else:
                            entry.unlink(missing_ok=True)

    # -- assembling -------------------------------------------------------------------------------------

    def assemble(self):
        """The labelled xarray Dataset of every finished chunk (NaN / ``-1`` where runs are missing)."""
        import xarray as xr

        spec, plan = self.spec, self.plan
        kernel = spec.kernel_object()
        variables = kernel.variables(spec.record)
        grid = spec.grid_shape
        done_chunks = sorted(self.done_chunks())
        pieces = [(self.plan.chunks[i], *self.read_chunk(i)) for i in done_chunks]
        # Pad every record dimension to its largest size over the groups (e.g. index up to max k).
        dim_sizes: dict[str, int] = {}
        dtypes: dict[str, np.dtype] = {}
        for _, _, arrays in pieces:
            for name, value in arrays.items():
                dtypes.setdefault(name, value.dtype)
                for dim, size in zip(variables[name], value.shape[1:], strict=True):
                    dim_sizes[dim] = max(dim_sizes.get(dim, 0), size)
        for dim, size in self._expected_dim_sizes(variables).items():
            dim_sizes[dim] = max(dim_sizes.get(dim, 0), size)
        done = np.zeros((*grid, spec.seeds), bool)
        data = {}
        for name, dims in variables.items():
            dtype = dtypes.get(name, np.dtype(np.float64))
            fill = np.nan if np.issubdtype(dtype, np.floating) else INT_FILL
            data[name] = np.full((*grid, spec.seeds, *(dim_sizes[d] for d in dims)), fill, dtype)
        worker_info = []
        for chunk, header, arrays in pieces:
            ids, seeds = plan.groups[chunk.group].runs(chunk.start, chunk.stop, spec.seeds)
            where = (*point_indices(spec, ids).T, seeds)
            done[where] = True
            for name, value in arrays.items():
                data[name][(*where, *(slice(0, s) for s in value.shape[1:]))] = value
            worker_info.append(header)
        axis_dims = tuple(spec.axes)
        coords = {
            a: np.asarray(v, dtype=object if isinstance(v[0], str) else None) for a, v in spec.axes.items()
        }
        coords["seed"] = np.arange(spec.seeds)
        for dim, size in dim_sizes.items():
            coords[dim] = np.arange(1, size + 1)
        coords["point_id"] = (axis_dims, np.arange(spec.num_points).reshape(grid))
        data_vars = {name: ((*axis_dims, "seed", *variables[name]), data[name]) for name in variables}
        data_vars["done"] = ((*axis_dims, "seed"), done)
        data_vars.update(self._theory(axis_dims, dim_sizes))
        complete = len(done_chunks) == len(plan.chunks)
        info = self.manifest["provenance"]
        attrs = {
            "title": f"jaxspec sweep {spec.name!r}",
            "kernel": spec.kernel,
            "spec": json.dumps(spec.to_dict()),
            "spec_fingerprint": spec.fingerprint(),
            "format": FORMAT,
            "complete": complete,
            "num_chunks": len(plan.chunks),
            "num_chunks_done": len(done_chunks),
            "num_runs": spec.num_runs,
            "num_runs_done": int(done.sum()),
            "missing_points": int((~done.all(axis=-1)).sum()),
            "key_rule": "run (point_id, s) uses fold_in(fold_in(key(seed), point_id), s)",
            "versions": json.dumps(info.get("versions", {})),
            "backend": info.get("backend"),
            "device_kind": info.get("device_kind"),
            "git_commit": info.get("git_commit") or "unknown",
            "created": info.get("created"),
            "x64": info.get("x64"),
            "devices_used": sorted({int(h.get("devices", 0)) for h in worker_info}) or [],
            "process_count": max([int(h.get("process_count", 1)) for h in worker_info], default=1),
            "hosts": sorted({str(h.get("host")) for h in worker_info}),
            "compute_seconds": float(sum(float(h.get("seconds", 0.0)) for h in worker_info)),
        }
        ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
        for name in variables:
            ds[name].attrs["description"] = next(
                rec.doc for rec in kernel.records.values() if name in rec.variables
            )
        ds["done"].attrs["description"] = "whether the run (point, seed) has been computed"
        return ds

    def _expected_dim_sizes(self, variables: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
        """Record dimension sizes from the kernel's output shapes (so a partial store has full dimensions)."""
        sizes: dict[str, int] = {}
        for group in self.plan.groups:
            for name, shape in group_output_shapes(self.spec, group).items():
                for dim, size in zip(variables[name], shape, strict=True):
                    sizes[dim] = max(sizes.get(dim, 0), size)
        return sizes

    def _theory(self, axis_dims: tuple[str, ...], dim_sizes: Mapping[str, int]) -> dict[str, Any]:
        kernel = self.spec.kernel_object()
        if kernel.theory is None:
            return {}
        spec = self.spec
        out: dict[str, Any] = {}
        for point_id in range(spec.num_points):
            idx = np.unravel_index(point_id, spec.grid_shape)
            for name, (dims, value) in kernel.theory(point_params(spec, point_id), spec.record).items():
                if name not in out:
                    out[name] = (dims, np.full((*spec.grid_shape, *(dim_sizes[d] for d in dims)), np.nan))
                out[name][1][(*idx, *(slice(0, s) for s in np.shape(value)))] = value
        return {name: ((*axis_dims, *dims), value) for name, (dims, value) in out.items()}

    # -- finishing --------------------------------------------------------------------------------------

    @property
    def zarr_path(self) -> Path:
        return self.path / ZARR

    @property
    def parquet_path(self) -> Path:
        return self.path / PARQUET

    def finalize(self):
        """Write ``results.zarr`` and ``summary.parquet`` (atomically) from the complete set of chunks."""
        if not self.is_complete:
            missing = len(self.plan.chunks) - len(self.done_chunks())
            raise InputError(f"{self.path} still misses {missing} chunks; finish it with --resume")
        ds = self.assemble()
        suffix = f"{socket.gethostname()}-{os.getpid()}"
        tmp_parquet = self.path / f"{_TMP_PREFIX}{suffix}-{PARQUET}"
        summary_frame(ds).to_parquet(tmp_parquet, index=False)
        os.replace(tmp_parquet, self.parquet_path)
        if not self.zarr_path.exists():
            tmp_zarr = self.path / f"{_TMP_PREFIX}{suffix}-{ZARR}"
            shutil.rmtree(tmp_zarr, ignore_errors=True)
            ds.to_zarr(tmp_zarr, mode="w-", zarr_format=2, consolidated=True)
            try:
                os.rename(tmp_zarr, self.zarr_path)
            except OSError:
                # Another host consolidated the same chunks first: its copy is equal.
                shutil.rmtree(tmp_zarr, ignore_errors=True)
        self.remove_stale_temporaries()
        return ds


def summary_frame(ds):
    """The tidy per-run table: one row per finished ``(point, seed)``.

    Columns: ``point_id``, the grid axes, ``seed``, every per-run scalar (``min_active``), and every
    ``(index,)`` variable spread over columns ``<variable>_<i>`` (``exponents_1``, ``log_svals_1``...).

    Args:
        ds: a sweep Dataset (:func:`load_sweep`).

    Returns:
        A ``pandas.DataFrame``.
    """
    import pandas as pd

    spec = SweepSpec.from_dict(json.loads(ds.attrs["spec"]))
    axis_dims = tuple(spec.axes)
    done = np.asarray(ds["done"].values)
    where = np.nonzero(done)
    columns: dict[str, Any] = {"point_id": np.asarray(ds["point_id"].values)[where[:-1]]}
    for a, i in zip(axis_dims, where[:-1], strict=True):
        columns[a] = np.asarray(ds[a].values)[i]
    columns["seed"] = where[-1]
    for name, var in ds.data_vars.items():
        if name == "done" or var.dims[: len(axis_dims) + 1] != (*axis_dims, "seed"):
            continue
        rest = var.dims[len(axis_dims) + 1 :]
        values = np.asarray(var.values)[where]
        if rest == ():
            columns[name] = values
        elif rest == ("index",):
            for i in range(values.shape[1]):
                columns[f"{name}_{i + 1}"] = values[:, i]
    return pd.DataFrame(columns)


def missing_points(ds):
    """The grid points of a (partial) sweep Dataset that miss at least one seed.

    Returns:
        A ``pandas.DataFrame`` with ``point_id``, the axis values and ``seeds_missing``.
    """
    import pandas as pd

    spec = SweepSpec.from_dict(json.loads(ds.attrs["spec"]))
    done = np.asarray(ds["done"].values)
    lacking = (~done).sum(axis=-1)
    where = np.nonzero(lacking)
    columns = {"point_id": np.asarray(ds["point_id"].values)[where]}
    for a, i in zip(spec.axes, where, strict=True):
        columns[a] = np.asarray(ds[a].values)[i]
    columns["seeds_missing"] = lacking[where]
    return pd.DataFrame(columns)


def load_sweep(path: str | Path, *, warn: bool = True):
    """The Dataset of a sweep directory: from ``results.zarr`` once finished, else assembled from its chunks.

    A partial store loads too; ``ds.attrs["complete"]`` is False, ``ds["done"]`` marks the finished runs,
    :func:`missing_points` lists the rest, and a :class:`PartialSweepWarning` says how many points lack seeds.

    Args:
        path: the sweep's ``--out`` directory.
        warn: warn when the store is partial.

    Returns:
        An ``xarray.Dataset``.

    Example:
        >>> ds = load_sweep("out")                                   # doctest: +SKIP
        >>> ds.exponents.sel(index=1).mean("seed")                   # doctest: +SKIP
    """
    import xarray as xr

    store = SweepStore.open(path)
    if store.zarr_path.is_dir():
        return xr.open_zarr(store.zarr_path).load()
    ds = store.assemble()
    if warn and not ds.attrs["complete"]:
        warnings.warn(
            f"partial sweep {store.path}: {ds.attrs['num_runs_done']} of {ds.attrs['num_runs']} runs done, "
            f"{ds.attrs['missing_points']} of {store.spec.num_points} points miss seeds "
            "(jaxspec.sweeps.missing_points(ds) lists them)",
            PartialSweepWarning,
            stacklevel=2,
        )
    return ds
