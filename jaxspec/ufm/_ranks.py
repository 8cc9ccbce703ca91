"""The lower-rank optima of the deep linear UFM: their losses in closed form, and which one a run reached.

The targets ``Y = I_K (x) 1_n^T`` have ``Y Y^T / N = I_K / K``: all ``K`` class directions are equivalent, and
the regularised loss of the deep linear UFM splits into one term per singular mode of the end-to-end map
(each mode with its own layer scales ``sigma_r``, feature scale ``s_r`` and gain ``gamma_r``):

    loss = sum_r [ (1 - gamma_r)^2 / (2K) + L lam_W sigma_r^2 / 2 + lam_H n s_r^2 / 2 ].

Each mode sits either at zero (contributing ``1/(2K)``) or at the collapsed root of
:func:`jaxspec.ufm.solve_gamma` (contributing ``L*/K``, with ``L*`` the collapsed loss). Zero is a local
minimum of every mode's term for ``L >= 2`` (its gain is a product of ``L + 1`` small factors), so gradient
descent can stop with only ``r`` of the ``K`` modes learned, at the *rank-r optimum*

    loss_r = (r/K) L* + (K - r) / (2K),     r = 0, ..., K,

whose features have ``r`` non-zero Gram eigenvalues, all equal to the collapsed ``n s^2``. A run is classified
by the rank of its features: the number of eigenvalues of ``H H^T`` above half the collapsed value.

References:
    Garrod & Keating, "Unifying low dimensional spectra in deep learning", arXiv:2404.06106 (the optimum);
    Sukenik, Mondelli, Lampert, arXiv:2305.13165 (deep neural collapse, low-rank solutions of the deep UFM).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from jaxspec._checks import InputError
from jaxspec.ufm._model import UFM, UFMParams
from jaxspec.ufm._theory import collapsed_optimum


def rank_losses(ufm: UFM) -> Float[np.ndarray, " K+1"]:
    """Closed-form loss of the rank-``r`` optimum, ``r = 0..K``: ``(r/K) L* + (K - r)/(2K)`` (host float64).

    ``r = K`` is the collapsed optimum, ``r = 0`` the zero solution (loss 1/2).

    Args:
        ufm: the model (the deep linear UFM's values).

    Returns:
        ``(K + 1,)`` losses, index ``r``.

    Example:
        >>> from jaxspec.ufm import make_ufm
        >>> [round(x, 6) for x in rank_losses(make_ufm(3, 40, 5, 1e-2))]
        [0.5, 0.388279, 0.276559, 0.164838]

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    K = ufm.num_classes
    full = collapsed_optimum(ufm).loss
    r = np.arange(K + 1)
    return r / K * full + (K - r) / (2.0 * K)


def rank_params(ufm: UFM, rank: int) -> UFMParams:
    """The rank-``r`` optimum as parameters: the collapsed optimum restricted to the first ``r`` classes.

    ``W_l = sigma U_r U_r^T``, ``W_L = sigma P_r U^T``, features ``s u_c`` for classes ``c < r`` and 0 for
    the others, with ``U`` the first ``K`` standard basis vectors and ``P_r`` the projection on the first
    ``r`` classes. A critical point of the loss with loss ``rank_losses(ufm)[r]``.

    Args:
        ufm: the model.
        rank: ``r`` in ``0..K``.

    Returns:
        :class:`UFMParams` in the model's dtype.

    Example:
        >>> from jaxspec.ufm import make_ufm, loss
        >>> ufm = make_ufm(3, 40, 5, 1e-2, width=4, dtype="float32")
        >>> round(float(loss(ufm, rank_params(ufm, 2))), 5)
        0.27656

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    K, d, L, n = ufm.num_classes, ufm.width, ufm.depth, ufm.per_class
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank <= K:
        raise InputError(f"rank must be an integer in [0, K = {K}], got {rank!r}")
    opt = collapsed_optimum(ufm)
    dt = jnp.dtype(ufm.dtype)
    sigma, s = math.sqrt(opt.sigma2), math.sqrt(opt.s2)
    active = jnp.asarray(np.arange(K) < rank, dt)  # (K,)
    u = jnp.eye(d, K, dtype=dt) * active[None, :]  # the first r columns of U, the others zero
    hidden = jnp.broadcast_to(sigma * (u @ u.T), (L - 1, d, d))
    features = s * jnp.repeat(u, n, axis=1)
    return UFMParams(features=features, hidden=jnp.asarray(hidden), head=sigma * u.T)


def feature_rank(
    ufm: UFM, feature_eigenvalues: Float[ArrayLike, "*batch K"], threshold: float = 0.5
) -> Int[Array, " *batch"]:
    """The rank of the learned features: how many eigenvalues of ``H H^T`` exceed ``threshold`` times the
    collapsed value ``n s^2``.

    At a rank-``r`` optimum the eigenvalues are exactly ``r`` copies of ``n s^2`` and zeros, so any threshold
    in ``(0, 1)`` classifies it; one half is the furthest from both.

    Args:
        ufm: the model.
        feature_eigenvalues: ``(..., K)`` from :func:`jaxspec.ufm.feature_gram_eigenvalues` (batched).
        threshold: fraction of ``n s^2``, in ``(0, 1)``.

    Returns:
        ``(...)`` integer ranks in ``0..K``.

    Example:
        >>> from jaxspec.ufm import make_ufm, feature_gram_eigenvalues
        >>> ufm = make_ufm(3, 40, 5, 1e-2, width=4)
        >>> int(feature_rank(ufm, feature_gram_eigenvalues(ufm, rank_params(ufm, 2))))
        2

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    if not 0.0 < threshold < 1.0:
        raise InputError(f"threshold must lie in (0, 1), got {threshold!r}")
    level = threshold * collapsed_optimum(ufm).feature_gram
    return jnp.sum(jnp.asarray(feature_eigenvalues) > level, axis=-1)
