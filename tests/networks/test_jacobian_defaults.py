"""jacobian_spectrum's fast defaults (issue 16): automatic block length and QR backend for growth rates."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxspec.networks import init_mlp, jacobian_spectrum
from tests.conftest import assert_close


def test_growth_rates_only_default_to_auto_block_length_and_per_layer_elsewhere():
    params = init_mlp(jax.random.key(3), (24,) * 17, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.key(4), (3, 24), jnp.float64)
    fast = jacobian_spectrum(params, xs, k=3, singular_values=False, prefixes=False)
    assert fast.config.reortho_every > 1
    assert fast.config.qr in ("cholesky2", "householder")
    per_layer = jacobian_spectrum(params, xs, k=3, singular_values=False, prefixes=False, reortho_every=1)
    assert per_layer.config.reortho_every == 1
    # The same frames and realisation: blocks telescope to the per-layer product of diagonals.
    assert_close(fast.growth_rates, per_layer.growth_rates, "float32")


def test_per_layer_resolution_stays_where_prefixes_or_singular_values_are_asked_for():
    params = init_mlp(jax.random.key(6), (4,) * 4, dtype=jnp.float64)
    xs = jnp.ones((1, 4))
    assert jacobian_spectrum(params, xs, k=2, singular_values=False).config.reortho_every == 1  # prefixes
    assert jacobian_spectrum(params, xs, k=2, prefixes=False).config.reortho_every == 1  # singular values


def test_qr_auto_takes_householder_for_wide_frames_and_an_explicit_backend_is_kept():
    params = init_mlp(jax.random.key(5), (8,) * 4, dtype=jnp.float64)
    xs = jnp.ones((1, 8))
    assert jacobian_spectrum(params, xs, k=4, singular_values=False).config.qr == "householder"
    res = jacobian_spectrum(params, xs, k=4, singular_values=False, qr="blocked_householder", dtype="float64")
    ref = jacobian_spectrum(params, xs, k=4, singular_values=False, qr="householder", dtype="float64")
    assert res.config.qr == "blocked_householder"
    assert_close(res.growth_rates, ref.growth_rates)
