"""Neural-collapse metrics NC1-NC4 (Papyan, Han, Donoho), layer by layer.

For the features ``h_i`` entering a layer, class means ``mu_c``, global mean ``mu_G``:

* NC1 (variability collapse): ``Tr(Sigma_W Sigma_B^+) / K`` with ``Sigma_W`` the within-class and ``Sigma_B``
  the between-class covariance (centred means).
* NC2 (geometry): ``equinorm`` = std / mean of the class-mean norms, ``angle`` = Frobenius distance between
  the
  normalised Gram matrix of the means and the normalised target Gram: the identity for an orthogonal frame
  (bias-free MSE UFMs; uncentred means) or ``I - 11^T / K`` for a simplex ETF (centred means).
* NC3 (self-duality): ``|| C^T / ||C||_F - M / ||M||_F ||_F`` with ``M`` the ``d x K`` matrix of means (as in
  NC2) and ``C`` the classifier acting on these features: the head ``W_L`` for the last layer and, in general,
  the sample mean of the Jacobian ``d f / d h`` (for the linear UFM, ``W_L ... W_{l+1}``).
* NC4 (nearest class mean): fraction of samples on which the network's decision ``argmax f`` differs from the
  nearest class mean of the features (argmax, not argmin, of the outputs).

All are 0 at collapse.

References:
    Papyan, Han, Donoho, "Prevalence of neural collapse during the terminal phase of deep learning training",
    PNAS 117 (2020); Sukenik, Mondelli, Lampert, arXiv:2305.13165 (deep neural collapse);
    Garrod & Keating, arXiv:2404.06106.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from jaxspec._checks import HIGHEST, check_choice
from jaxspec.ufm._model import UFM, UFMParams, activate, labels, layer_features, predict

GEOMETRIES = ("orthogonal", "etf")


class NeuralCollapse(NamedTuple):
    """Neural-collapse metrics; each field has shape ``(L,)`` (one value per layer input ``h^(0..L-1)``), or
    ``()`` from :func:`feature_collapse`.

    Attributes:
        nc1: within-class variability ``Tr(Sigma_W Sigma_B^+) / K``.
        nc2_equinorm: coefficient of variation of the class-mean norms.
        nc2_angle: distance of the means' normalised Gram matrix to the target geometry.
        nc3: distance between the normalised classifier and the normalised means.
        nc4: fraction of argmax decisions that differ from the nearest-class-mean decision.
    """

    nc1: Float[Array, "*L"]
    nc2_equinorm: Float[Array, "*L"]
    nc2_angle: Float[Array, "*L"]
    nc3: Float[Array, "*L"]
    nc4: Float[Array, "*L"]


def _normalised(x: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    return x / jnp.linalg.norm(x)


def feature_collapse(
    features: Float[Array, "d N"],
    classes: Int[Array, " N"],
    num_classes: int,
    classifier: Float[Array, "K d"],
    decisions: Int[Array, " N"],
    geometry: str = "orthogonal",
) -> NeuralCollapse:
    """NC1-NC4 of one set of features.

    Args:
        features: ``(d, N)``.
        classes: ``(N,)`` int labels in ``[0, K)``; every class must be present.
        num_classes: ``K``.
        classifier: ``(K, d)`` the linear classifier acting on these features (see the module docstring).
        decisions: ``(N,)`` the network's ``argmax`` decisions.
        geometry: ``"orthogonal"`` (uncentred means, identity target) or ``"etf"`` (centred, simplex ETF).

    Returns:
        :class:`NeuralCollapse` of scalars.

    Example:
        >>> import jax.numpy as jnp
        >>> h = jnp.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
        >>> y = jnp.array([0, 0, 1, 1])
        >>> m = feature_collapse(h, y, 2, jnp.eye(2), y)
        >>> float(m.nc1), float(m.nc2_angle), float(m.nc3), float(m.nc4)
        (0.0, 0.0, 0.0, 0.0)

    References:
        Papyan, Han, Donoho, PNAS 117 (2020).
    """
    check_choice("geometry", geometry, GEOMETRIES)
    K = num_classes
    onehot = jax.nn.one_hot(classes, K, dtype=features.dtype)  # (N, K)
    counts = onehot.sum(axis=0)
    means = jnp.matmul(features, onehot, precision=HIGHEST) / counts  # (d, K)
    global_mean = features.mean(axis=1)
    centred = means - global_mean[:, None]
    within = features - jnp.matmul(means, onehot.T, precision=HIGHEST)
    sigma_w = jnp.matmul(within, within.T, precision=HIGHEST) / features.shape[1]
    sigma_b = jnp.matmul(centred, centred.T, precision=HIGHEST) / K
    nc1 = jnp.trace(jnp.matmul(sigma_w, jnp.linalg.pinv(sigma_b, hermitian=True), precision=HIGHEST)) / K

    frame = means if geometry == "orthogonal" else centred
    norms = jnp.linalg.norm(frame, axis=0)
    equinorm = jnp.std(norms) / jnp.mean(norms)
    target = jnp.eye(K, dtype=features.dtype)
    if geometry == "etf":
        target = target - 1.0 / K
    gram = jnp.matmul(frame.T, frame, precision=HIGHEST)
    angle = jnp.linalg.norm(_normalised(gram) - _normalised(target))
    nc3 = jnp.linalg.norm(_normalised(classifier.T) - _normalised(frame))

    distances = jnp.sum((features[:, :, None] - means[:, None, :]) ** 2, axis=0)  # (N, K)
    nearest = jnp.argmin(distances, axis=1)
    nc4 = jnp.mean((nearest != decisions).astype(features.dtype))
    return NeuralCollapse(nc1, equinorm, angle, nc3, nc4)


def effective_classifiers(ufm: UFM, params: UFMParams) -> Float[Array, "L K d"]:
    """The sample-mean Jacobian of the outputs with respect to each layer's input, ``(L, K, d)``.

    Shifting the input of every layer by its own zero perturbation and differentiating the class sums of the
    outputs gives all per-sample Jacobians in ``K`` backward passes (sample ``i`` only sees column ``i``).
    For the linear UFM layer ``l`` gets ``W_L ... W_{l+1}``; the last entry is the head.

    Example:
        >>> from jaxspec.ufm import make_ufm, init_params
        >>> ufm = make_ufm(2, 3, 3, 1e-2, width=4)
        >>> effective_classifiers(ufm, init_params(ufm, jax.random.key(0))).shape
        (3, 2, 4)

    References:
        Papyan, Han, Donoho, PNAS 117 (2020) (NC3); Garrod & Keating, arXiv:2404.06106.
    """

    def outputs(shifts):
        def layer(h, inputs):
            w, shift = inputs
            return activate(ufm, jnp.matmul(w, h + shift, precision=HIGHEST)), None

        h, _ = jax.lax.scan(layer, params.features, (params.hidden, shifts[:-1]))
        return jnp.matmul(params.head, h + shifts[-1], precision=HIGHEST).sum(axis=1)

    zeros = jnp.zeros((ufm.depth, ufm.width, ufm.num_samples), params.features.dtype)
    jac = jax.jacrev(outputs)(zeros)  # (K, L, d, N)
    return jnp.swapaxes(jac.mean(axis=-1), 0, 1)


@functools.partial(jax.jit, static_argnames=("geometry",))
def collapse_metrics(ufm: UFM, params: UFMParams, geometry: str = "orthogonal") -> NeuralCollapse:
    """NC1-NC4 of the input features of every layer of a deep UFM.

    Args:
        ufm: the model.
        params: :class:`UFMParams`.
        geometry: ``"orthogonal"`` (the collapse geometry of bias-free MSE UFMs, default) or ``"etf"``.

    Returns:
        :class:`NeuralCollapse` with ``(L,)`` fields, entry ``l`` for ``h^(l)`` (``h^(0) = H``).

    Example:
        >>> from jaxspec.ufm import make_ufm, collapsed_params
        >>> ufm = make_ufm(3, 5, 4, 1e-2, width=5)
        >>> m = collapse_metrics(ufm, collapsed_params(ufm))
        >>> float(m.nc1.max()) < 1e-10, float(m.nc3.max()) < 1e-5
        (True, True)

    References:
        Papyan, Han, Donoho, PNAS 117 (2020); Sukenik, Mondelli, Lampert, arXiv:2305.13165.
    """
    feats = layer_features(ufm, params)
    decisions = jnp.argmax(predict(ufm, params), axis=0)
    classifiers = effective_classifiers(ufm, params)
    return jax.vmap(lambda h, c: feature_collapse(h, labels(ufm), ufm.num_classes, c, decisions, geometry))(
        feats, classifiers
    )
