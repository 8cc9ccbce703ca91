"""The command line's persistent compilation cache: where it lives, the switch, and that a run fills it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jaxspec.cli._cache import compile_cache_dir

TINY = ["lyapunov", "--ensemble", "gaussian", "--width", "4", "--depth", "8", "--seeds", "2"]


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("JAXSPEC_COMPILE_CACHE", raising=False)
    monkeypatch.delenv("JAXSPEC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache_dir() == tmp_path / "jaxspec" / "xla"
    monkeypatch.setenv("JAXSPEC_CACHE_DIR", str(tmp_path / "here"))
    assert compile_cache_dir() == tmp_path / "here"
    for off in ("0", "off", "False"):
        monkeypatch.setenv("JAXSPEC_COMPILE_CACHE", off)
        assert compile_cache_dir() is None


def _run(cache: Path, *flags: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JAXSPEC_COMPILE_CACHE"}
    env["JAXSPEC_CACHE_DIR"] = str(cache)
    done = subprocess.run(
        [sys.executable, "-m", "jaxspec.cli", *flags, *TINY],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_run_fills_the_cache_unless_switched_off(tmp_path):
    off, on = tmp_path / "off", tmp_path / "on"
    _run(off, "--no-compile-cache")
    assert not off.exists() or not any(off.iterdir())
    _run(on)
    assert any(name.name.endswith("-cache") for name in on.iterdir())
