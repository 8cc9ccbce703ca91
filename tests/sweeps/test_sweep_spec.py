"""Sweep specifications and plans: loading, overrides, validation, grouping and chunking (no device work)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from jaxspec import InputError
from jaxspec.sweeps import SweepSpec, get_kernel, load_spec, make_plan, point_params

EXAMPLE = Path(__file__).resolve().parents[2] / "jaxspec" / "sweeps" / "template.toml"

TOML = """
name = "t"
seeds = 4
ensemble = "masked"
record = ["exponents", "rates"]

[params]
k = 2
rates_every = 5

[axes]
width = [4, 8]
depth = [10, 20]
sigma2 = [1, 2.0]
p = [0.5, 1]
"""

YAML = """
name: t
seeds: 4
record: [exponents, rates]
params: {ensemble: masked, k: 2, rates_every: 5}
axes:
  width: [4, 8]
  depth: [10, 20]
  sigma2: [1.0, 2.0]
  p: [0.5, 1.0]
"""


def _base(**changes):
    kwargs = dict(axes={"width": [4, 8], "sigma2": [1.0, 2.0]}, seeds=3, params={"depth": 10, "k": 2})
    kwargs.update(changes)
    return SweepSpec(**kwargs)


def test_toml_yaml_json_and_python_give_the_same_spec(tmp_path):
    (tmp_path / "s.toml").write_text(TOML)
    (tmp_path / "s.yaml").write_text(YAML)
    from_toml = load_spec(tmp_path / "s.toml")
    (tmp_path / "s.json").write_text(json.dumps(from_toml.to_dict()))
    python = SweepSpec(
        axes={"width": [4, 8], "depth": [10, 20], "sigma2": [1.0, 2.0], "p": [0.5, 1.0]},
        seeds=4,
        params={"ensemble": "masked", "k": 2, "rates_every": 5},
        record=("rates",),
        name="t",
    )
    assert from_toml == load_spec(tmp_path / "s.yaml") == load_spec(tmp_path / "s.json") == python
    # Values are coerced to the parameter's kind and defaults are filled in.
    assert from_toml.axes["sigma2"] == (1.0, 2.0) and isinstance(from_toml.axes["sigma2"][0], float)
    assert from_toml.params["dtype"] == "float32" and from_toml.params["condition"] == "K>=i"
    assert from_toml.record == ("exponents", "rates")
    assert from_toml.num_points == 16 and from_toml.num_runs == 64
    assert SweepSpec.from_dict(from_toml.to_dict()) == from_toml


def test_example_spec_loads():
    spec = load_spec(EXAMPLE)
    assert spec.num_runs == math.prod(len(v) for v in spec.axes.values()) * spec.seeds


def test_template_command_prints_the_shipped_spec(capsys, tmp_path):
    from jaxspec.sweeps import spec_template
    from tests.conftest import run_cli

    code, out, _ = run_cli(capsys, "sweep", "--template")
    assert code == 0 and out == spec_template() == EXAMPLE.read_text()
    (tmp_path / "s.toml").write_text(out)
    assert load_spec(tmp_path / "s.toml") == load_spec(EXAMPLE)


def test_overrides_from_the_command_line(tmp_path):
    (tmp_path / "s.toml").write_text(TOML)
    spec = load_spec(
        tmp_path / "s.toml",
        [
            "seeds=16",
            "axes.width=[8, 16]",
            "params.k=3",
            "p=[0.25]",
            "condition=K>=k",
            "record=rates",
            "chunk_size=7",
            "depth=30",
        ],
    )
    assert spec.seeds == 16
    assert spec.axes["width"] == (8, 16)
    assert spec.params["k"] == 3
    assert spec.axes["p"] == (0.25,)  # a bare name updates the axis it names
    assert spec.params["condition"] == "K>=k"  # not TOML: taken as a string
    assert spec.chunk_size == 7
    assert spec.axes["depth"] == (30,)
    # axes.NAME moves a fixed parameter onto the grid, params.NAME the other way.
    moved = spec.with_overrides(["axes.k=[1, 2]", "params.depth=12"])
    assert moved.axes["k"] == (1, 2) and "k" not in moved.params
    assert moved.params["depth"] == 12 and "depth" not in moved.axes


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(axes={"widht": [4]}), "unknown axis 'widht'.*did you mean 'width'"),
        (dict(axes={"width": []}), "axis 'width' is empty"),
        (dict(axes={}), "at least one axis"),
        (dict(axes={"width": [4, 4]}), "repeats a value"),
        (dict(axes={"width": [0, 4]}), "'width' must be positive"),
        (dict(axes={"width": [4.5]}), "'width' must be an integer"),
        (dict(axes={"width": [4], "p": [1.5]}), r"'p' must lie in \(0, 1\]"),
        (dict(axes={"width": [4], "sigma2": [-1.0]}), "'sigma2' must be positive"),
        (
            dict(axes={"width": [4, 8]}, params={"depth": 10, "k": 5}),
            r"k must be an integer in \[1, 4\].*width=4",
        ),
        (
            dict(axes={"width": [4]}, params={"depth": 10, "ensemble": "gaussian", "p": 0.5}),
            "only applies to the masked",
        ),
        (dict(axes={"width": [4]}, params={"depth": 10, "ensemble": "ginibre"}), "must be one of gaussian"),
        (dict(axes={"width": [4]}, params={"depth": 10, "dept": 3}), "unknown parameter 'dept'"),
        (dict(axes={"width": [4]}, params={"k": 2}), "needs 'depth'"),
        (
            dict(axes={"width": [4], "depth": [10]}, params={"depth": 10}),
            "both a fixed parameter and an axis",
        ),
        (dict(seeds=0), "seeds must be a positive integer"),
        (dict(seed=-1), "seed must be an integer"),
        (dict(record=("rates",)), "record 'rates' needs the parameter rates_every"),
        (dict(record=("rate",)), "unknown record 'rate'.*did you mean 'rates'"),
        (
            dict(record=("rates",), params={"depth": 10, "k": 2, "rates_every": 20}),
            "rates_every = 20 exceeds depth",
        ),
        (dict(kernel="nope"), "unknown sweep kernel 'nope'"),
        (dict(chunk_size=0), "chunk_size must be a positive integer"),
        (dict(memory_budget_mb=-1), "memory_budget_mb must be a positive number"),
    ],
)
def test_impossible_specs_are_refused_up_front(changes, message):
    with pytest.raises(InputError, match=message):
        _base(**changes)


def test_unknown_top_level_key_in_a_file(tmp_path):
    (tmp_path / "s.toml").write_text(TOML.replace("seeds = 4", "sedds = 4"))
    with pytest.raises(InputError, match="unknown key 'sedds'.*did you mean 'seeds'"):
        load_spec(tmp_path / "s.toml")
    (tmp_path / "bad.toml").write_text("seeds = [")
    with pytest.raises(InputError, match="cannot parse"):
        load_spec(tmp_path / "bad.toml")
    with pytest.raises(InputError, match="no such spec file"):
        load_spec(tmp_path / "missing.toml")
    (tmp_path / "binary.toml").write_bytes(b"\x00\xff\xfe")
    with pytest.raises(InputError, match="cannot parse .*binary.toml: not UTF-8 text"):
        load_spec(tmp_path / "binary.toml")
    with pytest.raises(InputError, match="key=value"):
        _base().with_overrides(["seeds"])


def test_svals_record_is_accepted_with_the_direct_method():
    assert _base(record=("svals",)).record == ("exponents", "svals")


def test_fingerprint_tracks_the_numbers_only():
    spec = _base()
    assert spec.fingerprint() == _base(name="other", chunk_size=5, memory_budget_mb=1.0).fingerprint()
    assert spec.fingerprint() == _base(params={"depth": 10, "k": 2, "dtype": "float32"}).fingerprint()
    for changed in (
        _base(seeds=4),
        _base(seed=1),
        _base(params={"depth": 11, "k": 2}),
        _base(axes={"width": [4, 8], "sigma2": [1.0, 3.0]}),
    ):
        assert changed.fingerprint() != spec.fingerprint()


def test_point_ids_are_the_c_order_grid_index():
    spec = SweepSpec(axes={"width": [4, 8], "depth": [10, 20, 30], "p": [0.5, 1.0]}, seeds=2, params={"k": 2})
    for pid in range(spec.num_points):
        w, d, p = np.unravel_index(pid, (2, 3, 2))
        params = point_params(spec, pid)
        assert (params["width"], params["depth"], params["p"]) == ((4, 8)[w], (10, 20, 30)[d], (0.5, 1.0)[p])


def test_plan_groups_by_static_shape_and_chunks_cover_every_run_once():
    spec = SweepSpec(
        axes={"width": [4, 8], "sigma2": [1.0, 2.0, 3.0], "depth": [10, 20]},
        seeds=3,
        params={"k": 2},
        chunk_size=4,
    )
    plan = make_plan(spec, num_devices=4)
    # sigma2 is dynamic: 2 widths x 2 depths = 4 compiled shapes, 3 points each.
    assert len(plan.groups) == 4
    assert all(len(g.point_ids) == 3 for g in plan.groups)
    for g in plan.groups:
        for pid in g.point_ids:
            params = point_params(spec, int(pid))
            assert all(params[a] == v for a, v in g.static.items())
    runs = []
    for chunk in plan.chunks:
        ids, seeds = plan.groups[chunk.group].runs(chunk.start, chunk.stop, spec.seeds)
        assert 1 <= len(ids) <= 4
        runs += list(zip(ids.tolist(), seeds.tolist(), strict=True))
    assert sorted(runs) == [(p, s) for p in range(spec.num_points) for s in range(3)]
    # With an explicit chunk size the plan does not depend on the device count.
    assert make_plan(spec, num_devices=1).chunks == plan.chunks


def test_chunks_follow_the_memory_budget():
    kernel = get_kernel("lyapunov")
    spec = SweepSpec(axes={"sigma2": [1.0, 2.0]}, seeds=5000, params={"width": 16, "depth": 100, "k": 4})
    run_bytes = kernel.run_bytes({**spec.params}, spec.record)
    assert run_bytes > 16 * 16 * 4  # at least a weight matrix
    budget_runs = int(spec.memory_budget_mb * 2**20) // run_bytes
    small = SweepSpec(
        axes={"sigma2": [1.0, 2.0]},
        seeds=5000,
        params={"width": 16, "depth": 100, "k": 4},
        memory_budget_mb=budget_runs * run_bytes / 2**20 / 100,
    )
    plan1, plan4 = make_plan(small, num_devices=1), make_plan(small, num_devices=4)
    per_device = plan1.groups[0].chunk_runs
    assert per_device * run_bytes <= small.memory_budget_mb * 2**20 < (per_device + 1) * run_bytes
    assert plan4.groups[0].chunk_runs == 4 * per_device
    assert len(plan1.chunks) == math.ceil(spec.num_runs / per_device)
