"""Toy problems of the saddle escape: the unit-circle example and its rank-two direction, a ridge teacher.

Closed-form check ([math §6](https://jaxspec.github.io/jaxspec/math/#s6)): on 8 points of the unit circle at
angles ``k pi/4`` with ``G = -1`` on the axes and ``+1`` on the diagonals, a depth-3 net with a rank-two first
layer reaches speed ``1/2`` (:func:`unit_circle_rank_two_direction`) while rank-one layers reach at most
``sqrt(2) - 1``. :func:`ridge_target` is a teacher of separated scales for saddle-to-saddle runs.

References:
    Bantzis, Simon, Jacot, "Saddle-to-Saddle Dynamics in Deep ReLU Networks: Low-Rank Bias in the First
    Saddle Escape", ICLR 2026, arXiv:2505.21722.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from jaxspec._checks import HIGHEST, InputError, check_positive_int
from jaxspec.saddle._validation import Params


def ridge_target(
    key: PRNGKeyArray,
    num_points: int,
    *,
    input_dim: int = 8,
    output_dim: int = 4,
    amplitudes: Sequence[float] = (4.0, 2.0, 1.0),
    dtype: Any = jnp.float32,
) -> tuple[Float[Array, "N d"], Float[Array, "N d_out"]]:
    """A teacher of separated scales for saddle-to-saddle runs: ``y = sum_k a_k u_k relu(v_k . x)``.

    ``v_k`` (orthonormal in ``R^d``) and ``u_k`` (orthonormal in ``R^{d_out}``) are random; inputs lie on the
    unit sphere. Each ridge is one rank-one feature, and the amplitudes set the order (and the plateau
    lengths) in which gradient descent from a small initialisation picks them up.

    Args:
        key: PRNG key.
        num_points: ``N``.
        input_dim, output_dim: ``d``, ``d_out`` (both at least ``len(amplitudes)``).
        amplitudes: ``a_k > 0``, one per ridge.
        dtype: array dtype.

    Returns:
        ``x (N, d)``, ``y (N, d_out)``.

    Example:
        >>> x, y = ridge_target(jax.random.key(0), 32)
        >>> x.shape, y.shape
        ((32, 8), (32, 4))

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (saddle-to-saddle, one rank per escape).
    """
    num_points = check_positive_int("num_points", num_points)
    amps = np.asarray(amplitudes, dtype=np.float64).ravel()
    if amps.size < 1 or not np.all(np.isfinite(amps)) or np.any(amps <= 0):
        raise InputError(f"amplitudes must be positive numbers, got {amplitudes!r}")
    k = amps.size
    input_dim = check_positive_int("input_dim", input_dim)
    output_dim = check_positive_int("output_dim", output_dim)
    if input_dim < k or output_dim < k:
        raise InputError(f"input_dim and output_dim must be at least len(amplitudes) = {k}")
    kx, kv, ku = jax.random.split(key, 3)
    x = jax.random.normal(kx, (num_points, input_dim), jnp.float32).astype(dtype)
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    v = jnp.linalg.qr(jax.random.normal(kv, (input_dim, k), jnp.float32))[0].astype(dtype)
    u = jnp.linalg.qr(jax.random.normal(ku, (output_dim, k), jnp.float32))[0].astype(dtype)
    features = jnp.maximum(jnp.matmul(x, v, precision=HIGHEST), 0.0) * jnp.asarray(amps, dtype)  # (N, k)
    return x, jnp.matmul(features, u.T, precision=HIGHEST)


def unit_circle_example(dtype: Any = jnp.float32) -> tuple[Float[Array, "8 2"], Float[Array, "8 1"]]:
    """8 points on the unit circle at angles ``k pi/4``; ``G = -1`` on the axis points, ``+1`` on diagonals.

    Args:
        dtype: array dtype.

    Returns:
        ``x (8, 2)``, ``g (8, 1)``.

    Example:
        >>> x, g = unit_circle_example()
        >>> g.ravel().tolist()
        [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0]

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (rank-two beats rank-one escape);
        [math §6](https://jaxspec.github.io/jaxspec/math/#s6).
    """
    angles = np.arange(8) * np.pi / 4
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    x[np.abs(x) < 1e-12] = 0.0
    g = np.where(np.arange(8) % 2 == 0, -1.0, 1.0)[:, None]
    return jnp.asarray(x, dtype), jnp.asarray(g, dtype)


def unit_circle_rank_two_direction(dtype: Any = jnp.float32) -> Params:
    """A depth-3 direction on ``||theta||^2 = 3`` of speed exactly ``1/2`` for :func:`unit_circle_example`.

    ``f(x) = (1/8) ||x_1| - |x_2||`` (the product of the layer scalings is ``1/8``): the first layer
    ``(1/2)[e_1; -e_1; e_2; -e_2]`` (rank two) computes ``|x_1|, |x_2|`` through ReLUs, the second
    ``(1/(2 sqrt 2)) [[1, 1, -1, -1], [-1, -1, 1, 1]]`` their differences, the third ``(1/sqrt 2)[1, 1]`` adds
    them; each layer has unit Frobenius norm. ``f = 1/8`` on the 4 axis points and 0 on the diagonals, so
    ``-L0 = 4/8 = 1/2``.

    Args:
        dtype: array dtype.

    Returns:
        A list of 3 layer dicts, widths ``(2, 4, 2, 1)``.

    Example:
        >>> [p["w"].shape for p in unit_circle_rank_two_direction()]
        [(4, 2), (2, 4), (1, 2)]

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722; [math §6](https://jaxspec.github.io/jaxspec/math/#s6).
    """
    w1 = 0.5 * np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    w2 = np.array([[1.0, 1.0, -1.0, -1.0], [-1.0, -1.0, 1.0, 1.0]]) / (2.0 * np.sqrt(2.0))
    w3 = np.array([[1.0, 1.0]]) / np.sqrt(2.0)
    return [{"w": jnp.asarray(w, dtype)} for w in (w1, w2, w3)]
