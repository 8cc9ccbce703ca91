"""The saddle at the origin: homogeneity and the exact expansion of the MSE loss, the optimiser against toys
with closed-form optima (deep linear s_1(G^T X), the unit circle at depths 3 and 2 and under rank limits, one
data point), the stationarity certificate at and away from the optimum, the min-norm QP against scipy, the
scale-free step against explicit iterations, plateaus, ratios."""

from __future__ import annotations

import itertools

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


@pytest.mark.slow  # the optimiser's basic toys; the unit-circle optima run by default
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
        num_steps=100,
        polish_steps=100,
        dtype=jnp.float64,
    )
    np.testing.assert_allclose(float(esc.speed), s[0], rtol=1e-10)
    assert np.all(np.asarray(esc.restart_speeds) <= s[0] * (1 + 1e-12))  # s_1 is an upper bound
    # A KKT point: every layer has unit Frobenius norm, the tangential gradient vanishes.
    np.testing.assert_allclose(esc.layer_norms_sq, 1.0, atol=1e-12)
    assert float(esc.kkt_residual) < 1e-6
    assert float(esc.stationarity.measure) < 1e-6 and esc.stationarity.num_kinks == 0
    sv = np.asarray(layer_singular_values(esc.params))
    np.testing.assert_allclose(sv[:, 0], 1.0, atol=1e-7)
    assert np.all(sv[:, 1:] < 1e-6)  # rank-one layers
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


# ----------------------------------------------------------------------------------------------------------
# The optimiser against toys with closed-form optima (math §6.5): the unit circle at depth 3 (1/2; rank-one
# layers sqrt(2) - 1), at depth 2 (sqrt(2) - 1), one data point (||g|| ||x||), deep linear (s_1, above).

UNIT_CIRCLE = {"num_restarts": 8, "num_steps": 200, "polish_steps": 200, "dtype": jnp.float64}


@pytest.fixture(scope="module")
def unit_circle_escape():
    x, g = sd.unit_circle_example(jnp.float64)
    return sd.optimal_escape_direction(jax.random.key(0), (2, 8, 8, 1), x, g, **UNIT_CIRCLE)


def test_unit_circle_optimum_is_one_half_never_exceeded_and_certified(unit_circle_escape):
    esc = unit_circle_escape
    assert abs(float(esc.speed) - 0.5) < 1e-4
    assert np.all(np.asarray(esc.restart_speeds) <= 0.5 + 1e-6)
    np.testing.assert_allclose(esc.layer_norms_sq, 1.0, atol=1e-12)
    # The smooth KKT residual cannot certify a point on the kinks; the generalised measure does.
    assert float(esc.kkt_residual) > 0.1
    assert float(esc.stationarity.measure) < 1e-4
    assert esc.stationarity.num_kinks > 0 and esc.stationarity.complete


def test_certificate_is_zero_at_the_exact_optimum_and_large_at_bad_points():
    x, g = sd.unit_circle_example(jnp.float64)
    exact = sd.unit_circle_rank_two_direction(jnp.float64)
    assert float(sd.escape_stats(exact, x, g).kkt_residual) > 0.6  # data on the kinks: residual 0.648
    cert = sd.stationarity_certificate(exact, x, g)
    assert float(cert.measure) < 1e-12 and cert.num_kinks == 16 and cert.complete
    # The same direction with the last layer turned from (1, 1)/sqrt 2 to (2, 1)/sqrt 5: the last layer
    # meets no kink, its gradient c = (1, 1) sqrt(2)/4 is the same in every piece, so the measure is at
    # least |c| sin(angle) / (sqrt(3) s) = (1/2)(1/sqrt 10) / (sqrt(3) 3/(2 sqrt 10)) = 1/(3 sqrt 3).
    bad = [exact[0], exact[1], {"w": jnp.array([[2.0, 1.0]], jnp.float64) / np.sqrt(5.0)}]
    np.testing.assert_allclose(float(sd.escape_speed(bad, x, g)), 3.0 / (2.0 * np.sqrt(10.0)), rtol=1e-14)
    assert float(sd.stationarity_certificate(bad, x, g).measure) >= 1.0 / (3.0 * np.sqrt(3.0)) - 1e-12
    # A random direction with negative speed is no escape direction at all.
    rand = init_mlp(jax.random.key(3), (2, 8, 8, 1), dtype=jnp.float64)
    assert float(sd.escape_speed(rand, x, g)) < 0 and np.isinf(
        sd.stationarity_certificate(rand, x, g).measure
    )


def _ridge_bound(axes, mu):
    """Exact max over phi of |sum_axes relu(cos(phi - t)) - sum_diag mu_d relu(cos(phi - t))|, arc by arc.

    The points sit at multiples of pi/4, and so do the kinks of every relu(cos(phi - t)): on each arc of pi/4
    the function is A cos(phi) + B sin(phi), whose maximum is at an end or at atan2(B, A).
    """
    t = np.arange(8) * np.pi / 4
    w = np.zeros(8)
    w[0::2], w[1::2] = axes, -np.asarray(mu)
    best = 0.0
    for k in range(8):
        lo, hi = k * np.pi / 4, (k + 1) * np.pi / 4
        on = np.cos(0.5 * (lo + hi) - t) > 0
        a, b = np.sum(w[on] * np.cos(t[on])), np.sum(w[on] * np.sin(t[on]))
        top = np.arctan2(b, a)
        candidates = [lo, hi] + [c for c in top + 2 * np.pi * np.arange(-1, 2) if lo <= c <= hi]
        best = max(best, max(abs(a * np.cos(c) + b * np.sin(c)) for c in candidates))
    return best


def test_unit_circle_depth_three_upper_bound_one_half():
    # math §6.5.1: s* <= max over axis weights lam in {0,1}^4 of min over diagonal weights mu in [0,1]^4 of
    # max_phi |h|; explicit mu for every vertex give at most 1/2, reached by the opposite pair (the optimum).
    bounds = []
    for axes in itertools.product((0, 1), repeat=4):
        mu = []
        for d in range(4):  # diagonal d lies between axes d and d + 1
            n = axes[d] + axes[(d + 1) % 4]
            if n == 2:
                mu.append(1.0)
            elif n == 0:
                mu.append(0.0)
            elif sum(axes) == 1:
                mu.append(np.sqrt(2.0) / 3.0)
            elif sum(axes) == 2 and axes[0] == axes[2]:  # an opposite pair
                mu.append(1.0 / (2.0 * np.sqrt(2.0)))
            else:
                mu.append(1.0 - 1.0 / np.sqrt(2.0))
        bounds.append(_ridge_bound(axes, mu))
    assert max(bounds) <= 0.5 + 1e-12
    np.testing.assert_allclose(max(bounds), 0.5, rtol=1e-12)
    np.testing.assert_allclose(sorted(set(np.round(bounds, 12))), [0.0, 1 / 3, SQRT2_MINUS_1, 0.5], rtol=1e-9)


@pytest.mark.slow  # the float32 twin of the float64 optimum above (the module fixture), as the docs run it
def test_docs_example_reaches_one_half_in_float32():
    # docs/bottleneck.md, verbatim: float32, 16 restarts, the default steps.
    x, g = sd.unit_circle_example()
    esc = sd.optimal_escape_direction(jax.random.key(0), (2, 8, 8, 1), x, g, num_restarts=16)
    assert abs(float(esc.speed) - 0.5) < 1e-4
    assert np.all(np.asarray(esc.restart_speeds) <= 0.5 + 1e-6)
    assert float(esc.stationarity.measure) < 1e-3  # float32: ~1e-4 (float64 reaches ~1e-7, above)


@pytest.mark.parametrize(
    # Width 8 runs by default (the module fixture); the narrower and wider nets are the slow step's.
    ("widths", "restarts"),
    [
        pytest.param((2, 4, 4, 1), 64, marks=pytest.mark.slow),
        pytest.param((2, 16, 16, 1), 8, marks=pytest.mark.slow),
    ],
)
def test_unit_circle_optimum_on_other_widths(widths, restarts):
    # Width 4: the rank-two basin needs every first-layer unit on an axis; 2 of 64 restarts find it.
    x, g = sd.unit_circle_example(jnp.float64)
    options = {**UNIT_CIRCLE, "num_restarts": restarts}
    esc = sd.optimal_escape_direction(jax.random.key(0), widths, x, g, **options)
    assert abs(float(esc.speed) - 0.5) < 1e-4
    assert np.all(np.asarray(esc.restart_speeds) <= 0.5 + 1e-6)
    assert float(esc.stationarity.measure) < 1e-4


@pytest.mark.parametrize(
    # Rank one changes the optimum; rank two, the unrestricted 1/2 of the module fixture, is the slow step's.
    ("max_rank", "optimum"),
    [(1, SQRT2_MINUS_1), pytest.param(2, 0.5, marks=pytest.mark.slow)],
)
def test_unit_circle_rank_restricted_optima(max_rank, optimum):
    x, g = sd.unit_circle_example(jnp.float64)
    esc = sd.optimal_escape_direction(jax.random.key(0), (2, 8, 8, 1), x, g, max_rank=max_rank, **UNIT_CIRCLE)
    assert abs(float(esc.speed) - optimum) < 1e-4
    assert np.all(np.asarray(esc.restart_speeds) <= optimum + 1e-6)
    assert float(esc.stationarity.measure) < 1e-4
    sv = np.asarray(layer_singular_values(esc.params))
    assert np.all(sv[:, max_rank:] < 1e-9)


def test_unit_circle_depth_two_optimum_is_sqrt2_minus_1():
    # One hidden layer: -L0 <= sum_i |a_i| ||w_i|| max_{|w|=1} |sum_j g_j relu(w . x_j)| and the max is
    # (sqrt(2) - 1) cos(phi) - sin(phi) at phi = 0 (math §6.5): a single neuron on an axis.
    x, g = sd.unit_circle_example(jnp.float64)
    esc = sd.optimal_escape_direction(jax.random.key(0), (2, 8, 1), x, g, **UNIT_CIRCLE)
    assert abs(float(esc.speed) - SQRT2_MINUS_1) < 1e-4
    assert np.all(np.asarray(esc.restart_speeds) <= SQRT2_MINUS_1 + 1e-6)
    assert float(esc.stationarity.measure) < 1e-4


@pytest.mark.slow  # the optimiser's basic toys; the unit-circle optima run by default
def test_one_data_point_escapes_at_norm_g_times_norm_x():
    # |g . f(x)| <= |g| prod_l ||W_l||_2 |x| <= |g| |x| on the balanced sphere, reached by a positive path.
    x = jnp.array([[0.6, -0.8, 2.0]], jnp.float64)
    g = jnp.array([[1.0, -2.0]], jnp.float64)
    esc = sd.optimal_escape_direction(
        jax.random.key(1),
        (3, 5, 4, 2),
        x,
        g,
        num_restarts=4,
        num_steps=100,
        polish_steps=100,
        dtype=jnp.float64,
    )
    optimum = float(np.linalg.norm(g) * np.linalg.norm(x))
    assert abs(float(esc.speed) - optimum) < 1e-4 * optimum
    assert np.all(np.asarray(esc.restart_speeds) <= optimum * (1 + 1e-6))
    assert float(esc.stationarity.measure) < 1e-4


def test_certificate_without_kinks_is_the_kkt_residual_as_a_tangent():
    # Smooth case (linear net): min-norm element = the one gradient, measure = r / sqrt(1 - r^2).
    params, x, y = _problem((3, 5, 4, 2), activation="linear")
    params = [{"w": p["w"] / jnp.linalg.norm(p["w"])} for p in params]  # balanced
    g = sd.mse_output_gradient(y)
    if float(sd.escape_speed(params, x, g, activation="linear")) < 0:
        params[-1] = {"w": -params[-1]["w"]}
    r = float(sd.escape_stats(params, x, g, activation="linear").kkt_residual)
    cert = sd.stationarity_certificate(params, x, g, activation="linear")
    np.testing.assert_allclose(float(cert.measure), r / np.sqrt(1 - r**2), rtol=1e-10)
    assert cert.num_kinks == 0 and cert.num_pieces == x.shape[0]


def test_min_norm_point_against_an_independent_solver():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(0)
    for trial in range(3):
        c = rng.normal(size=5)
        groups = [rng.normal(size=(m, 5)) for m in (3, 4, 2)]
        norm, lower = sd.min_norm_point(c, groups)
        sizes = np.cumsum([0] + [b.shape[0] for b in groups])
        stacked = np.concatenate(groups)

        def objective(lam, stacked=stacked, c=c):
            return float(np.sum((c + lam @ stacked) ** 2))

        constraints = [
            {"type": "eq", "fun": lambda lam, a=a, b=b: np.sum(lam[a:b]) - 1.0}
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        lam0 = np.concatenate([np.full(b.shape[0], 1.0 / b.shape[0]) for b in groups])
        ref = scipy_optimize.minimize(
            objective,
            lam0,
            method="SLSQP",
            bounds=[(0, 1)] * lam0.size,
            constraints=constraints,
            options={"ftol": 1e-15, "maxiter": 1000},
        )
        np.testing.assert_allclose(norm, np.sqrt(ref.fun), rtol=1e-6, atol=1e-9, err_msg=str(trial))
        assert lower <= norm + 1e-12 and lower >= norm - 1e-8


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
        sd.optimal_escape_direction(jax.random.key(0), (2, 4, 1), x, g, polish="newton")
    with pytest.raises(InputError):
        sd.optimal_escape_direction(jax.random.key(0), (2, 4, 1), x, g, polish_steps=-1)
    with pytest.raises(InputError):
        sd.stationarity_certificate(sd.unit_circle_rank_two_direction(), x, g, kink_tol=-1.0)
    with pytest.raises(InputError):
        sd.stationarity_certificate(sd.unit_circle_rank_two_direction(), x, g, max_kinks=40)
    with pytest.raises(InputError):
        sd.ridge_target(jax.random.key(0), 10, input_dim=2, amplitudes=(1.0, 1.0, 1.0))
