"""Shared check of the reproduction tests: what :func:`jaxspec.figures.write_outputs` leaves on disk."""

from __future__ import annotations

import json

import pytest

from jaxspec.figures import write_outputs


@pytest.fixture
def written(tmp_path):
    """``written(result, expected)``: write the result's files and check them; returns the output folder.

    Every expected file exists and is non-empty, nothing else is there (no temporary file left over by the
    atomic writes), PNGs are PNGs and every JSON file parses.
    """

    def check(result, expected):
        names = write_outputs(result, tmp_path)
        assert sorted(names) == sorted(expected)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
        for name in expected:
            data = (tmp_path / name).read_bytes()
            assert data, name
            if name.endswith(".png"):
                assert data[:8] == b"\x89PNG\r\n\x1a\n", name
            if name.endswith(".json"):
                json.loads(data)
        return tmp_path

    return check
