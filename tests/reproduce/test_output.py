"""The file-output layer and the command line of the reproduction jobs (no job runs here)."""

from __future__ import annotations

import pytest

from jaxspec import InputError
from jaxspec.figures import write_atomic, write_outputs
from jaxspec.reproduce import run_bottleneck, run_dynamics, run_init, run_saddle, run_ufm
from tests.conftest import run_cli


def test_write_atomic_replaces_the_file_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")
    write_atomic(target, lambda p: p.write_text("new"))
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_write_atomic_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "init.nc"
    target.write_text("complete")

    def fail(path):
        path.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_atomic(target, fail)
    assert target.read_text() == "complete"
    assert [p.name for p in tmp_path.iterdir()] == ["init.nc"]


def test_write_atomic_keeps_the_suffix_for_the_format(tmp_path):
    seen = []
    write_atomic(tmp_path / "fig.png", lambda p: (seen.append(p), p.write_bytes(b"x")))
    assert seen[0].suffix == ".png" and seen[0].parent == tmp_path and seen[0].name.startswith(".")


def test_write_outputs_rejects_anything_but_a_job_result(tmp_path):
    with pytest.raises(InputError, match="not the result"):
        write_outputs({"summary": {}}, tmp_path)


@pytest.mark.parametrize("job", [run_init, run_saddle, run_bottleneck, run_ufm, run_dynamics])
def test_unknown_size_overrides_are_named_before_any_work(job):
    with pytest.raises(InputError, match="unknown size overrides.*widht"):
        job(widht=8, progress=False)


@pytest.mark.parametrize(
    ("job", "kwargs", "name"),
    [
        (run_bottleneck, {"targets": ["nope"]}, "targets"),
        (run_dynamics, {"experiments": ["nope"]}, "experiments"),
    ],
)
def test_unknown_targets_and_experiments_are_named(job, kwargs, name):
    with pytest.raises(InputError, match=f"unknown {name}.*nope"):
        job(progress=False, **kwargs)


def test_figures_help_lists_every_job(capsys):
    code, out, _ = run_cli(capsys, "figures", "--help")
    assert code == 0
    for name in ("init", "dynamics", "saddle", "bottleneck", "ufm"):
        assert name in out


def test_figures_saddle_help_keeps_its_options(capsys):
    code, out, _ = run_cli(capsys, "figures", "saddle", "--help")
    assert code == 0
    for option in ("--out", "--full", "--seed", "--quiet", "figures/saddle"):
        assert option in out


def test_figures_bad_target_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "figures", "bottleneck", "--target", "nope", "--out", tmp_path, "--quiet")
    assert code == 2 and "nope" in err and len(err.strip().splitlines()) == 1
