"""Regression tasks of known bottleneck rank ``k``: ``f = h o g`` through ``R^k``, or a rank-``k`` linear map.

:func:`jaxspec.data.digits` is the real-data target.

References:
    Jacot, "Bottleneck Structure in Learned Features: Low-Dimension vs Regularity Tradeoff", NeurIPS 2023,
    arXiv:2305.19008.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from jaxspec._checks import HIGHEST, InputError, check_choice, check_positive_int
from jaxspec.networks import init_mlp, mlp_apply


class BottleneckTask(NamedTuple):
    """A regression task of known bottleneck rank.

    Attributes:
        x: ``(N, d)`` inputs.
        y: ``(N, d_out)`` targets, ``y = mlp_apply(teacher, x, activation=activation)``.
        teacher: the target network as a list of layer dicts; one of its weight matrices has rank ``k``.
        activation: ``"relu"`` or ``"linear"`` (static).
        rank: ``k``, the bottleneck rank (static).
    """

    x: jax.Array
    y: jax.Array
    teacher: list
    activation: str
    rank: int


def bottleneck_target(
    key: PRNGKeyArray,
    num_points: int,
    *,
    input_dim: int = 8,
    bottleneck_dim: int = 2,
    output_dim: int = 8,
    hidden: int = 32,
    kind: str = "relu",
    dtype: Any = jnp.float32,
) -> BottleneckTask:
    """A regression task of known bottleneck rank ``k``: ``y = f(x)``, ``f = h o g``, ``g: R^d -> R^k``.

    ``kind="relu"``: ``g`` and ``h`` are random bias-free ReLU nets with one hidden layer of width ``hidden``
    (``d -> hidden -> k`` and ``k -> hidden -> d_out``, the last layer of each linear), so the teacher is the
    depth-3 ReLU net ``d -> hidden -> hidden -> d_out`` whose middle weight ``W_h1 W_g2`` has rank ``k``, and
    ``rank Jf(x) <= k`` everywhere. ``kind="linear"``: ``f(x) = A x`` with ``A = H G`` of rank ``k`` (Gaussian
    factors). Inputs are standard Gaussian; the teacher's last layer is scaled so that the outputs have unit
    mean square per coordinate.

    Args:
        key: PRNG key.
        num_points: ``N``.
        input_dim, bottleneck_dim, output_dim: ``d``, ``k``, ``d_out`` (``k <= min(d, d_out)``).
        hidden: width of the hidden layers of ``g`` and ``h`` (``kind="relu"``).
        kind: ``"relu"`` or ``"linear"``.
        dtype: array dtype.

    Returns:
        :class:`BottleneckTask` with ``x (N, d)`` and ``y (N, d_out)``.

    Example:
        >>> task = bottleneck_target(jax.random.key(0), 64, input_dim=6, bottleneck_dim=2, output_dim=5)
        >>> task.x.shape, task.y.shape, task.rank
        ((64, 6), (64, 5), 2)

    References:
        Jacot, arXiv:2305.19008 (functions of bottleneck rank ``k`` factor through ``R^k``).
    """
    num_points = check_positive_int("num_points", num_points)
    input_dim = check_positive_int("input_dim", input_dim)
    bottleneck_dim = check_positive_int("bottleneck_dim", bottleneck_dim)
    output_dim = check_positive_int("output_dim", output_dim)
    hidden = check_positive_int("hidden", hidden)
    if bottleneck_dim > min(input_dim, output_dim):
        raise InputError(
            f"bottleneck_dim must be at most min(input_dim, output_dim) = "
            f"{min(input_dim, output_dim)}, got {bottleneck_dim}"
        )
    check_choice("kind", kind, ("relu", "linear"))
    kx, kg, kh = jax.random.split(key, 3)
    x = jax.random.normal(kx, (num_points, input_dim), jnp.float32).astype(dtype)
    if kind == "linear":
        g = init_mlp(kg, (input_dim, bottleneck_dim), activation="linear", dtype=dtype)
        h = init_mlp(kh, (bottleneck_dim, output_dim), activation="linear", dtype=dtype)
        teacher = [{"w": jnp.matmul(h[0]["w"], g[0]["w"], precision=HIGHEST)}]
    else:
        g = init_mlp(kg, (input_dim, hidden, bottleneck_dim), dtype=dtype)
        h = init_mlp(kh, (bottleneck_dim, hidden, output_dim), dtype=dtype)
        # g's last layer is linear, so it merges with h's first layer into one rank-k weight.
        teacher = [g[0], {"w": jnp.matmul(h[0]["w"], g[1]["w"], precision=HIGHEST)}, h[1]]
    y = mlp_apply(teacher, x, activation=kind)
    scale = jnp.sqrt(jnp.mean(y**2))
    teacher[-1] = {"w": teacher[-1]["w"] / scale}
    return BottleneckTask(x, y / scale, teacher, kind, bottleneck_dim)
