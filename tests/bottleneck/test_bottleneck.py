"""Bottleneck rank: deep-linear weight-decay optimum (exact scalar oracle), the per-network inequality
(Horn's inequality checked independently in numpy for every k), Jacobians and ranks against dense numpy, the
depth fit."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxspec import InputError
from jaxspec import bottleneck as bn
from jaxspec.networks import gates, init_mlp

# ----------------------------------------------------------------------------------------------------------
# Independent numpy oracles.


def _np_layers(params):
    return [np.asarray(p["w"], dtype=np.float64) for p in params]


_gates = jax.jit(gates, static_argnames=("activation",))


def _np_jacobian(params, x, activation):
    """J(x) = W_L D_{L-1} W_{L-1} ... D_1 W_1 as an explicit dense product of masked matrices."""
    ws = _np_layers(params)
    ds = [np.asarray(d, dtype=np.float64) for d in _gates(params, jnp.asarray(x), activation=activation)]
    j = ws[0]
    for d, w in zip(ds, ws[1:], strict=True):
        j = w @ (d[:, None] * j)
    return j


def _np_margin_all_k(params, x, activation):
    """2 sum_l sum_{i<=k} log s_i(W_l) - 2 sum_{i<=k} log s_i(J(x)) for every k up to rank J: Horn."""
    j = _np_jacobian(params, x, activation)
    sj = np.linalg.svd(j, compute_uv=False)
    sw = [np.linalg.svd(w, compute_uv=False) for w in _np_layers(params)]
    rank = int(np.sum(sj > 1e-12 * sj[0]))
    return np.array(
        [2 * sum(np.sum(np.log(s[:k])) for s in sw) - 2 * np.sum(np.log(sj[:k])) for k in range(1, rank + 1)]
    )


# ----------------------------------------------------------------------------------------------------------
# Measurements against dense numpy.


@pytest.mark.parametrize("activation", ["relu", "linear", "leaky_relu"])
def test_jacobian_pseudo_logdet_matches_the_dense_masked_product(activation):
    params = init_mlp(jax.random.key(1), (5, 12, 9, 4), activation=activation, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(2), (6, 5), jnp.float64)
    res = bn.jacobian_pseudo_logdet(params, x, activation=activation, rtol=1e-3)
    for b in range(x.shape[0]):
        s = np.linalg.svd(_np_jacobian(params, x[b], activation), compute_uv=False)
        k = int(np.sum(s > 1e-3 * s[0]))
        np.testing.assert_allclose(res.singular_values[b], s, rtol=1e-10, atol=1e-12)
        assert int(res.rank[b]) == k
        np.testing.assert_allclose(res.logdet[b], np.sum(np.log(s[:k])), rtol=1e-10, atol=1e-12)


def test_pseudo_logdet_of_a_diagonal_map_counts_only_singular_values_above_the_threshold():
    params = [{"w": jnp.diag(jnp.array([5.0, 2.0, 1e-4, 0.0], jnp.float64))}]
    res = bn.jacobian_pseudo_logdet(params, jnp.ones(4, jnp.float64), activation="linear", rtol=1e-3)
    assert int(res.rank[0]) == 2
    np.testing.assert_allclose(res.logdet[0], np.log(10.0), rtol=1e-14)
    res = bn.jacobian_pseudo_logdet(params, jnp.ones(4, jnp.float64), activation="linear", rtol=1e-6)
    assert int(res.rank[0]) == 3
    np.testing.assert_allclose(res.logdet[0], np.log(10.0 * 1e-4), rtol=1e-13)


def test_layer_singular_values_and_representation_ranks_match_numpy():
    params = init_mlp(jax.random.key(3), (6, 10, 3, 7), dtype=jnp.float64)
    s = bn.layer_singular_values(params)
    assert s.shape == (3, 10)
    for l, w in enumerate(_np_layers(params)):
        sv = np.linalg.svd(w, compute_uv=False)
        np.testing.assert_allclose(s[l, : sv.size], sv, rtol=1e-12)
        np.testing.assert_array_equal(s[l, sv.size :], 0.0)
    x = jax.random.normal(jax.random.key(4), (15, 6), jnp.float64)
    reps = bn.representation_ranks(params, x, rtol=1e-2)
    hs = bn.representations(params, x)
    h = np.asarray(x)
    expected = [h]
    for l, w in enumerate(_np_layers(params)):
        h = h @ w.T
        h = h if l == 2 else np.maximum(h, 0.0)
        expected.append(h)
    for l, (mine, ref) in enumerate(zip(hs, expected, strict=True)):
        np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=1e-13)
        sv = np.linalg.svd(ref, compute_uv=False)
        assert int(reps.numerical_rank[l]) == int(np.sum(sv > 1e-2 * sv[0]))
        np.testing.assert_allclose(reps.stable_rank[l], np.sum(sv**2) / sv[0] ** 2, rtol=1e-12)
    # The width-3 layer caps the rank of everything downstream in a bias-free net.
    assert int(reps.numerical_rank[2]) <= 3


# ----------------------------------------------------------------------------------------------------------
# The per-network inequality.


@pytest.mark.parametrize(
    "activation,widths",
    [("relu", (4, 16, 16, 16, 3)), ("linear", (5, 6, 4, 6, 5)), ("leaky_relu", (3, 8, 8, 8, 8, 3))],
)
def test_inequality_holds_on_random_networks_and_matches_an_independent_evaluation(activation, widths):
    params = init_mlp(jax.random.key(5), widths, activation=activation, dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(6), (12, widths[0]), jnp.float64)
    res = bn.bottleneck_inequality(params, x, activation=activation)
    norm_sq = sum(np.sum(w**2) for w in _np_layers(params))
    sw = [np.linalg.svd(w, compute_uv=False) for w in _np_layers(params)]
    for b in range(x.shape[0]):
        k = int(res.rank[b])
        e = [np.sum(s[:k] ** 2 - 1 - np.log(s[:k] ** 2)) + np.sum(s[k:] ** 2) for s in sw]
        np.testing.assert_allclose(res.layer_excess[b], e, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(res.rhs[b], norm_sq - len(sw) * k - 2 * res.logdet[b], rtol=1e-12)
        np.testing.assert_allclose(res.margin[b], res.rhs[b] - res.lhs[b], rtol=1e-9, atol=1e-9)
        assert np.all(_np_margin_all_k(params, x[b], activation) >= -1e-10)
    assert np.all(np.asarray(res.layer_excess) >= -1e-12)
    assert np.all(np.asarray(res.margin) >= -1e-10)


def test_inequality_is_tight_for_orthogonal_deep_linear_nets():
    # Orthogonal layers: every s_i = 1, e_l = 0, J orthogonal: both sides vanish exactly.
    qs = [np.linalg.qr(np.random.default_rng(i).normal(size=(4, 4)))[0] for i in range(5)]
    params = [{"w": jnp.asarray(q)} for q in qs]
    res = bn.bottleneck_inequality(params, jnp.ones((2, 4), jnp.float64), activation="linear")
    np.testing.assert_array_equal(res.rank, [4, 4])
    np.testing.assert_allclose(res.lhs, 0.0, atol=1e-12)
    np.testing.assert_allclose(res.rhs, 0.0, atol=1e-12)


def test_inequality_holds_on_trained_networks_with_biases():
    task = bn.bottleneck_target(
        jax.random.key(7), 48, input_dim=4, bottleneck_dim=1, output_dim=3, hidden=8, dtype=jnp.float64
    )
    params = init_mlp(jax.random.key(8), (4, 12, 12, 12, 3), bias=True, bias_std=0.1, dtype=jnp.float64)
    res = bn.train_weight_decay(
        params,
        task.x,
        task.y,
        weight_decay=1e-2,
        num_steps=300,
        log_every=100,
        optimizer=optax.adam(1e-2),
        progress=False,
    )
    assert float(res.tracked["data_loss"][-1]) < float(res.tracked["data_loss"][0])
    for rtol in (1e-1, 1e-3, 1e-8):
        ineq = bn.bottleneck_inequality(res.params, task.x, rtol=rtol)
        assert np.all(np.asarray(ineq.margin) >= -1e-9)
        np.testing.assert_allclose(ineq.margin, ineq.rhs - ineq.lhs, rtol=1e-9, atol=1e-9)
    bias_sq = sum(float(jnp.sum(p["b"] ** 2)) for p in res.params)
    weights = [{"w": p["w"]} for p in res.params]
    for b in range(0, 48, 12):
        margins = _np_margin_all_k(weights, task.x[b], "relu")
        assert np.all(margins + bias_sq >= -1e-9)


# ----------------------------------------------------------------------------------------------------------
# Deep linear nets with weight decay: exact scalar oracle.


def test_weight_decay_optimum_scalar_problem_is_solved_globally():
    for depth in (1, 2, 3, 5):
        lam = 0.05
        a = np.array([3.0, 1.2, 0.4, 0.05])
        s = bn.deep_linear_weight_decay_optimum(a, depth, lam)
        grid = np.linspace(0.0, 3.5, 350001)
        for ai, si in zip(a, s, strict=True):
            obj = (grid - ai) ** 2 + lam * depth * grid ** (2.0 / depth)
            best = obj.min()
            assert (si - ai) ** 2 + lam * depth * si ** (2.0 / depth) <= best + 1e-10
    np.testing.assert_allclose(bn.deep_linear_weight_decay_optimum([3.0, 1.0], 4, 0.0), [3.0, 1.0])


def test_deep_linear_min_norm_expansion_in_depth():
    # L s^(2/L) = L + 2 log s + 2 (log s)^2 / L + (4/3) (log s)^3 / L^2 + ...: R0 = rank, R1 = 2 log|A|_+.
    a = np.diag([3.0, 0.5, 0.0])
    logs = np.log([3.0, 0.5])
    for depth in (200, 1000):
        r = bn.deep_linear_min_norm(a, depth)
        series = (
            2 * depth + 2 * logs.sum() + 2 * np.sum(logs**2) / depth + (4 / 3) * np.sum(logs**3) / depth**2
        )
        assert abs(r - series) < 2 * np.sum(np.abs(logs) ** 4) / depth**3
    assert bn.deep_linear_min_norm(a, 1) == pytest.approx(9.25, rel=1e-14)  # ||A||_F^2


def test_deep_linear_nets_with_weight_decay_reach_the_balanced_optimum_in_every_layer():
    n, depth, lam = 4, 3, 0.05
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.normal(size=(n, n)))
    v, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a_vals = np.array([2.5, 1.2, 0.0, 0.0])
    a = u @ np.diag(a_vals) @ v.T
    # Whitened inputs x_j = sqrt(n) e_j, so (1/N) ||W X - A X||^2 = ||W - A||_F^2.
    x = jnp.asarray(np.sqrt(n) * np.eye(n))
    y = x @ jnp.asarray(a).T
    # Orthogonal layers are exactly balanced (W_{l+1}^T W_{l+1} = W_l W_l^T = I), a balance gradient flow
    # keeps.
    params = [{"w": jnp.asarray(np.linalg.qr(rng.normal(size=(n, n)))[0])} for _ in range(depth)]
    res = bn.train_weight_decay(
        params,
        x,
        y,
        activation="linear",
        weight_decay=lam,
        num_steps=6000,
        learning_rate=0.05,
        log_every=1000,
        progress=False,
    )
    s_opt = bn.deep_linear_weight_decay_optimum(a_vals, depth, lam)
    expected = np.sort(s_opt ** (1.0 / depth))[::-1]
    sv = np.asarray(bn.layer_singular_values(res.params))
    for l in range(depth):
        np.testing.assert_allclose(sv[l], expected, atol=1e-8)
    np.testing.assert_allclose(
        float(res.tracked["norm_sq"][-1]), depth * np.sum(s_opt ** (2.0 / depth)), rtol=1e-9
    )
    # And the optimum tends to the minimal-norm factorisation of A as lambda -> 0.
    gaps = [
        abs(
            depth * np.sum(bn.deep_linear_weight_decay_optimum(a_vals, depth, lam_) ** (2.0 / depth))
            - bn.deep_linear_min_norm(a, depth)
        )
        for lam_ in (1e-2, 1e-4, 1e-6)
    ]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-5


# ----------------------------------------------------------------------------------------------------------
# Fit, targets, validation.


def test_fit_rank_terms_recovers_an_exact_line_and_the_deep_linear_limit():
    fit = bn.fit_rank_terms([4, 8, 12, 16], [4 * 3 + 1.5, 8 * 3 + 1.5, 12 * 3 + 1.5, 16 * 3 + 1.5])
    assert fit.r0 == pytest.approx(3.0, abs=1e-12) and fit.r1 == pytest.approx(1.5, abs=1e-12)
    assert fit.r0_stderr == pytest.approx(0.0, abs=1e-10)
    a = np.diag([2.0, 0.7, 0.0])
    depths = [400, 800, 1600]
    fit = bn.fit_rank_terms(depths, [bn.deep_linear_min_norm(a, d) for d in depths])
    assert fit.r0 == pytest.approx(2.0, abs=1e-5)
    assert fit.r1 == pytest.approx(2 * np.log(2.0 * 0.7), abs=1e-2)


@pytest.mark.parametrize("kind", ["relu", "linear"])
def test_bottleneck_target_has_jacobian_rank_k(kind):
    task = bn.bottleneck_target(
        jax.random.key(9),
        40,
        input_dim=6,
        bottleneck_dim=2,
        output_dim=5,
        hidden=16,
        kind=kind,
        dtype=jnp.float64,
    )
    chex.assert_trees_all_close(
        task.y, bn.representations(task.teacher, task.x, activation=kind)[-1], rtol=1e-12, atol=0.0
    )
    np.testing.assert_allclose(float(jnp.mean(task.y**2)), 1.0, rtol=1e-12)
    jd = bn.jacobian_pseudo_logdet(task.teacher, task.x, activation=kind, rtol=1e-8)
    assert np.all(np.asarray(jd.rank) <= 2)
    assert np.mean(np.asarray(jd.rank) == 2) > 0.5


def test_bad_arguments_raise_input_error():
    params = init_mlp(jax.random.key(0), (3, 4, 2))
    with pytest.raises(InputError):
        bn.jacobian_pseudo_logdet(params, jnp.ones((2, 5)))
    with pytest.raises(InputError):
        bn.bottleneck_inequality(params, jnp.ones(3), rtol=0.0)
    with pytest.raises(InputError):
        bn.representation_ranks(params, jnp.ones((2, 3)), activation="tanh")
    with pytest.raises(InputError):
        bn.fit_rank_terms([4, 4], [1.0, 2.0])
    with pytest.raises(InputError):
        bn.deep_linear_weight_decay_optimum([1.0], 0, 0.1)
    with pytest.raises(InputError):
        bn.bottleneck_target(jax.random.key(0), 10, input_dim=2, bottleneck_dim=3, output_dim=4)
    with pytest.raises(InputError):
        bn.train_weight_decay(params, jnp.ones((2, 3)), jnp.ones((2, 3)), num_steps=1)


def test_figures_commands_are_registered():
    from jaxspec.cli._main import load_command

    figures = load_command("figures")
    assert {"bottleneck", "saddle"} <= set(figures.commands)
