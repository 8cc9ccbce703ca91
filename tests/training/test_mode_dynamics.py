"""Deep-linear predictions: integrators against closed forms, and real training runs against the predictions.

Oracles: Saxe's closed form; the exact solution of the L=1 matrix ODE (a matrix exponential, scipy); the exact
discrete recursion that full-batch GD follows on aligned layers (:func:`mode_gd`). The measured-vs-ODE error
is then split honestly into modelling error (zero here, checked against the discrete recursion to rounding)
and the O(eta) discretisation error of GD, whose first-order scaling is checked too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxspec import InputError, data, training
from jaxspec.training import aligned_init, balanced_factors, make_loss, make_model, make_tracker, train
from tests.conftest import assert_close

# The ODE integrators are RK4 at 16 substeps per output interval: two integrators of one flow, or one against
# a closed form, agree to the O(h^4) truncation error (rtol 1e-7 to 1e-6, atol 1e-9 here), not to rounding.


def test_rk4_balanced_two_layer_ode_equals_saxe_closed_form():
    t = jnp.linspace(0.0, 12.0, 241)
    s, u0 = jnp.array([3.0, 1.5, 0.7]), jnp.array([1e-3, 2e-3, 5e-2])
    closed = training.saxe_two_layer(t[:, None], s[None, :], u0[None, :])
    numeric = training.balanced_mode_ode(t, u0, s, depth=2, substeps=16)
    np.testing.assert_allclose(numeric, closed, rtol=2e-7)  # RK4 truncation error
    np.testing.assert_allclose(closed[-1], s, rtol=1e-6)  # the sigmoid is complete


def test_mode_ode_with_balanced_factors_is_the_balanced_law_and_conserves_imbalances():
    t = jnp.linspace(0.0, 8.0, 81)
    sigma0, s = jnp.array([1e-3, 3e-3]), jnp.array([2.0, 1.0])
    balanced = training.mode_ode(t, balanced_factors(sigma0, 4), s, substeps=16)
    # Two RK4 discretisations of the same flow (in factor space and in sigma space): equal to truncation
    # error.
    np.testing.assert_allclose(
        balanced.sigma, training.balanced_mode_ode(t, sigma0, s, 4, substeps=16), rtol=1e-7
    )
    a0 = jnp.array([[0.5, 0.4], [0.2, 0.3], [0.1, 0.15]])
    unbalanced = training.mode_ode(t, a0, s, substeps=16)
    sq = np.asarray(unbalanced.factors) ** 2
    # a_{l,r}^2 - a_{m,r}^2 is an exact invariant of the flow; RK4 keeps it to its truncation error.
    for i in (0, 1):
        np.testing.assert_allclose(
            sq[:, i] - sq[:, i + 1], np.broadcast_to(sq[0, i] - sq[0, i + 1], sq[:, i].shape), atol=1e-9
        )
    np.testing.assert_allclose(unbalanced.sigma[-1], s, rtol=1e-6)  # converged by t = 8


def test_arora_matrix_ode_depth_one_is_the_matrix_exponential():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4))
    sxx = a @ a.T / 4 + 0.5 * np.eye(4)
    syx = rng.normal(size=(3, 4))
    w0 = rng.normal(size=(3, 4))
    t = jnp.linspace(0.0, 2.0, 11)
    w = training.arora_end_to_end(t, w0, sxx, syx, depth=1, substeps=16)
    target = np.linalg.solve(sxx, syx.T).T
    exact = np.stack([target + (w0 - target) @ scipy.linalg.expm(-sxx * float(ti)) for ti in t])
    np.testing.assert_allclose(w, exact, atol=1e-9)  # RK4 truncation error


def test_arora_matrix_ode_from_an_aligned_balanced_start_decouples_into_saxe_modes():
    u = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))[0]
    v = np.linalg.qr(np.random.default_rng(3).normal(size=(5, 5)))[0][:, :3]
    s = np.array([2.5, 1.0, 0.4])
    w0 = u @ np.diag([1e-2, 2e-2, 3e-2]) @ v.T
    t = jnp.linspace(0.0, 10.0, 51)
    w = training.arora_end_to_end(t, w0, np.eye(5), u @ np.diag(s) @ v.T, depth=2, substeps=16)
    sigma = np.linalg.svd(np.asarray(w), compute_uv=False)[:, :3]
    closed = np.asarray(training.saxe_two_layer(t[:, None], s, np.array([1e-2, 2e-2, 3e-2])))
    closed = np.sort(closed, axis=1)[:, ::-1]
    np.testing.assert_allclose(sigma, closed, rtol=1e-6)  # RK4 truncation error


def _aligned_run(depth, factors, lr, steps, log_every, s=(3.0, 2.0, 1.0)):
    ds, teacher = data.teacher(jax.random.key(0), 6, 4, 48, list(s), dtype=jnp.float64)
    widths = (6,) + (5,) * (depth - 1) + (4,)
    params = aligned_init(widths, teacher.u, teacher.v, factors, key=jax.random.key(1), dtype=jnp.float64)
    model = make_model("linear", params, ds)
    result = train(
        make_loss(model, ds),
        params,
        num_steps=steps,
        log_every=log_every,
        track_fn=make_tracker(model, top_k=len(s)),
        learning_rate=lr,
        progress=False,
    )
    sxx, syx = data.input_output_statistics(ds)
    comparison = training.compare_dynamics(result, sigma_xx=sxx, sigma_yx=syx, depth=depth, learning_rate=lr)
    return result, comparison, teacher


@pytest.mark.parametrize("depth, steps", [pytest.param(2, 6000, marks=pytest.mark.slow), (3, 8000)])
def test_balanced_aligned_small_init_follows_saxe_and_arora_within_two_percent(depth, steps):
    # sigma0 / s <= 1%: the plateau and the whole sigmoid, up to within 0.1% of the targets.
    lr, s, sigma0 = 1e-3, np.array([3.0, 2.0, 1.0]), np.array([1e-2, 1e-2, 1e-2])
    factors = balanced_factors(sigma0, depth)
    result, cmp, _ = _aligned_run(depth, factors, lr, steps, 100)
    # The whole sigmoid: from sigma0 to within 0.1% of every target.
    assert_close(cmp.measured[0], sigma0)
    np.testing.assert_allclose(cmp.measured[-1], s, rtol=1e-3)
    names = ["balanced", "mode_ode", "arora"] + (["saxe"] if depth == 2 else [])
    for name in names:
        assert np.all(cmp.max_relative_error[name] < 0.02), (name, cmp.max_relative_error[name])
        assert np.all(np.abs(cmp.half_time_error[name]) < 0.01), (name, cmp.half_time_error[name])
    # Where the error comes from: GD on aligned layers is exactly the discrete mode recursion ...
    discrete = training.mode_gd(factors, s, lr, steps, 100)
    assert_close(cmp.measured, discrete.sigma)
    # ... and that recursion is a first-order scheme: halving eta halves its distance to the flow.
    flow = cmp.predicted["balanced"]
    half = training.mode_gd(factors, s, lr / 2, 2 * steps, 200).sigma
    err_full = np.max(np.abs(np.asarray(discrete.sigma) / flow - 1))
    err_half = np.max(np.abs(np.asarray(half) / flow - 1))
    assert 1.8 < err_full / err_half < 2.2, (err_full, err_half)


def test_unbalanced_aligned_init_conserves_imbalances_and_follows_the_mode_ode():
    lr, steps, s = 1e-3, 12000, np.array([3.0, 2.0, 1.0])
    factors = np.array([[0.4, 0.3, 0.25], [0.1, 0.1, 0.1], [0.05, 0.04, 0.03]])
    result, cmp, _ = _aligned_run(3, factors, lr, steps, 100)
    measured = np.asarray(result.tracked["factors"])
    assert_close(measured[0], factors)
    sq = measured**2
    drift = np.abs(
        np.stack([sq[:, 0] - sq[:, 1], sq[:, 1] - sq[:, 2]])
        - np.stack([sq[:1, 0] - sq[:1, 1], sq[:1, 1] - sq[:1, 2]])
    )
    # GD conserves a_l^2 - a_m^2 up to eta^2 terms per step; the exact recursion predicts the drift.
    discrete = training.mode_gd(factors, s, lr, steps, 100)
    assert_close(measured, discrete.factors)
    assert drift.max() < 2e-3 * sq.max(), drift.max() / sq.max()
    # Whole matrices: W_{l+1}^T W_{l+1} - W_l W_l^T stays put too.
    bal = np.asarray(result.tracked["balancedness"])
    assert np.max(np.abs(bal - bal[0])) < 2e-3 * sq.max()
    assert np.all(cmp.max_relative_error["mode_ode"] < 0.02), cmp.max_relative_error["mode_ode"]
    np.testing.assert_allclose(cmp.measured[-1], s, rtol=1e-3)  # converged to within 0.1% of the targets
    # The balanced law is *not* right here: the imbalance changes the speed.
    assert np.max(cmp.max_relative_error["balanced"]) > 0.1


def test_compare_dynamics_rejects_bad_input():
    from jaxspec.training import TrainResult

    tracked = {
        "sigma": jnp.ones((3, 2)),
        "u": jnp.ones((3, 4, 2)),
        "v": jnp.ones((3, 6, 2)),
        "factors": jnp.ones((3, 2, 2)),
    }
    result = TrainResult(None, None, jnp.arange(3) * 10, jnp.ones(3), tracked)
    sxx, syx = np.eye(6), np.zeros((4, 6))
    with pytest.raises(InputError, match="start_index"):
        training.compare_dynamics(
            result, sigma_xx=sxx, sigma_yx=syx, depth=2, learning_rate=0.1, start_index=2
        )
    with pytest.raises(InputError, match="learning_rate"):
        training.compare_dynamics(result, sigma_xx=sxx, sigma_yx=syx, depth=2)
    with pytest.raises(InputError, match="make_tracker"):
        training.compare_dynamics(
            result._replace(tracked=None), sigma_xx=sxx, sigma_yx=syx, depth=2, learning_rate=0.1
        )
    with pytest.raises(InputError, match="unknown predictions"):
        training.compare_dynamics(
            result, sigma_xx=sxx, sigma_yx=syx, depth=2, learning_rate=0.1, predictions=("magic",)
        )
    with pytest.raises(InputError, match="depth"):
        training.balanced_mode_ode(jnp.linspace(0, 1, 3), jnp.ones(1), jnp.ones(1), depth=0)
