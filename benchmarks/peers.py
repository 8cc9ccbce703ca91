"""The peers jaxspec is measured against, each given the same workload.

* ``numpy_*_loop``: the plain numpy implementation of the same algorithm: a Python loop over seeds (or
  inputs) and layers, one ``W @ Q`` and one ``linalg.qr`` per layer, the form issue 10 names as the peer.
* ``numpy_ensemble`` / ``numpy_fixed``: numpy at its best: seeds batched into ``(S, n, n)`` matmuls and
  numpy's batched ``linalg.qr``, inputs stacked into one ``(N, N) x (N, B k)`` GEMM per layer. Reported too,
  so the ratios against plain numpy cannot hide behind a strawman. Random numbers come from
  numpy's own generator (PCG64 + ziggurat); float32 and float64 runs draw float32 numbers, so they share a
  realisation and the float64 run is a rounding reference.
* ``lyapax_*``: lyapax's ``lyapunov_spectrum`` (Benettin/QR over a one-step map, tangents by ``jax.jvp``),
  given the same map: the state carries the layer index as an extra coordinate behind ``stop_gradient`` (its
  tangent block is zero, so it adds an exponent of ``-inf`` that never enters the top ``k``), and the
  initial tangent frame is jaxspec's, passed through lyapax's ``resume`` checkpoint. So lyapax sees exactly
  the matrices and the frame that jaxspec's direct path sees, and vmaps over seeds/inputs under one ``jit``.

References:
    lyapax (PyPI ``lyapax``), ``lyapax.core.lyapunov_spectrum``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxspec.engine import frame_key, initial_frame, realisation_key
from jaxspec.ensembles import layer_key

HIGHEST = jax.lax.Precision.HIGHEST


# ------------------------------------------------------------------------------------------------------------
# numpy


def numpy_ensemble(
    n: int,
    depth: int,
    seeds: int,
    k: int,
    *,
    p: float = 1.0,
    sigma2: float = 1.0,
    dtype=np.float32,
    seed: int = 0,
    return_counts: bool = False,
):
    """Masked (``p < 1``) or Gaussian products, all seeds at once: ``(seeds, k)`` exponents (``K >= i``), and
    with ``return_counts`` the ``(seeds, k)`` numbers of counted layers (``depth``: index never collapsed)."""
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.standard_normal((seeds, n, k), dtype=np.float32).astype(dtype))[0]
    scale = dtype(np.sqrt(sigma2 / n))
    idx = np.arange(1, k + 1)
    sums = np.zeros((seeds, k))
    counts = np.zeros((seeds, k))
    for _ in range(depth):
        w = rng.standard_normal((seeds, n, n), dtype=np.float32).astype(dtype, copy=False) * scale
        y = np.matmul(w, q)
        if p < 1:
            gates = rng.random((seeds, n), dtype=np.float32) < p
            active = gates.sum(1)
            y *= gates[:, :, None]
        else:
            active = np.full(seeds, n)
        y *= (idx <= active[:, None])[:, None, :]  # rank collapse: deterministic completion, as the engine
        q, r = np.linalg.qr(y)
        log_r = np.log(np.abs(np.diagonal(r, axis1=1, axis2=2)))
        valid = active[:, None] >= idx
        sums += np.where(valid, log_r, 0.0)
        counts += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sums / np.where(counts > 0, counts, np.nan)
    return (out, counts) if return_counts else out


def numpy_ensemble_loop(
    n: int,
    depth: int,
    seeds: int,
    k: int,
    *,
    p: float = 1.0,
    sigma2: float = 1.0,
    dtype=np.float32,
    seed: int = 0,
    return_counts: bool = False,
):
    """The plain numpy loop: seed by seed, layer by layer, one ``W @ Q``, gates and one QR; ``(seeds, k)``
    exponents (and counted layers with ``return_counts``, as :func:`numpy_ensemble`)."""
    rng = np.random.default_rng(seed)
    scale = dtype(np.sqrt(sigma2 / n))
    idx = np.arange(1, k + 1)
    out = np.empty((seeds, k))
    all_counts = np.empty((seeds, k))
    for s in range(seeds):
        q = np.linalg.qr(rng.standard_normal((n, k), dtype=np.float32).astype(dtype))[0]
        sums, counts = np.zeros(k), np.zeros(k)
        for _ in range(depth):
            y = (rng.standard_normal((n, n), dtype=np.float32).astype(dtype, copy=False) * scale) @ q
            active = n
            if p < 1:
                gates = rng.random(n, dtype=np.float32) < p
                active = int(gates.sum())
                y *= gates[:, None]
            y *= idx <= active
            q, r = np.linalg.qr(y)
            valid = active >= idx
            sums += np.where(valid, np.log(np.abs(np.diagonal(r)) + (~valid)), 0.0)
            counts += valid
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s] = sums / np.where(counts > 0, counts, np.nan)
        all_counts[s] = counts
    return (out, all_counts) if return_counts else out


def numpy_fixed_loop(
    weights: np.ndarray, masks: np.ndarray, frame: np.ndarray, dtype=np.float32
) -> np.ndarray:
    """The plain numpy loop for one network at many inputs: input by input, one ``(N, N) x (N, k)`` product
    and one QR per layer; ``(B, k)``."""
    weights = weights.astype(dtype)
    masks = masks.astype(dtype)
    b, depth, _ = masks.shape
    out = np.empty((b, frame.shape[-1]))
    for i in range(b):
        q = frame.astype(dtype)
        sums = 0.0
        for l in range(depth):
            q, r = np.linalg.qr(masks[i, l][:, None] * (weights[l] @ q))
            sums = sums + np.log(np.abs(np.diagonal(r)))
        out[i] = sums / depth
    return out


def numpy_fixed(weights: np.ndarray, masks: np.ndarray, frame: np.ndarray, dtype=np.float32) -> np.ndarray:
    """One network, many inputs: one ``(N, N) x (N, B k)`` GEMM and a batched QR per layer; ``(B, k)``."""
    weights = weights.astype(dtype)
    masks = masks.astype(dtype)
    b, depth, n = masks.shape
    k = frame.shape[-1]
    stacked = np.broadcast_to(frame.astype(dtype)[:, None, :], (n, b, k)).copy()  # (N, B, k)
    sums = np.zeros((b, k))
    for l in range(depth):
        y = (weights[l] @ stacked.reshape(n, b * k)).reshape(n, b, k) * masks[:, l].T[:, :, None]
        q, r = np.linalg.qr(np.ascontiguousarray(y.transpose(1, 0, 2)))
        sums += np.log(np.abs(np.diagonal(r, axis1=1, axis2=2)))
        stacked = np.ascontiguousarray(q.transpose(1, 0, 2))
    return sums / depth


# ------------------------------------------------------------------------------------------------------------
# lyapax


def _lyapax_run(step, state0, frame, depth, k):
    import lyapax  # noqa: PLC0415 (optional bench extra)
    from lyapax.core import LyapunovCheckpoint  # noqa: PLC0415

    y0 = jnp.concatenate([frame, jnp.zeros((1, k), frame.dtype)])
    checkpoint = LyapunovCheckpoint(
        state=state0,
        Y=y0,
        cum_log_growth=jnp.zeros((k,), frame.dtype),
        elapsed_time=jnp.zeros((), frame.dtype),
        dt=1.0,
    )
    return lyapax.lyapunov_spectrum(step, state0, 1.0, depth, k=k, resume=checkpoint).exponents


def lyapax_ensemble(ensemble, keys: jax.Array, k: int, dtype=jnp.float32):
    """lyapax on the same layers (``ensemble.layer`` with the engine's keys) and the same initial frames.

    Returns a jitted zero-argument callable giving ``(seeds, k)`` exponents, sorted descending per seed
    (lyapax keeps every index, rank-collapsed ones included, with no conditioning).
    """
    n = ensemble.max_width
    depth = ensemble.depth

    def one(seed_key):
        _, key_layers = jax.random.split(realisation_key(seed_key))
        frame = initial_frame(frame_key(seed_key), ensemble.input_width, n, k, dtype)

        def step(state):
            t = jax.lax.stop_gradient(state[-1])
            index = t.astype(jnp.int32)
            _, weight, mask = ensemble.layer(None, layer_key(key_layers, index), index, dtype)
            x = mask * jnp.matmul(weight, state[:-1], precision=HIGHEST)
            return jnp.concatenate([x, (t + 1)[None]])

        return _lyapax_run(step, jnp.zeros((n + 1,), dtype), frame, depth, k)

    run = jax.jit(jax.vmap(one))
    return lambda: run(keys)


def lyapax_fixed(weights: jax.Array, inputs: jax.Array, frame: jax.Array, dtype=jnp.float32):
    """lyapax on a zero-bias ReLU MLP ``h -> relu(W_l h)`` at many inputs (vmapped), same initial frame."""
    weights = jnp.asarray(weights, dtype)
    frame = jnp.asarray(frame, dtype)
    depth = weights.shape[0]
    k = frame.shape[-1]

    def one(x):
        def step(state):
            t = jax.lax.stop_gradient(state[-1])
            h = jnp.maximum(jnp.matmul(weights[t.astype(jnp.int32)], state[:-1], precision=HIGHEST), 0.0)
            return jnp.concatenate([h, (t + 1)[None]])

        return _lyapax_run(step, jnp.concatenate([x.astype(dtype), jnp.zeros((1,), dtype)]), frame, depth, k)

    run = jax.jit(jax.vmap(one))
    return lambda: run(jnp.asarray(inputs, dtype))
