"""Gradient descent on the deep linear UFM from several seeds, against the closed forms of its optima.

Oracles: the rank-r optima in closed form, ``loss_r = (r/K) L* + (K - r)/(2K)`` (jaxspec/ufm/_ranks.py), built
as explicit parameters and checked to be critical points with that loss; per-seed GD run separately through
``train_ufm`` (an independent path) for the stacked multi-seed trainer.

Tolerance of the trained minimum. At the sizes below (K = 2, n = 3, L = 3, lam = 5e-2) GD converges linearly;
its slowest direction is the weight decay of the unused width, which contracts by ``1 - lr lam`` per step:
after ``steps`` steps the loss gap is at most ``(1 - lr lam)^(2 steps)`` times its start, below 1e-18 here
(``(1 - 0.015)^3000`` ~ 1e-20 and ``(1 - 0.01)^4000`` ~ 3e-18). What is left is the rounding of a float64
loss that sums O(N d) terms of order one: ~1e-15. ``TRAINED_GAP = 1e-12`` sits well above the rounding and
far below the gap to the next optimum, ``(1/2 - L*)/K`` ~ 0.2.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspec import ufm
from jaxspec._checks import InputError
from tests.conftest import assert_close, run_cli

TRAINED_GAP = 1e-12
TINY = dict(num_classes=2, per_class=3, depth=3, lam_w=5e-2, dtype="float64")


def _rotate(params: ufm.UFMParams, q: np.ndarray) -> ufm.UFMParams:
    """The same network in another orthonormal feature basis: loss and spectra are unchanged."""
    return ufm.UFMParams(
        features=q @ params.features,
        hidden=jnp.einsum("ij,ljk,mk->lim", q, params.hidden, q),
        head=params.head @ q.T,
    )


@pytest.mark.parametrize("rank", [pytest.param(0, marks=pytest.mark.slow), 1, 2, 3])
def test_rank_r_optima_are_critical_points_with_the_closed_form_loss_and_are_classified_exactly(rng, rank):
    model = ufm.make_ufm(3, 4, 4, 1e-2, width=5, dtype="float64")
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    params = _rotate(ufm.rank_params(model, rank), q)
    assert_close(ufm.loss(model, params), ufm.rank_losses(model)[rank])
    grads = jax.grad(lambda p: ufm.loss(model, p))(params)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads)) < 1e-12
    eigenvalues = ufm.feature_gram_eigenvalues(model, params)
    assert int(ufm.feature_rank(model, eigenvalues)) == rank
    # Exact: r copies of the collapsed n s^2, the rest zero.
    expected = np.where(np.arange(3) < rank, ufm.collapsed_optimum(model).feature_gram, 0.0)
    assert_close(eigenvalues, expected, scale=10)


def test_rank_losses_run_from_the_zero_solution_to_the_collapsed_optimum():
    model = ufm.make_ufm(3, 40, 5, 1e-2)
    losses = ufm.rank_losses(model)
    assert losses[0] == 0.5 and losses[-1] == ufm.collapsed_optimum(model).loss
    np.testing.assert_allclose(np.diff(losses), (ufm.collapsed_optimum(model).loss - 0.5) / 3)


def test_feature_rank_counts_a_batch_and_rejects_bad_thresholds():
    model = ufm.make_ufm(2, 3, 3, 5e-2, width=4)
    level = ufm.collapsed_optimum(model).feature_gram
    batch = np.array([[level, level], [1.2 * level, 0.4 * level], [0.1 * level, 0.0]])
    assert ufm.feature_rank(model, batch).tolist() == [2, 1, 0]
    with pytest.raises(InputError, match="threshold"):
        ufm.feature_rank(model, batch, threshold=1.5)


def test_stacked_seeds_follow_their_own_gradient_descent():
    model = ufm.make_ufm(**TINY, width=4)
    runs = ufm.train_ufm_seeds(model, 3, num_steps=60, learning_rate=0.2, init_scale=0.5, log_every=20)
    key = jax.random.fold_in(jax.random.key(0), 2)
    alone = ufm.train_ufm(
        model,
        ufm.init_params(model, key, 0.5),
        num_steps=60,
        learning_rate=0.2,
        log_every=20,
        track=False,
        progress=False,
    )
    assert_close(runs.history[:, 2], alone.loss, scale=10)


def test_gd_at_width_8k_reaches_the_closed_form_optimum_from_every_seed():
    model = ufm.make_ufm(**TINY, width=16)
    runs = ufm.train_ufm_seeds(model, 8, num_steps=1500, learning_rate=0.3, init_scale=0.5)
    assert runs.rank.tolist() == [2] * 8
    assert abs(runs.loss.min() - ufm.collapsed_optimum(model).loss) < TRAINED_GAP
    assert np.all(np.abs(runs.loss - runs.rank_loss[2]) < TRAINED_GAP)


def test_gd_at_width_k_stops_at_lower_rank_optima_with_their_closed_form_loss():
    model = ufm.make_ufm(**TINY, width=2)
    runs = ufm.train_ufm_seeds(model, 8, num_steps=2000, learning_rate=0.2, init_scale=0.3)
    assert np.any(runs.rank < 2)  # seeded: 2 of 8 stop at rank 1 and 6 at rank 0
    np.testing.assert_array_less(np.abs(runs.loss - runs.rank_loss[runs.rank]), TRAINED_GAP)


def test_cli_train_prints_the_measured_minimum_beside_the_closed_form(capsys):
    argv = ["ufm", "--K", "2", "--n", "3", "--L", "3", "--lam", "5e-2", "--dtype", "float64", "--train"]
    argv += ["--seeds", "4", "--steps", "1500", "--lr", "0.3", "--init-scale", "0.5", "--json"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    payload = json.loads(out)
    assert "measured" not in payload["loss"]  # nothing is measured without --train: the value is named
    assert_close(payload["loss"]["at_closed_form"], payload["loss"]["theory"])
    tr = payload["train"]
    assert payload["config"]["d"] == 16  # the default width under --train is 8K
    assert abs(tr["measured_min_loss"] - tr["closed_form_loss"]) < TRAINED_GAP
    assert tr["full_collapse_runs"] == 4 and sum(row["runs"] for row in tr["by_rank"]) == 4


@pytest.mark.slow
def test_cli_train_human_output_names_every_rank(capsys):
    argv = ["ufm", "--K", "2", "--n", "3", "--L", "3", "--lam", "5e-2", "--dtype", "float64", "--train"]
    code, out, _ = run_cli(capsys, *argv, "--d", "2", "--steps", "2000", "--lr", "0.2", "--init-scale", "0.3")
    assert code == 0 and "measured minimum loss" in out and "closed-form optimum" in out
    assert "loss at the closed-form point" in out and "full collapse in " in out


@pytest.mark.parametrize("flag, value", [("--seeds", "0"), ("--steps", "-1"), ("--lr", "nan")])
def test_cli_train_options_are_refused_in_one_line(capsys, flag, value):
    code, _, err = run_cli(
        capsys, "ufm", "--K", "2", "--n", "3", "--L", "3", "--lam", "5e-2", "--train", flag, value
    )
    assert code == 2 and flag in err and len(err.strip().splitlines()) == 1
