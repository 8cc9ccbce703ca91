"""Singular-vector alignment in deep products: principal angles, prefix/suffix convergence, the sandwich.

Separation forces alignment ([math §3](https://jaxspec.github.io/jaxspec/math/#s3)). For two factors with
``c = |<v_1(A), u_1(B)>|`` and ``r_X = s_2(X) / s_1(X)``,

    c  <=  s_1(AB) / (s_1(A) s_1(B))  <=  c + r_A + r_B,

so near-multiplicativity plus strong separation (small ``r``) forces the top right vector of ``A`` onto
the top left vector of ``B``. Inside one product, the top right singular vector of the prefix
``J_l = A_l ... A_1`` converges (Oseledets) with
``E log sin angle(v_1(J_l), v_1(J_L)) ~ -l (lambda_1 - lambda_2) + const``; suffix products
``A_L ... A_{l+1}`` share the output-side basis likewise.

Numerics. Every sine is the norm of a projection residual, ``sigma((I - U U^T) V)``, never
``sqrt(1 - cos^2)`` (which floors near ``1e-8``). Products are formed with per-layer rescaling (no overflow);
their top singular pairs are then accurate while ``s_k / s_1`` stays well above machine precision, which is
the regime the alignment rates live in (``log sin`` is resolved down to about ``L * eps``). Finite-depth
singular values far below ``eps * s_1`` need :func:`jaxspec.analysis.product_log_svals` instead.

All functions are pure ``jnp`` on arrays with arbitrary leading batch dimensions (inputs, seeds), or take one
product's layers and are meant to be ``vmap``-ed over seeds/inputs.

References:
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384
    (sandwich bounds, alignment from separation).
    Bjorck, Golub, "Numerical methods for computing angles between linear subspaces", Math. Comp. 1973.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxspec._checks import HIGHEST, InputError, check_int

# ----------------------------------------------------------------------------------------------------------
# Principal angles.


def subspace_sines(u: Float[Array, "*batch n p"], v: Float[Array, "*batch n q"]) -> Float[Array, "*batch r"]:
    """Sines of the principal angles between ``span(u)`` and ``span(v)``, ascending, from projection
    residuals.

    Args:
        u: ``(..., n, p)`` orthonormal columns.
        v: ``(..., n, q)`` orthonormal columns.

    Returns:
        ``(..., r)`` sines with ``r = min(p, q)``, smallest angle first: the singular values of ``(I - P) W``
        where ``W`` is the basis of the smaller subspace and ``P`` projects onto the larger.

    Example:
        >>> e = jnp.eye(3)
        >>> subspace_sines(e[:, :1], e[:, :2]).tolist()
        [0.0]

    References:
        Bjorck and Golub, Math. Comp. 27 (1973).
    """
    if u.shape[-1] < v.shape[-1]:
        u, v = v, u
    residual = v - jnp.matmul(u, jnp.matmul(jnp.swapaxes(u, -1, -2), v, precision=HIGHEST), precision=HIGHEST)
    sines = jnp.linalg.svd(residual, compute_uv=False)  # descending
    return jnp.clip(jnp.flip(sines, axis=-1), 0.0, 1.0)


def principal_angles(
    u: Float[Array, "*batch n p"], v: Float[Array, "*batch n q"]
) -> Float[Array, "*batch r"]:
    """Principal angles (radians, ascending) between ``span(u)`` and ``span(v)``.

    ``arctan2(sin, cos)`` with sines from :func:`subspace_sines` and cosines from ``svd(u^T v)``: accurate for
    small and for large angles alike (``scipy.linalg.subspace_angles`` returns the same, descending).

    Args:
        u: ``(..., n, p)`` orthonormal columns.
        v: ``(..., n, q)`` orthonormal columns.

    Returns:
        ``(..., min(p, q))`` angles in ``[0, pi/2]``.

    Example:
        >>> e = jnp.eye(2)
        >>> round(float(principal_angles(e[:, :1], jnp.array([[1.0], [1.0]]) / jnp.sqrt(2.0))[0]), 6)
        0.785398

    References:
        Bjorck and Golub, Math. Comp. 27 (1973).
    """
    cosines = jnp.linalg.svd(jnp.matmul(jnp.swapaxes(u, -1, -2), v, precision=HIGHEST), compute_uv=False)
    cosines = jnp.clip(cosines[..., : min(u.shape[-1], v.shape[-1])], 0.0, 1.0)  # descending
    return jnp.arctan2(subspace_sines(u, v), cosines)


def top_singular_pairs(
    m: Float[Array, "*batch a b"], k: int
) -> tuple[Float[Array, "*batch a k"], Float[Array, "*batch k"], Float[Array, "*batch b k"]]:
    """Top-``k`` singular triplets of ``(..., a, b)`` matrices.

    Args:
        m: ``(..., a, b)`` matrices.
        k: number of triplets, ``k <= min(a, b)``.

    Returns:
        ``(u (..., a, k), s (..., k), v (..., b, k))``, singular values descending.

    Example:
        >>> [x.shape for x in top_singular_pairs(jnp.ones((3, 4)), 2)]
        [(3, 2), (2,), (4, 2)]
    """
    if jnp.ndim(m) < 2:
        raise InputError(f"m must be (..., a, b) matrices, got shape {jnp.shape(m)}")
    k = check_int("k", k, minimum=1, maximum=min(m.shape[-2:]))
    u, s, vt = jnp.linalg.svd(m, full_matrices=False)
    return u[..., :k], s[..., :k], jnp.swapaxes(vt, -1, -2)[..., :k]


# ----------------------------------------------------------------------------------------------------------
# Rescaled products of masked layers.


def _real_array(name: str, value, kinds: str = "iuf") -> jax.Array:
    """``value`` as a real JAX array (tracers pass); complex and non-numeric input is refused."""
    dtype = value.dtype if isinstance(value, jax.Array) else np.asarray(value).dtype
    if dtype.kind not in kinds:
        raise InputError(f"{name} must hold real numbers, got {dtype} values")
    return jnp.asarray(value)


def _layer_matrices(
    weights: Float[Array, "L n n"], masks: Float[Array, "L n"] | None
) -> Float[Array, "L n n"]:
    weights = _real_array("weights", weights)
    masks = None if masks is None else _real_array("masks", masks, "iufb")
    if weights.ndim != 3 or weights.shape[1] != weights.shape[2] or 0 in weights.shape:
        raise InputError(f"weights must be (L, n, n) stacked layers, got shape {weights.shape}")
    if masks is None:
        return weights
    if masks.shape != weights.shape[:2]:
        raise InputError(f"masks must have shape {weights.shape[:2]}, got {masks.shape}")
    return masks[..., None] * weights


def scaled_product(
    weights: Float[Array, "L n n"], masks: Float[Array, "L n"] | None = None
) -> tuple[Float[Array, "n n"], Float[Array, ""]]:
    """``M = A_L ... A_1`` as ``exp(log_scale) * M_hat`` with ``||M_hat||_F = 1`` (per-layer rescaling).

    Args:
        weights: ``(L, n, n)`` layers ``W_l`` (the first applied first).
        masks: ``(L, n)`` gates ``d_l`` or ``None``.

    Returns:
        ``(M_hat (n, n), log_scale ())``.

    Example:
        >>> m_hat, log_scale = scaled_product(jnp.stack([2.0 * jnp.eye(2)] * 3))
        >>> round(float(log_scale), 4), round(float(jnp.linalg.norm(m_hat)), 4)
        (2.426, 1.0)
    """
    prefixes, scales = scaled_prefix_products(weights, masks)
    return prefixes[-1], scales[-1]


def _rescaled_products(
    layers: Float[Array, "L n n"], *, from_the_left: bool
) -> tuple[Float[Array, "L n n"], Float[Array, " L"]]:
    """Running products ``A_l M`` (``from_the_left``, first layer first) or ``M A_l`` (last layer first), each
    divided by its Frobenius norm, whose logarithm accumulates in the scale."""
    start = jnp.eye(layers.shape[-2], layers.shape[-1], dtype=layers.dtype)

    def body(carry, a):
        m, log_scale = carry
        m = jnp.matmul(a, m, precision=HIGHEST) if from_the_left else jnp.matmul(m, a, precision=HIGHEST)
        norm = jnp.linalg.norm(m)
        safe = jnp.where(norm > 0, norm, 1.0)
        carry = (m / safe, log_scale + jnp.log(safe))
        return carry, carry

    _, (products, scales) = jax.lax.scan(
        body, (start, jnp.zeros((), layers.dtype)), layers, reverse=not from_the_left
    )
    return products, scales


def scaled_prefix_products(
    weights: Float[Array, "L n n"], masks: Float[Array, "L n"] | None = None
) -> tuple[Float[Array, "L n n"], Float[Array, " L"]]:
    """Every prefix ``J_l = A_l ... A_1`` (``l = 1..L``), rescaled.

    Args:
        weights: ``(L, n, n)`` layers ``W_l`` (the first applied first).
        masks: ``(L, n)`` gates ``d_l`` or ``None``.

    Returns:
        ``(J_hat (L, n, n), log_scale (L,))``, index ``l - 1`` holding ``J_l = exp(log_scale) J_hat``.

    Example:
        >>> prefixes, scales = scaled_prefix_products(jnp.stack([2.0 * jnp.eye(2)] * 3))
        >>> [round(float(s), 4) for s in scales]
        [1.0397, 1.7329, 2.426]
    """
    return _rescaled_products(_layer_matrices(weights, masks), from_the_left=True)


def scaled_suffix_products(
    weights: Float[Array, "L n n"], masks: Float[Array, "L n"] | None = None
) -> tuple[Float[Array, "L n n"], Float[Array, " L"]]:
    """Every suffix ``S_l = A_L ... A_{l+1}`` for ``l = 0..L-1`` (``S_0`` is the whole product), rescaled.

    Args:
        weights: ``(L, n, n)`` layers ``W_l`` (the first applied first).
        masks: ``(L, n)`` gates ``d_l`` or ``None``.

    Returns:
        ``(S_hat (L, n, n), log_scale (L,))``, index ``l`` holding ``S_l``.
    """
    # Scanned from the last layer down: after layer l (0-based) the carry is A_L ... A_l = S_{l-1}.
    return _rescaled_products(_layer_matrices(weights, masks), from_the_left=False)


# ----------------------------------------------------------------------------------------------------------
# Alignment along depth.


def prefix_alignment(
    weights: Float[Array, "L n n"], masks: Float[Array, "L n"] | None = None, k: int = 1
) -> Float[Array, "L k"]:
    """Sines of the principal angles between the top-``k`` right singular subspaces of ``J_l`` and ``J_L``.

    Args:
        weights: ``(L, n, n)`` layers of one product (vmap over seeds/inputs).
        masks: ``(L, n)`` gates or ``None``.
        k: subspace dimension.

    Returns:
        ``(L, k)`` sines, row ``l - 1`` for the prefix ``J_l`` (the last row is 0). For ``k = 1`` the single
        column is ``sin angle(v_1(J_l), v_1(J_L))``, with ``E log`` of it ``~ -l (lambda_1 - lambda_2)``.

    Example:
        >>> w = jax.random.normal(jax.random.key(0), (50, 4, 4)) / 2.0
        >>> prefix_alignment(w).shape
        (50, 1)

    References:
        Haas et al., arXiv:2602.12384 (alignment of intermediate Jacobians).
    """
    prefixes, _ = scaled_prefix_products(weights, masks)
    _, _, v = top_singular_pairs(prefixes, k)
    return subspace_sines(v, jnp.broadcast_to(v[-1], v.shape))


def suffix_alignment(
    weights: Float[Array, "L n n"], masks: Float[Array, "L n"] | None = None, k: int = 1
) -> Float[Array, "L k"]:
    """Sines between the top-``k`` left singular subspaces of suffixes ``S_l = A_L ... A_{l+1}`` and of
    ``J_L``.

    Args:
        weights: ``(L, n, n)`` layers of one product (vmap over seeds/inputs).
        masks: ``(L, n)`` gates or ``None``.
        k: subspace dimension.

    Returns:
        ``(L, k)`` sines, row ``l`` for ``S_l`` (``l = 0..L-1``; row 0 is the whole product, so 0).
        ``E log sin ~ -(L - l)(lambda_1 - lambda_2)``.

    References:
        Haas et al., arXiv:2602.12384 (alignment of intermediate Jacobians).
    """
    suffixes, _ = scaled_suffix_products(weights, masks)
    u, _, _ = top_singular_pairs(suffixes, k)
    return subspace_sines(u, jnp.broadcast_to(u[0], u.shape))


# ----------------------------------------------------------------------------------------------------------
# The sandwich.


class SandwichResult(NamedTuple):
    """``s_1(AB) / (s_1(A) s_1(B))`` and its bounds ([math §3](https://jaxspec.github.io/jaxspec/math/#s3)).

    Every field has the batch shape ``(...)`` of the inputs.

    Attributes:
        ratio: ``s_1(AB) / (s_1(A) s_1(B))`` (in ``[0, 1]``).
        overlap: ``c = |<v_1(A), u_1(B)>|``, the lower bound.
        r_a: ``s_2(A) / s_1(A)``.
        r_b: ``s_2(B) / s_1(B)``.
        upper: ``c + r_a + r_b``.
    """

    ratio: Float[Array, "*batch"]
    overlap: Float[Array, "*batch"]
    r_a: Float[Array, "*batch"]
    r_b: Float[Array, "*batch"]
    upper: Float[Array, "*batch"]

    @property
    def lower(self) -> Float[Array, "*batch"]:
        """The lower bound ``c`` (the overlap)."""
        return self.overlap


def sandwich_from_parts(
    log_s1_ab: Float[Array, "*batch"],
    log_s_a: Float[Array, "*batch 2"],
    log_s_b: Float[Array, "*batch 2"],
    v1_a: Float[Array, "*batch n"],
    u1_b: Float[Array, "*batch n"],
) -> SandwichResult:
    """The sandwich from log singular values and top vectors (for products too deep to form).

    Args:
        log_s1_ab: ``(...)`` ``log s_1(AB)``.
        log_s_a: ``(..., 2)`` ``log s_1(A), log s_2(A)``.
        log_s_b: ``(..., 2)`` ``log s_1(B), log s_2(B)``.
        v1_a: ``(..., n)`` top right singular vector of ``A``.
        u1_b: ``(..., n)`` top left singular vector of ``B``.

    Returns:
        :class:`SandwichResult`.

    References:
        Haas et al., arXiv:2602.12384 ([math §3](https://jaxspec.github.io/jaxspec/math/#s3)).
    """
    ratio = jnp.exp(log_s1_ab - log_s_a[..., 0] - log_s_b[..., 0])
    overlap = jnp.abs(jnp.sum(v1_a * u1_b, axis=-1))
    r_a = jnp.exp(log_s_a[..., 1] - log_s_a[..., 0])
    r_b = jnp.exp(log_s_b[..., 1] - log_s_b[..., 0])
    return SandwichResult(ratio, overlap, r_a, r_b, overlap + r_a + r_b)


def _rescaled_sandwich(
    a: Float[Array, "*batch m n"],
    b: Float[Array, "*batch n p"],
    log_scale_a: Float[Array, "*batch"] | None = None,
    log_scale_b: Float[Array, "*batch"] | None = None,
) -> SandwichResult:
    """The sandwich of ``(e^{log_scale_a} a)(e^{log_scale_b} b)`` from the factors (``None``: no scale)."""
    _, s_a, v_a = top_singular_pairs(a, 2)
    u_b, s_b, _ = top_singular_pairs(b, 2)
    s_ab = jnp.linalg.svd(jnp.matmul(a, b, precision=HIGHEST), compute_uv=False)[..., 0]
    log_s1_ab, log_s_a, log_s_b = jnp.log(s_ab), jnp.log(s_a), jnp.log(s_b)
    if log_scale_a is not None:
        log_s1_ab, log_s_a = log_s1_ab + log_scale_a, log_s_a + log_scale_a[..., None]
    if log_scale_b is not None:
        log_s1_ab, log_s_b = log_s1_ab + log_scale_b, log_s_b + log_scale_b[..., None]
    return sandwich_from_parts(log_s1_ab, log_s_a, log_s_b, v_a[..., 0], u_b[..., 0])


def sandwich(a: Float[Array, "*batch m n"], b: Float[Array, "*batch n p"]) -> SandwichResult:
    """``s_1(AB) / (s_1(A) s_1(B))`` with its bounds ``c <= ratio <= c + r_A + r_B``, for dense matrices.

    Args:
        a: ``(..., m, n)``.
        b: ``(..., n, p)`` (``n >= 2`` and ``min(m, n), min(n, p) >= 2`` for the ratios ``r``).

    Returns:
        :class:`SandwichResult` with ``(...)`` arrays.

    Example:
        >>> a = jax.random.normal(jax.random.key(0), (6, 6))
        >>> b = jax.random.normal(jax.random.key(1), (6, 6))
        >>> res = sandwich(a, b)
        >>> bool(res.overlap <= res.ratio <= res.upper)
        True

    References:
        Haas et al., arXiv:2602.12384 ([math §3](https://jaxspec.github.io/jaxspec/math/#s3)).
    """
    return _rescaled_sandwich(a, b)


class SegmentAlignment(NamedTuple):
    """Alignment between consecutive segments of one product (``S - 1`` adjacent pairs).

    Segment ``j`` is ``P_j = A_{b_{j+1}} ... A_{b_j + 1}``; pair ``j`` is ``A = P_{j+1}`` after ``B = P_j``.

    Attributes:
        sandwich: :class:`SandwichResult`, each field ``(S - 1,)``.
        overlaps: ``(S - 1, k, k)`` ``V_{j+1}^T U_j``: right top-``k`` basis of the later segment against the
            left top-``k`` basis of the earlier one (near a signed permutation when aligned; entries
            ``~ 1/sqrt(n)`` for independent segments).
        log_svals: ``(S, k)`` ``log s_i`` of each segment.
    """

    sandwich: SandwichResult
    overlaps: Float[Array, "S-1 k k"]
    log_svals: Float[Array, "S k"]


def segment_alignment(
    weights: Float[Array, "L n n"], masks: Float[Array, "L n"] | None, boundaries: Sequence[int], k: int = 2
) -> SegmentAlignment:
    """Sandwich ratios and overlap matrices for a split of one product into consecutive segments.

    Args:
        weights: ``(L, n, n)`` layers (vmap over seeds/inputs).
        masks: ``(L, n)`` gates or ``None``.
        boundaries: ``0 = b_0 < b_1 < ... < b_S = L`` (static), the segment edges.
        k: size of the overlap matrices (``>= 2``: the sandwich needs ``s_2``).

    Returns:
        :class:`SegmentAlignment`.

    Example:
        >>> w = jax.random.normal(jax.random.key(0), (30, 6, 6)) / jnp.sqrt(6.0)
        >>> segment_alignment(w, None, (0, 10, 20, 30)).overlaps.shape
        (2, 2, 2)

    References:
        Haas et al., arXiv:2602.12384 ([math §3](https://jaxspec.github.io/jaxspec/math/#s3)).
    """
    b = [check_int("boundaries[...]", x, minimum=0) for x in boundaries]
    depth = weights.shape[0]
    if len(b) < 3 or b[0] != 0 or b[-1] != depth or any(x >= y for x, y in zip(b[:-1], b[1:], strict=True)):
        raise InputError(f"boundaries must increase from 0 to L={depth} with at least two segments, got {b}")
    k = check_int("k", k, minimum=2, maximum=weights.shape[-1])
    mats, scales = [], []
    for lo, hi in zip(b[:-1], b[1:], strict=True):
        m, s = scaled_product(weights[lo:hi], None if masks is None else masks[lo:hi])
        mats.append(m)
        scales.append(s)
    mats = jnp.stack(mats)
    scales = jnp.stack(scales)
    u, s, v = top_singular_pairs(mats, k)
    log_s = jnp.log(s) + scales[:, None]
    pair_prod = jnp.matmul(mats[1:], mats[:-1], precision=HIGHEST)
    log_s1_ab = jnp.log(jnp.linalg.svd(pair_prod, compute_uv=False)[:, 0]) + scales[1:] + scales[:-1]
    result = sandwich_from_parts(log_s1_ab, log_s[1:, :2], log_s[:-1, :2], v[1:, :, 0], u[:-1, :, 0])
    overlaps = jnp.matmul(jnp.swapaxes(v[1:], -1, -2), u[:-1], precision=HIGHEST)
    return SegmentAlignment(result, overlaps, log_s)


def split_sandwich(
    weights: Float[Array, "L n n"], masks: Float[Array, "L n"] | None, split: int
) -> SandwichResult:
    """The sandwich for segments of growing depth ``d`` on either side of a split point of one product.

    ``B_d = A_split ... A_{split-d+1}`` (the ``d`` layers before the split) and ``A_d = A_{split+d} ...
    A_{split+1}`` (the ``d`` layers after it), for ``d = 1..min(split, L - split)``; all depths come from one
    forward and one backward scan of rescaled products.

    Args:
        weights: ``(L, n, n)`` layers (vmap over seeds/inputs).
        masks: ``(L, n)`` gates or ``None``.
        split: the split point (static), ``1 <= split <= L - 1``.

    Returns:
        :class:`SandwichResult`, each field ``(D,)`` with ``D = min(split, L - split)``, entry ``d - 1`` for
        segments of depth ``d``.

    Example:
        >>> w = jax.random.normal(jax.random.key(0), (40, 6, 6)) / jnp.sqrt(6.0)
        >>> split_sandwich(w, None, 20).ratio.shape
        (20,)
    """
    depth = weights.shape[0]
    if depth < 2:
        raise InputError(f"a split needs at least two layers, got weights of shape {weights.shape}")
    split = check_int("split", split, minimum=1, maximum=depth - 1)
    count = min(split, depth - split)
    after, after_scale = scaled_prefix_products(
        weights[split : split + count], None if masks is None else masks[split : split + count]
    )
    # Suffixes of the layers before the split, reversed so that index d - 1 holds the last d layers.
    before, before_scale = scaled_suffix_products(
        weights[split - count : split], None if masks is None else masks[split - count : split]
    )
    before, before_scale = before[::-1], before_scale[::-1]
    return _rescaled_sandwich(after, before, after_scale, before_scale)
