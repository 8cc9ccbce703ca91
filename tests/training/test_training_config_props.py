"""Validation of training configurations (issue 19): any value of any field is a valid config or one
``InputError`` naming the field, before any work; the ufm ``--train`` options likewise.

Property tests with hypothesis (random values of every type for every field), plus the explicit cases that
a hostile user tried.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxspec._checks import InputError
from jaxspec.training import TrainConfig, load_config

FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.one_of(st.floats(allow_nan=True), st.integers(), st.text(max_size=3)), max_size=4),
    st.complex_numbers(allow_nan=True),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=ANY_VALUE)
def test_any_value_of_any_field_is_a_config_or_one_input_error_naming_the_field(field, value):
    try:
        cfg = load_config(**{field: value})
    except InputError as err:
        message = str(err)
        assert "\n" not in message
        assert field in message or field.replace("_", " ") in message, message
        return
    assert isinstance(cfg, TrainConfig)  # accepted: then it must be a sane value
    accepted = getattr(cfg, field)
    if isinstance(accepted, float):
        assert math.isfinite(accepted)
    if field == "teacher_sv":
        assert all(math.isfinite(s) and s > 0 for s in accepted)


@pytest.mark.parametrize(
    "field, value",
    [
        ("teacher_sv", (3.0, float("nan"))),
        ("teacher_sv", (3.0, -1.0)),
        ("teacher_sv", ()),
        ("predict_from", "3"),
        ("predict_from", 2.5),
        ("seed", -1),
        ("seed", 1.5),
        ("limit", 0),
        ("whiten_dim", -2),
        ("mnist_path", 3),
        ("learning_rate", float("inf")),
        ("steps", 10**30),
        ("width", 10**9),
    ],
)
def test_hostile_values_are_refused_by_name(field, value):
    with pytest.raises(InputError, match=field):
        load_config(**{field: value})
