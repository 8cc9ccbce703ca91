"""The command line's persistent compilation cache: each process reuses what an earlier one compiled.

A ``jaxspec`` command is a short process, and compiling its programs (the scan over layers, the QR, the
samplers) can take longer than running them. JAX's persistent compilation cache stores the compiled
executables on disk, keyed by the program, the JAX version and the device, so the second run of the same
command skips compilation.

Where: ``$JAXSPEC_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/jaxspec/xla``, else ``~/.cache/jaxspec/xla``.
Off: ``jaxspec --no-compile-cache ...`` or ``JAXSPEC_COMPILE_CACHE=0``. The library itself never turns the
cache on: that stays the caller's choice (``jax.config.update("jax_compilation_cache_dir", ...)``).
"""

from __future__ import annotations

import os
from pathlib import Path

# Programs that compile faster than this are not worth a disk entry (JAX's default is 1 s, which would skip
# most of the command line's programs on a fast machine).
MIN_COMPILE_SECONDS = 0.1

_OFF_VALUES = {"0", "off", "false", "no"}


def compile_cache_dir() -> Path | None:
    """Where the command line keeps compiled programs, or ``None`` when the cache is switched off.

    Example:
        >>> import os
        >>> os.environ["JAXSPEC_CACHE_DIR"] = "/tmp/jaxspec-xla"
        >>> str(compile_cache_dir())
        '/tmp/jaxspec-xla'
        >>> del os.environ["JAXSPEC_CACHE_DIR"]
    """
    if os.environ.get("JAXSPEC_COMPILE_CACHE", "").strip().lower() in _OFF_VALUES:
        return None
    explicit = os.environ.get("JAXSPEC_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxspec" / "xla"


def enable_compile_cache() -> Path | None:
    """Point JAX's persistent compilation cache at :func:`compile_cache_dir`; return it (``None``: not used).

    A folder that cannot be created (read-only home, say) leaves the cache off rather than failing the
    command. Call it before the first compilation.
    """
    path = compile_cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(path, os.W_OK):
        return None
    import jax  # here, not at the top: only a running command pays for JAX; --help and --version do not

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path
