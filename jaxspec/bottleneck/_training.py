"""Weight-decay training: the L2-regularised loss and full-batch training through ``jaxspec.training.train``.

:func:`train_weight_decay` minimises ``(1/N) sum_j ||f(x_j) - y_j||^2 + lambda ||theta||^2`` through
:func:`jaxspec.training.train` (any optax optimizer).

References:
    Jacot, "Bottleneck Structure in Learned Features: Low-Dimension vs Regularity Tradeoff", NeurIPS 2023,
    arXiv:2305.19008.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Float

from jaxspec._checks import HIGHEST, InputError
from jaxspec.bottleneck._ranks import parameter_norm_sq
from jaxspec.bottleneck._validation import Params, check_network, check_weight_decay
from jaxspec.networks import mlp_apply
from jaxspec.training import TrainResult, train


def weight_decay_loss(
    params: Params,
    x: Float[Array, "N n0"],
    y: Float[Array, "N nL"],
    *,
    activation: str = "relu",
    weight_decay: float = 1e-3,
    negative_slope: float = 0.01,
    precision: Any = HIGHEST,
) -> Float[Array, ""]:
    """``(1/N) sum_j ||f(x_j) - y_j||^2 + lambda ||theta||^2``.

    Args:
        params: list of layer dicts.
        x: ``(N, n_0)`` inputs.
        y: ``(N, n_L)`` targets.
        activation, negative_slope, precision: as in :func:`representations`.
        weight_decay: ``lambda``.

    Returns:
        A scalar.

    Example:
        >>> params = init_mlp(jax.random.key(0), (3, 8, 2))
        >>> weight_decay_loss(params, jnp.ones((4, 3)), jnp.zeros((4, 2))).shape
        ()

    References:
        Jacot, arXiv:2305.19008 (L2-regularised training).
    """
    pred = mlp_apply(params, x, activation=activation, negative_slope=negative_slope, precision=precision)
    return jnp.mean(jnp.sum((pred - y) ** 2, axis=-1)) + weight_decay * parameter_norm_sq(params)


def train_weight_decay(
    params: Params,
    x: Float[ArrayLike, "N n0"],
    y: Float[ArrayLike, "N nL"],
    *,
    activation: str = "relu",
    weight_decay: float = 1e-3,
    num_steps: int,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 1e-2,
    log_every: int = 100,
    track_fn: Callable[[Params], dict[str, Any]] | None = None,
    progress: bool = True,
    negative_slope: float = 0.01,
    precision: Any = HIGHEST,
) -> TrainResult:
    """Train with weight decay through :func:`jaxspec.training.train` (full batch).

    The tracked quantities are ``{"norm_sq": ||theta||^2, "data_loss": (1/N) sum ||f(x) - y||^2}`` merged with
    ``track_fn(params)`` when given (a dict).

    Args:
        params: list of layer dicts (initial).
        x: ``(N, n_0)`` inputs.
        y: ``(N, n_L)`` targets.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        weight_decay: ``lambda >= 0``.
        num_steps: optimizer steps.
        optimizer: any optax optimizer (default ``optax.sgd(learning_rate)``: full-batch GD).
        learning_rate: step of the default optimizer.
        log_every: steps between records.
        track_fn: optional ``params -> dict`` of extra tracked arrays.
        progress: tqdm bar.
        negative_slope, precision: as in :func:`representations`.

    Returns:
        :class:`jaxspec.training.TrainResult` (``loss (T,)``; ``tracked`` leaves with a leading record axis
        ``T``).

    Example:
        >>> task = bottleneck_target(jax.random.key(0), 32, input_dim=4, bottleneck_dim=1, output_dim=3)
        >>> res = train_weight_decay(init_mlp(jax.random.key(1), (4, 8, 8, 3)), task.x, task.y, num_steps=20,
        ...                          log_every=10, progress=False)
        >>> res.loss.shape
        (3,)

    References:
        Jacot, arXiv:2305.19008.
    """
    params, x = check_network(params, x, activation)
    y = jnp.asarray(y)
    if y.ndim != 2 or y.shape != (x.shape[0], params[-1]["w"].shape[0]):
        raise InputError(f"y must have shape ({x.shape[0]}, {params[-1]['w'].shape[0]}), got {y.shape}")
    check_weight_decay(weight_decay)
    kw = dict(activation=activation, negative_slope=negative_slope, precision=precision)

    def loss_fn(p):
        return weight_decay_loss(p, x, y, weight_decay=weight_decay, **kw)

    def track(p):
        out = {
            "norm_sq": parameter_norm_sq(p),
            "data_loss": weight_decay_loss(p, x, y, weight_decay=0.0, **kw),
        }
        if track_fn is not None:
            out.update(track_fn(p))
        return out

    return train(
        loss_fn,
        params,
        optimizer,
        num_steps=num_steps,
        log_every=log_every,
        track_fn=track,
        learning_rate=learning_rate,
        progress=progress,
    )
