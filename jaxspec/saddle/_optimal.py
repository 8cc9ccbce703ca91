"""The fastest escape direction: restarts of a first-order ascent, an L-BFGS polish, a certificate.

:func:`optimal_escape_direction` maximises the speed ``-L0`` on the sphere ``||theta||^2 = L``:

1. ``vmap``-ed random restarts of projected (Riemannian) gradient ascent find the basins;
2. L-BFGS (``optax.lbfgs`` with its zoom line search) on the balanced speed
   ``-L0(theta) / prod_l ||W_l||_F``, scale-free in every layer, converges inside them, also where the optimum
   sits on ReLU kinks and the first-order ascent stalls;
3. the fastest direction gets its generalised stationarity measure (:func:`stationarity_certificate`).

With ``max_rank`` the layers where the restriction binds are factored ``W_l = U_l V_l^T``.

Closed-form checks ([math §6.5.1](https://jaxspec.github.io/jaxspec/math/#s6)): a deep linear net escapes at
``s_1(G^T X)``; the unit-circle example at ``1/2``, and at ``sqrt(2) - 1`` with rank-one layers.

References:
    Bantzis, Simon, Jacot, "Saddle-to-Saddle Dynamics in Deep ReLU Networks: Low-Rank Bias in the First
    Saddle Escape", ICLR 2026, arXiv:2505.21722; Lewis and Overton, "Nonsmooth optimization via quasi-Newton
    methods", Math. Program. 141 (2013).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray

from jaxspec._checks import HIGHEST, InputError, check_choice, check_positive_int
from jaxspec.bottleneck import parameter_norm_sq
from jaxspec.networks import ACTIVATIONS, init_mlp
from jaxspec.saddle._certificate import Stationarity, resolve_kink_tol, stationarity_certificate
from jaxspec.saddle._escape import (
    _escape_stats,
    _tree_vdot,
    balanced_speed,
    project_to_sphere,
    unit_layers,
)
from jaxspec.saddle._losses import localised_loss
from jaxspec.saddle._validation import Params, check_positive_number

#: The quasi-Newton polishes of :func:`optimal_escape_direction`.
POLISH_METHODS = ("auto", "bfgs", "lbfgs")
#: ``polish="auto"`` uses dense BFGS up to this many parameters (one ``P x P`` matrix per restart).
DENSE_BFGS_MAX_PARAMS = 2048


class EscapeDirection(NamedTuple):
    """The best direction found by :func:`optimal_escape_direction`.

    Attributes:
        params: list of layer dicts ``{"w"}``, every layer of unit Frobenius norm (so ``||theta||^2 = L``).
        speed: ``()``, its speed ``-L0``.
        kkt_residual: ``()``, its smooth KKT residual (see :class:`EscapeStats`; not 0 at kinks).
        layer_norms_sq: ``(L,)``.
        stationarity: its generalised stationarity certificate (``stationarity.measure`` ``()``, 0 at a
            stationary point even on kinks; see :func:`stationarity_certificate`).
        restart_speeds: ``(R,)``, final speed of every restart.
        speed_history: ``(R, T)``, speed after every first-order ascent step.
        polish_history: ``(R, P)``, best balanced speed after every L-BFGS iteration.
    """

    params: Params
    speed: jax.Array
    kkt_residual: jax.Array
    layer_norms_sq: jax.Array
    stationarity: Stationarity
    restart_speeds: jax.Array
    speed_history: jax.Array
    polish_history: jax.Array


def _normalise_layers(params):
    # Unit Frobenius norm per layer; a factored layer is balanced (||U|| = ||V||) first. The balanced speed is
    # unchanged, the iterate stays well scaled.
    out = []
    for p in params:
        if "w" in p:
            norm = jnp.sqrt(jnp.sum(p["w"] ** 2))
            out.append({"w": p["w"] / jnp.where(norm > 0, norm, 1.0)})
            continue
        nu, nv = jnp.sqrt(jnp.sum(p["u"] ** 2)), jnp.sqrt(jnp.sum(p["v"] ** 2))
        c = jnp.sqrt(nv / jnp.where(nu > 0, nu, 1.0))
        u, v = p["u"] * c, p["v"] / jnp.where(c > 0, c, 1.0)
        norm = jnp.sqrt(jnp.sum(jnp.matmul(u, v.T, precision=HIGHEST) ** 2))
        scale = 1.0 / jnp.sqrt(jnp.where(norm > 0, norm, 1.0))
        out.append({"u": u * scale, "v": v * scale})
    return out


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


def _ascend_mixed(params0, x, g, activation, precision, steps):
    """Normalised gradient ascent of the balanced speed over full and factored layers."""

    def speed(p):
        return balanced_speed(p, x, g, activation=activation, precision=precision)

    def body(p, eta):
        grad = jax.grad(speed)(p)
        norm = jnp.sqrt(parameter_norm_sq(grad))
        factor = eta * jnp.sqrt(parameter_norm_sq(p)) / jnp.where(norm > 0, norm, 1.0)
        p = _normalise_layers(jax.tree.map(lambda a, d: a + factor * d, p, grad))
        return p, speed(p)

    return jax.lax.scan(body, _normalise_layers(params0), steps)


def _polish_lbfgs(params0, x, g, activation, precision, num_steps, memory):
    """L-BFGS (optax, zoom line search) on ``-balanced_speed``; the best iterate and its history."""

    def objective(p):
        return -balanced_speed(p, x, g, activation=activation, precision=precision)

    opt = optax.lbfgs(memory_size=memory)
    value_and_grad = optax.value_and_grad_from_state(objective)

    def body(carry, _):
        p, state, best, best_value = carry
        value, grad = value_and_grad(p, state=state)
        better = jnp.isfinite(value) & (value < best_value)
        best = jax.tree.map(lambda a, b: jnp.where(better, a, b), p, best)
        best_value = jnp.where(better, value, best_value)
        updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=objective)
        p = optax.apply_updates(p, updates)
        return (p, state, best, best_value), -best_value

    p0 = _normalise_layers(params0)
    (p, _, best, best_value), history = jax.lax.scan(
        body, (p0, opt.init(p0), p0, objective(p0)), None, length=num_steps
    )
    value = objective(p)
    better = jnp.isfinite(value) & (value < best_value)
    best = jax.tree.map(lambda a, b: jnp.where(better, a, b), p, best)
    return _normalise_layers(best), history


def _weak_wolfe(value_and_grad, v, value, grad, direction, c1=1e-4, c2=0.9, max_steps=40):
    """Bisection-extrapolation for the weak Wolfe conditions (Lewis and Overton): it terminates at kinks too.

    Returns ``(step, value, grad)`` at the accepted point (or the last one tried).
    """
    slope = jnp.vdot(grad, direction)

    def cond(c):
        return ~c[4] & (c[3] < max_steps)

    def body(c):
        lo, hi, t, it, _, _, _ = c
        f, gr = value_and_grad(v + t * direction)
        sufficient = f <= value + c1 * t * slope  # also False for NaN
        curvature = jnp.vdot(gr, direction) >= c2 * slope
        hi = jnp.where(sufficient, hi, t)
        lo = jnp.where(sufficient & ~curvature, t, lo)
        done = sufficient & curvature
        t_next = jnp.where(jnp.isfinite(hi), 0.5 * (lo + hi), 2.0 * lo)
        return lo, hi, jnp.where(done, t, t_next), it + 1, done, f, gr

    zero = jnp.zeros((), value.dtype)
    init = (zero, jnp.full((), jnp.inf, value.dtype), zero + 1.0, 0, False, value, grad)
    _, _, t, _, _, f, gr = jax.lax.while_loop(cond, body, init)
    return t, f, gr


def _polish_bfgs(params0, x, g, activation, precision, num_steps):
    """Dense BFGS with the weak Wolfe line search on ``-balanced_speed``; the best iterate and its history.

    Lewis and Overton: BFGS with a weak Wolfe line search converges on nonsmooth functions, typically to
    Clarke-stationary points and linearly, where L-BFGS with a strong Wolfe search stalls at the kinks.
    """
    flat0, unravel = ravel_pytree(_normalise_layers(params0))

    def objective(v):
        return -balanced_speed(unravel(v), x, g, activation=activation, precision=precision)

    value_and_grad = jax.value_and_grad(objective)
    eye = jnp.eye(flat0.size, dtype=flat0.dtype)

    def body(carry, _):
        v, f, gr, h, best, best_f = carry
        d = -h @ gr
        d = jnp.where(jnp.vdot(gr, d) < 0, d, -gr)  # keep a descent direction
        t, f_new, g_new = _weak_wolfe(value_and_grad, v, f, gr, d)
        ok = jnp.isfinite(f_new) & (f_new <= f)
        s = t * d
        y = g_new - gr
        sy = jnp.vdot(s, y)
        rho = 1.0 / jnp.where(sy > 0, sy, 1.0)
        # (I - rho s y^T) H (I - rho y s^T) + rho s s^T, expanded: O(P^2), not O(P^3).
        hy = h @ y
        h_new = (
            h
            - rho * (jnp.outer(hy, s) + jnp.outer(s, hy))
            + (rho * rho * jnp.vdot(y, hy) + rho) * jnp.outer(s, s)
        )
        h = jnp.where(ok & (sy > 0), h_new, h)
        v = jnp.where(ok, v + s, v)
        f = jnp.where(ok, f_new, f)
        gr = jnp.where(ok, g_new, gr)
        better = f < best_f
        best = jnp.where(better, v, best)
        best_f = jnp.where(better, f, best_f)
        return (v, f, gr, h, best, best_f), -best_f

    f0, g0 = value_and_grad(flat0)
    h0 = eye / jnp.maximum(jnp.linalg.norm(g0), jnp.finfo(flat0.dtype).tiny)
    init = (flat0, f0, g0, h0, flat0, f0)
    (_, _, _, _, best, _), history = jax.lax.scan(body, init, None, length=num_steps)
    return _normalise_layers(unravel(best)), history


def _initial_layers(key, widths, max_rank, dtype) -> list[dict[str, jax.Array]]:
    """A Gaussian network; a layer is ``U V^T`` only where ``max_rank`` binds (``< min(n_in, n_out)``).

    Factoring a layer whose rank is not restricted would change the landscape (a product of two factors is
    biased towards low rank, the wrong way here) without restricting anything.
    """
    layers = []
    for l, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        kw, ku, kv = jax.random.split(jax.random.fold_in(key, l), 3)
        if max_rank is None or max_rank >= min(n_in, n_out):
            w = jax.random.normal(kw, (n_out, n_in), jnp.float32) * jnp.sqrt(2.0 / n_in)
            layers.append({"w": w.astype(dtype)})
        else:
            u = jax.random.normal(ku, (n_out, max_rank), jnp.float32) / jnp.sqrt(n_out)
            v = jax.random.normal(kv, (n_in, max_rank), jnp.float32) / jnp.sqrt(n_in)
            layers.append({"u": u.astype(dtype), "v": v.astype(dtype)})
    return layers


@functools.partial(
    jax.jit,
    static_argnames=(
        "widths",
        "activation",
        "num_restarts",
        "num_steps",
        "max_rank",
        "polish_steps",
        "polish_memory",
        "dtype",
        "precision",
    ),
)
def _optimal_escape(
    key,
    x,
    g,
    widths,
    activation,
    num_restarts,
    num_steps,
    step_size,
    max_rank,
    polish_steps,
    polish_memory,
    dtype,
    precision,
):
    keys = jax.random.split(key, num_restarts)
    steps = _ascent_schedule(step_size, num_steps).astype(dtype)

    def one(k):
        if max_rank is None:
            p0 = init_mlp(k, widths, activation="linear", dtype=dtype)
            p, hist = _ascend_full(p0, x, g, activation, precision, steps)
        else:
            p0 = _initial_layers(k, widths, max_rank, dtype)
            p, hist = _ascend_mixed(p0, x, g, activation, precision, steps)
        if polish_steps and polish_memory is None:
            p, polish_hist = _polish_bfgs(p, x, g, activation, precision, polish_steps)
        elif polish_steps:
            p, polish_hist = _polish_lbfgs(p, x, g, activation, precision, polish_steps, polish_memory)
        else:
            polish_hist = jnp.zeros((0,), dtype)
        theta = project_to_sphere(unit_layers(p))
        return theta, hist, polish_hist, _escape_stats(theta, x, g, activation, precision)

    thetas, hists, polish_hists, stats = jax.vmap(one)(keys)
    best = jnp.argmax(jnp.where(jnp.isfinite(stats.speed), stats.speed, -jnp.inf))
    theta = jax.tree.map(lambda a: a[best], thetas)
    return (
        theta,
        stats.speed[best],
        stats.kkt_residual[best],
        stats.layer_norms_sq[best],
        stats.speed,
        hists,
        polish_hists,
    )


def optimal_escape_direction(
    key: PRNGKeyArray,
    widths: Sequence[int],
    x: Float[Array, "N n0"],
    g: Float[Array, "N nL"],
    *,
    activation: str = "relu",
    num_restarts: int = 16,
    num_steps: int = 500,
    step_size: float = 0.2,
    max_rank: int | None = None,
    polish_steps: int = 300,
    polish: str = "auto",
    polish_memory: int = 50,
    kink_tol: float | None = None,
    dtype: Any = jnp.float32,
    precision: Any = HIGHEST,
) -> EscapeDirection:
    """The fastest escape direction: maximise ``-L0`` on the sphere ``||theta||^2 = L`` from random restarts.

    Each restart starts from a Gaussian network and takes ``num_steps`` first-order ascent steps: the
    tangential part of ``-grad L0`` normalised to an angle ``eta_t`` (cosine-decayed from ``step_size`` to
    ``step_size / 10``, the step being further multiplied by the KKT residual), then a rescaling back onto the
    sphere. Then ``polish_steps`` quasi-Newton iterations maximise the *balanced speed*
    ``-L0(theta) / prod_l ||W_l||_F`` (:func:`balanced_speed`), invariant to rescaling any layer and equal to
    the speed on the sphere at balanced points; the best iterate is kept and its layers are scaled to unit
    norm. The first-order phase finds the basins, the quasi-Newton phase converges inside them, also where
    the optimum sits on ReLU kinks, where the first-order ascent stalls a few percent short. The polish is
    dense BFGS with the weak Wolfe line search of Lewis and Overton (``polish="bfgs"``; converges at kinks,
    to ``1e-12`` on the unit-circle example), or ``optax.lbfgs`` with ``polish_memory`` pairs and its zoom
    (strong Wolfe) line search (``"lbfgs"``; cheaper in memory, but it can stall at kinks);
    ``"auto"`` takes BFGS up to :data:`DENSE_BFGS_MAX_PARAMS` parameters.

    With ``max_rank`` every layer has rank ``<= max_rank``: a layer where this binds
    (``max_rank < min(n_in, n_out)``) is ``W_l = U_l V_l^T`` and both phases run on the factors, the other
    layers stay full (factoring them too would only bias the ascent to low rank). Restarts are ``vmap``-ed;
    the fastest is returned with its :func:`stationarity_certificate` (computed in the same
    parametrisation).

    Args:
        key: PRNG key (restart ``r`` uses ``split(key, num_restarts)[r]``).
        widths: ``(n_0, ..., n_L)``.
        x: ``(N, n_0)`` training inputs.
        g: ``(N, n_L)``, ``G = grad C(0)``.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        num_restarts: ``R``.
        num_steps: first-order ascent steps per restart, ``T``.
        step_size: initial angle per ascent step (radians, roughly).
        max_rank: restrict every layer to rank ``<= max_rank`` (``None``: unrestricted).
        polish_steps: quasi-Newton iterations per restart (0: no polish).
        polish: ``"auto"``, ``"bfgs"`` or ``"lbfgs"``.
        polish_memory: L-BFGS memory (pairs kept).
        kink_tol: tolerance of the certificate (see :func:`stationarity_certificate`).
        dtype: parameter dtype.
        precision: matmul precision.

    Returns:
        :class:`EscapeDirection` (``speed ()``, ``stationarity``, ``restart_speeds (R,)``,
        ``speed_history (R, T)``, ``polish_history (R, polish_steps)``).

    Example:
        >>> x, g = unit_circle_example()
        >>> esc = optimal_escape_direction(jax.random.key(0), (2, 8, 8, 1), x, g, num_restarts=4,
        ...                                num_steps=200, polish_steps=100)
        >>> esc.restart_speeds.shape, esc.polish_history.shape
        ((4,), (4, 100))

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (optimal escape directions); Lewis and Overton, "Nonsmooth
        optimization via quasi-Newton methods", Math. Program. 141 (2013) (BFGS at nonsmooth optima).
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
    if isinstance(polish_steps, bool) or not isinstance(polish_steps, (int, np.integer)) or polish_steps < 0:
        raise InputError(f"polish_steps must be a non-negative integer, got {polish_steps!r}")
    check_choice("polish", polish, POLISH_METHODS)
    polish_memory = check_positive_int("polish_memory", polish_memory)
    num_params = sum(
        min(max_rank or n, n_in, n) * (n_in + n) if max_rank and max_rank < min(n_in, n) else n_in * n
        for n_in, n in zip(widths[:-1], widths[1:], strict=True)
    )
    if polish == "bfgs" or (polish == "auto" and num_params <= DENSE_BFGS_MAX_PARAMS):
        polish_memory = None  # dense BFGS
    kink_tol = resolve_kink_tol(kink_tol, dtype)
    x = jnp.asarray(x, dtype)
    g = jnp.asarray(g, dtype)
    if x.ndim != 2 or x.shape[1] != widths[0]:
        raise InputError(f"x must have shape (N, {widths[0]}), got {x.shape}")
    if g.shape != (x.shape[0], widths[-1]):
        raise InputError(f"g must have shape ({x.shape[0]}, {widths[-1]}), got {g.shape}")
    theta, speed, res, norms, speeds, hists, polish_hists = _optimal_escape(
        key,
        x,
        g,
        widths,
        activation,
        num_restarts,
        num_steps,
        step_size,
        max_rank,
        int(polish_steps),
        polish_memory,
        jnp.dtype(dtype),
        precision,
    )
    theta = list(theta)
    certificate = stationarity_certificate(
        _refactor(theta, widths, max_rank),
        x,
        g,
        activation=activation,
        kink_tol=kink_tol,
        precision=precision,
    )
    return EscapeDirection(theta, speed, res, norms, certificate, speeds, hists, polish_hists)


def _refactor(theta: Params, widths, max_rank) -> list[dict[str, jax.Array]]:
    """The direction in the parametrisation it was optimised in: restricted layers as balanced SVD factors."""
    if max_rank is None:
        return theta
    out = []
    for p, n_in, n_out in zip(theta, widths[:-1], widths[1:], strict=True):
        if max_rank >= min(n_in, n_out):
            out.append(p)
            continue
        u, s, vt = jnp.linalg.svd(p["w"], full_matrices=False)
        root = jnp.sqrt(s[:max_rank])
        out.append({"u": u[:, :max_rank] * root, "v": vt[:max_rank].T * root})
    return out
