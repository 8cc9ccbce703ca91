"""Validation at the boundary (issue 19): every refused input of the public ensembles, theory and analysis API
raises ``InputError`` naming the argument (and the accepted range) before any work; property tests drive the
shared validators of ``jaxspec._checks`` with random invalid and valid values.

Counts of this file: ``API_CASES`` refused inputs (each must raise InputError naming its argument), and the
hypothesis properties below (25 examples each).
"""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxspec
from jaxspec import analysis, theory
from jaxspec._checks import (
    InputError,
    check_int,
    check_positive,
    check_probability,
    check_real,
    check_scale_range,
    check_widths,
)

ENS = jaxspec.gaussian(8, 10)

# (call, the argument the message must name, and a fragment of the accepted range)
API_CASES = [
    (lambda: jaxspec.gaussian(width=4.5, depth=3), "width", "positive integer"),
    (lambda: jaxspec.gaussian(width=True, depth=3), "width", "(bool)"),
    (lambda: jaxspec.gaussian(width=4, depth=2.5), "depth", "positive integer"),
    (lambda: jaxspec.gaussian(width="4", depth=3), "width", "(str)"),
    (lambda: jaxspec.gaussian(4, 3, sigma2=np.inf), "sigma2", "positive"),
    (lambda: jaxspec.gaussian(4, 3, sigma2=np.nan), "sigma2", "positive"),
    (lambda: jaxspec.gaussian(4, 3, sigma2="1"), "sigma2", "(str)"),
    (lambda: jaxspec.gaussian(4, 3, sigma2=1 + 1j), "sigma2", "(complex)"),
    (lambda: jaxspec.orthogonal(4, 3, sigma2=-2.0), "sigma2", "positive"),
    (lambda: jaxspec.relu_net(4, 3, sigma2=0.0), "sigma2", "positive"),
    (lambda: jaxspec.masked(4, 3, p="0.5"), "p", "(0, 1]"),
    (lambda: jaxspec.masked(4, 3, p=0.0), "p", "(0, 1]"),
    (lambda: jaxspec.masked(4, 3, p=np.nan), "p", "(0, 1]"),
    (lambda: jaxspec.masked(4, 3, fixed_count=2.5), "fixed_count[0]", "[0, 4]"),
    (lambda: jaxspec.masked(4, 3, fixed_count=5), "fixed_count[0]", "[0, 4]"),
    (lambda: jaxspec.masked(4, 3, fixed_count="2"), "fixed_count", "integer"),
    (lambda: jaxspec.gaussian(widths=(4, 4.5)), "widths[1]", "positive integer"),
    (lambda: jaxspec.gaussian(widths="44"), "widths", "sequence"),
    (lambda: jaxspec.fixed_network([np.eye(3) * (1 + 1j)]), "weights[0]", "real"),
    (lambda: jaxspec.fixed_network([np.array([["a"]])]), "weights[0]", "real"),
    (lambda: jaxspec.fixed_network([np.eye(2)], [np.array([0.5, 1.0])]), "masks[0]", "0 and 1"),
    (lambda: jaxspec.make_ensemble(1, 4, 3), "ensemble", "gaussian"),
    (lambda: theory.masked_exponents(16, 0.0), "p", "(0, 1]"),
    (lambda: theory.masked_exponents(16, "x"), "p", "(str)"),
    (lambda: theory.masked_exponents(16, 0.5, fixed_count=17), "fixed_count", "[0, 16]"),
    (lambda: theory.gaussian_exponents(-16), "n", "positive integer"),
    (lambda: theory.gaussian_exponents(16, k=2.5), "k", "[1, 16]"),
    (lambda: theory.gaussian_exponents(16.5), "n", "positive integer"),
    (lambda: theory.gaussian_exponents(16, -1.0), "sigma2", "positive"),
    (lambda: theory.gaussian_exponents(16, np.inf), "sigma2", "positive"),
    (lambda: theory.complex_gaussian_exponents(8, 0.0), "sigma2", "positive"),
    (lambda: theory.orthogonal_exponents(8, -1.0), "sigma2", "positive"),
    (lambda: theory.predicted_stderr(ENS, seeds=0), "seeds", "positive integer"),
    (lambda: theory.predicted_stderr(ENS, seeds="4"), "seeds", "(str)"),
    (lambda: theory.predicted_stderr(ENS, seeds=2.5), "seeds", "positive integer"),
    (lambda: theory.estimator_covariance(ENS, seeds=0), "seeds", "positive integer"),
    (lambda: theory.lyapunov_exponents(ENS, k=0), "k", "[1, 8]"),
    (lambda: theory.lyapunov_exponents("x"), "ensemble", "jaxspec ensemble"),
    (lambda: theory.lyapunov_exponents(ENS, condition="K>i"), "condition", "K>=i"),
    (lambda: theory.singular_value_offsets(0), "n", "positive integer"),
    (lambda: theory.separation_rate([1.0, 0.0, -1.0], 1.5), "i", "[1, 2]"),
    (lambda: theory.fuss_catalan_moment(2, -1), "order", "non-negative integer"),
    (lambda: theory.fuss_catalan_moment(2, 1.5), "order", "non-negative integer"),
    (lambda: theory.fuss_catalan_moment(400, 400), "Fuss-Catalan moment", "exceeds float64"),
    (lambda: theory.jjt_moments(0, 2), "n", "positive integer"),
    (lambda: theory.jjt_moments(4.5, 2), "n", "positive integer"),
    (lambda: theory.jjt_moments(4, 2, sigma2=np.inf), "sigma2", "positive"),
    (lambda: theory.large_n_exponents(0, 0.5), "n", "positive integer"),
    (lambda: theory.large_n_exponents(8, 0.5, sigma2="2"), "sigma2", "(str)"),
    (lambda: theory.binomial_count_law(4, 4, 1.5), "p", "[0, 1]"),
    (lambda: theory.fixed_count_law(4, 4, 9), "count", "[0, 4]"),
    (lambda: theory.count_laws((4, 4), p=np.nan), "p", "(0, 1]"),
    (lambda: theory.count_laws((4, 4), counts=(1.5,)), "counts[0]", "[0, 4]"),
    (lambda: theory.product_theory((4, 4, 4), sigma2=-1.0), "sigma2", "positive"),
    (lambda: theory.count_law_theory([], 2), "laws", "non-empty"),
    (lambda: theory.relu_log_norm_moments((4, 4), sigma2=0.0), "sigma2", "positive"),
    (lambda: theory.norm_power_moment(theory.count_laws((4, 4)), "2"), "power", "(str)"),
    (lambda: theory.norm_power_moment(theory.count_laws((1,) * 1001, p=0.5), 2), "E ||J u||^4", "log=True"),
    (lambda: theory.wide_spectral_variance(2.5), "depth", "positive integer"),
    (lambda: theory.gaussian_exponents_jax(0), "n", "positive integer"),
    (lambda: theory.masked_exponents_jax(8, 1.5), "p", "(0, 1]"),
    (lambda: theory.predicted_log_svals([1.0], [1.0], np.nan), "depth", ">= 0"),
    (lambda: theory.predicted_log_svals([1.0], [1.0, 2.0], 3), "offsets", "shape"),
    (lambda: theory.separation_depth([1.0, 0.0], [0.0, 0.0], 1.0, 5), "i", "[1, 1]"),
    (lambda: analysis.fit_slopes(np.zeros((2, 5, 1)), start=1.5), "start", "[1, 4]"),
    (lambda: analysis.network_theory((4, 4.5)), "widths[1]", "positive integer"),
    (lambda: analysis.network_theory((4, 4), k=0), "k", "[1, 4]"),
    (lambda: analysis.network_theory((4, 4), sigma2=np.inf), "sigma2", "positive"),
    (lambda: analysis.network_theory((4, 4), activation="tanh"), "activation", "relu"),
    (lambda: analysis.separation_ratios(np.zeros((3, 2)), width=0), "width", "positive integer"),
    (lambda: analysis.product_log_svals(np.ones((2, 3, 3)) * (1 + 1j)), "weights", "real"),
    (lambda: analysis.prefix_alignment(np.ones((3, 2, 2)), k=3), "k", "[1, 2]"),
    (lambda: analysis.prefix_alignment(np.ones((3, 2, 2)) * (1 + 1j)), "weights", "real"),
    (lambda: analysis.prefix_alignment([["a"]]), "weights", "real numbers"),
    (lambda: analysis.split_sandwich(np.ones((1, 2, 2)), None, 1), "split", "at least two layers"),
    (lambda: analysis.split_sandwich(np.ones((4, 2, 2)), None, 1.5), "split", "[1, 3]"),
    (lambda: analysis.segment_alignment(np.ones((4, 3, 3)), None, (0, 2, 4), k=1), "k", "[2, 3]"),
    (lambda: analysis.top_singular_pairs(np.ones((3, 4)), 0), "k", "[1, 3]"),
    (lambda: analysis.ensemble_log_svals(ENS, 3), "seed_key", "PRNG key"),
    (lambda: analysis.ensemble_log_svals("x", jax.random.key(0)), "ensemble", "jaxspec ensemble"),
    (
        lambda: analysis.ensemble_log_svals(ENS, jaxspec.engine.seed_keys(0, 1)[0], dtype="int32"),
        "dtype",
        "float32",
    ),
]


@pytest.mark.parametrize("call, name, accepted", API_CASES)
def test_refused_input_names_argument_and_range(call, name, accepted):
    with pytest.raises(InputError) as info:
        call()
    message = str(info.value)
    assert name in message and accepted in message, message
    assert "\n" not in message


def test_misleading_messages_are_gone():
    # Was "k must lie in [1, -16]" and "seeds must be a positive integer, got 4" (a str '4').
    with pytest.raises(InputError, match=r"n must be a positive integer, got -16$"):
        theory.gaussian_exponents(-16)
    with pytest.raises(InputError, match=r"got '4' \(str\)"):
        theory.predicted_stderr(ENS, seeds="4")


def test_float64_overflow_of_moments_is_reported_in_logs():
    # E||Ju||^4 of a width-1 ReLU net over 1000 layers is 6^1000: beyond float64, exact in logs.
    laws = theory.count_laws((1,) * 1001, p=0.5)
    log4 = theory.norm_power_moment(laws, 2, log=True)
    assert math.isclose(log4, 1000 * math.log(0.5 * 3 * 4), rel_tol=1e-12)  # (sigma2/n)^2 E K(K+2) = 4 * 3/2
    moments = theory.relu_log_norm_moments((1,) * 1001)
    assert moments.fourth == math.inf and math.isclose(moments.log_fourth, log4, rel_tol=1e-12)


def test_count_law_sums_cover_only_the_support():
    # A deterministic count is one column: the Gaussian theory of a huge width costs O(k), not O(k N).
    lam = theory.lyapunov_exponents(jaxspec.gaussian(10**6, 2), k=3)
    np.testing.assert_allclose(lam, theory.gaussian_exponents(10**6, 1.0, 3), rtol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# Property tests of the shared validators.

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
not_an_int = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(
        lambda x: not (math.isfinite(x) and x.is_integer())
    ),
    st.text(max_size=4),
    st.booleans(),
    st.none(),
    st.complex_numbers(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=2),
)
not_a_real = st.one_of(
    st.sampled_from([math.inf, -math.inf, math.nan]),
    st.text(max_size=4),
    st.booleans(),
    st.none(),
    st.complex_numbers(allow_nan=False, allow_infinity=False, min_magnitude=1e-3).filter(lambda z: z.imag),
)


@FEW
@given(value=not_an_int)
def test_check_int_refuses_non_integers(value):
    with pytest.raises(InputError, match="^width must be a positive integer, got "):
        check_int("width", value, minimum=1)


@FEW
@given(value=st.integers(min_value=-(2**40), max_value=2**40), low=st.integers(-5, 5))
def test_check_int_keeps_integers_in_range(value, low):
    if value >= low:
        assert check_int("n", value, minimum=low) == value
        assert check_int("n", float(value), minimum=low) == value
    else:
        with pytest.raises(InputError, match=f"n must be an integer >= {low}|non-negative|positive"):
            check_int("n", value, minimum=low)


@FEW
@given(value=not_a_real)
def test_check_real_refuses_non_reals(value):
    for check in (
        lambda v: check_positive("sigma2", v),
        lambda v: check_probability("p", v),
        lambda v: check_real("x", v),
    ):
        with pytest.raises(InputError, match="^(sigma2|p|x) must "):
            check(value)


@FEW
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_check_probability_is_the_open_closed_unit_interval(value):
    if 0 < value <= 1:
        assert check_probability("p", value) == value
    else:
        with pytest.raises(InputError, match=r"p must lie in \(0, 1\]"):
            check_probability("p", value)


@FEW
@given(widths=st.lists(st.one_of(st.integers(-3, 6), st.floats(0.5, 6.5)), min_size=0, max_size=4))
def test_check_widths(widths):
    valid = len(widths) >= 2 and all(float(n).is_integer() and n >= 1 for n in widths)
    if valid:
        assert check_widths(widths) == tuple(int(n) for n in widths)
    else:
        with pytest.raises(InputError, match="widths"):
            check_widths(widths)


@FEW
@given(log10_sigma2=st.floats(-320, 308), block=st.integers(1, 64), width=st.integers(1, 4096))
def test_check_scale_range_is_the_dtype_exponent_range(log10_sigma2, block, width):
    sigma2 = 10.0**log10_sigma2
    if sigma2 == 0:
        return
    for dtype, log_range in (("float32", 87.33654475055310), ("float64", 708.3964185322641)):
        # Lengths: sigma^m over a block of m layers, sqrt(N) in a column norm, e^6 of fluctuations.
        limit = log_range - math.log(width) - 6
        if max(1, block / 2) * abs(math.log(sigma2)) <= limit:
            check_scale_range("sigma2", sigma2, dtype, block=block, width=width)
        else:
            with pytest.raises(InputError, match=f"sigma2 = .* leaves {dtype}'s range"):
                check_scale_range("sigma2", sigma2, dtype, block=block, width=width)


@st.composite
def one_bad_argument(draw):
    """Valid ``(width, depth, p, sigma2, k)`` with exactly one of them spoiled."""
    args = {"width": 6, "depth": 3, "p": 0.5, "sigma2": 1.0, "k": 2}
    name = draw(st.sampled_from(sorted(args)))
    if name in ("width", "depth", "k"):
        args[name] = draw(st.one_of(not_an_int, st.integers(-5, 0)).filter(lambda v: v is not None))
    elif name == "p":
        args[name] = draw(st.one_of(not_a_real, st.floats(allow_nan=False).filter(lambda x: not 0 < x <= 1)))
    else:
        args[name] = draw(st.one_of(not_a_real, st.floats(allow_nan=False).filter(lambda x: x <= 0)))
    return name, args


@FEW
@given(case=one_bad_argument())
def test_public_constructors_and_closed_forms_refuse_any_bad_argument(case):
    name, a = case
    calls = [
        lambda: theory.masked_exponents(a["width"], a["p"], a["sigma2"], a["k"]),
        lambda: theory.large_n_exponents(a["width"], a["p"], a["sigma2"], a["k"]),
    ]
    if name != "k":
        calls.append(lambda: jaxspec.masked(a["width"], a["depth"], p=a["p"], sigma2=a["sigma2"]))
    if name not in ("k", "depth"):
        calls.append(lambda: theory.product_theory((a["width"],) * 3, p=a["p"], sigma2=a["sigma2"]))
    if name == "depth":
        calls = calls[2:]
    for call in calls:
        with pytest.raises(InputError) as info:
            call()
        # The closed forms call the width n, as their signature does; product_theory names widths[l].
        names = {"width": ("width", "n must", "widths")}.get(name, (name,))
        assert any(n in str(info.value) for n in names), (name, str(info.value))
