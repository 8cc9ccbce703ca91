"""Matrix-free curvature of any loss over a pytree of parameters.

Products (Hessian, Gauss-Newton, layer-wise blocks), Lanczos eigenpairs with full reorthogonalisation,
stochastic Lanczos quadrature for the spectral density, Hutchinson traces, and a dense Hessian for small
models as the oracle. Everything is pure and traceable: wrap a call in ``jax.jit`` with the loss closed over,
``vmap`` over keys or probes.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from jaxspec import hessian
    >>> loss = lambda p: jnp.sum(jnp.tanh(p["w"] @ p["x"]) ** 2)
    >>> params = {"w": jnp.ones((3, 4)) / 4, "x": jnp.arange(4.0)}
    >>> top = hessian.lanczos_eigh(hessian.hessian_matvec(loss, params), params, k=2, num_steps=16)
    >>> top.eigenvalues.shape
    (2,)

* :mod:`~jaxspec.hessian._products`: Hessian and Gauss-Newton products, layer blocks, the dense oracle.
* :mod:`~jaxspec.hessian._lanczos`: Lanczos with full reorthogonalisation and restarts, extreme eigenpairs.
* :mod:`~jaxspec.hessian._density`: stochastic Lanczos quadrature, spectral density, Hutchinson traces.
* :mod:`~jaxspec.hessian._alignment`: the eigenvector test ``f(v)`` and the gradient-outlier overlap.

References:
    Pearlmutter (1994); Paige (1980); Lin, Saad, Yang, SIAM Review 58 (2016); Ghorbani, Krishnan, Xiao,
    ICML 2019; Garrod & Keating, arXiv:2404.06106.
"""

from jaxspec.hessian._alignment import alignment, gradient_overlap
from jaxspec.hessian._density import (
    SpectralQuadrature,
    TraceEstimate,
    hutchinson_trace,
    slq,
    spectral_density,
)
from jaxspec.hessian._lanczos import (
    Eigenpairs,
    Tridiagonal,
    lanczos_eigh,
    lanczos_tridiagonal,
    tridiagonal_matrix,
)
from jaxspec.hessian._products import (
    block_loss,
    dense_hessian,
    dense_matrix,
    flat_operator,
    gauss_newton_matvec,
    hessian_matvec,
    hvp,
    num_parameters,
    path_mask,
    tree_dot,
)

__all__ = [
    "Eigenpairs",
    "SpectralQuadrature",
    "TraceEstimate",
    "Tridiagonal",
    "alignment",
    "block_loss",
    "dense_hessian",
    "dense_matrix",
    "flat_operator",
    "gauss_newton_matvec",
    "gradient_overlap",
    "hessian_matvec",
    "hutchinson_trace",
    "hvp",
    "lanczos_eigh",
    "lanczos_tridiagonal",
    "num_parameters",
    "path_mask",
    "slq",
    "spectral_density",
    "tree_dot",
    "tridiagonal_matrix",
]
