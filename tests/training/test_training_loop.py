"""The generic training loop: exact GD oracle, equality with a plain Python optax loop, checkpoint/resume."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxspec import InputError
from jaxspec.training import latest_checkpoint_step, train
from tests.conftest import assert_close


def test_gd_on_a_quadratic_matches_the_exact_iteration():
    # GD on (w - c)^2 with step eta: w_k - c = (1 - 2 eta)^k (w_0 - c), an exact oracle at every record.
    c, eta = jnp.array([3.0, -1.0]), 0.05
    res = train(
        lambda w: jnp.sum((w - c) ** 2),
        jnp.zeros(2, jnp.float64),
        num_steps=47,
        log_every=10,
        learning_rate=eta,
        track_fn=lambda w: {"w": w},
        progress=False,
    )
    np.testing.assert_array_equal(res.steps, [0, 10, 20, 30, 40, 47])
    factor = (1 - 2 * eta) ** np.asarray(res.steps, dtype=float)
    expected_w = np.asarray(c)[None, :] * (1 - factor[:, None])
    assert_close(res.tracked["w"], expected_w)
    assert_close(res.loss, np.sum((expected_w - np.asarray(c)) ** 2, axis=1), scale=0.3)
    assert_close(res.params, expected_w[-1], scale=0.3)


def _problem():
    k1, k2, k3, k4 = jax.random.split(jax.random.key(3), 4)
    x = jax.random.normal(k1, (5, 16), jnp.float64)
    y = jax.random.normal(k2, (3, 16), jnp.float64)
    params = [
        0.3 * jax.random.normal(k3, (4, 5), jnp.float64),
        0.3 * jax.random.normal(k4, (3, 4), jnp.float64),
    ]

    def loss(p):
        return 0.5 * jnp.mean(jnp.sum((p[1] @ p[0] @ x - y) ** 2, axis=0))

    def track(p):
        return {"sv": jnp.linalg.svd(p[1] @ p[0], compute_uv=False), "norm0": jnp.sum(p[0] ** 2)}

    return loss, params, track


class PlainLoopTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_any_optax_optimizer_equals_a_plain_python_loop(self):
        loss, params, track = _problem()
        opt = optax.adam(3e-2)
        res = train(loss, params, opt, num_steps=30, log_every=6, track_fn=track, progress=False)
        p, state = params, opt.init(params)
        losses, svs = [loss(p)], [track(p)["sv"]]

        @self.variant
        def step(p, state):
            updates, state = opt.update(jax.grad(loss)(p), state, p)
            return optax.apply_updates(p, updates), state

        for k in range(1, 31):
            p, state = step(p, state)
            if k % 6 == 0:
                losses.append(loss(p))
                svs.append(track(p)["sv"])
        assert_close(res.loss, np.array(losses), scale=0.3)
        assert_close(res.tracked["sv"], np.stack(svs))
        assert_close(res.params, p)


def test_float32_params_stay_float32():
    res = train(lambda w: jnp.sum(w**2), jnp.ones(3, jnp.float32), num_steps=5, progress=False)
    assert res.params.dtype == jnp.float32 and res.loss.dtype == jnp.float32
    assert res.tracked is None


def test_resume_from_a_checkpoint_continues_bit_for_bit(tmp_path):
    loss, params, track = _problem()
    opt = optax.adam(1e-2)
    first = train(
        loss,
        params,
        opt,
        num_steps=40,
        log_every=5,
        track_fn=track,
        checkpoint_dir=tmp_path,
        checkpoint_every=20,
        progress=False,
    )
    assert latest_checkpoint_step(tmp_path) == 40
    resumed = train(
        loss,
        params,
        opt,
        num_steps=100,
        log_every=5,
        track_fn=track,
        checkpoint_dir=tmp_path,
        checkpoint_every=20,
        resume=True,
        progress=False,
    )
    straight = train(loss, params, opt, num_steps=100, log_every=5, track_fn=track, progress=False)
    np.testing.assert_array_equal(first.loss, resumed.loss[:9])
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(straight), strict=True):
        np.testing.assert_array_equal(a, b)
    assert latest_checkpoint_step(tmp_path) == 100


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    loss, params, _ = _problem()
    a = train(loss, params, num_steps=10, checkpoint_dir=tmp_path / "new", resume=True, progress=False)
    b = train(loss, params, num_steps=10, progress=False)
    np.testing.assert_array_equal(a.loss, b.loss)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_steps": 0}, "num_steps"),
        ({"num_steps": 10, "log_every": 0}, "log_every"),
        ({"num_steps": 10, "checkpoint_every": 5}, "checkpoint_dir"),
        ({"num_steps": 10, "resume": True}, "checkpoint_dir"),
        ({"num_steps": 10, "learning_rate": -1.0}, "learning_rate"),
    ],
)
def test_bad_arguments_raise_input_errors(kwargs, message):
    with pytest.raises(InputError, match=message):
        train(lambda w: jnp.sum(w**2), jnp.ones(2), progress=False, **kwargs)


def test_non_scalar_loss_and_bad_optimizer_are_rejected():
    with pytest.raises(InputError, match="scalar"):
        train(lambda w: w**2, jnp.ones(2), num_steps=3, progress=False)
    with pytest.raises(InputError, match="optax"):
        train(lambda w: jnp.sum(w**2), jnp.ones(2), "sgd", num_steps=3, progress=False)
    with pytest.raises(InputError, match="multiple of log_every"):
        train(
            lambda w: jnp.sum(w**2),
            jnp.ones(2),
            num_steps=30,
            log_every=4,
            checkpoint_dir="/tmp/x",
            checkpoint_every=6,
            progress=False,
        )
