"""Training from a tiny initialisation: the scale-free gradient step and the run through ``jaxspec.training``.

:func:`train_from_small_init` runs gradient descent from a tiny initialisation through
:func:`jaxspec.training.train` with the scale-free step ``eta = c ||theta||^(2-L)`` (:func:`escape_step`), so
that the escape from the origin takes ``O(log(1/scale) / c)`` steps instead of ``O(scale^(2-L))``.

References:
    Bantzis, Simon, Jacot, "Saddle-to-Saddle Dynamics in Deep ReLU Networks: Low-Rank Bias in the First
    Saddle Escape", ICLR 2026, arXiv:2505.21722.
"""

from __future__ import annotations

from typing import Any

import jax
import optax
from jaxtyping import Array, Float

from jaxspec._checks import HIGHEST, InputError, check_choice, check_positive_int
from jaxspec.bottleneck import layer_singular_values, parameter_norm_sq
from jaxspec.networks import ACTIVATIONS
from jaxspec.saddle._losses import mse_loss
from jaxspec.saddle._validation import Params, check_data, check_params, check_positive_number
from jaxspec.training import TrainResult, train


def escape_step(step_scale: float, depth: int) -> optax.GradientTransformation:
    """Gradient descent with the scale-free step ``eta = c ||theta||^(2-L)``.

    Near the origin ``grad C = O(||theta||^(L-1))``, so a plain step would take ``O(||theta_0||^(2-L))`` steps
    to escape; with ``eta = c ||theta||^(2-L)`` every step moves ``theta`` by ``O(c ||theta||)`` and the
    escape takes ``O(log(1/||theta_0||) / c)`` steps. For ``L > 2`` the step shrinks once ``||theta||`` grows
    past 1.

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
    c = check_positive_number("step_scale", step_scale)
    depth = check_positive_int("depth", depth)

    def init(params):
        return optax.EmptyState()

    def update(updates, state, params=None):
        if params is None:
            raise InputError("escape_step needs the parameters: call update(grads, state, params)")
        eta = c * parameter_norm_sq(params) ** ((2.0 - depth) / 2.0)
        return jax.tree.map(lambda u: -eta * u, updates), state

    return optax.GradientTransformation(init, update)


def train_from_small_init(
    params: Params,
    x: Float[Array, "N n0"],
    y: Float[Array, "N nL"],
    *,
    activation: str = "relu",
    step_scale: float = 0.05,
    num_steps: int,
    log_every: int = 10,
    track_params: bool = True,
    progress: bool = True,
    precision: Any = HIGHEST,
) -> TrainResult:
    """Gradient descent on ``C = 1/(2N) ||f(X) - Y*||^2`` from tiny ``params``, ``eta = c ||theta||^(2-L)``.

    Runs through :func:`jaxspec.training.train`; tracked every ``log_every`` steps: ``"singular_values"``
    ``(L, N_max)`` of every layer (:func:`jaxspec.bottleneck.layer_singular_values`), ``"norm_sq"`` and
    (``track_params``) the parameters themselves, from which the direction at the end of a plateau is read.

    Args:
        params: bias-free list of layer dicts (scale them down yourself, e.g. ``1e-3 * init_mlp(...)``).
        x: ``(N, n_0)`` training inputs.
        y: ``(N, n_L)`` targets.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        step_scale: ``c`` of :func:`escape_step`.
        num_steps: GD steps.
        log_every: steps between records.
        track_params: record the parameters at every record.
        progress: tqdm bar.
        precision: matmul precision.

    Returns:
        :class:`jaxspec.training.TrainResult` (``tracked`` a dict as above, leaves with a leading record axis
        ``T``: ``singular_values (T, L, N_max)``, ``norm_sq (T,)``).

    Example:
        >>> x, g = unit_circle_example()
        >>> p0 = [{"w": 1e-3 * q["w"]} for q in init_mlp(jax.random.key(0), (2, 8, 8, 1))]
        >>> res = train_from_small_init(p0, x, -8.0 * g, num_steps=50, progress=False)
        >>> res.tracked["singular_values"].shape
        (6, 3, 8)

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722.
    """
    params = check_params(params)
    check_choice("activation", activation, ACTIVATIONS)
    x, y = check_data(params, x, y)
    depth = len(params)
    opt = escape_step(step_scale, depth)

    def loss_fn(p):
        return mse_loss(p, x, y, activation=activation, precision=precision)

    def track(p):
        out = {"singular_values": layer_singular_values(p), "norm_sq": parameter_norm_sq(p)}
        if track_params:
            out["params"] = p
        return out

    return train(
        loss_fn, params, opt, num_steps=num_steps, log_every=log_every, track_fn=track, progress=progress
    )
