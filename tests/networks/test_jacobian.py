"""Matrix-free Jacobian spectra against dense float64 products, the masked p = 1/2 theory, and the jaxpr."""

from __future__ import annotations

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxspec
from jaxspec import InputError, theory
from jaxspec.engine import OrthogonalityWarning, exponents_from_sums, reortho_limits
from jaxspec.networks import (
    JacobianConfig,
    dense_jacobian,
    dense_prefix_jacobians,
    dense_prefix_log_svals,
    gates,
    init_mlp,
    input_frame,
    jacobian_spectrum,
    make_jacobian_config,
    mlp_apply,
    mlp_tangent_layer,
    network_frame_sums,
    pad_params,
)
from tests.conftest import Z_MAX, assert_close, zscores

# The finite-depth transient of the QR estimator: growth rates differ from the average log stretch of the
# layers by Delta_i / L (math §2.3: log-determinants of minors of the input frame).
TRANSIENT_ATOL = 0.05


def _frames(params, xs, seed, k, **options):
    """The run's own initial frames (the jitted draw ``jacobian_spectrum`` makes before its scan).

    They are drawn in float32 and cast; XLA may round that draw differently (by an ulp) in another compiled
    program, so an oracle that redraws them outside the run could differ from the run by ~1e-8.
    """
    from jaxspec.networks._jacobian import _gates_and_frames

    padded = pad_params(params)
    config = make_jacobian_config(padded, k=k, **options)
    base = jax.random.key(seed)
    keys = jax.vmap(lambda b: jax.random.fold_in(base, b))(jnp.arange(xs.shape[0]))
    return list(np.asarray(_gates_and_frames(padded, xs, keys, config)[3]))


def _volumes(m, q0):
    """Exact partial sums ``sum_{i<=j} log|R_ii|`` of ``M Q0``: log-volumes of its first ``j`` columns."""
    mq = m @ q0[: m.shape[1]]
    # Householder QR (LAPACK, float64) rather than the Gram determinant, whose rounding error grows with the
    # square of the frame's condition number.
    return np.cumsum(np.log(np.abs(np.diag(np.linalg.qr(mq, mode="r")))))


@pytest.mark.parametrize("activation,bias", [("relu", False), ("leaky_relu", True), ("linear", False)])
def test_growth_rates_equal_dense_volumes_for_every_prefix(activation, bias):
    widths = (6, 9, 7, 9, 8, 5)
    params = init_mlp(
        jax.random.key(0), widths, activation=activation, bias=bias, bias_std=0.2, dtype=jnp.float64
    )
    xs = jax.random.normal(jax.random.key(1), (3, 6), jnp.float64)
    k = 3
    spec = jacobian_spectrum(
        params,
        xs,
        k=k,
        activation=activation,
        negative_slope=0.1,
        dtype="float64",
        singular_values=False,
        seed=7,
    )
    frames = _frames(params, xs, 7, k, activation=activation, negative_slope=0.1, dtype="float64")
    for b, q0 in enumerate(frames):
        prefixes = np.asarray(
            dense_prefix_jacobians(params, xs[b], activation=activation, negative_slope=0.1)
        )
        counts = np.asarray(spec.active_counts[b])
        for l in range(len(widths) - 1):
            if counts[: l + 1].min() < k:  # collapsed rank: the K>=i convention drops layers (tested below)
                continue
            expected = np.diff(np.concatenate([[0.0], _volumes(prefixes[l], q0)])) / (l + 1)
            assert_close(spec.prefix_growth_rates[b, l], expected)
        assert_close(
            spec.outputs[b], mlp_apply(params, xs[b], activation=activation, negative_slope=0.1), scale=0.3
        )
    # Active counts come from the gates (the linear last layer counts its full width).
    g = gates(params, xs, activation=activation, negative_slope=0.1)
    np.testing.assert_array_equal(
        np.asarray(spec.active_counts)[:, :-1], np.stack([(d != 0).sum(-1) for d in g], 1)
    )
    np.testing.assert_array_equal(np.asarray(spec.active_counts)[:, -1], widths[-1])


def test_reorthonormalisation_interval_does_not_change_growth_rates():
    params = init_mlp(jax.random.key(12), (10,) * 13, activation="leaky_relu", dtype=jnp.float64)
    xs = jax.random.normal(jax.random.key(13), (2, 10), jnp.float64)
    kw = dict(k=3, activation="leaky_relu", dtype="float64", singular_values=False)
    every1 = jacobian_spectrum(params, xs, **kw)
    every4 = jacobian_spectrum(params, xs, reortho_every=4, **kw)
    assert_close(every4.growth_rates, every1.growth_rates)
    # Block-wise prefixes agree with the layer-wise ones at block ends.
    assert_close(every4.prefix_growth_rates[:, 3::4], every1.prefix_growth_rates[:, 3::4])
    chex.assert_equal_shape([every4.prefix_growth_rates, every1.prefix_growth_rates])


def test_dense_prefixes_end_in_jacfwd():
    params = init_mlp(jax.random.key(2), (5, 8, 8, 4), dtype=jnp.float64)
    x = jax.random.normal(jax.random.key(3), (5,), jnp.float64)
    assert_close(np.asarray(dense_prefix_jacobians(params, x))[-1, :4], dense_jacobian(params, x))
    chex.assert_shape(dense_jacobian(params, jnp.stack([x, x])), (2, 4, 5))


def test_one_matrix_product_per_layer_for_all_inputs_and_tangents():
    padded = pad_params(init_mlp(jax.random.key(6), (8, 8, 8)))
    layer = mlp_tangent_layer(padded)
    hs = jnp.ones((5, 8))
    frames = jnp.ones((5, 8, 3))
    jaxpr = jax.make_jaxpr(jax.vmap(lambda h, f: layer(h, f, jax.random.key(0), 0)))(hs, frames)
    dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
    # The weights are unbatched: every product is one plain GEMM (no batch dimensions) over all inputs.
    assert dots and all(e.params["dimension_numbers"][1] == ((), ()) for e in dots)
    tangent_dots = [e for e in dots if len(e.outvars[0].aval.shape) == 3]
    assert len(tangent_dots) == 1 and tangent_dots[0].outvars[0].aval.shape == (8, 5, 3)


def test_relu_network_exponents_match_masked_half_theory_with_zscores():
    # Zero-bias He ReLU networks (every layer gated) are the p = 1/2 masked model for all QR statistics.
    width, depth, k, seeds = 16, 150, 4, 24
    widths = (width,) * (depth + 1)
    nets = [pad_params(init_mlp(jax.random.key(100 + s), widths, dtype=jnp.float64)) for s in range(seeds)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *nets)
    xs = jax.random.normal(jax.random.key(7), (seeds, width), jnp.float64)
    frames = jnp.stack([input_frame(jax.random.key(200 + s), nets[0], k, jnp.float64) for s in range(seeds)])
    config = JacobianConfig(
        k=k, final_activation=True, dtype="float64", singular_values=False, prefixes=False
    )
    sums = jax.jit(jax.vmap(lambda p, x, f: network_frame_sums(p, x, f, config)))(stacked, xs, frames)
    rates = np.asarray(exponents_from_sums(sums, "K>=i"))
    ens = jaxspec.relu_net(width=width, depth=depth)
    z = zscores(
        rates.mean(0), theory.lyapunov_exponents(ens, k), theory.predicted_stderr(ens, k, seeds=seeds)
    )
    assert np.all(np.abs(z) < Z_MAX), z


@pytest.mark.slow  # tests/networks/test_jacobian_defaults.py covers the auto default
def test_auto_reortho_picks_a_long_block_and_keeps_the_per_layer_result():
    # He-initialised ReLU net: the top-k rates spread slowly, so "auto" takes blocks of many layers; the
    # estimator (same frames, same realisation) must stay the per-layer one to rounding.
    params = init_mlp(jax.random.key(21), (32,) * 25, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.key(22), (6, 32), jnp.float64)
    kw = dict(k=4, singular_values=False)
    every1 = jacobian_spectrum(params, xs, dtype="float64", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OrthogonalityWarning)  # the auto choice must not trip its own guard
        auto64 = jacobian_spectrum(params, xs, dtype="float64", reortho_every="auto", **kw)
        auto32 = jacobian_spectrum(params, xs, reortho_every="auto", **kw)
    assert auto64.config.reortho_every > 1 and 24 % auto64.config.reortho_every == 0  # prefixes: a divisor
    assert_close(auto64.growth_rates, every1.growth_rates)
    assert_close(auto32.growth_rates, every1.growth_rates, "float32")
    assert float(np.max(auto32.max_block_spread)) <= reortho_limits("float32")[1]
    with pytest.raises(InputError):
        jacobian_spectrum(params, xs, reortho_every="sometimes")


@pytest.mark.slow  # the default run trips the guard in tests/engine/test_engine_perf_options.py
def test_orthogonality_guard_reruns_auto_and_reports_an_explicit_interval():
    # Linear layers: 40 identities (the pilot sees no spread) then 48 that stretch two directions by 3 and
    # shrink the rest by 0.3. "auto" over-estimates m from the pilot; the guard must catch it and re-run.
    n = 8
    weights = [np.eye(n)] * 40 + [np.diag(np.r_[np.full(2, 3.0), np.full(n - 2, 0.3)])] * 48
    params = [{"w": jnp.asarray(w)} for w in weights]
    xs = jnp.ones((2, n))
    kw = dict(k=n, activation="linear", singular_values=False, prefixes=False)
    with pytest.warns(OrthogonalityWarning, match="re-running"):
        auto = jacobian_spectrum(params, xs, reortho_every="auto", **kw)
    assert float(np.max(auto.max_block_spread)) <= reortho_limits("float32")[1]
    # The same frames re-orthonormalised every layer in float64: the finite-depth estimator, transient
    # included.
    with warnings.catch_warnings():
        warnings.simplefilter("error", OrthogonalityWarning)  # every layer: the guard has nothing to catch
        ref = jacobian_spectrum(params, xs, dtype="float64", reortho_every=1, **kw)
    assert_close(auto.growth_rates, ref.growth_rates, "float32")
    assert np.allclose(
        np.sort(np.asarray(ref.growth_rates), -1)[:, [0, -1]],
        np.log([0.3, 3.0]) * 48 / 88,
        atol=TRANSIENT_ATOL,
    )
    with pytest.warns(OrthogonalityWarning, match="log condition"):
        jacobian_spectrum(params, xs, reortho_every=88, **kw)


def test_float32_agrees_with_float64():
    params = init_mlp(jax.random.key(8), (12,) * 21, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.key(9), (2, 12), jnp.float64)
    s64 = jacobian_spectrum(params, xs, k=3, dtype="float64", singular_values=False)
    s32 = jacobian_spectrum(params, xs, k=3, dtype="float32", singular_values=False)
    assert_close(s32.growth_rates, s64.growth_rates, "float32")


def test_bad_arguments_raise_input_error():
    params = init_mlp(jax.random.key(0), (4, 4, 4))
    with pytest.raises(InputError):
        jacobian_spectrum(params, jnp.ones((2, 5)))
    with pytest.raises(InputError):
        jacobian_spectrum(params, jnp.ones((2, 4)), k=9)
    with pytest.raises(InputError):
        jacobian_spectrum(params, jnp.ones((2, 4)), activation="tanh")


def test_exact_singular_values_match_dense_route():
    params = init_mlp(jax.random.key(10), (6, 8, 8, 8, 8, 8, 8, 5), dtype=jnp.float64)
    xs = jax.random.normal(jax.random.key(11), (3, 6), jnp.float64)
    spec = jacobian_spectrum(params, xs, k=4, dtype="float64")
    for b in range(3):
        dense = dense_prefix_log_svals(params, xs[b])[:, :4]
        finite = np.isfinite(dense) & (dense > dense[:, :1] - 25)  # dense SVD is exact above eps * s_1
        assert_close(np.asarray(spec.log_svals[b])[finite], dense[finite])
