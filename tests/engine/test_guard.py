"""The guard on blocks that leave the dtype's range: underflow to zero, overflow, NaN (issue 19, "Guard")."""

from __future__ import annotations

import math
import warnings

import jax.numpy as jnp
import numpy as np
import pytest

import jaxspec
from jaxspec.engine import (
    BlockRangeWarning,
    OrthogonalityWarning,
    block_spread,
    make_config,
    range_limits,
    run_with_orthogonality_guard,
)
from tests.conftest import assert_close


def _late_scaling_network(scale: float, n: int = 4) -> jaxspec.ensembles.FixedStack:
    # 40 isotropic layers (the 32-layer pilot sees no growth and picks one block for the whole product), then
    # 48 layers that scale every direction by `scale`: a block of them underflows (or overflows) float32.
    return jaxspec.fixed_network([np.eye(n)] * 40 + [scale * np.eye(n)] * 48)


@pytest.mark.parametrize("scale", [0.05, 20.0])
def test_auto_reruns_a_block_that_left_the_float32_range(scale):
    ens = _late_scaling_network(scale)
    with pytest.warns(BlockRangeWarning, match="re-running"):
        auto = jaxspec.lyapunov_spectrum(ens, k=2, reortho_every="auto", method="direct")
    assert auto.config.reortho_every < 44
    assert np.isfinite(float(np.max(auto.max_block_spread)))
    # The exact value: every direction is scaled by `scale` on 48 of the 88 layers.
    assert_close(auto.exponents, math.log(scale) * 48 / 88, "float32")


def test_an_explicit_block_that_underflows_warns_and_keeps_the_users_m():
    ens = _late_scaling_network(0.05)
    with pytest.warns(BlockRangeWarning, match="out of the float32 range"):
        res = jaxspec.lyapunov_spectrum(ens, k=2, reortho_every=44, method="direct")
    assert res.config.reortho_every == 44
    assert float(np.max(res.max_block_spread)) == np.inf
    # float64 holds the same block: no warning, the exact value.
    with warnings.catch_warnings():
        warnings.simplefilter("error", OrthogonalityWarning)
        res64 = jaxspec.lyapunov_spectrum(ens, k=2, reortho_every=44, dtype="float64", method="direct")
    assert_close(res64.exponents, math.log(0.05) * 48 / 88)


def test_a_warning_class_catches_both_guards():
    assert issubclass(BlockRangeWarning, OrthogonalityWarning)
    assert jaxspec.engine.BlockRangeWarning is BlockRangeWarning


def test_block_spread_is_infinite_for_non_finite_or_out_of_range_counted_blocks_and_never_nan():
    valid = jnp.array([True, True, False])
    assert float(block_spread(jnp.array([-1.0, -3.0, -jnp.inf]), valid)) == 2.0  # uncounted -inf is fine
    for log_r in ([-1.0, -jnp.inf, 0.0], [jnp.nan, 0.0, 0.0], [jnp.inf, 0.0, 0.0]):
        assert float(block_spread(jnp.array(log_r), valid)) == np.inf
    _, range_guard = range_limits("float32")
    deep = jnp.array([-range_guard - 1.0, -range_guard - 2.0, 0.0])
    assert float(block_spread(deep, valid)) == 1.0  # no dtype: the spread only
    assert float(block_spread(deep, valid, "float32")) == np.inf
    assert float(block_spread(deep, valid, "float64")) == 1.0
    assert float(block_spread(jnp.array([0.0, 0.0, 0.0]), jnp.zeros(3, bool))) == 0.0


def test_guard_treats_nan_as_a_failure_and_halves_down_to_one_layer():
    config = make_config(2, max_k=2, reortho_every=8)
    seen = []

    def run(config):
        seen.append(config.reortho_every)
        return None, float("nan")

    with pytest.warns(BlockRangeWarning):
        _, final = run_with_orthogonality_guard(run, config, auto=True)
    assert seen == [8, 4, 2, 1] and final.reortho_every == 1
