"""The saddle at the origin: homogeneity and the exact expansion of the MSE loss, deep-linear escape speed
s_1(G^T X), the unit-circle example, the scale-free step against explicit iterations, plateaus, ratios."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspec import InputError
from jaxspec import saddle as sd
from jaxspec.bottleneck import layer_singular_values
from jaxspec.networks import init_mlp, mlp_apply
from jaxspec.training import TrainResult

SQRT2_MINUS_1 = np.sqrt(2.0) - 1.0


def _problem(widths, n=12, seed=0, activation="relu"):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = init_mlp(k1, widths, activation=activation, dtype=jnp.float64)
    x = jax.random.normal(k2, (n, widths[0]), jnp.float64)
    y = jax.random.normal(k3, (n, widths[-1]), jnp.float64)
    return params, x, y


# ----------------------------------------------------------------------------------------------------------
# The localised loss.


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "linear"])
def test_localised_loss_is_homogeneous_of_degree_depth(activation):
    params, x, y = _problem((3, 7, 6, 5, 2), activation=activation)
    g = sd.mse_output_gradient(y)
    l0 = float(sd.localised_loss(params, x, g, activation=activation))
    for c in (0.3, 2.5):
        scaled = jax.tree.map(lambda w, c=c: c * w, params)
        np.testing.assert_allclose(
            float(sd.localised_loss(scaled, x, g, activation=activation)), c**4 * l0, rtol=1e-12
        )
    # Euler's identity for a degree-L homogeneous function: <grad L0(theta), theta> = L L0(theta).
    grad = jax.grad(lambda p: sd.localised_loss(p, x, g, activation=activation))(params)
    euler = sum(float(jnp.vdot(a["w"], b["w"])) for a, b in zip(grad, params, strict=True))
    np.testing.assert_allclose(euler, 4 * l0, rtol=1e-12)
    # The projected speed is scale-free.
    np.testing.assert_allclose(
        float(sd.escape_speed(params, x, g, activation=activation)),
        float(sd.escape_speed(jax.tree.map(lambda w: 7.0 * w, params), x, g, activation=activation)),
        rtol=1e-12,
    )


def test_mse_loss_expands_exactly_around_the_origin():
    # C(Y) = 1/(2N)||Y - Y*||^2 = C(0) + Tr[G^T Y] + 1/(2N)||Y||^2 with G = -Y*/N: L0 is the first-order term.
    params, x, y = _problem((4, 6, 6, 3))
    g = sd.mse_output_gradient(y)
    grad_at_zero = jax.grad(lambda out: 0.5 * jnp.mean(jnp.sum((out - y) ** 2, axis=1)))(jnp.zeros_like(y))
    np.testing.assert_allclose(g, grad_at_zero, rtol=1e-14)
    out = mlp_apply(params, x)
    c0 = 0.5 * float(jnp.mean(jnp.sum(y**2, axis=1)))
    quad = 0.5 * float(jnp.mean(jnp.sum(out**2, axis=1)))
    np.testing.assert_allclose(
        float(sd.mse_loss(params, x, y)), c0 + float(sd.localised_loss(params, x, g)) + quad, rtol=1e-12
    )


# ----------------------------------------------------------------------------------------------------------
# Escape directions.


def test_deep_linear_escape_speed_is_the_top_singular_value_with_rank_one_layers():
    k1, k2 = jax.random.split(jax.random.key(1))
    x = jax.random.normal(k1, (10, 4), jnp.float64)
    g = jax.random.normal(k2, (10, 3), jnp.float64)
    s = np.linalg.svd(np.asarray(g).T @ np.asarray(x), compute_uv=False)
    esc = sd.optimal_escape_direction(
        jax.random.key(0),
        (4, 5, 5, 3),
        x,
        g,
        activation="linear",
        num_restarts=4,
        num_steps=1000,
        step_size=0.3,
        dtype=jnp.float64,
    )
    np.testing.assert_allclose(float(esc.speed), s[0], rtol=1e-8)
    assert np.all(np.asarray(esc.restart_speeds) <= s[0] * (1 + 1e-12))  # s_1 is an upper bound
    # A KKT point: every layer has unit Frobenius norm, the tangential gradient vanishes.
    np.testing.assert_allclose(esc.layer_norms_sq, 1.0, atol=1e-7)
    assert float(esc.kkt_residual) < 1e-4
    sv = np.asarray(layer_singular_values(esc.params))
    np.testing.assert_allclose(sv[:, 0], 1.0, atol=1e-7)
    assert np.all(sv[:, 1:] < 1e-6)  # rank-one layers
    # The product is -s_1 u_1 v_1^T direction: L0 = -s_1 exactly at the optimum, and the stats agree.
    stats = sd.escape_stats(esc.params, x, g, activation="linear")
    np.testing.assert_allclose(float(stats.speed), float(esc.speed), rtol=1e-12)


def test_unit_circle_rank_two_construction_has_speed_one_half():
    x, g = sd.unit_circle_example(jnp.float64)
    params = sd.unit_circle_rank_two_direction(jnp.float64)
    np.testing.assert_allclose(float(sd.localised_loss(params, x, g)), -0.5, rtol=1e-14)
    stats = sd.escape_stats(params, x, g)
    np.testing.assert_allclose(stats.layer_norms_sq, 1.0, rtol=1e-14)
    np.testing.assert_allclose(float(stats.speed), 0.5, rtol=1e-14)
    sv = np.asarray(layer_singular_values(params))
    assert np.sum(sv[0] > 1e-12) == 2  # the first layer has rank two


def test_unit_circle_rank_one_ascent_stays_below_sqrt2_minus_1_and_wide_ascent_exceeds_it():
    x, g = sd.unit_circle_example(jnp.float64)
    rank_one = sd.optimal_escape_direction(
        jax.random.key(0), (2, 8, 8, 1), x, g, num_restarts=16, num_steps=1500, max_rank=1, dtype=jnp.float64
    )
    assert np.all(np.asarray(rank_one.restart_speeds) <= SQRT2_MINUS_1 + 1e-9)
    assert float(rank_one.speed) > SQRT2_MINUS_1 - 1e-4  # the ascent does reach the rank-one optimum
    assert np.all(np.asarray(layer_singular_values(rank_one.params))[:, 1:] < 1e-9)
    wide = sd.optimal_escape_direction(
        jax.random.key(0), (2, 8, 8, 1), x, g, num_restarts=16, num_steps=1500, dtype=jnp.float64
    )
    assert float(wide.speed) > SQRT2_MINUS_1 + 0.05


# ----------------------------------------------------------------------------------------------------------
# Training from a tiny initialisation.


def test_escape_step_equals_an_explicit_gradient_descent_loop():
    params, x, y = _problem((3, 6, 6, 2), seed=3)
    params = jax.tree.map(lambda w: 1e-2 * w, params)
    c, steps = 0.3, 7
    res = sd.train_from_small_init(params, x, y, step_scale=c, num_steps=steps, log_every=1, progress=False)
    p = params
    loss = jax.jit(lambda p: sd.mse_loss(p, x, y))
    for k in range(steps):
        norm_sq = sum(float(jnp.sum(w["w"] ** 2)) for w in p)
        grad = jax.grad(loss)(p)
        p = jax.tree.map(lambda w, d, eta=c * norm_sq ** ((2 - 3) / 2): w - eta * d, p, grad)
        np.testing.assert_allclose(
            res.tracked["norm_sq"][k + 1], sum(float(jnp.sum(w["w"] ** 2)) for w in p), rtol=1e-12
        )
    for a, b in zip(res.params, p, strict=True):
        np.testing.assert_allclose(a["w"], b["w"], rtol=1e-11, atol=1e-16)


def test_two_layer_linear_escape_is_a_power_iteration_towards_the_top_mode():
    # L = 2: eta = c, and near the origin theta_{k+1} = (I + c A) theta_k with A the symmetric block map
    # (W1, W2) -> (-W2^T M, -M W1^T), M = G^T X: exact up to the cubic term of the loss gradient.
    k1, k2, k3 = jax.random.split(jax.random.key(4), 3)
    x = jax.random.normal(k1, (9, 4), jnp.float64)
    y = jax.random.normal(k2, (9, 3), jnp.float64)
    g = np.asarray(sd.mse_output_gradient(y))
    m = g.T @ np.asarray(x)
    params = jax.tree.map(
        lambda w: 1e-12 * w, init_mlp(k3, (4, 5, 3), activation="linear", dtype=jnp.float64)
    )
    s = np.linalg.svd(m, compute_uv=False)
    c = 0.5
    # Grow by about 1e6: theta stays ~1e-6, the cubic term ~1e-12.
    steps = int(np.log(1e6) / np.log1p(c * s[0]))
    res = sd.train_from_small_init(
        params, x, y, activation="linear", step_scale=c, num_steps=steps, log_every=steps, progress=False
    )
    w1, w2 = (np.asarray(p["w"]) for p in params)
    for _ in range(steps):
        w1, w2 = w1 - c * w2.T @ m, w2 - c * m @ w1.T
    np.testing.assert_allclose(res.params[0]["w"], w1, rtol=1e-6)
    np.testing.assert_allclose(res.params[1]["w"], w2, rtol=1e-6)
    # The direction then escapes at the top speed s_1(M): its error decays like
    # ((1 + c s_2)/(1 + c s_1))^(2k).
    speed = float(sd.escape_speed(res.params, x, jnp.asarray(g), activation="linear"))
    assert speed <= s[0] * (1 + 1e-12)
    assert speed > 0.99 * s[0]


def test_detect_plateaus_on_a_staircase():
    t = np.arange(300)
    loss = 1.0 - 0.5 / (1 + np.exp(-(t - 80) / 3.0)) - 0.3 / (1 + np.exp(-(t - 200) / 3.0))
    pl = sd.detect_plateaus(loss, rate_tol=0.05, min_length=10)
    assert pl.start.tolist()[0] == 0 and len(pl.start) == 3
    assert 55 < pl.end[0] < 80 < pl.start[1] < 110
    assert 170 < pl.end[1] < 200 < pl.start[2] < 230 and pl.end[2] == 299


def test_first_plateau_direction_reads_the_tracked_parameters_at_the_end_of_the_first_plateau():
    t = np.arange(120)
    loss = 1.0 - 0.5 / (1 + np.exp(-(t - 60) / 2.0))
    tracked = {"params": [{"w": jnp.asarray(t, jnp.float64)[:, None, None] * jnp.ones((1, 2, 3))}]}
    res = TrainResult(None, None, jnp.asarray(t), jnp.asarray(loss), tracked)
    params, record = sd.first_plateau_direction(res, rate_tol=0.05, min_length=10)
    assert record == sd.detect_plateaus(loss, rate_tol=0.05, min_length=10).end[0] and 40 < record < 60
    np.testing.assert_array_equal(params[0]["w"], np.full((2, 3), float(record)))
    with pytest.raises(InputError):
        sd.first_plateau_direction(TrainResult(None, None, jnp.asarray(t), jnp.asarray(loss), None))


def test_layer_ratios_of_diagonal_layers_and_dominant_counts():
    params = [
        {"w": jnp.diag(jnp.array([3.0, 1.0, 0.5], jnp.float64))},
        {"w": jnp.array([[2.0, 0.0, 0.0]], jnp.float64)},
    ]
    lr = sd.layer_ratios(params, jnp.eye(3, dtype=jnp.float64), activation="linear")
    np.testing.assert_allclose(lr.s1_over_s2, [3.0, np.inf])
    np.testing.assert_allclose(lr.weight_tail_energy, [1 - 9 / 10.25, 0.0], atol=1e-15)
    np.testing.assert_allclose(lr.activation_tail_energy, [1 - 9 / 10.25, 0.0], atol=1e-15)
    np.testing.assert_array_equal(sd.dominant_counts(jnp.array([[3.0, 1.0, 0.2], [1.0, 0.0, 0.0]])), [2, 1])


def test_ridge_target_is_a_sum_of_ridges():
    x, y = sd.ridge_target(
        jax.random.key(0), 50, input_dim=6, output_dim=3, amplitudes=(3.0, 1.0), dtype=jnp.float64
    )
    np.testing.assert_allclose(jnp.linalg.norm(x, axis=1), 1.0, rtol=1e-14)
    assert np.linalg.matrix_rank(np.asarray(y), tol=1e-10) == 2


def test_bad_arguments_raise_input_error():
    x, g = sd.unit_circle_example()
    with pytest.raises(InputError):
        sd.optimal_escape_direction(jax.random.key(0), (3, 4, 1), x, g)
    with pytest.raises(InputError):
        sd.optimal_escape_direction(jax.random.key(0), (2, 4, 1), x, g, num_restarts=0)
    with pytest.raises(InputError):
        sd.escape_stats([{"w": jnp.ones((1, 2)), "b": jnp.ones(1)}], x, g)
    with pytest.raises(InputError):
        sd.escape_step(-1.0, 3)
    with pytest.raises(InputError):
        sd.detect_plateaus([1.0, -1.0])
    with pytest.raises(InputError):
        sd.ridge_target(jax.random.key(0), 10, input_dim=2, amplitudes=(1.0, 1.0, 1.0))
