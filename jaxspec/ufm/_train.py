"""Full-batch gradient descent on a deep UFM, with the collapse diagnostics tracked along the way.

The loop is :func:`jaxspec.training.train` (a jitted optax ``lax.scan``); :func:`diagnostics` is its
``track_fn``: per layer, the top eigenvalues of the data Hessian (Lanczos on Hessian-vector products), the
alignment ``f_cc'`` of the class-mean directions, the gradient's weights on them, the gradient-outlier
overlaps, NC1-NC4 and the Gram eigenvalues.

References:
    Garrod & Keating, arXiv:2404.06106; Gur-Ari, Roberts, Dyer, arXiv:1812.04754.

:func:`train_ufm_seeds` trains several independent seeds at once through the same loop: the parameters of
all seeds are stacked and the loss is the sum of the per-seed losses, whose gradient with respect to one
seed's parameters is exactly that seed's own gradient, so plain GD on the sum is GD on every seed.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from jaxspec._checks import InputError
from jaxspec.training import TrainResult, train
from jaxspec.ufm._collapse import NeuralCollapse, collapse_metrics
from jaxspec.ufm._curvature import (
    alignment_matrix,
    feature_gram_eigenvalues,
    gradient_coefficients,
    gradient_outlier_overlap,
    gram_eigenvalues,
    layer_eigenpairs,
)
from jaxspec.ufm._model import UFM, UFMParams, data_loss, init_params, loss, map_layers
from jaxspec.ufm._ranks import feature_rank, rank_losses


class Diagnostics(NamedTuple):
    """Collapse and curvature diagnostics of a deep UFM (a leading time axis when tracked in training).

    Attributes:
        loss: ``()`` total loss.
        data_loss: ``()`` the MSE term.
        top_eigenvalues: ``(L, k)`` top eigenvalues of each layer's data Hessian, descending.
        alignment: ``(L, K, K)`` ``f_cc'`` per layer.
        gradient_weights: ``(L, K, K)`` weights of the data gradient on the class-mean basis.
        overlap_data: ``(L,)`` ``||P_top g||^2 / ||g||^2`` of the data gradient (top ``K^2`` eigenvectors).
        overlap_total: ``(L,)`` the same for the full gradient (with weight decay).
        collapse: :class:`NeuralCollapse` with ``(L,)`` fields.
        gram: ``(L, K)`` top eigenvalues of each ``W_l^T W_l``.
    """

    loss: Float[Array, ""]
    data_loss: Float[Array, ""]
    top_eigenvalues: Float[Array, "L k"]
    alignment: Float[Array, "L K K"]
    gradient_weights: Float[Array, "L K K"]
    overlap_data: Float[Array, " L"]
    overlap_total: Float[Array, " L"]
    collapse: NeuralCollapse
    gram: Float[Array, "L K"]


def _num_tracked(ufm: UFM, num_eigenvalues: int | None) -> int:
    smallest_layer = ufm.num_classes * ufm.width  # the head; hidden layers have d^2 >= K d entries
    k = num_eigenvalues
    if k is None:
        k = min(ufm.num_classes**2 + ufm.num_classes, smallest_layer)
    if not (isinstance(k, int) and ufm.num_classes**2 <= k <= smallest_layer):
        raise InputError(
            f"num_eigenvalues must be an integer between K^2 = {ufm.num_classes**2} and the "
            f"smallest layer size {smallest_layer}, got {num_eigenvalues!r}"
        )
    return k


@functools.partial(jax.jit, static_argnames=("num_eigenvalues",))
def diagnostics(
    ufm: UFM, params: UFMParams, *, num_eigenvalues: int | None = None, key: PRNGKeyArray | None = None
) -> Diagnostics:
    """Per-layer curvature, alignment and collapse diagnostics (jitted, pure; a training ``track_fn``).

    Args:
        ufm: the model.
        params: :class:`UFMParams`.
        num_eigenvalues: eigenvalues tracked per layer (default ``K^2 + K``, capped by the smallest layer):
            the ``K^2`` predicted outliers and the top of the bulk.
        key: PRNG key of the Lanczos start vectors.

    Returns:
        :class:`Diagnostics`.

    Example:
        >>> import jax
        >>> from jaxspec.ufm import make_ufm, collapsed_params
        >>> ufm = make_ufm(2, 3, 3, 1e-2, width=3)
        >>> diagnostics(ufm, collapsed_params(ufm)).top_eigenvalues.shape
        (3, 6)

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    k = _num_tracked(ufm, num_eigenvalues)
    key = jax.random.key(0) if key is None else key

    def one_layer(layer, layer_key):
        pairs = layer_eigenpairs(ufm, params, layer, k, key=layer_key)
        top = pairs.eigenvectors[: ufm.num_classes**2]
        return (
            pairs.eigenvalues,
            gradient_outlier_overlap(ufm, params, layer, top, gradient="data"),
            gradient_outlier_overlap(ufm, params, layer, top, gradient="total"),
            alignment_matrix(ufm, params, layer),
            gradient_coefficients(ufm, params, layer).weights,
        )

    eigenvalues, overlap_data, overlap_total, aligns, weights = map_layers(ufm, one_layer, key)
    return Diagnostics(
        loss=loss(ufm, params),
        data_loss=data_loss(ufm, params),
        top_eigenvalues=eigenvalues,
        alignment=aligns,
        gradient_weights=weights,
        overlap_data=overlap_data,
        overlap_total=overlap_total,
        collapse=collapse_metrics(ufm, params),
        gram=gram_eigenvalues(ufm, params),
    )


def train_ufm(
    ufm: UFM,
    params: UFMParams | None = None,
    *,
    num_steps: int,
    learning_rate: float,
    key: PRNGKeyArray | None = None,
    init_scale: float = 1.0,
    log_every: int | None = None,
    track: bool = True,
    num_eigenvalues: int | None = None,
    optimizer: optax.GradientTransformation | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a deep UFM by full-batch gradient descent, tracking :func:`diagnostics`.

    Uses :func:`jaxspec.training.train` (a jitted optax ``lax.scan`` loop; ``optax.sgd`` by default).

    Args:
        ufm: the model.
        params: initial :class:`UFMParams` (default: :func:`init_params` with ``key`` and ``init_scale``).
        num_steps: gradient steps.
        learning_rate: step size of the default optimizer.
        key: PRNG key for the initialisation (default ``jax.random.key(0)``).
        init_scale: scale of the random initialisation.
        log_every: steps between records (default ``max(1, num_steps // 50)``).
        track: record :func:`diagnostics` (``False``: only the loss).
        num_eigenvalues: see :func:`diagnostics`.
        optimizer: any optax transformation (default ``optax.sgd(learning_rate)``).
        progress: show a progress bar.

    Returns:
        :class:`jaxspec.training.TrainResult`; ``tracked`` is a :class:`Diagnostics` with a leading time axis.

    Example:
        >>> from jaxspec.ufm import make_ufm
        >>> ufm = make_ufm(2, 2, 2, 1e-2, width=2)
        >>> res = train_ufm(ufm, num_steps=100, learning_rate=0.5, track=False, progress=False)
        >>> res.loss.shape
        (51,)

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    key = jax.random.key(0) if key is None else key
    params = init_params(ufm, key, init_scale) if params is None else params
    log_every = max(1, num_steps // 50) if log_every is None else log_every
    if track:
        _num_tracked(ufm, num_eigenvalues)
    track_fn = (lambda p: diagnostics(ufm, p, num_eigenvalues=num_eigenvalues)) if track else None
    optimizer = optax.sgd(learning_rate) if optimizer is None else optimizer
    return train(
        lambda p: loss(ufm, p),
        params,
        optimizer,
        num_steps=num_steps,
        log_every=log_every,
        track_fn=track_fn,
        learning_rate=learning_rate,
        progress=progress,
    )


class SeedRuns(NamedTuple):
    """Independent GD runs of one deep UFM from several random initialisations.

    Attributes:
        loss: ``(S,)`` final loss of each seed.
        feature_eigenvalues: ``(S, K)`` the ``K`` largest eigenvalues of ``H H^T`` at the end, descending.
        rank: ``(S,)`` the rank of the learned features (:func:`jaxspec.ufm.feature_rank`).
        rank_loss: ``(K + 1,)`` the closed-form loss of the rank-``r`` optimum (:func:`rank_losses`).
        history: ``(T, S)`` loss of every seed at every record.
        steps: ``(T,)`` the record steps.
        params: the final :class:`UFMParams`, each leaf with a leading seed axis ``S``.
    """

    loss: np.ndarray
    feature_eigenvalues: np.ndarray
    rank: np.ndarray
    rank_loss: np.ndarray
    history: np.ndarray
    steps: np.ndarray
    params: UFMParams


def train_ufm_seeds(
    ufm: UFM,
    num_seeds: int,
    *,
    num_steps: int,
    learning_rate: float,
    init_scale: float = 1.0,
    key: PRNGKeyArray | None = None,
    log_every: int | None = None,
    progress: bool = False,
) -> SeedRuns:
    """Full-batch GD from ``num_seeds`` random initialisations at once, each classified by its optimum.

    Runs :func:`jaxspec.training.train` (``optax.sgd``) on the stacked parameters with the summed loss (GD on
    every seed independently, see the module notes), then classifies each seed by the rank of its learned
    features and returns the closed-form loss of every rank-``r`` optimum beside the measured losses.

    Args:
        ufm: the model (deep linear for the closed forms to apply).
        num_seeds: ``S >= 1`` initialisations (keys ``fold_in(key, i)``).
        num_steps: GD steps.
        learning_rate: step size.
        init_scale: scale of :func:`init_params`.
        key: PRNG key (default ``jax.random.key(0)``).
        log_every: steps between records (default ``max(1, num_steps // 50)``).
        progress: show a progress bar.

    Returns:
        :class:`SeedRuns`.

    Example:
        >>> from jaxspec.ufm import make_ufm
        >>> runs = train_ufm_seeds(make_ufm(2, 2, 2, 1e-2, width=4), 3, num_steps=200, learning_rate=0.5)
        >>> runs.loss.shape, runs.rank_loss.shape
        ((3,), (3,))

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, (int, np.integer)) or num_seeds < 1:
        raise InputError(f"num_seeds must be a positive integer, got {num_seeds!r}")
    if not (isinstance(init_scale, (int, float)) and np.isfinite(init_scale) and init_scale > 0):
        raise InputError(f"init_scale must be a positive number, got {init_scale!r}")
    key = jax.random.key(0) if key is None else key
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(num_seeds))
    params = jax.vmap(lambda k: init_params(ufm, k, init_scale))(keys)
    per_seed = jax.vmap(lambda p: loss(ufm, p))
    log_every = max(1, num_steps // 50) if log_every is None else log_every
    result = train(
        lambda p: jnp.sum(per_seed(p)),
        params,
        optax.sgd(learning_rate),
        num_steps=num_steps,
        log_every=log_every,
        track_fn=per_seed,
        learning_rate=learning_rate,
        progress=progress,
    )
    eigenvalues = np.asarray(jax.vmap(lambda p: feature_gram_eigenvalues(ufm, p))(result.params))
    history = np.asarray(result.tracked)
    return SeedRuns(
        loss=history[-1],
        feature_eigenvalues=eigenvalues,
        rank=np.asarray(feature_rank(ufm, eigenvalues)),
        rank_loss=rank_losses(ufm),
        history=history,
        steps=np.asarray(result.steps),
        params=result.params,
    )
