"""The README is executable: every Python block runs as written, and the demo output it shows is what
``jaxspec demo`` prints.

A block may be preceded by ``<!-- readme-test: setup: <shell command> -->``: the command runs first, in the
same empty directory (the sweep block reads the output of the walkthrough above it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_demo_wrote_its_figure_and_tables, run_cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETUP = re.compile(r"<!-- readme-test: setup: (.*?) -->\n```python\n", re.DOTALL)
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
DEMO = re.compile(r"<!-- readme-test: the output of `jaxspec demo` -->\n```text\n(.*?)```", re.DOTALL)
NUMBER = re.compile(r"-?\d+\.\d+")


def _python_blocks():
    setups = {m.end(): m.group(1) for m in SETUP.finditer(README)}
    for number, match in enumerate(BLOCK.finditer(README)):
        setup = setups.get(match.start() + len("```python\n"))
        yield pytest.param(match.group(1), setup, id=f"block-{number}")


def test_readme_has_python_blocks_and_the_demo_output():
    assert len(list(_python_blocks())) >= 4
    assert DEMO.search(README), "the README must show the output of `jaxspec demo`"


@pytest.mark.parametrize(("source", "setup"), list(_python_blocks()))
def test_readme_python_block_runs(source, setup, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    if setup:
        # The setup (a sweep of 36 small programs) compiles far more than it runs: the suite's -O0 halves it.
        bindir = Path(sys.executable).parent
        env["PATH"] = os.pathsep.join([str(bindir), env.get("PATH", "")])
        done = subprocess.run(
            setup, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"setup `{setup}` failed:\n{done.stderr[-3000:]}"
    # The block itself as a user runs it: XLA's default optimisation (the suite's -O0 makes the singular-value
    # blocks 3-8x slower to run than they are to compile).
    env["XLA_FLAGS"] = " ".join(
        flag
        for flag in env.get("XLA_FLAGS", "").split()
        if not flag.startswith("--xla_backend_optimization_level")
    )
    done = subprocess.run(
        [sys.executable, "-c", source], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]


def _numbers(text: str) -> tuple[list[str], np.ndarray]:
    """The text with timings removed and numbers replaced by a placeholder, and the numbers."""
    text = re.sub(r"\(\d+\.\d s\)", "(t s)", text)
    return NUMBER.sub("#", text).split(), np.array([float(x) for x in NUMBER.findall(text)])


def test_readme_shows_the_real_demo_output(capsys, tmp_path):
    shown = DEMO.search(README).group(1)
    code, out, err = run_cli(capsys, "demo", "--out", tmp_path / "demo.png")
    assert code == 0, err
    assert_demo_wrote_its_figure_and_tables(out, tmp_path / "demo.png")
    out = out.replace(str(tmp_path / "demo.png"), "jaxspec_demo.png")
    shown_words, shown_numbers = _numbers(shown)
    real_words, real_numbers = _numbers(out)
    assert shown_words == real_words, (
        "the README's demo block no longer matches `jaxspec demo`: paste it again"
    )
    # Printed with 6 decimals (2 for z): the same realisation on another CPU may differ in the last digit.
    np.testing.assert_allclose(shown_numbers, real_numbers, atol=0.011)
