"""The example notebooks: each opens with a Colab badge and a guarded install cell, is stored without outputs,
and executes top to bottom (at the reduced size that ``JAXSPEC_NOTEBOOK_SMALL=1`` selects) without a failing
cell.

Execution uses nbclient with the ``python3`` kernel of the running interpreter (jupyter_client substitutes
``sys.executable`` for the kernelspec's ``python``), in a temporary working directory so that figures and
sweep outputs never land in the repository.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
# The notebooks the documentation promises (docs/index.md links each one).
EXPECTED = ("quickstart", "depth_scaling_alignment", "training_dynamics", "sharded_sweep", "any_network")
COLAB_URL = "https://colab.research.google.com/github/jaxspec/jaxspec/blob/main/examples/{name}.ipynb"
INSTALL_SPEC = re.compile(r'"jaxspec(\[[a-z,]+\])? @ git\+https://github\.com/jaxspec/jaxspec"')
CELL_TIMEOUT_S = 300


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def test_examples_directory_holds_the_promised_notebooks():
    names = {p.stem for p in NOTEBOOKS}
    assert sorted(set(EXPECTED) - names) == [], "notebooks promised by the documentation are missing"
    assert sorted(names - set(EXPECTED)) == [], "unexpected notebooks: add them to EXPECTED and docs/index.md"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_colab_badge_and_guarded_install(path):
    cells = _load(path)["cells"]
    first, second = cells[0], cells[1]
    assert first["cell_type"] == "markdown"
    assert COLAB_URL.format(name=path.stem) in _source(first), "the first cell must carry the Colab badge"
    assert "colab-badge.svg" in _source(first)
    install = _source(second)
    assert second["cell_type"] == "code"
    assert INSTALL_SPEC.search(install), "the second cell must pip-install jaxspec from the GitHub repository"
    # The install is skipped where jaxspec is already importable (CI, a local checkout).
    assert 'find_spec("jaxspec") is None' in install


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_outputs_are_stripped(path):
    nb = _load(path)
    dirty = [
        i
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} hold outputs or execution counts; "
        f"run `python scripts/strip_notebooks.py {path.relative_to(ROOT)}`"
    )
    assert "widgets" not in nb.get("metadata", {})


@pytest.mark.docs
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path):
    if importlib.util.find_spec("nbclient") is None or importlib.util.find_spec("ipykernel") is None:
        pytest.skip("nbclient and ipykernel are needed to execute the notebooks (pip install -e '.[test]')")
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, JAXSPEC_NOTEBOOK_SMALL="1")
    # The notebooks' programs are tiny, so XLA's LLVM optimisation passes dominate their cost (an engine
    # program compiles in ~7 s at the default level, ~1.5 s at -O0); CI compiles them unoptimised.
    env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"]))
    # The kernel should draw with the inline backend, as on Colab, not with the test suite's Agg.
    env.pop("MPLBACKEND", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    client = NotebookClient(
        nb, kernel_name="python3", timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=env)  # raises CellExecutionError, naming the cell, on the first failing cell
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
