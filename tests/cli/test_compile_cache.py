"""The command line's persistent compilation cache: where it lives, the switch, and that a run fills it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from jaxspec.cli._cache import compile_cache_dir
from tests.conftest import run_cli

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


def test_a_run_fills_the_cache(tmp_path):
    on = tmp_path / "on"
    _run(on)
    assert any(name.name.endswith("-cache") for name in on.iterdir())


def test_the_switch_keeps_the_cache_off(capsys, monkeypatch, tmp_path):
    # In this process (a subprocess per case doubles the test's time): the command must never point JAX at
    # a cache when switched off, by the option or by the environment.
    import jaxspec.cli._main as cli_main

    calls = []
    monkeypatch.setattr(cli_main, "enable_compile_cache", lambda: calls.append(1))
    monkeypatch.setenv("JAXSPEC_CACHE_DIR", str(tmp_path / "off"))
    code, _, err = run_cli(capsys, "--no-compile-cache", *TINY)
    assert code == 0, err
    assert calls == []
    code, _, err = run_cli(capsys, *TINY)
    assert code == 0, err
    assert calls == [1]  # the same command without the switch asks for it
    monkeypatch.setenv("JAXSPEC_COMPILE_CACHE", "0")
    assert compile_cache_dir() is None and not (tmp_path / "off").exists()
