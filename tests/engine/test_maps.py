"""Spectra of maps and flows: exact linear maps, the Henon map and the Lorenz-63 flow against their published
exponents (z-scores across orbits) and exact sums, gradients against finite differences, bad arguments."""

from __future__ import annotations

import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxspec
from jaxspec import InputError
from jaxspec.engine import map_spectrum
from tests.conftest import Z_MAX, assert_close, zscores

# Henon (a = 1.4, b = 0.3) and Lorenz-63 (sigma = 10, rho = 28, beta = 8/3): Sprott, "Chaos and Time-Series
# Analysis" (2003), printed to 5 and 4 decimals (half a unit of the last place is far below the standard
# errors these sizes reach, ~1e-3).
HENON_EXPONENTS = (0.41922, -1.62319)
LORENZ_EXPONENTS = (0.9056, 0.0, -14.5723)
SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0
# The sum of a flow's exponents is the mean divergence, -(sigma + 1 + beta) for Lorenz-63, up to the local
# error of the solver's discrete flow map: Tsit5 (order 5) at dt = 0.01 moves log|det| by ~1e-7 per unit time.
TSIT5_VOLUME_TOL = 1e-6
# Central finite differences with step 1e-6 in float64: truncation ~1e-12, cancellation ~1e-10, relative.
FD_STEP, FD_RTOL = 1e-6, 1e-6


def henon(x):
    return jnp.array([1.0 - 1.4 * x[0] ** 2 + x[1], 0.3 * x[0]])


def lorenz(x):
    return jnp.array([SIGMA * (x[1] - x[0]), x[0] * (RHO - x[2]) - x[1], x[0] * x[1] - BETA * x[2]])


def lorenz_diffrax(t, x, args):
    return lorenz(x)


# A symmetric linear map with eigenvalues 2, 1, 0.5: its exponents per step are log 2, 0, log 0.5 exactly once
# the frame has aligned with the eigenvectors (burn-in).
_ROTATION = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
LINEAR = jnp.asarray(_ROTATION @ np.diag([2.0, 1.0, 0.5]) @ _ROTATION.T)


def linear(x):
    return LINEAR @ x


def test_linear_map_gives_log_eigenvalues_per_unit_time_after_burn_in():
    x0 = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3)))
    dt = 0.5
    expected = np.log([2.0, 1.0, 0.5]) / dt
    # 60 burn-in steps align the frame to (1/2)^60 (below float64 rounding); every later R_ii is exact.
    res = map_spectrum(linear, x0, steps=20, burn_in=60, dt=dt, dtype="float64")
    chex.assert_shape((res.exponents, res.mean, res.stderr), ((3, 3), (3,), (3,)))
    assert_close(res.exponents, np.broadcast_to(expected, (3, 3)))
    assert_close(res.stderr, 0.0, scale=100)
    # Orbit b never depends on how many orbits run beside it; one (n,) orbit is a batch of one. One QR per
    # block of 5 steps multiplies the same R_ii.
    one = map_spectrum(linear, x0[0], steps=20, burn_in=60, dt=dt, reortho_every=5, dtype="float64")
    chex.assert_shape(one.exponents, (1, 3))
    assert_close(one.exponents[0], res.exponents[0], scale=10)
    assert np.all(np.isnan(np.asarray(one.stderr)))


def test_henon_exponents_within_statistical_error_and_exact_sum():
    x0 = jnp.asarray(np.random.default_rng(1).uniform(-0.1, 0.1, size=(32, 2)))
    res = jaxspec.map_spectrum(henon, x0, steps=2000, burn_in=200, dtype="float64")
    z = zscores(res.mean, HENON_EXPONENTS, res.stderr)
    assert np.all(np.abs(z) < Z_MAX), z
    # Every step has |det D step| = b: the QR sums give ln 0.3 per step on every orbit, to rounding.
    assert_close(res.exponents.sum(-1), np.full(32, np.log(0.3)))


def test_lorenz_flow_exponents_within_statistical_error_and_exact_sum():
    x0 = jnp.asarray([1.0, 1.0, 20.0] + np.random.default_rng(2).normal(size=(8, 3)))
    res = jaxspec.flow_spectrum(lorenz, x0, t1=40.0, dt=0.01, burn_in_time=5.0, dtype="float64")
    assert res.steps == 4000 and res.burn_in == 500 and res.dt == 0.01
    z = zscores(res.mean, LORENZ_EXPONENTS, res.stderr)
    assert np.all(np.abs(z) < Z_MAX), z
    np.testing.assert_allclose(res.exponents.sum(-1), -(SIGMA + 1.0 + BETA), atol=TSIT5_VOLUME_TOL)


@pytest.mark.slow
def test_flow_takes_diffrax_signature():
    x0 = jnp.array([[1.0, 1.0, 20.0], [2.0, 1.0, 25.0]])
    short = dict(t1=0.5, dt=0.01, dtype="float64")
    assert_close(
        jaxspec.flow_spectrum(lorenz_diffrax, x0, **short).exponents,
        jaxspec.flow_spectrum(lorenz, x0, **short).exponents,
    )


def test_gradient_of_top_exponents_matches_finite_differences():
    # A contracting tanh RNN ("gradient flossing" regularises its top exponents).
    n = 4
    rng = np.random.default_rng(3)
    weights = jnp.asarray(0.8 * rng.normal(size=(n, n)) / np.sqrt(n))
    bias = jnp.asarray(0.1 * rng.normal(size=n))
    x0 = jnp.asarray(rng.normal(size=(3, n)))

    @jax.jit  # one trace serves both finite-difference evaluations
    def top_exponents(w):
        res = map_spectrum(lambda x: jnp.tanh(w @ x + bias), x0, steps=30, burn_in=5, k=2, dtype="float64")
        return res.mean.sum()

    grad = jax.grad(top_exponents)(weights)
    direction = jnp.asarray(rng.normal(size=(n, n)))
    fd = (top_exponents(weights + FD_STEP * direction) - top_exponents(weights - FD_STEP * direction)) / (
        2 * FD_STEP
    )
    np.testing.assert_allclose(float(jnp.sum(grad * direction)), float(fd), rtol=FD_RTOL)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(step=henon, x0=jnp.zeros(2), steps=0), "steps"),
        (dict(step=henon, x0=jnp.zeros(2), steps=10, k=3), "k must"),
        (dict(step=henon, x0=jnp.zeros(2), steps=10, burn_in=-1), "burn_in"),
        (dict(step=henon, x0=jnp.zeros(2), steps=10, dt=0.0), "dt"),
        (dict(step=henon, x0=jnp.zeros((2, 2, 2)), steps=10), "x0"),
        (dict(step=henon, x0=jnp.zeros(2), steps=10, reortho_every=0), "reortho_every"),
        (dict(step=henon, x0=jnp.zeros(2), steps=10, dtype="float16"), "dtype"),
        (dict(step="henon", x0=jnp.zeros(2), steps=10), "step"),
        (dict(step=lambda x: x[:1], x0=jnp.zeros(2), steps=10), r"\(2,\) array"),
        (dict(step=lambda x: x @ jnp.ones((3, 3)), x0=jnp.zeros(2), steps=10), "fails"),
    ],
)
def test_bad_map_arguments_raise_input_error(kwargs, message):
    with pytest.raises(InputError, match=message) as info:
        map_spectrum(**kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(t1=1.005, dt=0.01), "whole number"),
        (dict(t1=1.0, dt=-0.01), "dt"),
        (dict(t1=1.0, dt=0.01, solver="tsit5"), "solver"),
        (dict(t1=1.0, dt=0.01, burn_in_time=-1.0), "burn_in_time"),
    ],
)
def test_bad_flow_arguments_raise_input_error(kwargs, message):
    with pytest.raises(InputError, match=message):
        jaxspec.flow_spectrum(lorenz, jnp.ones(3), **kwargs)


def test_flow_spectrum_names_the_extra_when_diffrax_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffrax", None)  # import diffrax now raises ImportError
    with pytest.raises(ImportError, match=r"jaxspec\[maps\]"):
        jaxspec.flow_spectrum(lorenz, jnp.ones(3), t1=1.0, dt=0.01)
