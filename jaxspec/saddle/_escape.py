"""Escape directions from the saddle at the origin: the sphere, speeds, KKT statistics, the fastest direction.

The fastest direction is found by projected gradient ascent on the sphere.

Gradient flow from a small initialisation leaves the origin along an *escape direction*: a KKT point ``rho``
of the localised loss ``L0`` on the sphere ``||theta||^2 = L``, ``grad L0(rho) = -s rho`` with speed
``s = -L0(rho)``; every layer of such a point has unit Frobenius norm.

* :func:`optimal_escape_direction` maximises the speed by projected (Riemannian) gradient ascent of ``-L0`` on
  the sphere, ``vmap``-ed over random restarts, optionally restricted to layers of rank ``<= max_rank``
  (``W_l = U_l V_l^T``).
* :func:`escape_stats` gives the speed, the KKT residual (tangential part of ``grad L0`` over its norm) and
  the per-layer squared norms of a direction.

Closed-form check ([math §6](https://jaxspec.github.io/jaxspec/math/#s6)): a deep linear net escapes at speed
``s_1(G^T X)`` (``s_1(G X^T)`` in the column convention) with rank-one layers.

References:
    Bantzis, Simon, Jacot, "Saddle-to-Saddle Dynamics in Deep ReLU Networks: Low-Rank Bias in the First
    Saddle Escape", ICLR 2026, arXiv:2505.21722.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from jaxspec._checks import HIGHEST, InputError, check_choice, check_positive_int
from jaxspec.bottleneck import parameter_norm_sq
from jaxspec.networks import ACTIVATIONS, init_mlp
from jaxspec.saddle._losses import localised_loss
from jaxspec.saddle._validation import Params, check_data, check_params, check_positive_number


class EscapeStats(NamedTuple):
    """Speed and KKT quality of a direction (projected on the sphere ``||theta||^2 = L``).

    Attributes:
        speed: ``()``, ``s = -L0(rho)``.
        kkt_residual: ``()``, ``||grad L0 - <grad L0, rho> rho / L|| / ||grad L0||`` (0 at a KKT point).
        layer_norms_sq: ``(L,)``, ``||W_l||_F^2`` of ``rho`` (all 1 at a KKT point with ``s > 0``).
    """

    speed: jax.Array
    kkt_residual: jax.Array
    layer_norms_sq: jax.Array


class EscapeDirection(NamedTuple):
    """The best direction found by :func:`optimal_escape_direction`.

    Attributes:
        params: list of layer dicts ``{"w"}`` on the sphere ``||theta||^2 = L`` (the fastest restart).
        speed: ``()``, its speed ``-L0``.
        kkt_residual: ``()``, its KKT residual (see :class:`EscapeStats`).
        layer_norms_sq: ``(L,)``.
        restart_speeds: ``(R,)``, final speed of every restart.
        speed_history: ``(R, T)``, speed after every ascent step.
    """

    params: Params
    speed: jax.Array
    kkt_residual: jax.Array
    layer_norms_sq: jax.Array
    restart_speeds: jax.Array
    speed_history: jax.Array


# ----------------------------------------------------------------------------------------------------------
# The sphere and the speed.


def project_to_sphere(params: Any) -> Any:
    """Rescale ``theta`` to the sphere ``||theta||^2 = L`` (``L`` the number of layers).

    Args:
        params: list of ``L`` layer dicts (any pytree of arrays with one entry per layer).

    Returns:
        The same pytree, scaled by ``sqrt(L / ||theta||^2)``.

    Example:
        >>> p = project_to_sphere([{"w": 3 * jnp.ones((1, 1))}, {"w": 4 * jnp.ones((1, 1))}])
        >>> [round(float(q["w"][0, 0]), 4) for q in p]
        [0.8485, 1.1314]
    """
    depth = len(params)
    scale = jnp.sqrt(depth / parameter_norm_sq(params))
    return jax.tree.map(lambda w: w * scale, params)


def escape_speed(
    params: Params,
    x: Float[Array, "N n0"],
    g: Float[Array, "N nL"],
    *,
    activation: str = "relu",
    precision: Any = HIGHEST,
) -> Float[Array, ""]:
    """``-L0`` of ``theta`` projected on the sphere: ``-L0(theta) (L / ||theta||^2)^(L/2)`` (scale-free).

    Args:
        params: bias-free list of layer dicts (any scale).
        x: ``(N, n_0)`` training inputs.
        g: ``(N, n_L)``, ``G = grad C(0)``.
        activation, precision: as in :func:`localised_loss`.

    Returns:
        A scalar, the speed of the direction of ``params``.

    Example:
        >>> x, g = unit_circle_example()
        >>> p = [{"w": 5 * q["w"]} for q in unit_circle_rank_two_direction()]
        >>> round(float(escape_speed(p, x, g)), 6)
        0.5

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722.
    """
    depth = len(params)
    return -localised_loss(params, x, g, activation=activation, precision=precision) * (
        depth / parameter_norm_sq(params)
    ) ** (depth / 2)


def escape_stats(
    params: Params,
    x: Float[Array, "N n0"],
    g: Float[Array, "N nL"],
    *,
    activation: str = "relu",
    precision: Any = HIGHEST,
) -> EscapeStats:
    """Speed, KKT residual and per-layer squared norms of the direction of ``params``.

    Args:
        params: bias-free list of layer dicts (any scale; projected on ``||theta||^2 = L`` first).
        x: ``(N, n_0)`` training inputs.
        g: ``(N, n_L)``, ``G = grad C(0)``.
        activation, precision: as in :func:`localised_loss`.

    Returns:
        :class:`EscapeStats` (``speed ()``, ``kkt_residual ()``, ``layer_norms_sq (L,)``).

    Example:
        >>> x, g = unit_circle_example()
        >>> st = escape_stats(unit_circle_rank_two_direction(), x, g)
        >>> round(float(st.speed), 6), [round(v, 6) for v in st.layer_norms_sq.tolist()]
        (0.5, [1.0, 1.0, 1.0])

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (escape directions are KKT points on the sphere).
    """
    params = check_params(params)
    check_choice("activation", activation, ACTIVATIONS)
    x, g = check_data(params, x, g)
    return _escape_stats_jit(params, x, g, activation, precision)


@functools.partial(jax.jit, static_argnames=("activation", "precision"))
def _escape_stats_jit(params, x, g, activation, precision) -> EscapeStats:
    return _escape_stats(project_to_sphere(params), x, g, activation, precision)


def _escape_stats(rho, x, g, activation, precision) -> EscapeStats:
    depth = len(rho)
    loss, grad = jax.value_and_grad(
        lambda p: localised_loss(p, x, g, activation=activation, precision=precision)
    )(rho)
    radial = _tree_vdot(grad, rho) / depth
    tangential = jax.tree.map(lambda a, b: a - radial * b, grad, rho)
    grad_norm = jnp.sqrt(parameter_norm_sq(grad))
    residual = jnp.sqrt(parameter_norm_sq(tangential)) / jnp.where(grad_norm > 0, grad_norm, 1.0)
    layer_norms = jnp.stack([jnp.sum(p["w"] ** 2) for p in rho])
    return EscapeStats(-loss, residual, layer_norms)


def _tree_vdot(a, b) -> jax.Array:
    return sum(jnp.vdot(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


# ----------------------------------------------------------------------------------------------------------
# Optimal escape direction: projected gradient ascent on the sphere, vmapped restarts.


def _factor_weights(factors) -> Params:
    return [{"w": jnp.matmul(f["u"], f["v"].T, precision=HIGHEST)} for f in factors]


def _ascent_schedule(step_size: float, num_steps: int) -> jax.Array:
    # Cosine decay to 10% of the initial step: large steps explore, smaller ones settle on the KKT point (the
    # step is already proportional to the KKT residual, so it need not vanish).
    t = jnp.arange(num_steps) / max(num_steps - 1, 1)
    return step_size * (0.1 + 0.9 * 0.5 * (1.0 + jnp.cos(jnp.pi * t)))


def _ascend_full(params0, x, g, activation, precision, steps):
    """Riemannian gradient ascent of ``-L0`` on the sphere, retraction by rescaling."""
    depth = len(params0)

    def body(theta, eta):
        grad = jax.grad(lambda p: localised_loss(p, x, g, activation=activation, precision=precision))(theta)
        radial = _tree_vdot(grad, theta) / depth
        ascent = jax.tree.map(lambda a, b: -(a - radial * b), grad, theta)  # tangential part of -grad L0
        norm = jnp.sqrt(parameter_norm_sq(grad))
        # Divide by the full gradient norm: the step is scale-free in G, an angle of about eta far from a KKT
        # point, and it shrinks with the KKT residual near one (so the iteration converges, not just hovers).
        factor = eta * jnp.sqrt(depth) / jnp.where(norm > 0, norm, 1.0)
        theta = project_to_sphere(jax.tree.map(lambda w, d: w + factor * d, theta, ascent))
        return theta, -localised_loss(theta, x, g, activation=activation, precision=precision)

    theta, history = jax.lax.scan(body, project_to_sphere(params0), steps)
    return theta, history


def _balance_factors(factors):
    # W = U V^T is unchanged by U -> c U, V -> V / c; equal norms keep the factorisation well conditioned.
    out = []
    for f in factors:
        nu, nv = jnp.sqrt(jnp.sum(f["u"] ** 2)), jnp.sqrt(jnp.sum(f["v"] ** 2))
        c = jnp.sqrt(nv / jnp.where(nu > 0, nu, 1.0))
        out.append({"u": f["u"] * c, "v": f["v"] / jnp.where(c > 0, c, 1.0)})
    return out


def _ascend_factored(factors0, x, g, activation, precision, steps):
    """Gradient ascent of the scale-free speed over rank-restricted factors ``W_l = U_l V_l^T``."""
    depth = len(factors0)

    def speed(f):
        return escape_speed(_factor_weights(f), x, g, activation=activation, precision=precision)

    def normalise(f):
        f = _balance_factors(f)
        scale = (depth / parameter_norm_sq(_factor_weights(f))) ** 0.25  # W is quadratic in the factors
        return jax.tree.map(lambda a: a * scale, f)

    def body(f, eta):
        grad = jax.grad(speed)(f)
        norm = jnp.sqrt(parameter_norm_sq(grad))
        factor = eta * jnp.sqrt(parameter_norm_sq(f)) / jnp.where(norm > 0, norm, 1.0)
        f = normalise(jax.tree.map(lambda a, d: a + factor * d, f, grad))
        return f, speed(f)

    f, history = jax.lax.scan(body, normalise(factors0), steps)
    return f, history


@functools.partial(
    jax.jit,
    static_argnames=("widths", "activation", "num_restarts", "num_steps", "max_rank", "dtype", "precision"),
)
def _optimal_escape(
    key, x, g, widths, activation, num_restarts, num_steps, step_size, max_rank, dtype, precision
):
    keys = jax.random.split(key, num_restarts)
    steps = _ascent_schedule(step_size, num_steps).astype(dtype)

    def one(k):
        if max_rank is None:
            p0 = init_mlp(k, widths, activation="linear", dtype=dtype)
            theta, hist = _ascend_full(p0, x, g, activation, precision, steps)
        else:
            f0 = []
            for l, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
                ku, kv = jax.random.split(jax.random.fold_in(k, l))
                r = min(max_rank, n_in, n_out)
                f0.append(
                    {
                        "u": jax.random.normal(ku, (n_out, r), jnp.float32).astype(dtype),
                        "v": jax.random.normal(kv, (n_in, r), jnp.float32).astype(dtype),
                    }
                )
            f, hist = _ascend_factored(f0, x, g, activation, precision, steps)
            theta = project_to_sphere(_factor_weights(f))
        return theta, hist, _escape_stats(theta, x, g, activation, precision)

    thetas, hists, stats = jax.vmap(one)(keys)
    best = jnp.argmax(jnp.where(jnp.isfinite(stats.speed), stats.speed, -jnp.inf))
    theta = jax.tree.map(lambda a: a[best], thetas)
    return theta, stats.speed[best], stats.kkt_residual[best], stats.layer_norms_sq[best], stats.speed, hists


def optimal_escape_direction(
    key: PRNGKeyArray,
    widths: Sequence[int],
    x: Float[Array, "N n0"],
    g: Float[Array, "N nL"],
    *,
    activation: str = "relu",
    num_restarts: int = 16,
    num_steps: int = 2000,
    step_size: float = 0.2,
    max_rank: int | None = None,
    dtype: Any = jnp.float32,
    precision: Any = HIGHEST,
) -> EscapeDirection:
    """The fastest escape direction: maximise ``-L0`` on the sphere ``||theta||^2 = L`` from random restarts.

    Each restart starts from a Gaussian network and takes ``num_steps`` Riemannian gradient-ascent steps: the
    tangential part of ``-grad L0`` normalised to an angle ``eta_t`` (cosine-decayed from ``step_size`` to
    ``step_size / 10``, the step being further multiplied by the KKT residual), then a rescaling back onto the
    sphere. With ``max_rank`` every layer is ``W_l = U_l V_l^T`` of rank ``<= max_rank`` and the ascent runs
    on the factors (the scale-free speed ``-L0(theta) (L/||theta||^2)^(L/2)``). Restarts are ``vmap``-ed; the
    fastest is returned.

    Args:
        key: PRNG key (restart ``r`` uses ``split(key, num_restarts)[r]``).
        widths: ``(n_0, ..., n_L)``.
        x: ``(N, n_0)`` training inputs.
        g: ``(N, n_L)``, ``G = grad C(0)``.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        num_restarts: ``R``.
        num_steps: ascent steps per restart, ``T``.
        step_size: initial angle per step (radians, roughly).
        max_rank: restrict every layer to rank ``<= max_rank`` (``None``: unrestricted).
        dtype: parameter dtype.
        precision: matmul precision.

    Returns:
        :class:`EscapeDirection` (``speed ()``, ``restart_speeds (R,)``, ``speed_history (R, T)``).

    Example:
        >>> x, g = unit_circle_example()
        >>> esc = optimal_escape_direction(jax.random.key(0), (2, 8, 8, 1), x, g, num_restarts=4,
        ...                                num_steps=300)
        >>> esc.restart_speeds.shape
        (4,)

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (optimal escape directions).
    """
    check_choice("activation", activation, ACTIVATIONS)
    try:
        widths = tuple(int(n) for n in widths)
    except (TypeError, ValueError):
        raise InputError(f"widths must be a sequence of positive integers, got {widths!r}") from None
    if len(widths) < 2 or min(widths) < 1:
        raise InputError(f"widths must hold at least two positive integers, got {widths}")
    num_restarts = check_positive_int("num_restarts", num_restarts)
    num_steps = check_positive_int("num_steps", num_steps)
    step_size = check_positive_number("step_size", step_size)
    if max_rank is not None:
        max_rank = check_positive_int("max_rank", max_rank)
    x = jnp.asarray(x, dtype)
    g = jnp.asarray(g, dtype)
    if x.ndim != 2 or x.shape[1] != widths[0]:
        raise InputError(f"x must have shape (N, {widths[0]}), got {x.shape}")
    if g.shape != (x.shape[0], widths[-1]):
        raise InputError(f"g must have shape ({x.shape[0]}, {widths[-1]}), got {g.shape}")
    theta, speed, res, norms, speeds, hists = _optimal_escape(
        key,
        x,
        g,
        widths,
        activation,
        num_restarts,
        num_steps,
        step_size,
        max_rank,
        jnp.dtype(dtype),
        precision,
    )
    return EscapeDirection(list(theta), speed, res, norms, speeds, hists)
