"""Micro-benchmarks behind the engine choices: QR backends, PRNG implementations and dtypes, buffer donation,
compute dtype."""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from _common import max_abs_diff, time_it

import jaxspec
from jaxspec.engine import QR_BACKENDS, make_qr

HIGHEST = jax.lax.Precision.HIGHEST


def qr_backends(shapes, repeats: int, log=print) -> list[dict]:
    """Time and ``log|R_ii|`` accuracy (vs float64 LAPACK) of every backend on batched Benettin-like
    frames."""
    rows = []
    for shape in shapes:
        # A frame as the engine sees it: a masked Gaussian matrix times an orthonormal frame.
        a = jax.random.normal(jax.random.key(0), shape, jnp.float32) * jnp.float32(shape[-2] ** -0.5)
        oracle = np.log(np.abs(np.diagonal(np.linalg.qr(np.asarray(a, np.float64))[1], axis1=-2, axis2=-1)))
        variants = {name: jax.jit(make_qr(name)) for name in QR_BACKENDS}
        variants["householder, R only (mode='r')"] = jax.jit(lambda a: (None, jnp.linalg.qr(a, mode="r")))
        variants["householder via lax.map"] = jax.jit(lambda a: jax.lax.map(jnp.linalg.qr, a))
        for name, fn in variants.items():
            log(f"  qr {shape} {name}")
            timing = time_it(lambda fn=fn, a=a: fn(a), repeats)
            r = np.asarray(timing.result[1], np.float64)
            err = max_abs_diff(np.log(np.abs(np.diagonal(r, axis1=-2, axis2=-1))), oracle)
            rows.append(dict(shape=shape, backend=name, time=timing.median, accuracy=err))
    return rows


def prng(count: int, repeats: int, log=print) -> list[dict]:
    """Nanoseconds per standard normal: JAX PRNG implementations x dtypes, and numpy's generator."""
    rows = []
    dtypes = [jnp.float32, jnp.bfloat16] + ([jnp.float64] if jax.config.jax_enable_x64 else [])
    for impl in ("threefry2x32", "rbg", "unsafe_rbg"):
        key = jax.random.key(0, impl=impl)
        for dtype in dtypes:
            fn = jax.jit(functools.partial(jax.random.normal, shape=(count,), dtype=dtype))
            log(f"  prng {impl} {jnp.dtype(dtype).name}")
            timing = time_it(lambda fn=fn, key=key: fn(key), repeats)
            rows.append(dict(impl=f"jax {impl}", dtype=jnp.dtype(dtype).name, ns=timing.median / count * 1e9))
        bits = jax.jit(functools.partial(jax.random.bits, shape=(count,), dtype=jnp.uint32))
        timing = time_it(lambda bits=bits, key=key: bits(key), repeats)
        rows.append(dict(impl=f"jax {impl}", dtype="uint32 bits", ns=timing.median / count * 1e9))
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        timing = time_it(lambda dtype=dtype: rng.standard_normal(count, dtype=dtype), repeats)
        rows.append(
            dict(impl="numpy PCG64 ziggurat", dtype=np.dtype(dtype).name, ns=timing.median / count * 1e9)
        )
    return rows


def donation(width: int, depth: int, inputs: int, k: int, chunks: int, repeats: int, log=print) -> list[dict]:
    """A chunked driver (the carry crosses the jit boundary every chunk), with and without donating it."""
    weights = jax.random.normal(jax.random.key(0), (depth, width, width), jnp.float32) * jnp.float32(
        width**-0.5
    )
    frames = jnp.broadcast_to(jnp.eye(width, k, dtype=jnp.float32), (inputs, width, k))
    per = depth // chunks

    def advance(carry, w_chunk):
        frames, sums = carry

        def layer(carry, w):
            frames, sums = carry
            y = jnp.einsum("ij,bjk->bik", w, frames, precision=HIGHEST)
            q, r = jnp.linalg.qr(y)
            return (q, sums + jnp.log(jnp.abs(jnp.diagonal(r, axis1=-2, axis2=-1))).astype(sums.dtype)), None

        return jax.lax.scan(layer, (frames, sums), w_chunk)[0]

    rows = []
    for donate in (False, True):
        step = jax.jit(advance, donate_argnums=(0,) if donate else ())

        def run(step=step):
            carry = (
                frames + 0.0,
                jnp.zeros((inputs, k), jnp.float64 if jax.config.jax_enable_x64 else jnp.float32),
            )
            for c in range(chunks):
                carry = step(carry, weights[c * per : (c + 1) * per])
            return carry[1]

        log(f"  donation={donate}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            timing = time_it(run, repeats)
        unusable = any("donated buffers were not usable" in str(w.message) for w in caught)
        rows.append(dict(donate=donate, time=timing.median, unusable_warning=unusable))
    return rows


def compute_dtype(width: int, depth: int, seeds: int, k: int, repeats: int, log=print) -> list[dict]:
    """Direct path in float32 vs float64 compute (both accumulate ``log|R_ii|`` in float64)."""
    ens = jaxspec.gaussian(width=width, depth=depth)
    rows = []
    for dtype in ("float32", "float64"):
        log(f"  dtype {dtype}")
        timing = time_it(
            lambda dtype=dtype: (
                jaxspec.lyapunov_spectrum(ens, k=k, seeds=seeds, dtype=dtype, method="direct").mean
            ),
            repeats,
        )
        rows.append(dict(dtype=dtype, time=timing.median, mean=np.asarray(timing.result)))
    rows[0]["accuracy"] = max_abs_diff(rows[0]["mean"], rows[1]["mean"])
    return rows
