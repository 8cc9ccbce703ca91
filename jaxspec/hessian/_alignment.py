"""How well a direction lines up with curvature: the eigenvector test ``f`` and the gradient-outlier overlap.

* :func:`alignment`: ``f(v) = (v^T H v)^2 / (||v||^2 ||H v||^2)`` in ``[0, 1]``, equal to 1 exactly when ``v``
  is an eigenvector of ``H`` with a non-zero eigenvalue (Cauchy-Schwarz). Garrod & Keating use it with
  ``v`` built from class means (``f_cc'``) to show the predicted eigenvectors emerging during training.
* :func:`gradient_overlap`: ``||P_top g||^2 / ||g||^2`` with ``P_top`` the projector onto the top Hessian
  eigenvectors: the fraction of the gradient inside the outlier subspace (Gur-Ari, Roberts, Dyer).

References:
    Garrod & Keating, "Unifying low dimensional spectra in deep learning", arXiv:2404.06106.
    Gur-Ari, Roberts, Dyer, "Gradient descent happens in a tiny subspace", arXiv:1812.04754.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from jaxspec._checks import HIGHEST

Pytree = Any


def alignment(vector: Pytree, matvec_of_vector: Pytree) -> Float[Array, ""]:
    """``(v^T H v)^2 / (||v||^2 ||H v||^2)``: 1 iff ``v`` is an eigenvector of ``H`` (non-zero eigenvalue).

    Args:
        vector: pytree ``v``.
        matvec_of_vector: pytree ``H v`` with the same structure.

    Returns:
        ``()`` scalar in ``[0, 1]`` (0 when ``H v = 0``).

    Example:
        >>> import jax.numpy as jnp
        >>> h = jnp.diag(jnp.array([2.0, 1.0]))
        >>> alignment(jnp.array([1.0, 0.0]), h @ jnp.array([1.0, 0.0]))
        Array(1., dtype=float32)

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    v = ravel_pytree(vector)[0]
    hv = ravel_pytree(matvec_of_vector)[0]
    num = jnp.vdot(v, hv) ** 2
    den = jnp.vdot(v, v) * jnp.vdot(hv, hv)
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), jnp.zeros_like(num))


def gradient_overlap(gradient: Pytree, eigenvectors: Pytree) -> Float[Array, ""]:
    """``||P g||^2 / ||g||^2`` with ``P`` the projector onto orthonormal ``eigenvectors``.

    Args:
        gradient: pytree ``g``.
        eigenvectors: pytree with the structure of ``g`` and a leading axis ``k`` (orthonormal, as returned
            by :func:`jaxspec.hessian.lanczos_eigh`).

    Returns:
        ``()`` scalar in ``[0, 1]``.

    Example:
        >>> import jax.numpy as jnp
        >>> gradient_overlap(jnp.array([3.0, 4.0]), jnp.array([[1.0, 0.0]]))
        Array(0.36, dtype=float32)

    References:
        Gur-Ari, Roberts, Dyer, arXiv:1812.04754.
    """
    g = ravel_pytree(gradient)[0]
    vecs = jax.vmap(lambda v: ravel_pytree(v)[0])(eigenvectors)
    coeff = jnp.matmul(vecs, g, precision=HIGHEST)
    return jnp.sum(coeff**2) / jnp.vdot(g, g)
