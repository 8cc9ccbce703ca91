"""Spectral quantities tracked during training: end-to-end modes, layer spectra, alignment, balance, factors.

All functions are pure and jit-compatible; :func:`make_tracker` bundles them into the ``track_fn`` that
:func:`jaxspec.training.train` evaluates every ``log_every`` steps.

Per-mode factors. For layers sharing a singular basis, ``W_l = P_l diag(a_{l,r}) P_{l-1}^T``, the end-to-end
singular value is ``sigma_r = prod_l a_{l,r}`` and ``d sigma_r / d W_l = (prod_{m != l} a_{m,r}) p_{l,r}
p_{l-1,r}^T``. We therefore *define* the factors of any model from the layer gradients
``n_{l,r} = ||d sigma_r / d W_l||_F`` (the gradient of ``u_r^T E v_r`` with the singular vectors held fixed):
``a_{l,r}`` proportional to ``sigma_r / n_{l,r}``, normalised so that ``prod_l a_{l,r} = sigma_r`` (see
:func:`mode_factors`). This equals the shared-basis factor exactly when the ansatz holds and needs no choice
of hidden bases. The mode kernel ``K_r = sum_l n_{l,r}^2`` is the exact diagonal of the end-to-end tangent
kernel, the rate in ``d sigma_r/dt = K_r g_r + (cross-mode terms)``; the shared-basis law has
``K_r = sigma_r^2 sum_l a_{l,r}^{-2}``.

Sign convention. Singular vectors are returned with the largest-magnitude entry of each ``u_r`` positive
(``v_r`` flipped with it), so trajectories are continuous and comparable with numpy.

References:
    Arora, Cohen, Golowich, Hu, "A convergence analysis of gradient descent for deep linear neural networks",
    ICLR 2019, arXiv:1810.02281 (balancedness). Arora, Cohen, Hu, Luo, "Implicit regularization in deep matrix
    factorization", NeurIPS 2019, arXiv:1905.13655 (singular-value dynamics).
    Haas, Gatine, Cosse, Bouraoui, arXiv:2602.12384 (alignment, decoupled dynamics).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxspec._checks import HIGHEST, InputError
from jaxspec.training._models import Model, Params, end_to_end_fn, weight_matrices


def fix_signs(
    u: Float[Array, "m k"], v: Float[Array, "n k"]
) -> tuple[Float[Array, "m k"], Float[Array, "n k"]]:
    """Flip each pair ``(u_r, v_r)`` so that the largest-magnitude entry of ``u_r`` is positive.

    Args:
        u: ``(m, k)`` left singular vectors (columns).
        v: ``(n, k)`` right singular vectors (columns).

    Returns:
        ``(u, v)`` with the same shapes.

    Example:
        >>> u, v = fix_signs(-jnp.eye(2), 2.0 * jnp.eye(2))
        >>> u.diagonal().tolist(), v.diagonal().tolist()
        ([1.0, 1.0], [-2.0, -2.0])
    """
    index = jnp.argmax(jnp.abs(u), axis=0)
    sign = jnp.sign(u[index, jnp.arange(u.shape[1])])
    sign = jnp.where(sign == 0, 1.0, sign).astype(u.dtype)
    return u * sign[None, :], v * sign[None, :]


def end_to_end_svd(
    matrix: Float[Array, "m n"], k: int
) -> tuple[Float[Array, " k"], Float[Array, "m k"], Float[Array, "n k"]]:
    """Top-``k`` singular triplets of an end-to-end map.

    Args:
        matrix: ``(m, n)``.
        k: number of modes, ``k <= min(m, n)``.

    Returns:
        ``sigma (k,)`` descending, ``u (m, k)``, ``v (n, k)`` (sign convention of :func:`fix_signs`).

    Example:
        >>> s, u, v = end_to_end_svd(jnp.diag(jnp.array([3.0, 1.0])), 1)
    """
    u, s, vt = jnp.linalg.svd(matrix, full_matrices=False)
    u, v = fix_signs(u[:, :k], vt[:k].T)
    return s[:k], u, v


def layer_singular_values(weights: list[Float[Array, "n_out n_in"]]) -> Float[Array, "L K"]:
    """Singular values of each layer, ``(L, K)`` with ``K = max_l min(n_l, n_{l-1})``, NaN-padded.

    Example:
        >>> layer_singular_values([jnp.diag(jnp.array([2.0, 1.0])), jnp.ones((1, 2))]).shape
        (2, 2)
    """
    size = max(min(w.shape) for w in weights)
    rows = []
    for w in weights:
        s = jnp.linalg.svd(w, compute_uv=False)
        rows.append(jnp.concatenate([s, jnp.full((size - s.shape[0],), jnp.nan, s.dtype)]))
    return jnp.stack(rows)


def adjacent_alignment(weights: list[Float[Array, "n_out n_in"]], k: int) -> Float[Array, "L-1 k"]:
    """``|<v_r(W_{l+1}), u_r(W_l)>|`` for ``r = 1..k`` and every adjacent pair, ``(L - 1, k)``.

    A value of 1 means the input-side singular vector of the next layer is the output-side singular vector of
    this one (the shared-basis ansatz).

    References:
        Haas et al., arXiv:2602.12384 (alignment from separation, [math §3](https://jaxspec.github.io/jaxspec/math/#s3)).
    """
    if len(weights) < 2:
        return jnp.zeros((0, k), weights[0].dtype)
    svds = [jnp.linalg.svd(w, full_matrices=False) for w in weights]
    rows = []
    for l in range(len(weights) - 1):
        u_lower = svds[l][0][:, :k]  # (n_l, k): left vectors of W_l
        v_upper = svds[l + 1][2][:k].T  # (n_l, k): right vectors of W_{l+1}
        rows.append(jnp.abs(jnp.sum(u_lower * v_upper, axis=0)))
    return jnp.stack(rows)


def balancedness(weights: list[Float[Array, "n_out n_in"]]) -> list[Float[Array, "n n"]]:
    """The matrices ``W_{l+1}^T W_{l+1} - W_l W_l^T``, each ``(n_l, n_l)`` (zero for a balanced network).

    Gradient flow on a deep linear network conserves each of them exactly.

    References:
        Arora et al., arXiv:1810.02281; Du, Hu, Lee, arXiv:1806.00900.
    """
    return [
        jnp.matmul(b.T, b, precision=HIGHEST) - jnp.matmul(a, a.T, precision=HIGHEST)
        for a, b in zip(weights[:-1], weights[1:], strict=True)
    ]


def balancedness_norms(weights: list[Float[Array, "n_out n_in"]]) -> Float[Array, " L-1"]:
    """Frobenius norms of :func:`balancedness`, ``(L - 1,)``.

    Example:
        >>> balancedness_norms([jnp.eye(2), jnp.eye(2)]).tolist()
        [0.0]
    """
    if len(weights) < 2:
        return jnp.zeros((0,), weights[0].dtype)
    return jnp.stack([jnp.linalg.norm(d) for d in balancedness(weights)])


def mode_factors(
    end_to_end: Callable[[Params], Float[Array, "d_out d_in"]],
    params: Params,
    sigma: Float[Array, " k"],
    u: Float[Array, "d_out k"],
    v: Float[Array, "d_in k"],
) -> tuple[Float[Array, "L k"], Float[Array, " k"]]:
    """Per-mode factors ``a_{l,r}`` and the mode kernel ``K_r = sum_l ||d sigma_r / d W_l||_F^2``.

    With ``n_{l,r} = ||d (u_r^T E v_r) / d W_l||_F`` (singular vectors held fixed), the factors are
    ``a_{l,r} = sigma_r^{1/L} (prod_m n_{m,r})^{1/L} / n_{l,r}``: their product is ``sigma_r`` and their
    ratios are those of ``sigma_r / n_{l,r}``. For layers sharing a singular basis,
    ``n_{l,r} = prod_{m != l} a_{m,r}`` and this returns the shared-basis factors exactly, with
    ``K_r = sigma_r^2 sum_l a_{l,r}^{-2}``. Otherwise
    ``kappa_r = K_r / (sigma_r^2 sum_l a_{l,r}^{-2})`` (1 for shared bases) measures how far the true mode
    kernel is from the shared-basis one: gates that average over inputs make it smaller than 1.

    Args:
        end_to_end: ``params -> E (d_out, d_in)``.
        params: layer dicts (or matrices).
        sigma: ``(k,)`` singular values of ``E(params)``.
        u: ``(d_out, k)`` and ``v``: ``(d_in, k)`` the matching singular vectors.

    Returns:
        ``factors (L, k)`` (0 for a mode whose gradient vanishes in some layer) and ``kernel (k,)``.

    References:
        [math §5](https://jaxspec.github.io/jaxspec/math/#s5) (shared singular bases without balance).
    """
    _, pullback = jax.vjp(end_to_end, params)
    cotangents = jnp.einsum("ir,jr->rij", u, v)

    def layer_norms(cotangent):
        (grads,) = pullback(cotangent)
        return jnp.stack([jnp.linalg.norm(g) for g in weight_matrices(grads)])

    norms = jax.vmap(layer_norms)(cotangents).T  # (L, k)
    depth = norms.shape[0]
    ok = jnp.all(norms > 0, axis=0)
    safe = jnp.where(norms > 0, norms, 1.0)
    log_geo = jnp.mean(jnp.log(safe), axis=0)
    factors = jnp.abs(sigma)[None, :] ** (1.0 / depth) * jnp.exp(log_geo[None, :] - jnp.log(safe))
    return jnp.where(ok[None, :], factors, 0.0), jnp.sum(norms**2, axis=0)


def make_tracker(
    model: Model,
    *,
    top_k: int,
    full_map: bool = True,
    target_basis: tuple[Float[Array, "d_out k"], Float[Array, "d_in k"]] | None = None,
) -> Callable[[Params], dict[str, Array]]:
    """The ``track_fn`` of a training run.

    Args:
        model: from :func:`jaxspec.training.make_model`.
        top_k: number of end-to-end modes (and alignment modes) to follow.
        full_map: also record the full end-to-end map ``E`` (needed to start the Arora matrix prediction).
        target_basis: ``(U*, V*)`` of shapes ``(d_out, k)``, ``(d_in, k)``: also record the projections
            ``u*_r^T E v*_r`` on the target's modes.

    Returns:
        ``track_fn(params) -> dict`` with ``sigma (k,)``, ``u (d_out, k)``, ``v (d_in, k)``,
        ``factors (L, k)``, ``mode_kernel (k,)``, ``layer_sv (L, K)``, ``alignment (L-1, k')``
        (``k' = min(k, smallest width)``), ``balancedness (L-1,)``, and optionally
        ``end_to_end (d_out, d_in)`` and ``target_projection (k,)``.

    Example:
        >>> track = make_tracker(model, top_k=3)  # doctest: +SKIP
        >>> result = train(loss_fn, params, num_steps=1000, log_every=10, track_fn=track)  # doctest: +SKIP
    """
    e2e = end_to_end_fn(model)
    d_in = int(model.train_x.shape[1])
    if isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1:
        raise InputError(f"top_k must be a positive integer, got {top_k!r}")
    if target_basis is not None:
        tu, tv = (jnp.asarray(b) for b in target_basis)
        if tu.ndim != 2 or tv.ndim != 2 or tu.shape[1] != tv.shape[1] or tv.shape[0] != d_in:
            raise InputError(
                f"target_basis must be (U (d_out, k), V ({d_in}, k)), got {tu.shape}, {tv.shape}"
            )

    def track(params: Params) -> dict[str, Array]:
        weights = weight_matrices(params)
        matrix = e2e(params)
        k = min(int(top_k), *matrix.shape)
        sigma, u, v = end_to_end_svd(matrix, k)
        k_align = min(k, *(min(w.shape) for w in weights))
        factors, kernel = mode_factors(e2e, params, sigma, u, v)
        out = {
            "sigma": sigma,
            "u": u,
            "v": v,
            "factors": factors,
            "mode_kernel": kernel,
            "layer_sv": layer_singular_values(weights),
            "alignment": adjacent_alignment(weights, k_align),
            "balancedness": balancedness_norms(weights),
        }
        if full_map:
            out["end_to_end"] = matrix
        if target_basis is not None:
            out["target_projection"] = jnp.einsum(
                "ir,ij,jr->r", tu.astype(matrix.dtype), matrix, tv.astype(matrix.dtype), precision=HIGHEST
            )
        return out

    return track
