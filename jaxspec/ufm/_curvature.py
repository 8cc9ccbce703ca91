"""Layer-wise curvature of the deep UFM: Kronecker Hessian, Gauss-Newton split, gradients on class means.

For layer ``l`` with input features ``h_i`` and (linear) downstream map ``A = W_L ... W_{l+1}`` (``A = I_K``
for the head), the output is linear in ``W_l``, so the layer-wise data Hessian is exactly Gauss-Newton:

    H_l = (A^T A) (x) Av[h h^T],    Av[h h^T] = (1/N) sum_i h_i h_i^T,

in the row-major order of ``vec(W_l)`` (that of ``ravel_pytree``).

Class-mean decomposition (Papyan). With ``delta_{i,c'} = d f_{c'}(x_i) / d W_l`` and
``delta_{c,c'}`` its mean over the samples of class ``c``,

    G = (1/N) sum_i sum_c' delta_{i,c'} delta_{i,c'}^T
      = (1/K) sum_c delta_{c,c} delta_{c,c}^T              (class,        rank K at collapse)
      + (1/K) sum_{c != c'} delta_{c,c'} delta_{c,c'}^T     (cross-class,  rank K(K-1))
      + (1/N) sum_i sum_c' (delta_{i,c'} - delta_{c,c'})(...)^T   (within-class, rank 0).

At collapse the ``K^2`` vectors ``delta_{c,c'} = a_{c'} (x) hbar_c`` (``a_{c'} = A^T e_{c'}``, ``hbar_c`` the
class mean of the layer's input) are orthogonal with equal norms: they are the outlier eigenvectors. The data
gradient ``(1/N) sum_i A^T r_i h_i^T`` lies on the ``K`` class directions ``delta_{c,c}`` with weight ``1/K``
each.

References:
    Garrod & Keating, arXiv:2404.06106; Papyan, "Measurements of three-level hierarchical structure in the
    outliers in the spectrum of deepnet Hessians", ICML 2019 (arXiv:1901.08244); Gur-Ari, Roberts, Dyer,
    arXiv:1812.04754.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from jaxspec._checks import HIGHEST, InputError, check_choice
from jaxspec.hessian import Eigenpairs, alignment, gradient_overlap, hessian_matvec, lanczos_eigh
from jaxspec.ufm._model import (
    UFM,
    UFMParams,
    check_layer,
    is_head,
    layer_block,
    layer_features,
    map_layers,
    predict,
    with_layer,
)

#: A layer index: a Python int, or a traced integer scalar for a hidden layer (under ``vmap``).
Layer = int | Int[Array, ""]


class GaussNewtonSplit(NamedTuple):
    """Eigenvalues and numerical ranks of the three class-mean parts of a layer's Gauss-Newton matrix.

    Attributes:
        class_eigenvalues: ``(min(K, P),)`` descending.
        cross_eigenvalues: ``(min(K(K-1), P),)`` descending.
        within_eigenvalues: ``(min(K N, P),)`` descending.
        ranks: ``(3,)`` int, eigenvalues above ``rtol`` times the largest of all three parts.
    """

    class_eigenvalues: Float[Array, " a"]
    cross_eigenvalues: Float[Array, " b"]
    within_eigenvalues: Float[Array, " c"]
    ranks: Int[Array, " 3"]


class GradientCoefficients(NamedTuple):
    """The data gradient of one layer expanded on the class-mean basis ``delta_{c,c'} / ||delta_{c,c'}||``.

    Attributes:
        coefficients: ``(K, K)`` least-squares coefficients, ``[c, c']`` for sample class ``c``, output
            ``c'``.
        weights: ``(K, K)`` squared coefficients normalised to sum to 1 (predicted: ``1/K`` on the diagonal).
        residual: ``()`` fraction ``||g - sum coef b||^2 / ||g||^2`` of the gradient outside the basis.
    """

    coefficients: Float[Array, "K K"]
    weights: Float[Array, "K K"]
    residual: Float[Array, ""]


def _downstream_map(ufm: UFM, params: UFMParams, layer: Layer) -> Float[Array, "K d_out"]:
    """``A = W_L W_{L-1} ... W_{l+1}`` (``K x d``), the identity for the head."""
    if is_head(ufm, layer):
        return jnp.eye(ufm.num_classes, dtype=params.head.dtype)
    num = ufm.depth - 2 - layer  # a traced layer makes this a while loop, which is fine here

    def right_multiply(j, a):
        return jnp.matmul(a, params.hidden[ufm.depth - 2 - j], precision=HIGHEST)

    return jax.lax.fori_loop(0, num, right_multiply, params.head)


def kronecker_factors(
    ufm: UFM, params: UFMParams, layer: Layer
) -> tuple[Float[Array, "d_out d_out"], Float[Array, "d d"]]:
    """The two factors of the linear UFM's layer-wise data Hessian ``(A^T A) (x) Av[h h^T]``.

    Args:
        ufm: a linear UFM.
        params: :class:`UFMParams`.
        layer: 0-based layer index.

    Returns:
        ``(A^T A, Av[h h^T])`` of shapes ``(d_out, d_out)`` and ``(d, d)`` (``d_out = K`` for the head).

    Example:
        >>> import jax
        >>> from jaxspec.ufm import make_ufm, init_params
        >>> ufm = make_ufm(2, 3, 3, 1e-2, width=4)
        >>> left, right = kronecker_factors(ufm, init_params(ufm, jax.random.key(0)), 2)
        >>> left.shape, right.shape
        ((2, 2), (4, 4))

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    check_layer(ufm, layer)
    if ufm.activation != "linear":
        raise InputError(
            "the Kronecker form of the layer-wise Hessian holds for the linear UFM only; use "
            "layer_eigenpairs (Hessian-vector products) for ReLU"
        )
    a = _downstream_map(ufm, params, layer)
    h = layer_features(ufm, params)[layer]
    left = jnp.matmul(a.T, a, precision=HIGHEST)
    right = jnp.matmul(h, h.T, precision=HIGHEST) / ufm.num_samples
    return left, right


def kronecker_hessian(ufm: UFM, params: UFMParams, layer: Layer) -> Float[Array, "P P"]:
    """The dense layer-wise data Hessian ``(A^T A) (x) Av[h h^T]`` of the linear UFM, ``(P, P)``.

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    left, right = kronecker_factors(ufm, params, layer)
    return jnp.kron(left, right)


def per_sample_jacobians(ufm: UFM, params: UFMParams, layer: Layer) -> Float[Array, "K N P"]:
    """``d f_{c'}(x_i) / d W_l`` for every output and sample, ``(K, N, P)`` (exact, any activation).

    Example:
        >>> from jaxspec.ufm import make_ufm, init_params
        >>> ufm = make_ufm(2, 3, 2, 1e-2, width=3)
        >>> per_sample_jacobians(ufm, init_params(ufm, jax.random.key(0)), 0).shape
        (2, 6, 9)
    """
    weight, _ = layer_block(ufm, params, layer)

    def outputs(w):
        return predict(ufm, with_layer(ufm, params, layer, w))

    jac = jax.jacrev(outputs)(weight)
    return jac.reshape(ufm.num_classes, ufm.num_samples, -1)


def class_mean_gradients(ufm: UFM, params: UFMParams, layer: Layer) -> Float[Array, "K K P"]:
    """``delta_{c,c'}``: class means of the per-sample output gradients, ``(K, K, P)`` indexed ``[c, c']``.

    ``c`` is the class of the samples averaged over, ``c'`` the output differentiated. At collapse these are
    the ``K^2`` outlier eigenvectors of the layer-wise Hessian.

    References:
        Papyan, arXiv:1901.08244; Garrod & Keating, arXiv:2404.06106.
    """
    jac = per_sample_jacobians(ufm, params, layer)
    means = jac.reshape(ufm.num_classes, ufm.num_classes, ufm.per_class, -1).mean(axis=2)  # [c', c, P]
    return jnp.swapaxes(means, 0, 1)


def _split_factors(
    ufm: UFM, params: UFMParams, layer: Layer
) -> tuple[Float[Array, "K P"], Float[Array, "K*(K-1) P"], Float[Array, "K*N P"]]:
    K, N = ufm.num_classes, ufm.num_samples
    jac = per_sample_jacobians(ufm, params, layer)  # [c', i, P]
    delta = class_mean_gradients(ufm, params, layer)  # [c, c', P]
    off_rows, off_cols = np.nonzero(~np.eye(K, dtype=bool))  # static indices keep this jittable
    class_rows = delta[np.arange(K), np.arange(K)] / jnp.sqrt(K)
    cross_rows = delta[off_rows, off_cols] / jnp.sqrt(K)
    sample_means = jnp.repeat(jnp.swapaxes(delta, 0, 1), ufm.per_class, axis=1)  # [c', i, P]
    within_rows = (jac - sample_means).reshape(K * N, -1) / jnp.sqrt(N)
    return class_rows, cross_rows, within_rows


def gauss_newton_parts(
    ufm: UFM, params: UFMParams, layer: Layer
) -> tuple[Float[Array, "P P"], Float[Array, "P P"], Float[Array, "P P"]]:
    """The class, cross-class and within-class parts of a layer's Gauss-Newton matrix, each ``(P, P)``.

    Their sum is the layer's Gauss-Newton matrix (the layer-wise data Hessian for the linear UFM).

    Example:
        >>> import jax
        >>> from jaxspec.ufm import make_ufm, init_params
        >>> ufm = make_ufm(2, 3, 2, 1e-2, width=2)
        >>> [p.shape for p in gauss_newton_parts(ufm, init_params(ufm, jax.random.key(0)), 0)]
        [(4, 4), (4, 4), (4, 4)]

    References:
        Papyan, arXiv:1901.08244; Garrod & Keating, arXiv:2404.06106.
    """
    rows = _split_factors(ufm, params, layer)
    return tuple(jnp.matmul(r.T, r, precision=HIGHEST) for r in rows)


def gauss_newton_split(
    ufm: UFM, params: UFMParams, layer: Layer, rtol: float | None = None
) -> GaussNewtonSplit:
    """Eigenvalues and ranks of the class / cross-class / within-class Gauss-Newton parts of one layer.

    Eigenvalues are squared singular values of the stacked factor vectors (never of the ``P x P`` matrices,
    which would square the rounding error).

    Args:
        ufm: the model.
        params: :class:`UFMParams`.
        layer: 0-based layer index.
        rtol: relative threshold for the ranks (default ``1000 eps`` of the dtype).

    Returns:
        :class:`GaussNewtonSplit` (predicted ranks at collapse: ``K``, ``K(K-1)``, ``0``).

    Example:
        >>> from jaxspec.ufm import make_ufm, collapsed_params
        >>> ufm = make_ufm(3, 4, 3, 1e-2, width=4)
        >>> gauss_newton_split(ufm, collapsed_params(ufm), 1).ranks
        Array([3, 6, 0], dtype=int32)

    References:
        Papyan, arXiv:1901.08244; Garrod & Keating, arXiv:2404.06106.
    """
    rows = _split_factors(ufm, params, layer)
    eigs = [jnp.linalg.svd(r, compute_uv=False) ** 2 for r in rows]
    if rtol is None:
        rtol = 1000.0 * float(jnp.finfo(rows[0].dtype).eps)
    top = jnp.max(jnp.stack([jnp.max(e) for e in eigs]))
    ranks = jnp.stack([jnp.sum(e > rtol * top) for e in eigs]).astype(jnp.int32)
    return GaussNewtonSplit(*eigs, ranks)


def data_gradient(ufm: UFM, params: UFMParams, layer: Layer) -> Float[Array, "d_out d"]:
    """Gradient of the data loss with respect to one layer's weight (same shape as the weight).

    Example:
        >>> from jaxspec.ufm import make_ufm, collapsed_params
        >>> ufm = make_ufm(2, 3, 3, 1e-2, width=3)
        >>> data_gradient(ufm, collapsed_params(ufm), 2).shape
        (2, 3)
    """
    weight, restricted = layer_block(ufm, params, layer)
    return jax.grad(restricted)(weight)


def gradient_coefficients(ufm: UFM, params: UFMParams, layer: Layer) -> GradientCoefficients:
    """The layer's data gradient on the normalised class-mean basis ``delta_{c,c'} / ||delta_{c,c'}||``.

    Args:
        ufm: the model.
        params: :class:`UFMParams`.
        layer: 0-based layer index.

    Returns:
        :class:`GradientCoefficients` (predicted at collapse: weight ``1/K`` on each ``c = c'`` and 0
        elsewhere, residual 0).

    Example:
        >>> from jaxspec.ufm import make_ufm, collapsed_params
        >>> ufm = make_ufm(3, 4, 3, 1e-2, width=4)
        >>> gradient_coefficients(ufm, collapsed_params(ufm), 0).weights.diagonal().round(4)
        Array([0.3333, 0.3333, 0.3333], dtype=float32)

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    K = ufm.num_classes
    delta = class_mean_gradients(ufm, params, layer).reshape(K * K, -1)
    basis = delta / jnp.linalg.norm(delta, axis=1, keepdims=True)
    g = data_gradient(ufm, params, layer).ravel()
    coef = jnp.linalg.lstsq(basis.T, g)[0]
    fitted = jnp.matmul(coef, basis, precision=HIGHEST)
    residual = jnp.sum((g - fitted) ** 2) / jnp.sum(g**2)
    weights = coef**2 / jnp.sum(coef**2)
    return GradientCoefficients(coef.reshape(K, K), weights.reshape(K, K), residual)


def alignment_matrix(ufm: UFM, params: UFMParams, layer: Layer) -> Float[Array, "K K"]:
    """``f_{cc'} = (v^T H v)^2 / (||v||^2 ||H v||^2)`` for ``v = delta_{c,c'}`` and the layer's data Hessian.

    Args:
        ufm: the model (any activation: ``H v`` is a Hessian-vector product).
        params: :class:`UFMParams`.
        layer: 0-based layer index.

    Returns:
        ``(K, K)`` in ``[0, 1]``; all 1 once the class-mean directions are eigenvectors (collapse).

    Example:
        >>> from jaxspec.ufm import make_ufm, collapsed_params
        >>> ufm = make_ufm(2, 3, 3, 1e-2, width=3)
        >>> alignment_matrix(ufm, collapsed_params(ufm), 1).round(4)
        Array([[1., 1.],
               [1., 1.]], dtype=float32)

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    K = ufm.num_classes
    weight, restricted = layer_block(ufm, params, layer)
    matvec = hessian_matvec(restricted, weight)
    vectors = class_mean_gradients(ufm, params, layer).reshape(K * K, *weight.shape)
    products = jax.vmap(matvec)(vectors)
    return jax.vmap(alignment)(vectors, products).reshape(K, K)


def layer_eigenpairs(
    ufm: UFM,
    params: UFMParams,
    layer: Layer,
    k: int | None = None,
    *,
    num_steps: int | None = None,
    regularised: bool = False,
    key: PRNGKeyArray | None = None,
) -> Eigenpairs:
    """Top eigenpairs of one layer's Hessian by Lanczos on Hessian-vector products.

    Args:
        ufm: the model (any activation).
        params: :class:`UFMParams`.
        layer: 0-based layer index.
        k: number of eigenpairs (default ``K^2``, the predicted outliers).
        num_steps: Lanczos steps (default ``min(P, 2k + 20)``: each copy of a repeated eigenvalue needs its
            own restart block).
        regularised: include the weight decay (shifts every eigenvalue by ``lam_W``).
        key: PRNG key of the Lanczos start and restart vectors.

    Returns:
        :class:`jaxspec.hessian.Eigenpairs` (eigenvectors shaped like the layer's weight, leading axis ``k``).

    Example:
        >>> from jaxspec.ufm import make_ufm, collapsed_params, collapsed_optimum
        >>> ufm = make_ufm(3, 40, 5, 1e-2, width=4)
        >>> layer_eigenpairs(ufm, collapsed_params(ufm), 2).eigenvalues.round(5)
        Array([0.16324, 0.16324, 0.16324, 0.16324, 0.16324, 0.16324, 0.16324,
               0.16324, 0.16324], dtype=float32)

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    weight, restricted = layer_block(ufm, params, layer, regularised=regularised)
    size = weight.size
    k = min(ufm.num_classes**2, size) if k is None else k
    if not (isinstance(k, int) and 1 <= k <= size):
        raise InputError(f"k must be an integer between 1 and the layer size {size}, got {k!r}")
    if num_steps is None:
        num_steps = min(size, 2 * k + 20)
    return lanczos_eigh(hessian_matvec(restricted, weight), weight, k, num_steps=num_steps, key=key)


@functools.partial(jax.jit, static_argnames=("k", "num_steps", "regularised"))
def layer_top_eigenvalues(
    ufm: UFM,
    params: UFMParams,
    k: int | None = None,
    *,
    num_steps: int | None = None,
    regularised: bool = False,
    key: PRNGKeyArray | None = None,
) -> Float[Array, "L k"]:
    """Top ``k`` eigenvalues of every layer's Hessian by Lanczos, ``(L, k)`` descending.

    Jitted (``k``, ``num_steps``, ``regularised`` static). The hidden layers share one vmapped Lanczos; the
    head gets its own.

    Args:
        ufm: the model (any activation).
        params: :class:`UFMParams`.
        k: eigenvalues per layer (default ``K^2``; at most ``K d``, the size of the head).
        num_steps: Lanczos steps (default ``min(P, 2k + 20)`` per layer).
        regularised: include the weight decay.
        key: PRNG key.

    Returns:
        ``(L, k)``; predicted for the linear UFM at collapse: ``K^2`` copies of ``lam_W gamma / (1 - gamma)``
        then zeros (plus ``lam_W`` when regularised).

    Example:
        >>> from jaxspec.ufm import collapsed_optimum, collapsed_params, make_ufm
        >>> ufm = make_ufm(2, 10, 3, 1e-2, width=3)
        >>> round(collapsed_optimum(ufm).outlier, 5)
        0.26603
        >>> top = layer_top_eigenvalues(ufm, collapsed_params(ufm), 5)
        >>> [round(float(x), 5) for x in top[0, :4]], bool(abs(top[0, 4]) < 1e-6)
        ([0.26603, 0.26603, 0.26603, 0.26603], True)

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    head_size = ufm.num_classes * ufm.width
    k = min(ufm.num_classes**2, head_size) if k is None else k
    if not (isinstance(k, int) and 1 <= k <= head_size):
        raise InputError(f"k must be an integer between 1 and the head size K d = {head_size}, got {k!r}")
    key = jax.random.key(0) if key is None else key

    def one_layer(layer, layer_key):
        return layer_eigenpairs(
            ufm, params, layer, k, num_steps=num_steps, regularised=regularised, key=layer_key
        ).eigenvalues

    return map_layers(ufm, one_layer, key)


def gradient_outlier_overlap(
    ufm: UFM,
    params: UFMParams,
    layer: Layer,
    eigenvectors: Float[Array, "k d_out d"] | None = None,
    *,
    gradient: str = "data",
    key: PRNGKeyArray | None = None,
) -> Float[Array, ""]:
    """``||P_top g||^2 / ||g||^2`` for one layer, ``P_top`` onto its top ``K^2`` Hessian eigenvectors.

    Args:
        ufm: the model.
        params: :class:`UFMParams`.
        layer: 0-based layer index.
        eigenvectors: ``(k, *weight.shape)`` orthonormal eigenvectors (default: :func:`layer_eigenpairs`).
        gradient: ``"data"`` (gradient of the data term; well defined at the optimum) or ``"total"`` (with the
            weight decay; the direction gradient descent actually moves in).
        key: PRNG key for Lanczos when ``eigenvectors`` is not given.

    Returns:
        ``()`` in ``[0, 1]`` (predicted 1 at collapse for the data gradient).

    References:
        Gur-Ari, Roberts, Dyer, arXiv:1812.04754; Garrod & Keating, arXiv:2404.06106.
    """
    check_choice("gradient", gradient, ("data", "total"))
    if eigenvectors is None:
        eigenvectors = layer_eigenpairs(ufm, params, layer, key=key).eigenvectors
    weight, restricted = layer_block(ufm, params, layer, regularised=gradient == "total")
    return gradient_overlap(jax.grad(restricted)(weight), eigenvectors)


def gram_eigenvalues(ufm: UFM, params: UFMParams) -> Float[Array, "L K"]:
    """The ``K`` largest eigenvalues of every weight Gram matrix ``W_l^T W_l``, ``(L, K)`` descending.

    Predicted at collapse: ``sigma^2`` (``K`` copies) for every layer.

    Example:
        >>> from jaxspec.ufm import make_ufm, collapsed_params
        >>> ufm = make_ufm(2, 3, 3, 1e-2, width=3)
        >>> gram_eigenvalues(ufm, collapsed_params(ufm)).shape
        (3, 2)

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    K = ufm.num_classes
    hidden = jnp.einsum("lij,lik->ljk", params.hidden, params.hidden, precision=HIGHEST)
    head = jnp.matmul(params.head.T, params.head, precision=HIGHEST)
    grams = jnp.concatenate([hidden, head[None]], axis=0)
    return jnp.linalg.eigvalsh(grams)[:, ::-1][:, :K]


def feature_gram_eigenvalues(ufm: UFM, params: UFMParams) -> Float[Array, " K"]:
    """The ``K`` largest eigenvalues of ``H H^T``, ``(K,)`` descending (predicted ``n s^2`` at collapse).

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    gram = jnp.matmul(params.features, params.features.T, precision=HIGHEST)
    return jnp.linalg.eigvalsh(gram)[::-1][: ufm.num_classes]
