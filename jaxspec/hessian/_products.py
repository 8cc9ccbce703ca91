"""Matrix-free curvature products over a pytree of parameters, and the dense oracle for small models.

Every operator here is a closure ``v -> M v`` on pytrees shaped like the parameters, so the same Lanczos,
quadrature and trace routines serve the full Hessian, a Gauss-Newton matrix or one layer's block.

* :func:`hvp` / :func:`hessian_matvec`: Hessian-vector products, forward-over-reverse
  (``jax.jvp`` of ``jax.grad``), one gradient's cost per product.
* :func:`gauss_newton_matvec`: ``G v = J^T H_out J v`` for ``loss(params) = output_loss(predict(params))``;
  the Hessian minus the terms weighted by the residuals.
* :func:`block_loss` and :func:`path_mask`: a layer-wise block is the Hessian of the loss restricted to one
  layer's leaves, the other leaves held fixed.
* :func:`dense_hessian` / :func:`dense_matrix`: the whole matrix in the flattened order of
  ``jax.flatten_util.ravel_pytree``, for small models and tests.

References:
    Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6 (1994).
    Schraudolph, "Fast curvature matrix-vector products for second-order gradient descent", Neural Comp. 2002.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from jaxspec._checks import InputError

Pytree = Any
#: A linear operator on pytrees shaped like the parameters, ``v -> M v``.
Matvec = Callable[[Pytree], Pytree]
#: A scalar loss of the parameters.
Loss = Callable[[Pytree], Float[Array, ""]]


def tree_dot(a: Pytree, b: Pytree) -> Float[Array, ""]:
    """Euclidean inner product of two pytrees with the same structure (a scalar).

    Example:
        >>> import jax.numpy as jnp
        >>> tree_dot({"a": jnp.ones(2), "b": jnp.ones(3)}, {"a": jnp.arange(2.0), "b": jnp.ones(3)})
        Array(4., dtype=float32)
    """
    leaves = jax.tree.leaves(jax.tree.map(lambda x, y: jnp.vdot(x, y), a, b))
    return sum(leaves[1:], leaves[0]) if leaves else jnp.zeros(())


def num_parameters(params: Pytree) -> int:
    """Number of scalar entries in a pytree (the dimension the curvature operators act on).

    Example:
        >>> import jax.numpy as jnp
        >>> num_parameters({"w": jnp.ones((3, 4)), "b": jnp.ones(3)})
        15
    """
    return int(sum(jnp.size(leaf) for leaf in jax.tree.leaves(params)))


def hvp(loss_fn: Loss, params: Pytree, vector: Pytree) -> Pytree:
    """Hessian-vector product ``H v`` of a scalar loss, forward-over-reverse.

    Args:
        loss_fn: ``params -> scalar``.
        params: pytree, the point at which the Hessian is taken.
        vector: pytree shaped like ``params``.

    Returns:
        ``H v``, a pytree shaped like ``params``.

    Example:
        >>> import jax.numpy as jnp
        >>> hvp(lambda w: jnp.sum(w ** 3), jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0]))  # diag(6 w) v
        Array([6., 0.], dtype=float32)

    References:
        Pearlmutter, Neural Computation 6 (1994).
    """
    return jax.jvp(jax.grad(loss_fn), (params,), (vector,))[1]


def hessian_matvec(loss_fn: Loss, params: Pytree) -> Matvec:
    """The operator ``v -> H v`` at ``params`` (linearised once, so repeated products skip the primal work).

    Args:
        loss_fn: ``params -> scalar``.
        params: pytree.

    Returns:
        A function mapping a pytree shaped like ``params`` to ``H v`` (same shape).

    Example:
        >>> import jax.numpy as jnp
        >>> matvec = hessian_matvec(lambda w: 0.5 * jnp.sum(w ** 2), jnp.ones(3))
        >>> matvec(jnp.arange(3.0))
        Array([0., 1., 2.], dtype=float32)

    References:
        Pearlmutter, Neural Computation 6 (1994).
    """
    _, linear = jax.linearize(jax.grad(loss_fn), params)
    return linear


def gauss_newton_matvec(
    predict_fn: Callable[[Pytree], Pytree], output_loss_fn: Loss, params: Pytree
) -> Matvec:
    """The generalised Gauss-Newton operator ``v -> J^T H_out J v``.

    For ``loss(params) = output_loss_fn(predict_fn(params))`` with ``J`` the Jacobian of ``predict_fn`` and
    ``H_out`` the Hessian of ``output_loss_fn`` at the prediction. For the MSE loss
    ``(1/2N) ||f - Y||^2`` it is ``(1/N) J^T J``; it equals the Hessian whenever ``predict_fn`` is linear in
    ``params`` (for example one layer of a linear network).

    Args:
        predict_fn: ``params -> outputs`` (any pytree).
        output_loss_fn: ``outputs -> scalar``.
        params: pytree.

    Returns:
        A function mapping a pytree shaped like ``params`` to ``G v`` (same shape).

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[1.0, 0.0], [1.0, 1.0]])
        >>> matvec = gauss_newton_matvec(lambda w: x @ w, lambda f: 0.5 * jnp.sum(f ** 2), jnp.zeros(2))
        >>> matvec(jnp.array([1.0, 0.0]))  # x^T x e_1
        Array([2., 1.], dtype=float32)

    References:
        Schraudolph, Neural Computation 14 (2002); Martens, "New insights and perspectives on the natural
        gradient method", JMLR 2020.
    """
    outputs, jvp_fn = jax.linearize(predict_fn, params)
    _, vjp_fn = jax.vjp(predict_fn, params)
    output_hvp = hessian_matvec(output_loss_fn, outputs)

    def matvec(vector: Pytree) -> Pytree:
        return vjp_fn(output_hvp(jvp_fn(vector)))[0]

    return matvec


def _key_name(entry) -> Hashable:
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return getattr(entry, attr)
    return str(entry)


def path_mask(params: Pytree, *prefix: Hashable) -> Pytree:
    """A boolean pytree that is ``True`` on the leaves whose key path starts with ``prefix``.

    Args:
        params: pytree (nested dicts, lists, tuples, NamedTuples, dataclasses).
        *prefix: dictionary keys, sequence indices or attribute names, outermost first.

    Returns:
        A pytree of Python bools with the structure of ``params``.

    Raises:
        InputError: when no leaf matches the prefix.

    Example:
        >>> import jax.numpy as jnp
        >>> path_mask({"dense0": {"w": jnp.ones(2)}, "dense1": {"w": jnp.ones(2)}}, "dense1")
        {'dense0': {'w': False}, 'dense1': {'w': True}}
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    mask = [tuple(_key_name(e) for e in path[: len(prefix)]) == tuple(prefix) for path, _ in flat]
    if not any(mask):
        raise InputError(f"no parameter leaf has the key path prefix {tuple(prefix)!r}")
    return jax.tree_util.tree_unflatten(treedef, mask)


def block_loss(loss_fn: Loss, params: Pytree, mask: Pytree) -> tuple[list[Array], Loss]:
    """Restrict a loss to the leaves selected by ``mask``; the other leaves stay at ``params``.

    The Hessian of the restricted loss is the diagonal block of the full Hessian for those leaves (the
    layer-wise Hessian when the mask selects one layer).

    Args:
        loss_fn: ``params -> scalar``.
        params: pytree.
        mask: pytree of bools with the structure of ``params`` (see :func:`path_mask`).

    Returns:
        ``(block_params, block_loss_fn)``: the list of selected leaves and ``list -> scalar``.

    Example:
        >>> import jax.numpy as jnp
        >>> params = {"a": jnp.ones(2), "b": jnp.ones(3)}
        >>> sub, sub_loss = block_loss(lambda p: jnp.sum(p["a"] ** 2) * jnp.sum(p["b"]), params,
        ...                            path_mask(params, "a"))
        >>> dense_hessian(sub_loss, sub).shape
        (2, 2)
    """
    leaves, treedef = jax.tree.flatten(params)
    flags = jax.tree.leaves(mask)
    if len(flags) != len(leaves):
        raise InputError(f"mask has {len(flags)} leaves but params has {len(leaves)}")
    selected = [i for i, flag in enumerate(flags) if bool(flag)]
    if not selected:
        raise InputError("mask selects no parameter leaf")

    def restricted(block: Sequence[Array]) -> Float[Array, ""]:
        merged = list(leaves)
        for i, leaf in zip(selected, block, strict=True):
            merged[i] = leaf
        return loss_fn(jax.tree.unflatten(treedef, merged))

    return [leaves[i] for i in selected], restricted


def flat_operator(
    matvec: Matvec, params_like: Pytree
) -> tuple[
    Callable[[Float[Array, " P"]], Float[Array, " P"]],
    Float[Array, " P"],
    Callable[[Float[Array, " P"]], Pytree],
]:
    """Flatten a pytree operator into ``R^P -> R^P`` in the order of ``ravel_pytree``.

    Args:
        matvec: pytree operator.
        params_like: pytree giving shapes and dtypes.

    Returns:
        ``(flat_matvec, flat_params, unravel)``.

    Example:
        >>> import jax.numpy as jnp
        >>> f, x, unravel = flat_operator(lambda v: v, {"w": jnp.ones((2, 2))})
        >>> x.shape
        (4,)
    """
    flat, unravel = ravel_pytree(params_like)

    def flat_matvec(vector: Float[Array, " P"]) -> Float[Array, " P"]:
        return ravel_pytree(matvec(unravel(vector)))[0]

    return flat_matvec, flat, unravel


def dense_matrix(matvec: Matvec, params_like: Pytree) -> Float[Array, "P P"]:
    """Materialise an operator as a ``(P, P)`` matrix by applying it to the identity (vmapped).

    Args:
        matvec: pytree operator.
        params_like: pytree giving shapes and dtypes; ``P`` is its number of entries.

    Returns:
        ``(P, P)`` array, rows and columns in the order of ``ravel_pytree``.

    Example:
        >>> import jax.numpy as jnp
        >>> dense_matrix(lambda v: 2.0 * v, jnp.zeros(2))
        Array([[2., 0.],
               [0., 2.]], dtype=float32)
    """
    flat_matvec, flat, _ = flat_operator(matvec, params_like)
    eye = jnp.eye(flat.shape[0], dtype=flat.dtype)
    # Columns M e_j; the transpose is free for the symmetric operators we use and keeps M = M[row, col].
    return jax.vmap(flat_matvec)(eye).T


def dense_hessian(loss_fn: Loss, params: Pytree) -> Float[Array, "P P"]:
    """The full Hessian as a ``(P, P)`` matrix (``jax.hessian`` of the flattened loss): the small-model
    oracle.

    Args:
        loss_fn: ``params -> scalar``.
        params: pytree with ``P`` entries in all.

    Returns:
        ``(P, P)`` array in the order of ``ravel_pytree``.

    Example:
        >>> import jax.numpy as jnp
        >>> dense_hessian(lambda w: w[0] * w[1], jnp.zeros(2))
        Array([[0., 1.],
               [1., 0.]], dtype=float32)
    """
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda x: loss_fn(unravel(x)))(flat)
