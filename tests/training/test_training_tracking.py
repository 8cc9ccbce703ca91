"""Tracked quantities, jitted and eager, against a plain numpy recomputation; fixed gates stay fixed; models
and losses."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxspec import InputError, data, networks
from jaxspec.training import (
    aligned_init,
    balanced_factors,
    deep_linear_init,
    end_to_end_fn,
    make_loss,
    make_model,
    make_tracker,
    model_apply,
    train,
)
from tests.conftest import assert_close


def _fix(u, v):
    idx = np.argmax(np.abs(u), axis=0)
    sign = np.sign(u[idx, np.arange(u.shape[1])])
    return u * sign, v * sign


def _numpy_quantities(weights, e2e, grads_fn, k):
    """Everything the tracker records, from numpy SVDs and explicit gradient formulas."""
    u, s, vt = np.linalg.svd(e2e)
    u, v = _fix(u[:, :k], vt[:k].T)
    size = max(min(w.shape) for w in weights)
    layer_sv = np.full((len(weights), size), np.nan)
    for l, w in enumerate(weights):
        sv = np.linalg.svd(w, compute_uv=False)
        layer_sv[l, : sv.size] = sv
    k_align = min(k, *(min(w.shape) for w in weights))
    svds = [np.linalg.svd(w) for w in weights]
    alignment = np.array(
        [
            np.abs(np.sum(svds[l][0][:, :k_align] * svds[l + 1][2][:k_align].T, axis=0))
            for l in range(len(weights) - 1)
        ]
    )
    balance = np.array(
        [np.linalg.norm(b.T @ b - a @ a.T) for a, b in zip(weights[:-1], weights[1:], strict=True)]
    )
    norms = np.array([[np.linalg.norm(g) for g in grads_fn(u[:, r], v[:, r])] for r in range(k)]).T  # (L, k)
    depth = len(weights)
    factors = s[:k] ** (1 / depth) * np.exp(np.log(norms).mean(axis=0)) / norms
    return {
        "sigma": s[:k],
        "u": u,
        "v": v,
        "layer_sv": layer_sv,
        "alignment": alignment,
        "balancedness": balance,
        "factors": factors,
        "mode_kernel": np.sum(norms**2, axis=0),
        "end_to_end": e2e,
    }


def _compare(tracked, expected):
    assert_close({name: tracked[name] for name in expected}, expected)


class TrackerTest(chex.TestCase):
    """The tracker, the end-to-end map and the losses run inside the jitted training step: jit and eager."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_linear_tracker_in_jit_equals_numpy(self):
        ds, _ = data.teacher(jax.random.key(0), 6, 3, 30, [2.0, 1.0, 0.5], dtype=jnp.float64)
        params = deep_linear_init(jax.random.key(1), (6, 5, 4, 3), scale=1.0, dtype=jnp.float64)
        model = make_model("linear", params, ds)
        tracked = self.variant(make_tracker(model, top_k=3))(params)
        ws = [np.asarray(p["w"]) for p in params]
        e2e = ws[2] @ ws[1] @ ws[0]

        def grads(u, v):
            # d(u^T W3 W2 W1 v)/dW_l = (W_{>l}^T u)(W_{<l} v)^T
            return [
                np.outer((ws[2] @ ws[1]).T @ u, v),
                np.outer(ws[2].T @ u, ws[0] @ v),
                np.outer(u, ws[1] @ ws[0] @ v),
            ]

        _compare(tracked, _numpy_quantities(ws, e2e, grads, 3))
        chex.assert_shape([tracked["alignment"], tracked["layer_sv"]], [(2, 3), (3, 5)])

    @chex.variants(with_jit=True, without_jit=True)
    def test_fixed_gates_tracker_in_jit_equals_numpy_per_input_products(self):
        ds, _ = data.teacher(jax.random.key(2), 5, 3, 24, [2.0, 1.0], dtype=jnp.float64)
        params = networks.init_mlp(jax.random.key(3), (5, 7, 6, 3), dtype=jnp.float64)
        model = make_model("fixed_gates", params, ds)
        tracked = self.variant(make_tracker(model, top_k=2))(params)
        ws = [np.asarray(p["w"]) for p in params]
        x = np.asarray(ds.x)
        # Gates from the plain forward pass, then the explicit per-input products J_i = W3 D2 W2 D1 W1.
        d1 = (x @ ws[0].T > 0).astype(float)
        d2 = ((d1 * (x @ ws[0].T)) @ ws[1].T > 0).astype(float)
        jacobians = np.einsum("ab,ib,bc,ic,cd->iad", ws[2], d2, ws[1], d1, ws[0])
        outputs = np.einsum("iad,id->ia", jacobians, x)
        projector = x @ np.linalg.inv(x.T @ x)  # M = F^T X (X^T X)^{-1}
        e2e = outputs.T @ projector

        def grads(u, v):
            c = projector @ v  # u^T M v = sum_i (u^T f_i) c_i
            g1 = np.einsum("i,iab->ab", c, np.einsum("b,ib,bc,ic,id->icd", ws[2].T @ u, d2, ws[1], d1, x))
            g2 = np.einsum("i,ib,ic->bc", c, d2 * (ws[2].T @ u)[None, :], d1 * (x @ ws[0].T))
            g3 = np.einsum("i,a,ib->ab", c, u, d2 * ((d1 * (x @ ws[0].T)) @ ws[1].T))
            return [g1, g2, g3]

        _compare(tracked, _numpy_quantities(ws, e2e, grads, 2))

    @chex.variants(with_jit=True, without_jit=True)
    def test_shared_basis_factors_are_recovered_exactly(self):
        ds, teacher = data.teacher(jax.random.key(4), 6, 4, 30, [3.0, 2.0, 1.0], dtype=jnp.float64)
        factors = np.array([[0.9, 0.7, 0.5], [0.4, 0.3, 0.2], [1.5, 1.2, 1.1]])
        params = aligned_init(
            (6, 5, 5, 4), teacher.u, teacher.v, factors, key=jax.random.key(5), dtype=jnp.float64
        )
        tracked = self.variant(make_tracker(make_model("linear", params, ds), top_k=3))(params)
        assert_close(tracked["factors"], factors, scale=0.3)
        assert_close(tracked["sigma"], np.prod(factors, axis=0), scale=0.3)
        assert_close(tracked["alignment"], 1.0, scale=0.3)
        # The mode kernel of a shared basis is sigma^2 sum_l a_l^-2 (kernel ratio 1).
        assert_close(
            tracked["mode_kernel"], np.prod(factors, 0) ** 2 * np.sum(factors**-2.0, axis=0), scale=0.3
        )

    @chex.variants(with_jit=True, without_jit=True)
    def test_relu_end_to_end_map_is_the_mean_jacobian(self):
        ds, _ = data.teacher(jax.random.key(8), 4, 2, 16, [1.0], dtype=jnp.float64)
        params = networks.init_mlp(jax.random.key(9), (4, 6, 2), bias=True, bias_std=0.1, dtype=jnp.float64)
        model = make_model("relu", params, ds)
        e2e = self.variant(end_to_end_fn(model))(params)
        w1, b1, w2 = (np.asarray(params[0]["w"]), np.asarray(params[0]["b"]), np.asarray(params[1]["w"]))
        gates = (np.asarray(ds.x) @ w1.T + b1 > 0).astype(float)
        assert_close(e2e, np.mean(np.einsum("ab,ib,bc->iac", w2, gates, w1), axis=0), scale=0.3)
        tracked = self.variant(make_tracker(model, top_k=2))(params)
        chex.assert_shape([tracked["sigma"], tracked["factors"]], [(2,), (2, 2)])

    @chex.variants(with_jit=True, without_jit=True)
    def test_losses_match_their_definitions(self):
        ds = data.digits(whiten_dim=8, limit=50, dtype=jnp.float64)
        params = deep_linear_init(jax.random.key(10), (8, 6, 10), scale=1.0, dtype=jnp.float64)
        model = make_model("linear", params, ds)
        w = np.asarray(params[1]["w"]) @ np.asarray(params[0]["w"])
        residual = np.asarray(ds.x) @ w.T - np.asarray(ds.y)
        assert_close(
            self.variant(make_loss(model, ds))(params), 0.5 * np.mean(np.sum(residual**2, 1)), scale=0.3
        )
        logits = np.asarray(ds.x) @ w.T
        logp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
        expected = -np.mean(logp[np.arange(50), np.asarray(ds.labels)])
        assert_close(self.variant(make_loss(model, ds, "cross_entropy"))(params), expected, scale=0.3)


def test_fixed_gates_training_never_changes_the_gates():
    ds, _ = data.teacher(jax.random.key(6), 5, 3, 32, [2.0, 1.0], dtype=jnp.float64)
    params0 = networks.init_mlp(jax.random.key(7), (5, 8, 8, 3), dtype=jnp.float64)
    model = make_model("fixed_gates", params0, ds)
    gates0 = [np.asarray(g) for g in networks.gates(params0, ds.x)]

    def track(params):
        # The gates a ReLU network would have now, and the fixed-gates output against the frozen product.
        live = networks.gates(params, ds.x)
        frozen = networks.fixed_gates_apply(params, [jnp.asarray(g) for g in gates0], ds.x)
        return {"live_gates": live, "output_gap": jnp.max(jnp.abs(model_apply(model, params) - frozen))}

    result = train(
        make_loss(model, ds),
        params0,
        optax.sgd(0.05),
        num_steps=300,
        log_every=50,
        track_fn=track,
        progress=False,
    )
    # Frozen gates are used at every record (exact equality with the product built from the initial gates) ...
    assert float(jnp.max(result.tracked["output_gap"])) == 0.0
    for g, g0 in zip(model.gate_list, gates0, strict=True):
        np.testing.assert_array_equal(g, g0)
    # ... although the weights moved enough that a ReLU network's own gates would have changed.
    changed = sum(
        int(np.sum(np.asarray(live[-1]) != g0))
        for live, g0 in zip(result.tracked["live_gates"], gates0, strict=True)
    )
    assert changed > 0
    assert float(result.loss[-1]) < 0.5 * float(result.loss[0])
    # Explicit per-input products with the initial gates reproduce the trained model's outputs.
    ws = [np.asarray(p["w"]) for p in result.params]
    x = np.asarray(ds.x)
    expected = np.einsum("ab,ib,bc,ic,cd,id->ia", ws[2], gates0[1], ws[1], gates0[0], ws[0], x)
    assert_close(model_apply(model, result.params), expected)


def test_model_and_init_validation():
    ds, teacher = data.teacher(jax.random.key(0), 4, 2, 16, [1.0], dtype=jnp.float64)
    params = deep_linear_init(jax.random.key(1), (4, 3, 2))
    with pytest.raises(InputError, match="model kind"):
        make_model("conv", params, ds)
    with pytest.raises(InputError, match="maps 4 -> 2"):
        make_model("linear", params, data.teacher(jax.random.key(0), 5, 2, 16, [1.0])[0])
    with pytest.raises(InputError, match="loss"):
        make_loss(make_model("linear", params, ds), ds, "hinge")
    with pytest.raises(InputError, match="factors"):
        aligned_init((4, 3, 2), teacher.u, teacher.v, np.ones((3, 1)))
    with pytest.raises(InputError, match="fit"):
        aligned_init((4, 1, 2), np.eye(2), np.eye(4)[:, :2], np.ones((2, 2)))
    with pytest.raises(InputError, match="scale"):
        deep_linear_init(jax.random.key(0), (4, 2), scale=0.0)
    with pytest.raises(InputError, match="positive"):
        balanced_factors([0.0], 2)
    with pytest.raises(InputError, match="top_k"):
        make_tracker(make_model("linear", params, ds), top_k=0)
