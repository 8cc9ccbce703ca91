"""A stationarity certificate for escape directions that sit on ReLU kinks.

The speed of a ReLU network is only piecewise smooth, and the optimal escape directions put data points on
the kinks: there the gradient that autodiff returns is one arbitrary selection, and the KKT residual of
:func:`jaxspec.saddle.escape_stats` need not vanish even at the exact optimum. The certificate is the
*generalised* (Clarke-type) stationarity measure instead ([math §6.5.1](https://jaxspec.github.io/jaxspec/math/#s6)):

* at the balanced direction (every layer scaled to unit norm), a hidden unit ``i`` of layer ``l`` is *at a
  kink* for input ``x_j`` when its pre-activation is within ``kink_tol ||h_{l-1}(x_j)||`` of 0 (it changes
  sign under a perturbation of its weights of that size) and its outgoing weights are not negligible;
* every choice of the slope (the two one-sided derivatives, 0 or 1 for ReLU) at the units at a kink gives a
  smooth *piece* of the balanced speed whose value agrees with the speed there; each piece has a gradient;
* the measure is the norm of the minimum-norm element of the convex hull of the piece gradients, divided by
  ``sqrt(L) s``. The choices for different inputs are independent, so the hull is a Minkowski sum over the
  inputs (of ``k`` segments where an input's ``k`` kinks lie in one layer, of its ``2^k`` pieces otherwise),
  and Wolfe's minimum-norm-point algorithm solves it exactly (:func:`min_norm_point`).

The balanced speed is invariant to rescaling any layer, so the piece gradients are tangent to the product of
spheres; at a balanced point the measure is ``tan`` of the smallest angle between ``theta`` and an element of
the generalised gradient of ``L0``. Without kinks it is the KKT residual over ``sqrt(1 - residual^2)``. It is
0 exactly at Clarke-stationary points and at the points stationary for the chain-rule (conservative) gradient
of which Clarke's is a subset; a large value certifies that the direction is not stationary: some direction
on the sphere increases the speed at first order.

References:
    Clarke, "Optimization and Nonsmooth Analysis", Wiley 1983 (generalised gradients); Bolte and Pauwels,
    "Conservative set valued fields, automatic differentiation, stochastic gradient methods and deep
    learning", Math. Program. 188 (2021); Bantzis, Simon, Jacot, arXiv:2505.21722.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float

from jaxspec._checks import HIGHEST, InputError, check_choice
from jaxspec.networks import ACTIVATIONS
from jaxspec.saddle._escape import balanced_speed, layer_weight, unit_layers
from jaxspec.saddle._validation import check_data, check_positive_number

#: Piece gradients held at once (floats): inputs are processed in chunks below it.
_PIECE_BUDGET = 2**24
#: Floats of piece gradients the hull may hold in all (``max_kinks`` is lowered to fit).
_HULL_BUDGET = 2**27
#: Slope of the leaky ReLU on the negative side (as in :func:`jaxspec.networks.mlp_apply`).
_LEAKY_SLOPE = 0.01


class Stationarity(NamedTuple):
    """The generalised stationarity measure of a direction (see :func:`stationarity_certificate`).

    Attributes:
        measure: ``()``, ``min ||v|| / (sqrt(L) s)`` over the convex hull of the piece gradients ``v`` of the
            balanced speed ``s`` (0 at a generalised stationary point; ``inf`` where ``s <= 0``).
        num_kinks: number of (unit, input) pairs at a kink.
        num_pieces: number of pieces whose hull is taken, ``sum_j 2^k_j``.
        complete: ``False`` if some input had more than ``max_kinks`` units at a kink (the farthest ones
            then keep their autodiff slope: the hull is smaller and the measure an upper bound).
        kink_tol: the tolerance used.
    """

    measure: jax.Array
    num_kinks: int
    num_pieces: int
    complete: bool
    kink_tol: float


def resolve_kink_tol(kink_tol: Any, dtype: Any) -> float:
    """``kink_tol``, or the default of the dtype: ``1e-6`` for float64, ``1e-4`` for lower precision."""
    if kink_tol is None:
        return 1e-6 if jnp.dtype(dtype) == jnp.float64 else 1e-4
    return check_positive_number("kink_tol", kink_tol)


def _check_layers(params: Any) -> list[dict[str, jax.Array]]:
    """A chain of full ``{"w"}`` or factored ``{"u", "v"}`` bias-free layers, else InputError."""
    if not isinstance(params, (list, tuple)) or not params:
        raise InputError("params must be a non-empty list of layer dicts {'w'} or {'u', 'v'}")
    previous = None
    for l, p in enumerate(params):
        if not isinstance(p, dict) or "b" in p:
            raise InputError(f"params[{l}] must be a bias-free layer dict {{'w'}} or {{'u', 'v'}}")
        if "w" in p and jnp.ndim(p["w"]) == 2:
            shape = jnp.shape(p["w"])
        elif "u" in p and "v" in p and jnp.ndim(p["u"]) == 2 and jnp.ndim(p["v"]) == 2:
            if jnp.shape(p["u"])[1] != jnp.shape(p["v"])[1]:
                raise InputError(f"params[{l}]: 'u' and 'v' must have the same number of columns")
            shape = (jnp.shape(p["u"])[0], jnp.shape(p["v"])[0])
        else:
            raise InputError(f"params[{l}] must hold a matrix 'w' (n_out, n_in) or factors 'u', 'v'")
        if previous is not None and shape[1] != previous:
            raise InputError(f"params[{l}] has {shape[1]} inputs but params[{l - 1}] has {previous} outputs")
        previous = shape[0]
    return list(params)


def _held(counts: np.ndarray, single: np.ndarray, cap: int) -> int:
    """Piece gradients the hull holds: ``k + 1`` per one-layer input, ``2^min(k, cap)`` per other input."""
    return int(np.sum(np.where(single, counts + 1, 2 ** np.minimum(counts, cap))))


def _slopes(activation: str) -> tuple[float, float]:
    """The one-sided slopes ``(phi'(0-), phi'(0+))``."""
    return {"relu": (0.0, 1.0), "leaky_relu": (_LEAKY_SLOPE, 1.0), "linear": (1.0, 1.0)}[activation]


@functools.partial(jax.jit, static_argnames=("activation", "precision"))
def _kinks(params, x, activation, precision):
    """Per input: distance of every hidden pre-activation to its kink, and whether the kink counts."""
    weights = [p["w"] for p in unit_layers(params)]
    h = x
    margins, relevant, positive = [], [], []
    for l, w in enumerate(weights[:-1]):
        z = jnp.matmul(h, w.T, precision=precision)  # (N, n_l)
        norm_h = jnp.linalg.norm(h, axis=1, keepdims=True)
        # -1 marks a layer input that is exactly 0 (every pre-activation is then 0).
        margins.append(jnp.where(norm_h > 0, jnp.abs(z) / jnp.where(norm_h > 0, norm_h, 1.0), -1.0))
        outgoing = jnp.linalg.norm(weights[l + 1], axis=0)  # (n_l,)
        relevant.append(jnp.broadcast_to(outgoing, z.shape))
        positive.append(z > 0)
        h = jnp.where(z > 0, z, _slopes(activation)[0] * z)
    if not margins:  # one layer: no hidden unit
        empty = jnp.zeros((x.shape[0], 0), x.dtype)
        return empty, empty, empty > 0
    return jnp.concatenate(margins, 1), jnp.concatenate(relevant, 1), jnp.concatenate(positive, 1)


@functools.partial(jax.jit, static_argnames=("activation", "precision"))
def _piece_gradients(params, x, g, slots, valid, positive, bits, activation, precision):
    """``(N, M, P)``: the gradients of the pieces ``bits`` (``(M, k)``, 1 = upper slope) of every input."""
    lo, hi = _slopes(activation)
    widths = [w["w"].shape[0] for w in unit_layers(params)[:-1]]
    flat, unravel = ravel_pytree(params)

    def term(v, xj, gj, gates):
        weights = [p["w"] for p in unit_layers(unravel(v))]
        h, start = xj, 0
        for w, n in zip(weights[:-1], widths, strict=True):
            h = gates[start : start + n] * jnp.matmul(w, h, precision=precision)
            start += n
        return -jnp.vdot(gj, jnp.matmul(weights[-1], h, precision=precision))

    def one_input(xj, gj, slots_j, valid_j, positive_j):
        base = jnp.where(positive_j, hi, lo).astype(flat.dtype)

        def one_piece(b):
            chosen = jnp.where(b == 1, hi, lo).astype(flat.dtype)
            gates = base.at[slots_j].set(jnp.where(valid_j, chosen, base[slots_j]))
            return jax.grad(term)(flat, xj, gj, gates)

        return jax.vmap(one_piece)(bits)

    return jax.vmap(one_input)(x, g, slots, valid, positive)


def min_norm_point(
    constant: np.ndarray, groups: list[np.ndarray], *, rtol: float = 1e-10, max_iter: int = 1000
) -> tuple[float, float]:
    """``min ||c + sum_g lambda_g^T B_g||`` over one probability simplex per group (``B_g``: ``(m_g, P)``).

    The set is the Minkowski sum ``c + sum_g conv(B_g)``: a polytope whose linear minimisation is one argmin
    per group. Wolfe's minimum-norm-point algorithm finds its point nearest the origin exactly, in finitely
    many steps (affine minimisations over a small set of vertices, with line searches back into the hull).
    The Frank-Wolfe bound ``<x, q> / ||x||`` (``q`` the vertex minimising ``<x, .>``) is a certified lower
    bound of the minimum.

    Args:
        constant: ``(P,)``, ``c``.
        groups: the vertices of each simplex, ``(m_g, P)`` each.
        rtol: stop when ``||x||^2 - <x, q> <= rtol * max ||vertex||^2``.
        max_iter: cap on the major iterations.

    Returns:
        ``(norm, lower)``: the norm of the point found and a certified lower bound of the minimum.

    Example:
        >>> round(min_norm_point(np.zeros(2), [np.array([[1.0, 1.0], [-1.0, 1.0]])])[0], 12)
        1.0

    References:
        Wolfe, "Finding the nearest point in a polytope", Math. Program. 11 (1976).
    """
    c = np.asarray(constant, np.float64)
    groups = [np.asarray(b, np.float64) for b in groups]

    def vertex(direction):
        return c + sum((b[np.argmin(b @ direction)] for b in groups), np.zeros_like(c))

    x = vertex(c)
    if not groups:
        n = float(np.linalg.norm(c))
        return n, n
    scale = max(float(x @ x), sum(float(np.max(np.sum(b**2, axis=1))) for b in groups), np.finfo(float).tiny)
    corral, weights = [x], np.ones(1)
    for _ in range(max_iter):
        q = vertex(x)
        if float(x @ x - x @ q) <= rtol * scale or any(np.array_equal(q, v) for v in corral):
            break
        corral.append(q)
        weights = np.append(weights, 0.0)
        while True:  # minor cycle: the affine minimiser of the corral, pulled back into its hull
            alpha = _affine_minimiser(np.stack(corral))
            if np.all(alpha > 1e-14):
                weights = alpha
                break
            shrink = weights > alpha
            theta = np.min(weights[shrink] / (weights[shrink] - alpha[shrink]))
            weights = weights + theta * (alpha - weights)
            keep = weights > 1e-14
            corral = [v for v, k in zip(corral, keep, strict=True) if k]
            weights = weights[keep] / weights[keep].sum()
        x = weights @ np.stack(corral)
    norm = float(np.linalg.norm(x))
    q = vertex(x)
    lower = float(x @ q) / norm if norm > 0 else 0.0
    return norm, float(np.clip(lower, 0.0, norm))


def _affine_minimiser(points: np.ndarray) -> np.ndarray:
    """Weights ``alpha`` (summing to 1) of the point of least norm in the affine hull of ``points``."""
    k = points.shape[0]
    kkt = np.block([[points @ points.T, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
    rhs = np.zeros(k + 1)
    rhs[-1] = 1.0
    return np.linalg.lstsq(kkt, rhs, rcond=None)[0][:k]


def stationarity_certificate(
    params: Any,
    x: Float[Array, "N n0"],
    g: Float[Array, "N nL"],
    *,
    activation: str = "relu",
    kink_tol: float | None = None,
    max_kinks: int = 8,
    precision: Any = HIGHEST,
) -> Stationarity:
    """Generalised stationarity of the direction of ``params`` on the sphere, valid at ReLU kinks.

    The measure is ``min ||v|| / (sqrt(L) s)`` over the convex hull of the gradients ``v`` of the pieces of
    the balanced speed ``s`` (:func:`jaxspec.saddle.balanced_speed`) that meet at the direction: one piece
    per choice of the one-sided slopes of the units at a kink (pre-activation within ``kink_tol`` times the
    norm of the layer's input, with non-negligible outgoing weights), independently for every input. The
    minimum-norm point is a small QP over a Minkowski sum, one term per input with a kink (a sum of segments
    where the input's kinks lie in one layer, since its gradient is then affine in their slopes; the hull of
    all ``2^k`` pieces where they span several layers), solved exactly by :func:`min_norm_point`.

    It is 0 at a generalised (Clarke, or chain-rule) stationary point: the escape directions of the theory.
    It is large where some direction on the sphere increases the speed at first order. With no kink it
    equals ``r / sqrt(1 - r^2)`` for the KKT residual ``r`` of :func:`jaxspec.saddle.escape_stats`.

    Args:
        params: list of layer dicts, full ``{"w": (n_out, n_in)}`` or factored ``{"u", "v"}``
            (``W = U V^T``; the gradients are then taken in the factors, the parametrisation of a rank
            restriction). Any scale: the layers are scaled to unit norm.
        x: ``(N, n_0)`` training inputs.
        g: ``(N, n_L)``, ``G = grad C(0)``.
        activation: ``"relu"``, ``"leaky_relu"`` or ``"linear"``.
        kink_tol: distance (relative to the norm of the layer's input) within which a unit counts as at a
            kink; default ``1e-6`` in float64, ``1e-4`` otherwise.
        max_kinks: where an input's kinks span several layers, at most this many (the nearest) are
            enumerated, ``2^max_kinks`` pieces (``complete`` is then ``False``); lowered further where
            the hull would exceed ``2^27`` floats.
        precision: matmul precision.

    Returns:
        :class:`Stationarity` (``measure ()``, ``num_kinks``, ``num_pieces``, ``complete``, ``kink_tol``).

    Example:
        >>> x, g = unit_circle_example(jnp.float64)
        >>> cert = stationarity_certificate(unit_circle_rank_two_direction(jnp.float64), x, g)
        >>> float(cert.measure) < 1e-12, cert.num_kinks
        (True, 16)

    References:
        Clarke, "Optimization and Nonsmooth Analysis" (1983); Bolte and Pauwels, Math. Program. 188 (2021);
        [math §6.5.1](https://jaxspec.github.io/jaxspec/math/#s6).
    """
    params = _check_layers(params)
    check_choice("activation", activation, ACTIVATIONS)
    x, g = check_data(unit_layers(params), x, g)
    kink_tol = resolve_kink_tol(kink_tol, x.dtype)
    integer = isinstance(max_kinks, (int, np.integer)) and not isinstance(max_kinks, bool)
    if not integer or not 0 <= max_kinks <= 16:
        raise InputError(f"max_kinks must be an integer in [0, 16], got {max_kinks!r}")
    depth = len(params)
    speed = float(balanced_speed(params, x, g, activation=activation, precision=precision))

    margins, outgoing, positive = (np.asarray(a) for a in _kinks(params, x, activation, precision))
    hidden = [layer_weight(p).shape[0] for p in params[:-1]]
    layer_of = np.repeat(np.arange(len(hidden)), hidden)
    # A layer whose input is exactly 0 has every pre-activation at 0, but its slopes matter only if the layer
    # before has a kink at that input too (else the input stays 0 nearby and all its pieces coincide).
    eligible = np.zeros(margins.shape, bool)
    previous = np.zeros(x.shape[0], bool)
    for l in range(len(hidden)):
        cols = layer_of == l
        m = margins[:, cols]
        near = ((m >= 0) & (m <= kink_tol)) | ((m < 0) & previous[:, None])
        eligible[:, cols] = near & (outgoing[:, cols] > kink_tol) & (activation != "linear")
        previous = eligible[:, cols].any(axis=1)
    margins = np.maximum(margins, 0.0)
    counts = eligible.sum(axis=1)
    # An input whose kinks all lie in one layer: its gradient is affine in their slopes (the layer appears
    # once in the chain rule), so the hull of its 2^k pieces is a sum of k segments, k + 1 gradients.
    # Kinks in several layers: multilinear, all 2^k pieces (at most max_kinks kinks, the nearest).
    layers_hit = np.stack([eligible[:, layer_of == l].any(axis=1) for l in range(len(hidden))], axis=1)
    single = layers_hit.sum(axis=1) <= 1 if hidden else np.ones(x.shape[0], bool)
    num_params = sum(int(np.size(leaf)) for leaf in jax.tree.leaves(params))
    # The hull is held in memory: fewer kinks per multi-layer input (the nearest) when it would not fit.
    cap = max_kinks
    while cap > 0 and _held(counts, single, cap) * num_params > _HULL_BUDGET:
        cap -= 1
    kinks = np.where(single, counts, np.minimum(counts, cap))
    order = np.argsort(np.where(eligible, margins, np.inf), axis=1, kind="stable")
    constant = np.zeros(num_params)
    groups = []
    for segments in (True, False):
        inputs = np.flatnonzero(single == segments)
        if inputs.size == 0:
            continue
        k = int(kinks[inputs].max())
        if segments:
            bits = np.concatenate([np.zeros((1, k), np.int32), np.eye(k, dtype=np.int32)])
        else:
            bits = (np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1
        valid = np.arange(k)[None, :] < kinks[:, None]
        # Equal chunks of bounded memory: one compilation per kind.
        chunk = int(min(inputs.size, max(1, _PIECE_BUDGET // (bits.shape[0] * num_params))))
        padded = np.resize(inputs, -(-inputs.size // chunk) * chunk)
        for start in range(0, inputs.size, chunk):
            idx = padded[start : start + chunk]
            gradients = np.asarray(
                _piece_gradients(
                    params,
                    x[idx],
                    g[idx],
                    jnp.asarray(order[idx, :k], jnp.int32),
                    jnp.asarray(valid[idx]),
                    jnp.asarray(positive[idx]),
                    jnp.asarray(bits),
                    activation,
                    precision,
                ),
                np.float64,
            )[: inputs.size - start]  # (inputs, M, P)
            for j, rows in zip(idx, gradients, strict=False):
                constant += rows[0]
                if kinks[j] == 0:
                    continue
                scale = max(float(np.abs(rows).max()), np.finfo(float).tiny)
                if segments:
                    for step in rows[1 : 1 + kinks[j]] - rows[0]:
                        if np.abs(step).max() > 1e-12 * scale:
                            groups.append(np.stack([np.zeros_like(step), step]))
                    continue
                _, keep = np.unique(np.round(rows / scale, 12), axis=0, return_index=True)
                rows = rows[np.sort(keep)] - rows[0]
                if rows.shape[0] > 1:
                    groups.append(rows)
    norm, _ = min_norm_point(constant, groups)
    measure = norm / (np.sqrt(depth) * speed) if speed > 0 else np.inf
    return Stationarity(
        measure=jnp.asarray(measure, x.dtype),
        num_kinks=int(kinks.sum()),
        num_pieces=int(sum(2 ** int(k) for k in kinks)),
        complete=bool(np.all(single | (counts <= cap))),
        kink_tol=kink_tol,
    )
