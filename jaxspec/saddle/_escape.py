"""Escape directions from the saddle at the origin: the sphere, speeds, the balanced speed, KKT statistics.

Gradient flow from a small initialisation leaves the origin along an *escape direction*: a KKT point ``rho``
of the localised loss ``L0`` on the sphere ``||theta||^2 = L``, ``grad L0(rho) = -s rho`` with speed
``s = -L0(rho)``; every layer of such a point has unit Frobenius norm.

* :func:`escape_speed` is the speed of the direction of any ``theta``, ``-L0(theta) (L/||theta||^2)^(L/2)``;
  :func:`balanced_speed` the speed of its balanced representative, ``-L0(theta) / prod_l ||W_l||_F``
  (invariant to rescaling any one layer; the two agree at balanced points and have the same maximum).
* :func:`escape_stats` gives the speed, the KKT residual (tangential part of ``grad L0`` over its norm) and
  the per-layer squared norms of a direction. The residual is a smooth measure: at the kinks of the ReLUs,
  where optimal directions usually sit, see :func:`jaxspec.saddle.stationarity_certificate` instead.

Closed-form check ([math §6](https://jaxspec.github.io/jaxspec/math/#s6)): a deep linear net escapes at speed
``s_1(G^T X)`` (``s_1(G X^T)`` in the column convention) with rank-one layers.

References:
    Bantzis, Simon, Jacot, "Saddle-to-Saddle Dynamics in Deep ReLU Networks: Low-Rank Bias in the First
    Saddle Escape", ICLR 2026, arXiv:2505.21722.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxspec._checks import HIGHEST, check_choice
from jaxspec.bottleneck import parameter_norm_sq
from jaxspec.networks import ACTIVATIONS
from jaxspec.saddle._losses import localised_loss
from jaxspec.saddle._validation import Params, check_data, check_params


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
# The balanced speed: layers may be full ``{"w"}`` or factored ``{"u", "v"}`` (``W = U V^T``).


def layer_weight(p: dict[str, jax.Array]) -> jax.Array:
    """``W`` of a full layer ``{"w"}`` or of a factored one ``{"u", "v"}`` (``W = U V^T``)."""
    return p["w"] if "w" in p else jnp.matmul(p["u"], p["v"].T, precision=HIGHEST)


def unit_layers(params: Any) -> Params:
    """Every layer ``W_l / ||W_l||_F``: the balanced representative of ``theta`` on ``||theta||^2 = L``."""
    out = []
    for p in params:
        w = layer_weight(p)
        norm = jnp.sqrt(jnp.sum(w**2))
        out.append({"w": w / jnp.where(norm > 0, norm, 1.0)})
    return out


def balanced_speed(
    params: Any,
    x: Float[Array, "N n0"],
    g: Float[Array, "N nL"],
    *,
    activation: str = "relu",
    precision: Any = HIGHEST,
) -> Float[Array, ""]:
    """``-L0(theta) / prod_l ||W_l||_F``: the speed of ``theta`` with every layer scaled to unit norm.

    ``L0`` is positively homogeneous of degree 1 in each layer (ReLU, leaky ReLU, linear), so this is ``-L0``
    of the balanced point ``W_l / ||W_l||_F`` on ``||theta||^2 = L``. It is invariant to rescaling any one
    layer, equals :func:`escape_speed` at balanced points and is never below it where the speed is positive
    (AM-GM: ``prod_l ||W_l|| <= (||theta||^2 / L)^(L/2)``), so both have the same maximum.

    Args:
        params: list of layer dicts, full ``{"w": (n_out, n_in)}`` or factored ``{"u": (n_out, r),
            "v": (n_in, r)}`` (``W = U V^T``).
        x: ``(N, n_0)`` training inputs.
        g: ``(N, n_L)``, ``G = grad C(0)``.
        activation, precision: as in :func:`localised_loss`.

    Returns:
        A scalar.

    Example:
        >>> x, g = unit_circle_example()
        >>> p = unit_circle_rank_two_direction()
        >>> p = [{"w": 3.0 * p[0]["w"]}, {"w": 0.5 * p[1]["w"]}, p[2]]
        >>> round(float(balanced_speed(p, x, g)), 6), round(float(escape_speed(p, x, g)), 6)
        (0.5, 0.118756)

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (balanced escape directions).
    """
    return -localised_loss(unit_layers(params), x, g, activation=activation, precision=precision)
