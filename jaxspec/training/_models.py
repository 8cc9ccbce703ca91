"""The three trainable models and their end-to-end maps: deep linear, fixed-gates ReLU, ordinary ReLU MLP.

Parameters are the list of layer dicts of :mod:`jaxspec.networks` (``{"w": (n_out, n_in)}``, plus ``"b"`` for
an MLP with biases); a deep linear network is the bias-free ``activation="linear"`` case.

* ``"linear"``: ``f(x) = W_L ... W_1 x``; the end-to-end map is that product.
* ``"fixed_gates"``: a ReLU network whose gates are frozen, per training input, at their values under the
  initial parameters (the fixed-gates view of Haas et al.): ``f(x_i) = J_i x_i`` with
  ``J_i = W_L D_{L-1}(x_i) W_{L-1} ... D_1(x_i) W_1`` and ``D_l(x_i)`` never recomputed. Its end-to-end map is
  the linear map the loss sees, the least-squares fit of the network on the training inputs,
  ``M = F^T X (X^T X)^{-1}``: with whitened inputs, ``M = (1/N) sum_i J_i x_i x_i^T`` and the MSE loss splits
  into ``(1/2)||M - Sigma_yx||^2`` plus a residual that ``M`` does not see. For a linear network ``M`` is the
  product itself.
* ``"relu"``: an ordinary ReLU MLP (gates recomputed); its end-to-end map is the Jacobian averaged over the
  training inputs, ``(1/N) sum_i df/dx(x_i)``.

References:
    Saxe, McClelland, Ganguli, arXiv:1312.6120 (deep linear networks, aligned initialisation).
    Haas, Gatine, Cosse, Bouraoui, arXiv:2602.12384 (the fixed-gates view).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from jaxspec._checks import HIGHEST, InputError, check_choice
from jaxspec.data import Dataset
from jaxspec.networks import fixed_gates_apply, gates, init_mlp, mlp_apply

#: The layer dicts of :mod:`jaxspec.networks`: ``[{"w": (n_{l+1}, n_l)}, ...]`` (plus ``"b"`` with biases).
Params = list[dict[str, Array]]

MODEL_KINDS = ("linear", "fixed_gates", "relu")
LOSSES = ("mse", "cross_entropy")


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    """A model kind plus what it needs beyond the parameters (closed over, never traced as an argument).

    Attributes:
        kind: one of :data:`MODEL_KINDS`.
        depth: number of weight matrices ``L``.
        train_x: ``(N, d_in)`` the training inputs the fixed gates (and end-to-end maps) refer to.
        gate_list: fixed-gates only: ``L - 1`` arrays ``(N, n_l)``, the frozen gates of the training inputs.
        reference: fixed-gates only: the initial parameters, which define the gates of any other input.
        jacobian_inputs: relu only: how many training inputs the averaged Jacobian uses.
    """

    kind: str
    depth: int
    train_x: Float[Array, "N d_in"]
    gate_list: tuple[Float[Array, "N n"], ...] | None = None
    reference: Any = None
    jacobian_inputs: int | None = None


def weight_matrices(
    params: Params | Sequence[Float[Array, "n_out n_in"]],
) -> list[Float[Array, "n_out n_in"]]:
    """The weight matrices ``[W_1, ..., W_L]`` of a list of layer dicts (or of a list of matrices).

    Example:
        >>> [w.shape for w in weight_matrices([{"w": jnp.ones((3, 2))}, jnp.ones((1, 3))])]
        [(3, 2), (1, 3)]
    """
    if not isinstance(params, (list, tuple)) or not params:
        raise InputError("params must be a non-empty list of layer dicts {'w': (n_out, n_in)} or of matrices")
    return [p["w"] if isinstance(p, dict) else p for p in params]


def deep_linear_init(
    key: PRNGKeyArray, widths: Sequence[int], *, scale: float = 1.0, dtype=jnp.float32
) -> Params:
    """A bias-free deep linear network, entries ``N(0, scale^2 / n_in)`` (small ``scale``: the rich regime).

    Args:
        key: PRNG key.
        widths: ``(n_0, ..., n_L)``.
        scale: standard deviation times ``sqrt(fan_in)``.
        dtype: parameter dtype.

    Returns:
        ``L`` layer dicts ``{"w": (n_{l+1}, n_l)}``.

    Example:
        >>> params = deep_linear_init(jax.random.key(0), (4, 8, 3), scale=0.1)
    """
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(f"scale must be positive, got {scale}")
    return init_mlp(key, widths, activation="linear", bias=False, gain=float(scale) ** 2, dtype=dtype)


def balanced_factors(sigma0: float | Float[ArrayLike, " R"], depth: int) -> Float[np.ndarray, "L R"]:
    """Per-mode factors ``a_{l,r} = sigma_r^{1/L}`` of a balanced network, ``(L, R)``.

    Example:
        >>> balanced_factors([4.0, 1.0], 2).tolist()
        [[2.0, 1.0], [2.0, 1.0]]

    References:
        Saxe, McClelland, Ganguli, arXiv:1312.6120 (balanced deep linear networks).
    """
    sigma0 = np.atleast_1d(np.asarray(sigma0, dtype=float))
    if np.any(sigma0 <= 0):
        raise InputError("balanced factors need positive singular values")
    return np.repeat((sigma0 ** (1.0 / depth))[None, :], depth, axis=0)


def aligned_init(
    widths: Sequence[int],
    u_out: Float[ArrayLike, "nL R"],
    v_in: Float[ArrayLike, "n0 R"],
    factors: Float[ArrayLike, "L R"],
    *,
    key: PRNGKeyArray | None = None,
    dtype=jnp.float32,
) -> Params:
    """Layers with a shared singular basis: ``W_l = P_l diag(a_l) P_{l-1}^T``.

    ([math §5](https://jaxspec.github.io/jaxspec/math/#s5).)

    ``P_0 = v_in`` and ``P_L = u_out`` (e.g. the teacher's modes, for Saxe's aligned start); the hidden bases
    ``P_l`` are random orthonormal frames (``key``) or the first ``R`` coordinate vectors (``key=None``).

    Args:
        widths: ``(n_0, ..., n_L)`` with ``R <= min(widths)``.
        u_out: ``(n_L, R)`` orthonormal output basis.
        v_in: ``(n_0, R)`` orthonormal input basis.
        factors: ``(L, R)`` the per-mode factors ``a_{l,r}`` (so ``W_L ... W_1`` has singular values
            ``prod_l a_{l,r}``).
        key: PRNG key for the hidden bases, or ``None``.
        dtype: parameter dtype.

    Returns:
        ``L`` layer dicts ``{"w": (n_{l+1}, n_l)}``.

    Example:
        >>> u, v = jnp.eye(3)[:, :2], jnp.eye(4)[:, :2]
        >>> params = aligned_init((4, 5, 3), u, v, balanced_factors([0.01, 0.001], 2))

    References:
        Saxe, McClelland, Ganguli, arXiv:1312.6120.
    """
    widths = tuple(int(n) for n in widths)
    factors = np.asarray(factors, dtype=float)
    depth = len(widths) - 1
    if depth < 1 or factors.ndim != 2 or factors.shape[0] != depth:
        raise InputError(f"factors must have shape (L={depth}, R), got {factors.shape}")
    rank = factors.shape[1]
    if rank > min(widths):
        raise InputError(f"R={rank} modes do not fit in widths {widths}")
    u_out, v_in = jnp.asarray(u_out, dtype), jnp.asarray(v_in, dtype)
    if u_out.shape != (widths[-1], rank) or v_in.shape != (widths[0], rank):
        raise InputError(
            f"u_out must be ({widths[-1]}, {rank}) and v_in ({widths[0]}, {rank}), got "
            f"{u_out.shape} and {v_in.shape}"
        )
    bases = [v_in]
    for l, n in enumerate(widths[1:-1]):
        if key is None:
            bases.append(jnp.eye(n, rank, dtype=dtype))
        else:
            draw = jax.random.normal(jax.random.fold_in(key, l), (n, rank), jnp.float32).astype(dtype)
            bases.append(jnp.linalg.qr(draw)[0])
    bases.append(u_out)
    return [
        {"w": (bases[l + 1] * jnp.asarray(factors[l], dtype)[None, :]) @ bases[l].T} for l in range(depth)
    ]


def make_model(kind: str, params0: Params, data: Dataset, *, jacobian_inputs: int | None = None) -> Model:
    """Describe a model of ``kind`` trained on ``data`` from ``params0``; fixed gates are frozen here.

    Args:
        kind: ``"linear"``, ``"fixed_gates"`` or ``"relu"``.
        params0: the initial layer dicts.
        data: the training set (its ``x`` fixes the gates and the end-to-end map).
        jacobian_inputs: relu only: average the Jacobian over the first this many training inputs (default
            all).

    Returns:
        :class:`Model`.

    References:
        Haas et al., arXiv:2602.12384 (the fixed-gates view).
    """
    check_choice("model kind", kind, MODEL_KINDS)
    ws = weight_matrices(params0)
    if ws[0].shape[1] != data.input_dim or ws[-1].shape[0] != data.output_dim:
        raise InputError(
            f"network maps {ws[0].shape[1]} -> {ws[-1].shape[0]} but the data are "
            f"{data.input_dim} -> {data.output_dim}"
        )
    if kind == "linear" and any(isinstance(p, dict) and "b" in p for p in params0):
        raise InputError("a deep linear network has no biases")
    gate_list = reference = None
    if kind == "fixed_gates":
        reference = params0
        gate_list = tuple(jax.lax.stop_gradient(g) for g in gates(params0, data.x, activation="relu"))
    n_jac = None
    if kind == "relu":
        n_jac = data.num_samples if jacobian_inputs is None else int(jacobian_inputs)
        if not 1 <= n_jac <= data.num_samples:
            raise InputError(f"jacobian_inputs must be in [1, {data.num_samples}], got {jacobian_inputs}")
    return Model(kind, len(ws), data.x, gate_list, reference, n_jac)


def model_apply(
    model: Model, params: Params, x: Float[Array, "M d_in"] | None = None
) -> Float[Array, "M d_out"]:
    """The model's outputs ``(N, d_out)`` on ``x`` (default: the training inputs).

    A fixed-gates model uses its frozen gates on the training inputs and the gates of its initial parameters
    on any other input.
    """
    if model.kind == "linear":
        x = model.train_x if x is None else x
        return mlp_apply(params, x, activation="linear")
    if model.kind == "relu":
        x = model.train_x if x is None else x
        return mlp_apply(params, x, activation="relu")
    if x is None:
        return fixed_gates_apply(params, list(model.gate_list), model.train_x)
    return fixed_gates_apply(params, gates(model.reference, x, activation="relu"), x)


def _product(weights):
    out = weights[0]
    for w in weights[1:]:
        out = jnp.matmul(w, out, precision=HIGHEST)
    return out


def end_to_end_fn(model: Model) -> Callable[[Params], Float[Array, "d_out d_in"]]:
    """``params -> (d_out, d_in)``: the model's end-to-end map (see the module docstring)."""
    if model.kind == "linear":
        return lambda params: _product(weight_matrices(params))
    if model.kind == "fixed_gates":
        x = np.asarray(model.train_x, dtype=np.float64)
        gram = x.T @ x
        if np.linalg.matrix_rank(gram) < gram.shape[0]:
            raise InputError(
                "the training inputs do not span the input space; the end-to-end map of a "
                "fixed-gates network needs X^T X invertible (whiten or reduce the input "
                "dimension)"
            )
        # P = X (X^T X)^{-1}: M = F^T P is the least-squares linear map of the outputs on the inputs.
        projector = jnp.asarray(np.linalg.solve(gram, x.T).T, model.train_x.dtype)

        def fixed_gates_map(params):
            outputs = fixed_gates_apply(params, list(model.gate_list), model.train_x)
            return jnp.matmul(outputs.T, projector, precision=HIGHEST)

        return fixed_gates_map
    xs = model.train_x[: model.jacobian_inputs]

    def mean_jacobian(params):
        f = lambda x: mlp_apply(params, x, activation="relu")  # noqa: E731
        return jnp.mean(jax.vmap(jax.jacfwd(f))(xs), axis=0)

    return mean_jacobian


def make_loss(model: Model, data: Dataset, loss: str = "mse") -> Callable[[Params], Float[Array, ""]]:
    """The full-batch loss ``params -> scalar``.

    ``"mse"``: ``(1/2N) sum_i ||f(x_i) - y_i||^2`` (its gradient in the end-to-end map is
    ``W Sigma_xx - Sigma_yx``, the normalisation of [math §5](https://jaxspec.github.io/jaxspec/math/#s5)).
    ``"cross_entropy"``: mean softmax cross-entropy against ``data.labels`` (or the argmax of ``y``).

    Args:
        model: from :func:`make_model`.
        data: the data the model was made with.
        loss: ``"mse"`` or ``"cross_entropy"``.

    Returns:
        ``params -> ()`` the loss.

    Example:
        >>> loss_fn = make_loss(model, data)  # doctest: +SKIP
    """
    check_choice("loss", loss, LOSSES)
    if data.x.shape[0] != model.train_x.shape[0]:
        raise InputError("make_loss needs the data the model was made with")
    if loss == "mse":

        def mse(params):
            residual = model_apply(model, params) - data.y
            return 0.5 * jnp.mean(jnp.sum(residual**2, axis=-1))

        return mse
    labels = data.labels if data.labels is not None else jnp.argmax(data.y, axis=-1)

    def cross_entropy(params):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model_apply(model, params), labels))

    return cross_entropy
