"""The results store of a sweep: a directory of atomic, self-describing chunk files, consolidated into zarr
and parquet.

Layout of an output directory::

    DIR/jaxspec-sweep.json     manifest: format tag, the spec, its fingerprint, the chunk plan, provenance
    DIR/jaxspec-sweep.lock     present while a run or repair works on the directory (pid, host, start)
    DIR/chunks/chunk-000012.npz  one file per finished chunk (written to a temporary name, then renamed)
    DIR/results.zarr           the labelled xarray Dataset (written once every chunk is done)
    DIR/summary.parquet        a tidy table, one row per (point, seed)
    DIR/damaged/               damaged files set aside by --resume or --repair (never deleted)

Guarantees:

* A chunk file appears whole or not at all (write, fsync, ``os.replace``), so a sweep killed at any moment
  loses at most the chunks in flight; ``--resume`` skips every chunk whose file exists.
* A chunk file describes itself: its header holds the chunk's place in the plan, the spec, its fingerprint,
  the chunk plan and the provenance, and the SHA-256 of its payload (point ids, seeds and every recorded
  array). A lost or corrupted manifest is rebuilt from the chunks (:func:`repair_store`,
  ``jaxspec sweep --repair DIR``); a damaged chunk is named, set aside and, on ``--resume``, recomputed.
* ``results.zarr`` records the SHA-256 of its own variables and of the chunks it was built from; a damaged
  or stale zarr store is rebuilt from the chunks when read (:func:`load_sweep`), resumed or repaired.
* One run at a time: a run takes an exclusive lock on the directory (:class:`StoreLock`).
* A directory is only written to if it is new or empty, or holds this very sweep (same spec fingerprint) and
  ``resume`` is asked for. A foreign directory (files but no manifest), a corrupted manifest or a different
  sweep is refused with a one-line :class:`InputError` and left untouched. The output directory is created
  and probed for writing, and the sweep's memory checked, before anything is computed.
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
import hashlib
import importlib.metadata
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
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxspec._checks import InputError
from jaxspec._extras import optional_import, require
from jaxspec.sweeps._lock import LOCK, StoreLock
from jaxspec.sweeps._plan import SweepPlan, group_output_shapes, make_plan, point_indices, point_params
from jaxspec.sweeps._spec import SweepSpec

FORMAT = "jaxspec-sweep/1"
CHUNK_FORMAT = "jaxspec-sweep-chunk/2"
MANIFEST = "jaxspec-sweep.json"
CHUNK_DIR = "chunks"
DAMAGED_DIR = "damaged"
ZARR = "results.zarr"
PARQUET = "summary.parquet"
_CHUNK_RE = re.compile(r"^chunk-(\d{6,})\.npz$")
_TMP_PREFIX = ".tmp-"
# Integer variables have no NaN: runs not (yet) computed hold this value, and ``done`` says which.
INT_FILL = -1
_LEGACY_ZARR = "it records no checksum (written by an older jaxspec)"
_ADVICE = "jaxspec sweep --repair DIR sets it aside, then jaxspec sweep --out DIR --resume recomputes it"


class PartialSweepWarning(UserWarning):
    """A sweep store was read before every chunk was done."""


class StoreRepairWarning(UserWarning):
    """A damaged part of a sweep store was set aside, or rebuilt from the chunk files."""


class DamagedChunkError(InputError):
    """A chunk file that cannot be read, or whose payload does not match its checksum.

    Attributes:
        index: the chunk's index in the plan.
        path: the file.
        reason: what is wrong with it, in a few words.
    """

    def __init__(self, index: int, path: Path, reason: str):
        self.index, self.path, self.reason = index, Path(path), reason
        super().__init__(
            f"chunk file {path} is damaged ({reason}): {_ADVICE.replace('DIR', str(self.path.parents[1]))}"
        )


def _chunk_name(index: int) -> str:
    return f"chunk-{index:06d}.npz"


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.parent / f"{_TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{path.name}"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _update(digest, array: np.ndarray) -> None:
    """Feed one array to a hash: dtype, shape and C-order bytes, with every NaN written as the canonical NaN
    (stores may rewrite NaN payloads) and text as UTF-8."""
    array = np.asarray(array)
    if array.dtype.kind in "OUS":
        digest.update(f"text{array.shape}".encode())
        digest.update("\x1f".join(str(v) for v in array.reshape(-1)).encode())
        return
    if array.dtype.kind in "fc":
        array = np.where(np.isnan(array), np.array(np.nan, array.dtype), array)
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())


def payload_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of named arrays (names sorted; each array's dtype, shape and bytes): a chunk's checksum.

    Example:
        >>> payload_sha256({"a": np.zeros(2)}) == payload_sha256({"a": np.zeros(2)})
        True
    """
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(f"\x1e{name}\x1e".encode())
        _update(digest, arrays[name])
    return digest.hexdigest()


def _chunks_sha256(checksums: Iterable[tuple[int, str]]) -> str:
    """One digest of every chunk's checksum, in chunk order: what a consolidated store was built from."""
    text = "\n".join(f"{index}:{sha}" for index, sha in sorted(checksums))
    return hashlib.sha256(text.encode()).hexdigest()


def _dataset_sha256(ds) -> str:
    """SHA-256 of every variable (data and coordinates) of a Dataset, attributes excluded."""
    return payload_sha256({name: np.asarray(var.values) for name, var in ds.variables.items()})


def prepare_directory(path: str | Path, option: str = "--out") -> Path:
    """Create ``path`` (with its parents) and probe it for writing, or raise a one-line :class:`InputError`.

    Args:
        path: the directory.
        option: the command-line option that named it, for the message.

    Returns:
        The path.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} exists and is not a directory; refusing to overwrite it")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (NotADirectoryError, FileExistsError):
        raise InputError(
            f"{option} {path} cannot be created: a part of that path is a file, not a directory"
        ) from None
    except PermissionError:
        raise InputError(
            f"{option} {path} cannot be created: permission denied (choose a directory you can write to)"
        ) from None
    except OSError as err:
        raise InputError(f"{option} {path} cannot be created: {err.strerror or err}") from None
    probe = path / f"{_TMP_PREFIX}probe-{socket.gethostname()}-{os.getpid()}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"jaxspec write probe")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise InputError(
            f"{option} {path} is not writable ({err.strerror or err}); choose a directory you can write to"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return path


def _is_fresh(path: Path) -> bool:
    """Whether a directory holds nothing but what an interrupted start of a sweep leaves: the lock file,
    temporaries and an empty ``chunks/``."""
    try:
        entries = list(path.iterdir())
    except OSError as err:
        raise InputError(f"--out {path} cannot be read: {err.strerror or err}") from None
    for entry in entries:
        if entry.name == LOCK or entry.name.startswith(_TMP_PREFIX):
            continue
        if entry.name == CHUNK_DIR and entry.is_dir():
            if all(e.name.startswith(_TMP_PREFIX) for e in entry.iterdir()):
                continue
        return False
    return True


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
        lock: the :class:`StoreLock` held by a run (``None`` when opened for reading).
    """

    def __init__(self, path: Path, manifest: dict[str, Any]):
        self.path = Path(path)
        self.manifest = manifest
        self.lock: StoreLock | None = None
        try:
            self.spec = SweepSpec.from_dict(manifest["spec"])
        except InputError as err:
            raise InputError(
                f"{self.path / MANIFEST} holds an invalid spec ({err}); refusing to touch it"
            ) from None
        if self.spec.fingerprint() != manifest["fingerprint"]:
            raise InputError(
                f"{self.path / MANIFEST} is corrupted (its spec does not match its fingerprint); "
                "refusing to touch it (jaxspec sweep --repair DIR rebuilds it from the chunk files)"
            )
        try:
            self.plan = make_plan(self.spec, chunk_sizes=manifest["chunk_sizes"])
        except (InputError, TypeError, ValueError) as err:
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
        repair = "jaxspec sweep --repair DIR rebuilds it from the chunk files"
        try:
            manifest = json.loads(file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise InputError(
                f"{file} is corrupted ({type(err).__name__}); refusing to touch {path} ({repair})"
            ) from None
        required = ("format", "spec", "fingerprint", "chunk_sizes", "num_chunks", "provenance")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else None
            raise InputError(
                f"{file} is not a {FORMAT} manifest (format {found!r}); refusing to touch {path}"
            )
        missing = [key for key in required if key not in manifest]
        if missing:
            raise InputError(
                f"{file} is corrupted (missing {', '.join(missing)}); refusing to touch {path} ({repair})"
            )
        return manifest

    @classmethod
    def open(cls, path: str | Path) -> SweepStore:
        """Open an existing store for reading (raises :class:`InputError` if it is not one)."""
        path = Path(path)
        if not path.is_dir():
            raise InputError(f"no sweep store at {path}")
        if not (path / MANIFEST).is_file():
            hint = (
                " (its chunk files remain: jaxspec sweep --repair DIR rebuilds it)"
                if _chunk_files(path)
                else ""
            )
            raise InputError(f"{path} is not a jaxspec sweep store (no {MANIFEST}){hint}")
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
        check_plan: Callable[[SweepPlan], Any] | None = None,
        lock: bool = True,
    ) -> SweepStore:
        """Create a store for ``spec``, or reopen one to resume it; refuse anything else.

        Everything that can be refused is refused before the directory is touched: a path that is not a
        directory, a foreign or different store, a plan that ``check_plan`` rejects (the memory check). Then
        the directory is created and probed for writing, and locked (:class:`StoreLock`) until
        :meth:`close`.

        Args:
            path: the output directory (created if absent; may exist if empty).
            spec: the sweep.
            resume: continue a store that holds this same sweep; damaged chunk files are set aside (into
                ``DIR/damaged/``, with a :class:`StoreRepairWarning`) so that they are recomputed.
            num_devices: devices per host, to size chunks from the memory budget (new stores only).
            info: provenance to record (default :func:`provenance`).
            check_plan: called with the plan before anything is written; raises to refuse it.
            lock: take the directory's lock (hosts of one ``jax.distributed`` run share host 0's).

        Returns:
            The :class:`SweepStore`.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError(f"--out {path} exists and is not a directory; refusing to overwrite it")
        if path.is_dir() and not (path / MANIFEST).exists() and not _is_fresh(path):
            raise _foreign(path)
        if path.is_dir() and (path / MANIFEST).exists():
            plan = cls._reopen(path, spec, resume).plan
        else:
            plan = make_plan(spec, num_devices=num_devices)
        if check_plan is not None:
            check_plan(plan)
        prepare_directory(path)
        held = StoreLock.acquire(path) if lock else None
        try:
            store = cls._open_locked(path, spec, resume, num_devices, info)
        except BaseException:
            if held is not None:
                held.release()
            raise
        store.lock = held
        if held is not None and held.took_over:
            warnings.warn(
                f"took over the stale lock of {path} (pid {held.took_over.get('pid')} on this host is dead)",
                StoreRepairWarning,
                stacklevel=2,
            )
        return store

    @classmethod
    def _open_locked(
        cls, path: Path, spec: SweepSpec, resume: bool, num_devices: int, info: dict[str, Any] | None
    ) -> SweepStore:
        if (path / MANIFEST).exists():
            store = cls._reopen(path, spec, resume)
            for index, reason in store.set_aside_damaged_chunks():
                warnings.warn(
                    f"chunk {index} of {path} was damaged ({reason}); set aside in {path / DAMAGED_DIR} "
                    "and computed again",
                    StoreRepairWarning,
                    stacklevel=3,
                )
            return store
        if not _is_fresh(path):
            raise _foreign(path)
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
        if not _write_manifest(path, manifest):
            return cls._reopen(path, spec, resume=True)
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
        return store

    def close(self) -> None:
        """Release the directory's lock (idempotent)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # -- chunks -----------------------------------------------------------------------------------------

    @property
    def chunk_dir(self) -> Path:
        return self.path / CHUNK_DIR

    def done_chunks(self) -> set[int]:
        """Indices of the chunks whose files exist (their contents are checked when read)."""
        found = set()
        for index, file in _chunk_files(self.path):
            if index >= len(self.plan.chunks):
                raise InputError(
                    f"{file} does not belong to this sweep's plan "
                    f"({len(self.plan.chunks)} chunks); refusing to touch {self.path}"
                )
            found.add(index)
        return found

    @property
    def is_complete(self) -> bool:
        return len(self.done_chunks()) == len(self.plan.chunks)

    def write_chunk(self, index: int, outputs: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Write one finished chunk atomically, with a header that describes it.

        Args:
            index: the chunk's index in the plan.
            outputs: ``{variable: (runs, ...)}`` for exactly the chunk's runs.
            meta: provenance of this chunk (devices, host, seconds...).
        """
        chunk = self.plan.chunks[index]
        point_ids, seeds = self.plan.groups[chunk.group].runs(chunk.start, chunk.stop, self.spec.seeds)
        payload = {"__point_id__": point_ids, "__seed__": seeds}
        payload.update({f"var/{name}": np.asarray(value) for name, value in outputs.items()})
        header = {
            **meta,
            "format": CHUNK_FORMAT,
            "chunk": index,
            "group": chunk.group,
            "start": chunk.start,
            "stop": chunk.stop,
            "fingerprint": self.spec.fingerprint(),
            "spec": self.spec.to_dict(),
            "chunk_sizes": self.plan.chunk_sizes(),
            "num_chunks": len(self.plan.chunks),
            "provenance": self.manifest["provenance"],
            "sha256": payload_sha256(payload),
        }
        buffer = io.BytesIO()
        np.savez(buffer, __header__=np.array(json.dumps(header)), **payload)
        _atomic_write_bytes(self.chunk_dir / _chunk_name(index), buffer.getvalue())

    def read_chunk(self, index: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(header, {variable: (runs, ...)})`` of a finished chunk, checked against its checksum and the
        plan.

        Raises:
            DamagedChunkError: the file cannot be read or its payload does not match its checksum.
            InputError: the file is whole but belongs to another sweep or chunk.
        """
        file = self.chunk_dir / _chunk_name(index)
        chunk = self.plan.chunks[index]
        try:
            with np.load(file, allow_pickle=False) as data:
                header = json.loads(str(data["__header__"]))
                payload = {key: data[key] for key in data.files if key != "__header__"}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as err:
            raise DamagedChunkError(index, file, f"unreadable: {type(err).__name__}") from None
        if not isinstance(header, dict) or "__point_id__" not in payload or "__seed__" not in payload:
            raise DamagedChunkError(index, file, "no header or run ids")
        if "sha256" in header and payload_sha256(payload) != header["sha256"]:
            raise DamagedChunkError(index, file, "checksum mismatch")
        advice = "; refusing to use it (move it out of chunks/ and run again with --resume to recompute it)"
        if header.get("fingerprint") != self.spec.fingerprint() or header.get("chunk") != index:
            raise InputError(f"chunk file {file} belongs to another sweep or chunk{advice}")
        point_ids, seeds = payload["__point_id__"], payload["__seed__"]
        want_ids, want_seeds = self.plan.groups[chunk.group].runs(chunk.start, chunk.stop, self.spec.seeds)
        if not (np.array_equal(point_ids, want_ids) and np.array_equal(seeds, want_seeds)):
            raise InputError(f"chunk file {file} holds other runs than the plan's chunk {index}{advice}")
        arrays = {key[4:]: value for key, value in payload.items() if key.startswith("var/")}
        for name, value in arrays.items():
            if value.shape[:1] != (chunk.num_runs,):
                raise DamagedChunkError(
                    index, file, f"{value.shape[:1]} runs of {name!r}, expected {chunk.num_runs}"
                )
        return header, arrays

    def chunk_checksum(self, index: int) -> str:
        """The checksum a chunk file's header records (read without loading its payload)."""
        file = self.chunk_dir / _chunk_name(index)
        header = _read_header(file)
        if header is None or "sha256" not in header:
            raise DamagedChunkError(index, file, "no readable header with a checksum")
        return str(header["sha256"])

    def verify_chunks(self) -> None:
        """Read every finished chunk and check its checksum, so that damage is named before any work."""
        for index in sorted(self.done_chunks()):
            self.read_chunk(index)

    def set_aside_damaged_chunks(self) -> list[tuple[int, str]]:
        """Move every damaged chunk file into ``DIR/damaged/`` (so that it is recomputed).

        Returns:
            ``[(index, reason)]`` of the chunks set aside. Whole chunk files of another sweep are refused
            (:class:`InputError`), not moved: they mean two sweeps were mixed by hand.
        """
        moved = []
        for index in sorted(self.done_chunks()):
            try:
                self.read_chunk(index)
            except DamagedChunkError as err:
                with contextlib.suppress(FileNotFoundError):  # another host of this run moved it first
                    _set_aside(self.path, err.path)
                    moved.append((index, err.reason))
        return moved

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
        """The labelled xarray Dataset of every finished chunk (NaN / ``-1`` where runs are missing).

        Every chunk is read and checked against its checksum (:class:`DamagedChunkError` names a damaged
        one). The attributes ``chunks_sha256`` and ``data_sha256`` record what the Dataset was built from and
        the digest of its variables, so that a consolidated copy can be checked later.
        """
        xr = optional_import("xarray", "sweep")
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
            "chunks_sha256": _chunks_sha256((c.index, str(h.get("sha256", ""))) for c, h, _ in pieces),
        }
        ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
        for name in variables:
            ds[name].attrs["description"] = next(
                rec.doc for rec in kernel.records.values() if name in rec.variables
            )
        ds["done"].attrs["description"] = "whether the run (point, seed) has been computed"
        ds.attrs["data_sha256"] = _dataset_sha256(ds)
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

    # -- the consolidated store -------------------------------------------------------------------------

    @property
    def zarr_path(self) -> Path:
        return self.path / ZARR

    @property
    def parquet_path(self) -> Path:
        return self.path / PARQUET

    def read_zarr(self, chunks_sha256: str | None = None):
        """``(Dataset, None)`` when ``results.zarr`` is whole, else ``(None, what is wrong)``; a store
        written before checksums existed reads as ``(Dataset, reason)`` when it cannot be rebuilt (chunk files
        are missing), so that it stays readable, unverified.

        Whole means: it opens and decompresses, it belongs to this sweep, its variables match the digest
        it recorded, and (when ``chunks_sha256`` is given, or every chunk file is present) it was built from
        the chunk files now in the directory.
        """
        xr = optional_import("xarray", "sweep")
        optional_import("zarr", "sweep")
        try:
            ds = xr.open_zarr(self.zarr_path).load()
        except Exception as err:  # any failure to open or decompress means damage (zarr raises many kinds)
            return None, f"unreadable: {type(err).__name__}: {' '.join(str(err).split())[:120]}"
        if ds.attrs.get("spec_fingerprint") != self.spec.fingerprint():
            return None, "it belongs to another sweep"
        recorded = ds.attrs.get("data_sha256")
        if recorded is None:
            return (None if self.is_complete else ds), _LEGACY_ZARR
        if _dataset_sha256(ds) != recorded:
            return None, "its data do not match its checksum"
        if chunks_sha256 is None and ds.attrs.get("complete") and self.is_complete:
            try:
                chunks_sha256 = _chunks_sha256((i, self.chunk_checksum(i)) for i in self.done_chunks())
            except DamagedChunkError:
                chunks_sha256 = None  # the chunk's own damage is reported where chunks are read
        if chunks_sha256 is not None and ds.attrs.get("chunks_sha256") != chunks_sha256:
            return None, "it was built from other chunk files than those in chunks/"
        return ds, None

    def _write_zarr(self, ds) -> None:
        """Write ``ds`` to ``results.zarr`` atomically, replacing a damaged copy."""
        optional_import("zarr", "sweep")
        suffix = f"{socket.gethostname()}-{os.getpid()}"
        tmp_zarr = self.path / f"{_TMP_PREFIX}{suffix}-{ZARR}"
        shutil.rmtree(tmp_zarr, ignore_errors=True)
        ds.to_zarr(tmp_zarr, mode="w-", zarr_format=2, consolidated=True)
        old = self.path / f"{_TMP_PREFIX}{suffix}-old-{ZARR}"
        if self.zarr_path.exists():
            os.rename(self.zarr_path, old)
        try:
            os.rename(tmp_zarr, self.zarr_path)
        except OSError:
            # Another host consolidated the same chunks first: its copy is equal.
            shutil.rmtree(tmp_zarr, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)

    def finalize(self):
        """Write ``summary.parquet`` and (unless a whole, current copy exists) ``results.zarr`` atomically
        from the complete set of chunks; a damaged or stale ``results.zarr`` is rebuilt, with a
        :class:`StoreRepairWarning`."""
        if not self.is_complete:
            missing = len(self.plan.chunks) - len(self.done_chunks())
            raise InputError(f"{self.path} still misses {missing} chunks; finish it with --resume")
        ds = self.assemble()
        optional_import("pyarrow", "sweep")
        tmp_parquet = self.path / f"{_TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{PARQUET}"
        summary_frame(ds).to_parquet(tmp_parquet, index=False)
        os.replace(tmp_parquet, self.parquet_path)
        if self.zarr_path.exists():
            _, problem = self.read_zarr(ds.attrs["chunks_sha256"])
            if problem is not None:
                warnings.warn(
                    f"{self.zarr_path} was damaged ({problem}); rebuilt from its {len(self.plan.chunks)} "
                    "chunk files",
                    StoreRepairWarning,
                    stacklevel=2,
                )
                self._write_zarr(ds)
        else:
            self._write_zarr(ds)
        self.remove_stale_temporaries()
        return ds


def _foreign(path: Path) -> InputError:
    return InputError(
        f"{path} is not empty and is not a jaxspec sweep store (no {MANIFEST}); "
        "refusing to write into it: choose a new or empty --out directory"
        + (
            " (its chunk files remain: jaxspec sweep --repair DIR rebuilds the manifest)"
            if _chunk_files(path)
            else ""
        )
    )


def _chunk_files(path: Path) -> list[tuple[int, Path]]:
    """``[(index, file)]`` of the chunk files in ``path/chunks`` (by name only)."""
    folder = Path(path) / CHUNK_DIR
    if not folder.is_dir():
        return []
    found = []
    for entry in sorted(os.listdir(folder)):
        match = _CHUNK_RE.match(entry)
        if match:
            found.append((int(match.group(1)), folder / entry))
    return found


def _read_header(file: Path) -> dict[str, Any] | None:
    """A chunk file's header, or ``None`` when it cannot be read."""
    try:
        with np.load(file, allow_pickle=False) as data:
            header = json.loads(str(data["__header__"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError):
        return None
    return header if isinstance(header, dict) else None


def _set_aside(root: Path, file: Path) -> Path:
    """Move a damaged file into ``root/damaged/`` under a free name (never overwrite, never delete)."""
    target_dir = root / DAMAGED_DIR
    target_dir.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
    target = target_dir / f"{file.name}.{stamp}"
    n = 1
    while target.exists():
        target = target_dir / f"{file.name}.{stamp}.{n}"
        n += 1
    os.replace(file, target)
    return target


def _parquet_ok(file: Path) -> bool:
    """Whether ``summary.parquet`` exists and reads."""
    if not file.is_file():
        return False
    try:
        optional_import("pandas", "sweep").read_parquet(file)
    except Exception:  # pyarrow raises many kinds on a damaged file
        return False
    return True


def _write_manifest(path: Path, manifest: Mapping[str, Any]) -> bool:
    """Create ``path/jaxspec-sweep.json`` atomically; ``False`` if another process made it first."""
    tmp = path / f"{_TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{MANIFEST}"
    tmp.write_text(json.dumps(manifest, indent=1))
    try:
        # A hard link creates the name atomically and fails if another host made it first.
        os.link(tmp, path / MANIFEST)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _manifest_from_chunks(path: Path) -> tuple[dict[str, Any], int]:
    """The manifest that the chunk files of ``path`` describe, and how many chunks agree on it."""
    headers = [h for _, file in _chunk_files(path) if (h := _read_header(file)) is not None]
    keys = ("spec", "fingerprint", "chunk_sizes", "num_chunks")
    described = [h for h in headers if all(k in h for k in keys)]
    if not described:
        reason = (
            "no chunk files"
            if not _chunk_files(path)
            else "no chunk file describes its sweep (written before jaxspec-sweep-chunk/2, or all damaged)"
        )
        raise InputError(f"cannot rebuild {path / MANIFEST}: {reason}")
    fingerprints = sorted({h["fingerprint"] for h in described})
    if len(fingerprints) > 1:
        raise InputError(
            f"cannot rebuild {path / MANIFEST}: its chunk files come from {len(fingerprints)} "
            "different sweeps "
            f"(fingerprints {', '.join(f[:12] for f in fingerprints)}); separate them by hand"
        )
    first = described[0]
    provenance_info = dict(first.get("provenance") or {})
    provenance_info["manifest_rebuilt"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    manifest = {
        "format": FORMAT,
        "spec": first["spec"],
        "fingerprint": first["fingerprint"],
        "chunk_sizes": first["chunk_sizes"],
        "num_chunks": first["num_chunks"],
        "provenance": provenance_info,
    }
    return manifest, len(described)


def repair_store(path: str | Path) -> list[str]:
    """Repair a sweep directory from its chunk files: ``jaxspec sweep --repair DIR``.

    Under the directory's lock: a missing or corrupted manifest is rebuilt from the chunk headers (the old
    one set aside); damaged chunk files (unreadable, or failing their checksum) are moved into
    ``DIR/damaged/``; a damaged or stale ``results.zarr`` is rebuilt from the chunks when every chunk is
    present (set aside otherwise), and a missing ``summary.parquet`` is written. Nothing is deleted, nothing
    is computed: chunks set aside or missing are recomputed by ``--resume``.

    Args:
        path: the sweep's output directory.

    Returns:
        One line per action taken, ending with the state of the store.

    Raises:
        InputError: no such directory, no chunk file to rebuild a manifest from, or chunk files of several
            sweeps.

    Example:
        >>> for line in repair_store("out"): print(line)     # doctest: +SKIP
        rebuilt out/jaxspec-sweep.json from 6 chunk files (spec 'small', fingerprint 3f2a9c...)
        out: 6 of 6 chunks done, results.zarr and summary.parquet current
    """
    require("sweep", "jaxspec sweep --repair")
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"--repair {path}: no such directory")
    notes: list[str] = []
    with StoreLock.acquire(path, "repair"):
        try:
            store = SweepStore.open(path)
        except InputError as err:
            if not _chunk_files(path):
                raise
            manifest, agreeing = _manifest_from_chunks(path)
            store = SweepStore(path, manifest)  # validates the rebuilt manifest before it is written
            if (path / MANIFEST).exists():
                moved = _set_aside(path, path / MANIFEST)
                notes.append(f"set aside the damaged manifest as {moved} ({' '.join(str(err).split())[:80]})")
            _write_manifest(path, manifest)
            notes.append(
                f"rebuilt {path / MANIFEST} from {agreeing} chunk files (spec {store.spec.name!r}, "
                f"fingerprint {manifest['fingerprint'][:12]})"
            )
        for index, file in _chunk_files(path):
            if index >= len(store.plan.chunks):
                moved = _set_aside(path, file)
                notes.append(
                    f"set aside {file.name}: not in this sweep's plan of {len(store.plan.chunks)} chunks"
                )
        for index, reason in store.set_aside_damaged_chunks():
            notes.append(
                f"set aside damaged chunk {index} ({reason}) in {path / DAMAGED_DIR}: --resume recomputes it"
            )
        done, total = len(store.done_chunks()), len(store.plan.chunks)
        if store.zarr_path.exists():
            legacy, problem = store.read_zarr()
            if legacy is not None and problem is not None:
                notes.append(f"kept {ZARR} unverified ({problem}; the chunk files to rebuild it are missing)")
            elif problem is not None and done < total:
                _set_aside(path, store.zarr_path)
                notes.append(f"set aside {ZARR} ({problem}); --resume rebuilds it once every chunk is done")
            elif problem is not None:
                store._write_zarr(store.assemble())
                notes.append(f"rebuilt {ZARR} from the {total} chunk files ({problem})")
        present = {ZARR: store.zarr_path.exists(), PARQUET: _parquet_ok(store.parquet_path)}
        redo = [name for name, ok in present.items() if not ok]
        if done == total and redo:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", StoreRepairWarning)
                store.finalize()
            notes.append(f"wrote {' and '.join(redo)} from the {total} chunk files")
        if done == total:
            notes.append(f"{path}: {done} of {total} chunks done, {ZARR} and {PARQUET} current")
        else:
            notes.append(
                f"{path}: {done} of {total} chunks done; "
                f"jaxspec sweep --out {path} --resume computes the rest"
            )
    return notes


def summary_frame(ds):
    """The tidy per-run table: one row per finished ``(point, seed)``.

    Columns: ``point_id``, the grid axes, ``seed``, every per-run scalar (``min_active``), and every
    ``(index,)`` variable spread over columns ``<variable>_<i>`` (``exponents_1``, ``log_svals_1``...).

    Args:
        ds: a sweep Dataset (:func:`load_sweep`).

    Returns:
        A ``pandas.DataFrame``.
    """
    pd = optional_import("pandas", "sweep")
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
    pd = optional_import("pandas", "sweep")
    spec = SweepSpec.from_dict(json.loads(ds.attrs["spec"]))
    done = np.asarray(ds["done"].values)
    lacking = (~done).sum(axis=-1)
    where = np.nonzero(lacking)
    columns = {"point_id": np.asarray(ds["point_id"].values)[where]}
    for a, i in zip(spec.axes, where, strict=True):
        columns[a] = np.asarray(ds[a].values)[i]
    columns["seeds_missing"] = lacking[where]
    return pd.DataFrame(columns)


def load_sweep(path: str | Path, *, warn: bool = True, verify: bool = False):
    """The Dataset of a sweep directory: from ``results.zarr`` once finished, else assembled from its chunks.

    ``results.zarr`` is checked against the digest it recorded and against the chunk files' checksums; a
    damaged or stale copy is rebuilt from the chunks (written back when the directory is writable and no run
    holds its lock), with a :class:`StoreRepairWarning`. A partial store loads too; ``ds.attrs["complete"]``
    is False, ``ds["done"]`` marks the finished runs, :func:`missing_points` lists the rest, and a
    :class:`PartialSweepWarning` says how many points lack seeds.

    Args:
        path: the sweep's ``--out`` directory.
        warn: warn when the store is partial.
        verify: also read every chunk file and check its checksum (``jaxspec report`` does), raising a
            :class:`DamagedChunkError` that names the first damaged one.

    Returns:
        An ``xarray.Dataset``.

    Example:
        >>> ds = load_sweep("out")                                   # doctest: +SKIP
        >>> ds.exponents.sel(index=1).mean("seed")                   # doctest: +SKIP
    """
    optional_import("xarray", "sweep")
    store = SweepStore.open(path)
    if verify:
        store.verify_chunks()
    if store.zarr_path.exists():
        ds, problem = store.read_zarr()
        if ds is not None and problem is not None:
            warnings.warn(f"{store.zarr_path}: {problem}; read unverified", StoreRepairWarning, stacklevel=2)
        if ds is not None:
            return ds
        if not store.is_complete:
            missing = len(store.plan.chunks) - len(store.done_chunks())
            raise InputError(
                f"{store.zarr_path} is damaged ({problem}) and {missing} chunk files are missing, so it "
                f"cannot be rebuilt: jaxspec sweep --repair {store.path}, then --resume"
            )
        ds = store.assemble()
        written = "rebuilt"
        try:
            with StoreLock.acquire(store.path, "repair"):
                store._write_zarr(ds)
        except (InputError, OSError):
            written = "assembled in memory (not written: the directory is locked or read-only)"
        warnings.warn(
            f"{store.zarr_path} was damaged ({problem}); {written} from its {len(store.plan.chunks)} "
            "chunk files",
            StoreRepairWarning,
            stacklevel=2,
        )
        return ds
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
