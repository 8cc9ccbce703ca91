"""The lock of a sweep directory: one run (or repair) at a time works on it.

A run takes an exclusive ``fcntl.flock`` on ``DIR/jaxspec-sweep.lock`` and records its process id, host and
start time in that file. A second run finds the lock held and stops with one line naming the holder. The
kernel releases a ``flock`` when its holder dies (``kill -9`` included), so a crashed run never blocks the
next one. A lock is **stale** when the process recorded in the file is dead and ran on this host, yet the
lock is still held (a descendant inherited the descriptor) or cannot be a ``flock`` at all (a filesystem
without ``flock``, where the file's existence is the lock): it is then broken and taken over.

Example:
    >>> lock = StoreLock.acquire(Path("out"))              # doctest: +SKIP
    >>> lock.release()                                     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from jaxspec._checks import InputError

LOCK = "jaxspec-sweep.lock"
# flock is missing or refused on some network filesystems: fall back to an exclusively created file.
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_ATTEMPTS = 8


def _holder() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _read_holder(file: Path) -> dict[str, Any]:
    try:
        holder = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, ValueError):
        return False
    return True


def is_stale(holder: dict[str, Any]) -> bool:
    """Whether a recorded holder is a dead process of this host (a lock nobody can release)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    return holder.get("host") == socket.gethostname() and not _pid_alive(pid)


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process (no holder recorded)"
    since = f", since {holder['started']}" if holder.get("started") else ""
    return f"pid {holder.get('pid')} on {holder.get('host')}{since}"


def _same_file(fd: int, file: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(file).st_ino
    except FileNotFoundError:
        return False


class StoreLock:
    """An exclusive lock on a sweep directory, held until :meth:`release` (or the process's death).

    Attributes:
        file: the lock file, ``DIR/jaxspec-sweep.lock``.
        took_over: the holder recorded by a dead run whose stale lock this one broke (``{}`` if none).
    """

    def __init__(self, file: Path, fd: int, took_over: dict[str, Any]):
        self.file = file
        self._fd: int | None = fd
        self.took_over = took_over

    @classmethod
    def acquire(cls, directory: Path, purpose: str = "run") -> StoreLock:
        """Take the lock of ``directory`` (which must exist), or raise :class:`InputError` naming its holder.

        Args:
            directory: the sweep directory.
            purpose: what the caller does, for the message (``"run"``, ``"repair"``).

        Returns:
            The held :class:`StoreLock`.
        """
        file = Path(directory) / LOCK
        took_over: dict[str, Any] = {}
        for _ in range(_ATTEMPTS):
            try:
                fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise InputError(f"cannot create the lock file {file}: {err.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = _read_holder(file)
                if is_stale(holder):
                    # Held by a descriptor that outlived its recorded (dead) owner: break it.
                    took_over = holder
                    with contextlib.suppress(FileNotFoundError):
                        file.unlink()
                    continue
                raise InputError(
                    f"{directory} is locked by another jaxspec sweep {purpose} ({_describe(holder)}); "
                    f"wait for it to finish or stop it, then try again (lock file {file})"
                ) from None
            except OSError as err:
                os.close(fd)
                if err.errno in _NO_FLOCK:
                    return cls._acquire_without_flock(file, purpose)
                raise
            if not _same_file(fd, file):  # unlinked by its releaser while we waited: start again
                os.close(fd)
                continue
            previous = _read_holder(file)
            if previous and is_stale(previous):
                took_over = took_over or previous
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(_holder()).encode(), 0)
            return cls(file, fd, took_over)
        raise InputError(f"could not take the lock {file} (it keeps changing hands); try again")

    @classmethod
    def _acquire_without_flock(cls, file: Path, purpose: str) -> StoreLock:
        took_over: dict[str, Any] = {}
        for _ in range(_ATTEMPTS):
            try:
                fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _read_holder(file)
                if is_stale(holder):
                    took_over = holder
                    with contextlib.suppress(FileNotFoundError):
                        file.unlink()
                    continue
                raise InputError(
                    f"{file.parent} is locked by another jaxspec sweep {purpose} ({_describe(holder)}); "
                    f"wait for it to finish, or delete {file} if that process is gone"
                ) from None
            os.write(fd, json.dumps(_holder()).encode())
            return cls(file, fd, took_over)
        raise InputError(f"could not take the lock {file} (it keeps changing hands); try again")

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and let go (idempotent)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if _same_file(self._fd, self.file):
                self.file.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> StoreLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
