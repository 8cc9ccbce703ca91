"""Strip outputs, execution counts and run metadata from notebooks: the repository stores only sources.

Usage:
    python scripts/strip_notebooks.py                 # every examples/*.ipynb, in place
    python scripts/strip_notebooks.py path.ipynb ...  # the given notebooks
    python scripts/strip_notebooks.py --check         # exit 1 (and name them) if any notebook is not stripped

Only the standard library is needed (a notebook is JSON), so this also runs as a pre-commit hook.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Cell metadata that records a run or a UI state, not the source.
VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled", "outputId", "colab")
VOLATILE_NOTEBOOK_METADATA = ("widgets", "accelerator", "gpuClass")


def strip(notebook: dict) -> dict:
    """The notebook without outputs, execution counts or run metadata (a new dict; the input is unchanged)."""
    nb = json.loads(json.dumps(notebook))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        for key in VOLATILE_CELL_METADATA:
            cell.get("metadata", {}).pop(key, None)
    metadata = nb.get("metadata", {})
    for key in VOLATILE_NOTEBOOK_METADATA:
        metadata.pop(key, None)
    return nb


def dumps(notebook: dict) -> str:
    """nbformat's on-disk layout: one-space indent, sorted keys, trailing newline."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: examples/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="report unstripped notebooks, change nothing")
    args = parser.parse_args(argv)
    paths = args.paths or sorted((ROOT / "examples").glob("*.ipynb"))
    dirty = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        stripped = strip(json.loads(text))
        if stripped != json.loads(text):
            dirty.append(path)
            if not args.check:
                path.write_text(dumps(stripped), encoding="utf-8")
    for path in dirty:
        print(f"{'not stripped' if args.check else 'stripped'}: {path}")
    return 1 if (args.check and dirty) else 0


if __name__ == "__main__":
    sys.exit(main())
