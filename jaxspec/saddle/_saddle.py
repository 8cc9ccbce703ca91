"""The saddle at the origin of a bias-free ReLU network: localised loss, optimal escape directions, training from
a tiny initialisation, plateaus, and the per-layer low-rank bias of the escape.

Near ``theta = 0`` the loss ``C(Y_theta)`` of a bias-free network is ``C(0) + L0(theta) + ...`` with the
localised loss ``L0(theta) = Tr[G^T Y_theta]``, ``G = grad C(0)`` (``(N, n_L)``, one row per training input;
MSE ``C(Y) = 1/(2N) ||Y - Y*||^2`` gives ``G = -Y*/N``). ``L0`` is positively homogeneous of degree ``L``:
``L0(c theta) = c^L L0(theta)`` for ``c > 0``. Gradient flow from a small initialisation leaves the origin along
an *escape direction*: a KKT point ``rho`` of ``L0`` on the sphere ``||theta||^2 = L``,
``grad L0(rho) = -s rho`` with speed ``s = -L0(rho)``; every layer of such a point has unit Frobenius norm.

* :func:`optimal_escape_direction` maximises the speed by projected (Riemannian) gradient ascent of ``-L0`` on
  the sphere, ``vmap``-ed over random restarts, optionally restricted to layers of rank ``<= max_rank``
  (``W_l = U_l V_l^T``).
* :func:`escape_stats` gives the speed, the KKT residual (tangential part of ``grad L0`` over its norm) and the
  per-layer squared norms of a direction.
* :func:`train_from_small_init` runs gradient descent from a tiny initialisation through
  :func:`jaxspec.training.train` with the scale-free step ``eta = c ||theta||^(2-L)`` (:func:`escape_step`), so
  that the escape from the origin takes ``O(log(1/scale) / c)`` steps instead of ``O(scale^(2-L))``;
  :func:`detect_plateaus` reads off the plateaus of the loss, and the direction at the end of the first
  plateau is compared with the optimal one.
* :func:`layer_ratios` measures the low-rank bias per layer: ``s_1/s_2`` and the non-leading energy fraction
  ``1 - s_1^2 / sum_i s_i^2`` of the weights and of the activations. For the optimal direction of a deep ReLU
  net the fraction is ``O(l^-1/2)`` in layer ``l``, i.e. ``s_1(W_l) >~ l^(1/4)`` times the other singular
  values.

Closed-form checks ([math §6](https://jaxspec.github.io/jaxspec/math/#s6)): a deep linear net escapes at speed ``s_1(G^T X)`` (``s_1(G X^T)`` in
the column convention) with rank-one layers; on 8 points of the unit circle at angles ``k pi/4`` with ``G = -1``
on the axes and ``+1`` on the diagonals, a depth-3 net with a rank-two first layer reaches speed ``1/2``
(:func:`unit_circle_rank_two_direction`) while rank-one layers reach at most ``sqrt(2) - 1``.

References:
    Bantzis, Simon, Jacot, "Saddle-to-Saddle Dynamics in Deep ReLU Networks: Low-Rank Bias in the First
    Saddle Escape", ICLR 2026, arXiv:2505.21722. Jacot, arXiv:2305.19008 (bottleneck rank).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxspec._checks import HIGHEST, InputError
from jaxspec.networks._mlp import ACTIVATIONS, init_mlp, mlp_apply

__all__ = [
    "EscapeDirection",
    "EscapeStats",
    "LayerRatios",
    "Plateaus",
    "detect_plateaus",
    "dominant_counts",
    "escape_speed",
    "escape_stats",
    "escape_step",
    "first_plateau_direction",
    "layer_ratios",
    "localised_loss",
    "mse_loss",
    "mse_output_gradient",
    "optimal_escape_direction",
    "project_to_sphere",
    "ridge_target",
    "train_from_small_init",
    "unit_circle_example",
    "unit_circle_rank_two_direction",
]

Params = list[dict[str, jax.Array]]


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


class LayerRatios(NamedTuple):
    """Per-layer low-rank measurements (layer ``l = 1..L``).

    Attributes:
        s1_over_s2: ``(L,)``, ``s_1(W_l) / s_2(W_l)`` (``inf`` when ``W_l`` has rank one exactly).
        weight_tail_energy: ``(L,)``, ``1 - s_1(W_l)^2 / ||W_l||_F^2``.
        activation_tail_energy: ``(L,)``, the same for the ``(N, n_l)`` activations after layer ``l``.
    """

    s1_over_s2: jax.Array
    weight_tail_energy: jax.Array
    activation_tail_energy: jax.Array


class Plateaus(NamedTuple):
    """Plateaus of a loss curve, as record indices (inclusive).

    Attributes:
        start: ``(P,)`` int, first record of each plateau.
        end: ``(P,)`` int, last record of each plateau.
        rate: ``(T,)``, relative loss drop per record ``(l_{t-1} - l_t) / l_{t-1}`` (0 at ``t = 0``).
    """

    start: np.ndarray
    end: np.ndarray
    rate: np.ndarray


# ----------------------------------------------------------------------------------------------------------
# Validation.


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise InputError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")


def _check_params(params) -> Params:
    if not isinstance(params, (list, tuple)) or not params:
        raise InputError("params must be a non-empty list of layer dicts {'w': (n_out, n_in)}")
    for l, p in enumerate(params):
        if not isinstance(p, dict) or "w" not in p or jnp.ndim(p["w"]) != 2:
            raise InputError(f"params[{l}] must be a dict holding a matrix 'w' of shape (n_out, n_in)")
        if "b" in p:
            raise InputError("the saddle at the origin is for bias-free networks; drop the biases 'b'")
        if l and p["w"].shape[1] != params[l - 1]["w"].shape[0]:
            raise InputError(f"params[{l}]['w'] has {p['w'].shape[1]} columns but params[{l - 1}]['w'] has "
                             f"{params[l - 1]['w'].shape[0]} rows")
    return list(params)


def _check_data(params, x, g) -> tuple[jax.Array, jax.Array]:
    n0, n_out = params[0]["w"].shape[1], params[-1]["w"].shape[0]
    x, g = jnp.asarray(x), jnp.asarray(g)
    if x.ndim != 2 or x.shape[1] != n0:
        raise InputError(f"x must have shape (N, {n0}), got {x.shape}")
    if g.shape != (x.shape[0], n_out):
        raise InputError(f"the output gradient G must have shape ({x.shape[0]}, {n_out}), got {g.shape}")
    return x, g


def _positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise InputError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _positive_float(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not np.isfinite(v) or v <= 0:
        raise InputError(f"{name} must be a positive number, got {v!r}")
    return float(v)


# ----------------------------------------------------------------------------------------------------------
# The localised loss and the sphere.


def mse_output_gradient(y_target: jax.Array) -> jax.Array:
    """``G = grad C(0) = -Y*/N`` for ``C(Y) = 1/(2N) ||Y - Y*||_F^2``.

    Args:
        y_target: ``(N, n_L)``.

    Returns:
        ``(N, n_L)``.

    Example:
        >>> mse_output_gradient(jnp.ones((4, 1))).ravel().tolist()
        [-0.25, -0.25, -0.25, -0.25]

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722.
    """
    y = jnp.asarray(y_target)
    if y.ndim != 2:
        raise InputError(f"y_target must have shape (N, n_L), got {y.shape}")
    return -y / y.shape[0]


def mse_loss(params, x: jax.Array, y: jax.Array, *, activation: str = "relu", precision=HIGHEST) -> jax.Array:
    """``C(Y_theta) = 1/(2N) ||f(X) - Y*||_F^2``, whose gradient at ``Y = 0`` is :func:`mse_output_gradient`.

    Example:
        >>> params = init_mlp(jax.random.key(0), (2, 4, 1))
        >>> float(mse_loss(params, jnp.ones((3, 2)), jnp.zeros((3, 1)))) >= 0
        True
    """
    pred = mlp_apply(params, x, activation=activation, precision=precision)
    return 0.5 * jnp.mean(jnp.sum((pred - y) ** 2, axis=-1))


def localised_loss(params, x: jax.Array, g: jax.Array, *, activation: str = "relu",
                   precision=HIGHEST) -> jax.Array:
    """``L0(theta) = Tr[G^T Y_theta] = sum_{j,o} G_jo f_theta(x_j)_o``.

    Args:
        params: bias-free list of layer dicts ``{"w": (n_{l+1}, n_l)}``.
        x: ``(N, n_0)`` training inputs.
        g: ``(N, n_L)``, ``G = grad C(0)``.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        precision: matmul precision.

    Returns:
        A scalar; ``L0(c theta) = c^L L0(theta)`` for ``c > 0``.

    Example:
        >>> x, g = unit_circle_example()
        >>> round(float(localised_loss(unit_circle_rank_two_direction(), x, g)), 6)
        -0.5

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (the localised loss at the origin).
    """
    return jnp.sum(g * mlp_apply(params, x, activation=activation, precision=precision))


def _norm_sq(tree) -> jax.Array:
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree))


def project_to_sphere(params) -> Any:
    """Rescale ``theta`` to the sphere ``||theta||^2 = L`` (``L`` the number of layers).

    Example:
        >>> p = project_to_sphere([{"w": 3 * jnp.ones((1, 1))}, {"w": 4 * jnp.ones((1, 1))}])
        >>> [round(float(q["w"][0, 0]), 4) for q in p]
        [0.8485, 1.1314]
    """
    depth = len(params)
    scale = jnp.sqrt(depth / _norm_sq(params))
    return jax.tree.map(lambda w: w * scale, params)


def escape_speed(params, x: jax.Array, g: jax.Array, *, activation: str = "relu",
                 precision=HIGHEST) -> jax.Array:
    """``-L0`` of ``theta`` projected on the sphere: ``-L0(theta) (L / ||theta||^2)^(L/2)`` (scale-free).

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
        depth / _norm_sq(params)) ** (depth / 2)


def escape_stats(params, x: jax.Array, g: jax.Array, *, activation: str = "relu",
                 precision=HIGHEST) -> EscapeStats:
    """Speed, KKT residual and per-layer squared norms of the direction of ``params``.

    Args:
        params: bias-free list of layer dicts (any scale; projected on ``||theta||^2 = L`` first).
        x: ``(N, n_0)``; g: ``(N, n_L)``.
        activation, precision: as in :func:`localised_loss`.

    Returns:
        :class:`EscapeStats`.

    Example:
        >>> x, g = unit_circle_example()
        >>> st = escape_stats(unit_circle_rank_two_direction(), x, g)
        >>> round(float(st.speed), 6), [round(v, 6) for v in st.layer_norms_sq.tolist()]
        (0.5, [1.0, 1.0, 1.0])

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (escape directions are KKT points on the sphere).
    """
    params = _check_params(params)
    _check_activation(activation)
    x, g = _check_data(params, x, g)
    return _escape_stats_jit(params, x, g, activation, precision)


@functools.partial(jax.jit, static_argnames=("activation", "precision"))
def _escape_stats_jit(params, x, g, activation, precision) -> EscapeStats:
    return _escape_stats(project_to_sphere(params), x, g, activation, precision)


def _escape_stats(rho, x, g, activation, precision) -> EscapeStats:
    depth = len(rho)
    loss, grad = jax.value_and_grad(lambda p: localised_loss(p, x, g, activation=activation,
                                                             precision=precision))(rho)
    radial = _tree_vdot(grad, rho) / depth
    tangential = jax.tree.map(lambda a, b: a - radial * b, grad, rho)
    grad_norm = jnp.sqrt(_norm_sq(grad))
    residual = jnp.sqrt(_norm_sq(tangential)) / jnp.where(grad_norm > 0, grad_norm, 1.0)
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
        norm = jnp.sqrt(_norm_sq(grad))
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
        scale = (depth / _norm_sq(_factor_weights(f))) ** 0.25  # W is quadratic in the factors
        return jax.tree.map(lambda a: a * scale, f)

    def body(f, eta):
        grad = jax.grad(speed)(f)
        norm = jnp.sqrt(_norm_sq(grad))
        factor = eta * jnp.sqrt(_norm_sq(f)) / jnp.where(norm > 0, norm, 1.0)
        f = normalise(jax.tree.map(lambda a, d: a + factor * d, f, grad))
        return f, speed(f)

    f, history = jax.lax.scan(body, normalise(factors0), steps)
    return f, history


@functools.partial(jax.jit, static_argnames=("widths", "activation", "num_restarts", "num_steps", "max_rank",
                                             "dtype", "precision"))
def _optimal_escape(key, x, g, widths, activation, num_restarts, num_steps, step_size, max_rank, dtype,
                    precision):
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
                f0.append({"u": jax.random.normal(ku, (n_out, r), jnp.float32).astype(dtype),
                           "v": jax.random.normal(kv, (n_in, r), jnp.float32).astype(dtype)})
            f, hist = _ascend_factored(f0, x, g, activation, precision, steps)
            theta = project_to_sphere(_factor_weights(f))
        return theta, hist, _escape_stats(theta, x, g, activation, precision)

    thetas, hists, stats = jax.vmap(one)(keys)
    best = jnp.argmax(jnp.where(jnp.isfinite(stats.speed), stats.speed, -jnp.inf))
    theta = jax.tree.map(lambda a: a[best], thetas)
    return theta, stats.speed[best], stats.kkt_residual[best], stats.layer_norms_sq[best], stats.speed, hists


def optimal_escape_direction(key: jax.Array, widths: Sequence[int], x: jax.Array, g: jax.Array, *,
                             activation: str = "relu", num_restarts: int = 16, num_steps: int = 2000,
                             step_size: float = 0.2, max_rank: int | None = None, dtype=jnp.float32,
                             precision=HIGHEST) -> EscapeDirection:
    """The fastest escape direction: maximise ``-L0`` on the sphere ``||theta||^2 = L`` from random restarts.

    Each restart starts from a Gaussian network and takes ``num_steps`` Riemannian gradient-ascent steps: the
    tangential part of ``-grad L0`` normalised to an angle ``eta_t`` (cosine-decayed from ``step_size`` to
    ``step_size / 10``, the step being further multiplied by the KKT residual), then a rescaling back onto the sphere. With ``max_rank`` every layer is
    ``W_l = U_l V_l^T`` of rank ``<= max_rank`` and the ascent runs on the factors (the scale-free speed
    ``-L0(theta) (L/||theta||^2)^(L/2)``). Restarts are ``vmap``-ed; the fastest is returned.

    Args:
        key: PRNG key (restart ``r`` uses ``split(key, num_restarts)[r]``).
        widths: ``(n_0, ..., n_L)``.
        x: ``(N, n_0)``; g: ``(N, n_L)`` (``G = grad C(0)``).
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        num_restarts: ``R``.
        num_steps: ascent steps per restart.
        step_size: initial angle per step (radians, roughly).
        max_rank: restrict every layer to rank ``<= max_rank`` (``None``: unrestricted).
        dtype: parameter dtype.
        precision: matmul precision.

    Returns:
        :class:`EscapeDirection`.

    Example:
        >>> x, g = unit_circle_example()
        >>> esc = optimal_escape_direction(jax.random.key(0), (2, 8, 8, 1), x, g, num_restarts=4, num_steps=300)
        >>> esc.restart_speeds.shape
        (4,)

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (optimal escape directions).
    """
    _check_activation(activation)
    try:
        widths = tuple(int(n) for n in widths)
    except (TypeError, ValueError):
        raise InputError(f"widths must be a sequence of positive integers, got {widths!r}") from None
    if len(widths) < 2 or min(widths) < 1:
        raise InputError(f"widths must hold at least two positive integers, got {widths}")
    num_restarts = _positive_int("num_restarts", num_restarts)
    num_steps = _positive_int("num_steps", num_steps)
    step_size = _positive_float("step_size", step_size)
    if max_rank is not None:
        max_rank = _positive_int("max_rank", max_rank)
    x = jnp.asarray(x, dtype)
    g = jnp.asarray(g, dtype)
    if x.ndim != 2 or x.shape[1] != widths[0]:
        raise InputError(f"x must have shape (N, {widths[0]}), got {x.shape}")
    if g.shape != (x.shape[0], widths[-1]):
        raise InputError(f"g must have shape ({x.shape[0]}, {widths[-1]}), got {g.shape}")
    theta, speed, res, norms, speeds, hists = _optimal_escape(
        key, x, g, widths, activation, num_restarts, num_steps, step_size, max_rank, jnp.dtype(dtype), precision)
    return EscapeDirection(list(theta), speed, res, norms, speeds, hists)


# ----------------------------------------------------------------------------------------------------------
# Training from a tiny initialisation.


def escape_step(step_scale: float, depth: int) -> optax.GradientTransformation:
    """Gradient descent with the scale-free step ``eta = c ||theta||^(2-L)``.

    Near the origin ``grad C = O(||theta||^(L-1))``, so a plain step would take ``O(||theta_0||^(2-L))`` steps to
    escape; with ``eta = c ||theta||^(2-L)`` every step moves ``theta`` by ``O(c ||theta||)`` and the escape takes
    ``O(log(1/||theta_0||) / c)`` steps. For ``L > 2`` the step shrinks once ``||theta||`` grows past 1.

    Args:
        step_scale: ``c > 0``.
        depth: ``L``.

    Returns:
        An ``optax.GradientTransformation`` (needs ``params`` in ``update``).

    Example:
        >>> opt = escape_step(0.1, 3)
        >>> p = {"w": jnp.full((2,), 0.5)}
        >>> upd, _ = opt.update({"w": jnp.ones(2)}, opt.init(p), p)
        >>> round(float(upd["w"][0]), 4)  # -0.1 * ||p||^(-1) = -0.1 / sqrt(0.5)
        -0.1414

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (training from small initialisation).
    """
    c = _positive_float("step_scale", step_scale)
    depth = _positive_int("depth", depth)

    def init(params):
        return optax.EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise InputError("escape_step needs the parameters: call update(grads, state, params)")
        eta = c * _norm_sq(params) ** ((2.0 - depth) / 2.0)
        return jax.tree.map(lambda u: -eta * u, updates), state

    return optax.GradientTransformation(init, update)


def train_from_small_init(params, x: jax.Array, y: jax.Array, *, activation: str = "relu", step_scale: float = 0.05,
                          num_steps: int, log_every: int = 10, track_params: bool = True, progress: bool = True,
                          precision=HIGHEST) -> Any:
    """Gradient descent on ``C = 1/(2N) ||f(X) - Y*||^2`` from (tiny) ``params`` with ``eta = c ||theta||^(2-L)``.

    Runs through :func:`jaxspec.training.train`; tracked every ``log_every`` steps: ``"singular_values"``
    ``(L, N_max)`` of every layer, ``"norm_sq"`` and (``track_params``) the parameters themselves, from which the
    direction at the end of a plateau is read.

    Args:
        params: bias-free list of layer dicts (scale them down yourself, e.g. ``1e-3 * init_mlp(...)``).
        x: ``(N, n_0)``; y: ``(N, n_L)`` targets.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        step_scale: ``c`` of :func:`escape_step`.
        num_steps: GD steps.
        log_every: steps between records.
        track_params: record the parameters at every record.
        progress: tqdm bar.
        precision: matmul precision.

    Returns:
        :class:`jaxspec.training.TrainResult` (``tracked`` a dict as above, leaves with a leading record axis).

    Example:
        >>> x, g = unit_circle_example()
        >>> p0 = [{"w": 1e-3 * q["w"]} for q in init_mlp(jax.random.key(0), (2, 8, 8, 1))]
        >>> res = train_from_small_init(p0, x, -8.0 * g, num_steps=50, progress=False)
        >>> res.tracked["singular_values"].shape
        (6, 3, 8)

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722.
    """
    from jaxspec.bottleneck._bottleneck import layer_singular_values
    from jaxspec.training import train

    params = _check_params(params)
    _check_activation(activation)
    x, y = _check_data(params, x, y)
    depth = len(params)
    opt = escape_step(step_scale, depth)

    def loss_fn(p):
        return mse_loss(p, x, y, activation=activation, precision=precision)

    def track(p):
        out = {"singular_values": layer_singular_values(p), "norm_sq": _norm_sq(p)}
        if track_params:
            out["params"] = p
        return out

    return train(loss_fn, params, opt, num_steps=num_steps, log_every=log_every, track_fn=track,
                 progress=progress)


def detect_plateaus(loss, *, rate_tol: float = 0.05, min_length: int = 3) -> Plateaus:
    """Plateaus of a loss curve: maximal runs of records whose relative drop is small.

    The relative drop of record ``t`` is ``r_t = (l_{t-1} - l_t) / l_{t-1}``; a record is *flat* when
    ``r_t <= rate_tol * max_t r_t`` (record 0 is flat). A plateau is a maximal run of flat records of length
    ``>= min_length``; the run starting at record 0 (the saddle at the origin) is always kept.

    Args:
        loss: ``(T,)`` positive losses at equally spaced records.
        rate_tol: flatness threshold relative to the fastest drop.
        min_length: shortest plateau (records).

    Returns:
        :class:`Plateaus` (record indices, inclusive).

    Example:
        >>> p = detect_plateaus([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1], min_length=2)
        >>> p.start.tolist(), p.end.tolist()  # the records right after a drop (3 and 7) are not flat
        ([0, 4, 8], [2, 6, 9])

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (saddle-to-saddle dynamics).
    """
    ell = np.asarray(loss, dtype=np.float64).ravel()
    if ell.size < 2 or not np.all(np.isfinite(ell)) or np.any(ell <= 0):
        raise InputError("loss must hold at least two positive finite values")
    if not (0 < rate_tol < 1):
        raise InputError(f"rate_tol must be in (0, 1), got {rate_tol}")
    min_length = _positive_int("min_length", min_length)
    rate = np.zeros_like(ell)
    rate[1:] = (ell[:-1] - ell[1:]) / ell[:-1]
    top = rate.max()
    flat = rate <= rate_tol * top if top > 0 else np.ones_like(rate, dtype=bool)
    flat[0] = True
    starts, ends = [], []
    t = 0
    while t < ell.size:
        if flat[t]:
            u = t
            while u + 1 < ell.size and flat[u + 1]:
                u += 1
            if u - t + 1 >= min_length or t == 0:
                starts.append(t)
                ends.append(u)
            t = u + 1
        else:
            t += 1
    return Plateaus(np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64), rate)


def first_plateau_direction(result, *, rate_tol: float = 0.05, min_length: int = 3) -> tuple[Params, int]:
    """The parameters at the end of the first plateau of a :func:`train_from_small_init` run.

    Args:
        result: the :class:`jaxspec.training.TrainResult` of :func:`train_from_small_init` with
            ``track_params=True``.
        rate_tol, min_length: as in :func:`detect_plateaus`.

    Returns:
        ``(params, record)``: the tracked parameters at the last record of the first plateau (the saddle at the
        origin) and that record's index (``result.steps[record]`` is the step).

    Example:
        >>> x, g = unit_circle_example()
        >>> p0 = [{"w": 1e-3 * q["w"]} for q in init_mlp(jax.random.key(0), (2, 8, 8, 1))]
        >>> res = train_from_small_init(p0, x, -8.0 * g, step_scale=1.5, num_steps=600, progress=False)
        >>> params, record = first_plateau_direction(res)
        >>> len(params), 0 <= record < res.steps.shape[0]
        (3, True)

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722.
    """
    tracked = getattr(result, "tracked", None)
    if not isinstance(tracked, dict) or "params" not in tracked:
        raise InputError("the run must come from train_from_small_init(..., track_params=True)")
    end = int(detect_plateaus(result.loss, rate_tol=rate_tol, min_length=min_length).end[0])
    return [jax.tree.map(lambda a: a[end], p) for p in tracked["params"]], end


def dominant_counts(singular_values: jax.Array, *, rtol: float = 0.1) -> jax.Array:
    """Number of dominant singular values, ``#{s_i > rtol * s_1}``, along the last axis.

    Example:
        >>> dominant_counts(jnp.array([[3.0, 1.0, 0.01]])).tolist()
        [2]
    """
    s = jnp.asarray(singular_values)
    return jnp.sum(s > rtol * s[..., :1], axis=-1)


def layer_ratios(params, x: jax.Array, *, activation: str = "relu", precision=HIGHEST) -> LayerRatios:
    """Per-layer ``s_1/s_2`` and non-leading energy fractions of the weights and of the activations.

    Args:
        params: bias-free list of layer dicts.
        x: ``(N, n_0)`` inputs at which the activations are taken.
        activation, precision: as in :func:`localised_loss`.

    Returns:
        :class:`LayerRatios` with ``(L,)`` arrays (layer ``l = 1..L``; the activations of the last layer are the
        outputs).

    Example:
        >>> lr = layer_ratios([{"w": jnp.diag(jnp.array([2.0, 1.0]))}], jnp.eye(2), activation="linear")
        >>> lr.s1_over_s2.tolist(), [round(v, 6) for v in lr.weight_tail_energy.tolist()]
        ([2.0], [0.2])

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (``s_1(W_l) >~ l^(1/4) s_2(W_l)`` at the optimal escape).
    """
    params = _check_params(params)
    _check_activation(activation)
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != params[0]["w"].shape[1]:
        raise InputError(f"x must have shape (N, {params[0]['w'].shape[1]}), got {x.shape}")
    return _layer_ratios(params, x, activation, precision)


@functools.partial(jax.jit, static_argnames=("activation", "precision"))
def _layer_ratios(params, x, activation, precision) -> LayerRatios:
    from jaxspec.bottleneck._bottleneck import layer_singular_values, representations

    s = layer_singular_values(params)
    second = s[:, 1] if s.shape[1] > 1 else jnp.zeros(s.shape[0], s.dtype)
    ratio = jnp.where(second > 0, s[:, 0] / jnp.where(second > 0, second, 1.0), jnp.inf)
    weight_tail = 1.0 - s[:, 0] ** 2 / jnp.sum(s**2, axis=1)
    hs = representations(params, x, activation=activation, precision=precision)[1:]
    act_tail = []
    for h in hs:
        sh = jnp.linalg.svd(h, compute_uv=False)
        total = jnp.sum(sh**2)
        act_tail.append(jnp.where(total > 0, 1.0 - sh[0] ** 2 / jnp.where(total > 0, total, 1.0), 0.0))
    return LayerRatios(ratio, weight_tail, jnp.stack(act_tail))


def ridge_target(key: jax.Array, num_points: int, *, input_dim: int = 8, output_dim: int = 4,
                 amplitudes: Sequence[float] = (4.0, 2.0, 1.0), dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    """A teacher of separated scales for saddle-to-saddle runs: ``y = sum_k a_k u_k relu(v_k . x)``.

    ``v_k`` (orthonormal in ``R^d``) and ``u_k`` (orthonormal in ``R^{d_out}``) are random; inputs lie on the unit
    sphere. Each ridge is one rank-one feature, and the amplitudes set the order (and the plateau lengths) in
    which gradient descent from a small initialisation picks them up.

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
    num_points = _positive_int("num_points", num_points)
    amps = np.asarray(amplitudes, dtype=np.float64).ravel()
    if amps.size < 1 or not np.all(np.isfinite(amps)) or np.any(amps <= 0):
        raise InputError(f"amplitudes must be positive numbers, got {amplitudes!r}")
    k = amps.size
    if _positive_int("input_dim", input_dim) < k or _positive_int("output_dim", output_dim) < k:
        raise InputError(f"input_dim and output_dim must be at least len(amplitudes) = {k}")
    kx, kv, ku = jax.random.split(key, 3)
    x = jax.random.normal(kx, (num_points, input_dim), jnp.float32).astype(dtype)
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    v = jnp.linalg.qr(jax.random.normal(kv, (input_dim, k), jnp.float32))[0].astype(dtype)
    u = jnp.linalg.qr(jax.random.normal(ku, (output_dim, k), jnp.float32))[0].astype(dtype)
    features = jnp.maximum(jnp.matmul(x, v, precision=HIGHEST), 0.0) * jnp.asarray(amps, dtype)  # (N, k)
    return x, jnp.matmul(features, u.T, precision=HIGHEST)


# ----------------------------------------------------------------------------------------------------------
# The unit-circle example.


def unit_circle_example(dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    """8 points on the unit circle at angles ``k pi/4``; ``G = -1`` on the axis points, ``+1`` on the diagonals.

    Returns:
        ``x (8, 2)``, ``g (8, 1)``.

    Example:
        >>> x, g = unit_circle_example()
        >>> g.ravel().tolist()
        [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0]

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (rank-two beats rank-one escape).
    """
    angles = np.arange(8) * np.pi / 4
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    x[np.abs(x) < 1e-12] = 0.0
    g = np.where(np.arange(8) % 2 == 0, -1.0, 1.0)[:, None]
    return jnp.asarray(x, dtype), jnp.asarray(g, dtype)


def unit_circle_rank_two_direction(dtype=jnp.float32) -> Params:
    """A depth-3 direction on ``||theta||^2 = 3`` of speed exactly ``1/2`` for :func:`unit_circle_example`.

    ``f(x) = (1/8) ||x_1| - |x_2||`` (the product of the layer scalings is ``1/8``): the first layer
    ``(1/2)[e_1; -e_1; e_2; -e_2]`` (rank two) computes ``|x_1|, |x_2|`` through ReLUs, the second
    ``(1/(2 sqrt 2)) [[1, 1, -1, -1], [-1, -1, 1, 1]]`` their differences, the third ``(1/sqrt 2)[1, 1]`` adds them;
    each layer has unit Frobenius norm. ``f = 1/8`` on the 4 axis points and 0 on the diagonals, so
    ``-L0 = 4/8 = 1/2``.

    Returns:
        A list of 3 layer dicts, widths ``(2, 4, 2, 1)``.

    Example:
        >>> [p["w"].shape for p in unit_circle_rank_two_direction()]
        [(4, 2), (2, 4), (1, 2)]

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722.
    """
    w1 = 0.5 * np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    w2 = np.array([[1.0, 1.0, -1.0, -1.0], [-1.0, -1.0, 1.0, 1.0]]) / (2.0 * np.sqrt(2.0))
    w3 = np.array([[1.0, 1.0]]) / np.sqrt(2.0)
    return [{"w": jnp.asarray(w, dtype)} for w in (w1, w2, w3)]
