"""The loss near the saddle at the origin of a bias-free net: MSE, its output gradient, the localised loss.

Near ``theta = 0`` the loss ``C(Y_theta)`` of a bias-free network is ``C(0) + L0(theta) + ...`` with the
localised loss ``L0(theta) = Tr[G^T Y_theta]``, ``G = grad C(0)`` (``(N, n_L)``, one row per training input;
MSE ``C(Y) = 1/(2N) ||Y - Y*||^2`` gives ``G = -Y*/N``). ``L0`` is positively homogeneous of degree ``L``:
``L0(c theta) = c^L L0(theta)`` for ``c > 0``.

References:
    Bantzis, Simon, Jacot, "Saddle-to-Saddle Dynamics in Deep ReLU Networks: Low-Rank Bias in the First
    Saddle Escape", ICLR 2026, arXiv:2505.21722.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from jaxspec._checks import HIGHEST, InputError
from jaxspec.networks import mlp_apply
from jaxspec.saddle._validation import Params


def mse_output_gradient(y_target: Float[ArrayLike, "N nL"]) -> Float[Array, "N nL"]:
    """``G = grad C(0) = -Y*/N`` for ``C(Y) = 1/(2N) ||Y - Y*||_F^2``.

    Args:
        y_target: ``(N, n_L)`` targets ``Y*``.

    Returns:
        ``(N, n_L)``, ``G``.

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


def mse_loss(
    params: Params,
    x: Float[Array, "N n0"],
    y: Float[Array, "N nL"],
    *,
    activation: str = "relu",
    precision: Any = HIGHEST,
) -> Float[Array, ""]:
    """``C(Y_theta) = 1/(2N) ||f(X) - Y*||_F^2``, whose gradient at ``Y = 0`` is :func:`mse_output_gradient`.

    Args:
        params: bias-free list of layer dicts ``{"w": (n_{l+1}, n_l)}``.
        x: ``(N, n_0)`` training inputs.
        y: ``(N, n_L)`` targets ``Y*``.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        precision: matmul precision.

    Returns:
        A scalar.

    Example:
        >>> params = init_mlp(jax.random.key(0), (2, 4, 1))
        >>> float(mse_loss(params, jnp.ones((3, 2)), jnp.zeros((3, 1)))) >= 0
        True
    """
    pred = mlp_apply(params, x, activation=activation, precision=precision)
    return 0.5 * jnp.mean(jnp.sum((pred - y) ** 2, axis=-1))


def localised_loss(
    params: Params,
    x: Float[Array, "N n0"],
    g: Float[Array, "N nL"],
    *,
    activation: str = "relu",
    precision: Any = HIGHEST,
) -> Float[Array, ""]:
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
