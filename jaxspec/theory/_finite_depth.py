"""Finite depth: offsets of the true singular values, gaps, separation and alignment rates.

For a rotation-invariant product on ``R^N`` (Gaussian, or Gaussian behind gates independent of the weights),
once ``L * gap >> 1`` ([math §2](https://jaxspec.github.io/jaxspec/math/#s2))

    E log s_i(M_L) = L lambda_i + c_i,    c_i = (1/2)[psi((N - i + 1)/2) - psi(i/2)],

independent of ``p`` and ``sigma2``. Why: for a Haar frame ``Q`` independent of ``M``, the QR sums
``sum_l log|R_ii|`` (unbiased for ``L lambda_i``) equal ``log s_i(M) + Delta_i`` with
``Delta_i = log|det B_i| - log|det B_{i-1}|``, ``B_i`` the top-left ``i x i`` block of a Haar orthogonal
matrix; Wilks' decomposition ``|det B_i|^2 ~ prod_{j<=i} Beta((i+1-j)/2, (N-i)/2)`` gives
``E Delta_i = -c_i``. Hence ``(1/L) log s_i(M_L)`` is biased by ``c_i / L`` while the QR estimator is not.

Gaps ``lambda_i - lambda_{i+1}`` set the growth rate of ``log(s_i/s_{i+1})``; ``lambda_1 - lambda_2`` is also
the alignment slope: ``E log sin angle(v_1(J_l), v_1(J_L)) ~ -l (lambda_1 - lambda_2) + const`` (Oseledets).

References:
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384;
    Wilks, "Certain generalizations in the analysis of variance", Biometrika 24 (1932).
"""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike, Float
from scipy import special

from jaxspec._checks import InputError, check_int, check_real
from jaxspec.theory._validation import check_depth_value, check_k


def singular_value_offsets(n: int, k: int | None = None) -> Float[np.ndarray, " k"]:
    """``(k,)`` offsets ``c_i = (1/2)[psi((n-i+1)/2) - psi(i/2)]`` of ``E log s_i(M_L) = L lambda_i + c_i``.

    Args:
        n: input width ``n_0`` of the product (the dimension of the Haar frame).
        k: number of indices (default ``n``).

    Returns:
        ``(k,)`` float64 offsets; ``c_{n+1-i} = -c_i``.

    Example:
        >>> np.round(singular_value_offsets(8, 4), 5)
        array([1.60981, 0.84019, 0.44315, 0.14019])

    References:
        Haas et al., arXiv:2602.12384 (finite-depth corrections;
        [math §2](https://jaxspec.github.io/jaxspec/math/#s2)).
    """
    k = check_k(k, n)
    n = int(n)
    i = np.arange(1, k + 1)
    return 0.5 * (special.digamma((n - i + 1) / 2.0) - special.digamma(i / 2.0))


def predicted_log_svals(
    exponents: Float[ArrayLike, " k"], offsets: Float[ArrayLike, " k"], depth: float | Float[ArrayLike, "*D"]
) -> Float[np.ndarray, "*D k"]:
    """``E log s_i(M_L) ~ L lambda_i + c_i`` for one depth (``(k,)``) or an array of depths (``(D, k)``).

    Valid once ``L * gap >> 1``. For every prefix ``l = 1..L`` of one product pass ``np.arange(1, L + 1)``.

    Args:
        exponents: ``(k,)`` Lyapunov exponents ``lambda_i``.
        offsets: ``(k,)`` finite-depth offsets ``c_i`` (:func:`singular_value_offsets`).
        depth: a depth ``L`` or an array of depths ``(D,)`` (any shape).

    Returns:
        ``(k,)`` for a scalar depth, ``(D, k)`` for an array of depths (float64).

    Example:
        >>> predicted_log_svals([-0.1, -0.2], [1.0, 0.5], np.array([10, 20])).round(6).tolist()
        [[0.0, -1.5], [-1.0, -3.5]]

    References:
        Haas et al., arXiv:2602.12384 ([math §2](https://jaxspec.github.io/jaxspec/math/#s2)).
    """
    exponents = _exponent_array(exponents)
    offsets = np.asarray(check_real("offsets", offsets, allow_array=True), float)
    if offsets.shape != exponents.shape:
        raise InputError(f"offsets must have the shape of exponents {exponents.shape}, got {offsets.shape}")
    depth = np.asarray(check_depth_value(depth), float)
    with np.errstate(invalid="ignore"):  # 0 x -inf at depth 0 of a collapsed index
        return depth[..., None] * exponents + offsets


def _exponent_array(exponents) -> np.ndarray:
    """A ``(k,)`` float64 array of real exponents (``-inf`` marks a collapsed index, NaN an unknown one)."""
    if isinstance(exponents, (str, bytes)):
        raise InputError(f"exponents must be a (k,) array of real numbers, got {exponents!r}")
    try:
        array = np.asarray(exponents)
    except Exception:  # noqa: BLE001
        raise InputError(f"exponents must be a (k,) array of real numbers, got {exponents!r}") from None
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iuf":
        raise InputError(f"exponents must be a (k,) array of real numbers, got {exponents!r}")
    return array.astype(float)


def spectral_gaps(exponents: Float[ArrayLike, " k"]) -> Float[np.ndarray, " k-1"]:
    """``(k-1,)`` gaps ``lambda_i - lambda_{i+1}`` (the per-layer growth rates of ``log(s_i/s_{i+1})``).

    Example:
        >>> from jaxspec.theory import gaussian_exponents
        >>> np.round(spectral_gaps(gaussian_exponents(4)), 6)
        array([0.193147, 0.306853, 0.693147])
    """
    exponents = _exponent_array(exponents)
    with np.errstate(invalid="ignore"):  # -inf - (-inf): no gap between two collapsed indices (NaN)
        return exponents[:-1] - exponents[1:]


def separation_rate(exponents: Float[ArrayLike, " k"], i: int = 1) -> float:
    """Per-layer growth rate of ``log(s_i/s_{i+1})``: ``lambda_i - lambda_{i+1}`` (``i`` 1-based, ``< k``).

    Example:
        >>> separation_rate([-0.1, -0.3, -0.6], 2)
        0.3
    """
    exponents = _exponent_array(exponents)
    if exponents.shape[0] < 2:
        raise InputError(f"a separation rate needs at least two exponents, got {exponents.shape[0]}")
    i = check_int("i", i, minimum=1, maximum=exponents.shape[0] - 1)
    with np.errstate(invalid="ignore"):
        return float(exponents[i - 1] - exponents[i])


def alignment_slope(exponents: Float[ArrayLike, " k"]) -> float:
    """``lambda_1 - lambda_2``: ``E log sin angle(v_1(J_l), v_1(J_L)) ~ -l (lambda_1 - lambda_2) + const``.

    References:
        Oseledets (1968); Haas et al., arXiv:2602.12384 ([math §3](https://jaxspec.github.io/jaxspec/math/#s3)).
    """
    return separation_rate(exponents, 1)


def predicted_separation(
    exponents: Float[ArrayLike, " k"], offsets: Float[ArrayLike, " k"], depth: float | Float[ArrayLike, "*D"]
) -> Float[np.ndarray, "*D k-1"]:
    """``E log(s_i/s_{i+1}) ~ L (lambda_i - lambda_{i+1}) + c_i - c_{i+1}``: ``(k-1,)`` or ``(D, k-1)``.

    Args:
        exponents: ``(k,)`` Lyapunov exponents.
        offsets: ``(k,)`` finite-depth offsets.
        depth: a depth or an array of depths (as for :func:`predicted_log_svals`).

    Returns:
        ``(k-1,)`` for a scalar depth, ``(D, k-1)`` for an array of depths.

    Example:
        >>> predicted_separation([-0.1, -0.2], [1.0, 0.5], np.arange(1, 5))[:, 0].round(6).tolist()
        [0.6, 0.7, 0.8, 0.9]

    References:
        Haas et al., arXiv:2602.12384 ([math §2](https://jaxspec.github.io/jaxspec/math/#s2)).
    """
    pred = predicted_log_svals(exponents, offsets, depth)
    with np.errstate(invalid="ignore"):
        return pred[..., :-1] - pred[..., 1:]


def separation_depth(
    exponents: Float[ArrayLike, " k"], offsets: Float[ArrayLike, " k"], log_ratio: float, i: int = 1
) -> float:
    """Depth at which ``E log(s_i/s_{i+1})`` reaches ``log_ratio``: ``(log_ratio - c_i + c_{i+1}) / gap_i``.

    Example:
        >>> from jaxspec.theory import gaussian_exponents
        >>> round(separation_depth(gaussian_exponents(16), singular_value_offsets(16), np.log(10.0)), 1)
        45.7
    """
    gap = separation_rate(exponents, i)
    i = int(i)
    offsets = np.asarray(check_real("offsets", offsets, allow_array=True), float)
    log_ratio = check_real("log_ratio", log_ratio)
    if offsets.shape != np.shape(exponents):
        raise InputError(
            f"offsets must have the shape of exponents {np.shape(exponents)}, got {offsets.shape}"
        )
    if not np.isfinite(gap) or gap <= 0:
        raise InputError(
            f"separation_depth needs a positive finite gap lambda_{i} - lambda_{i + 1}, got {gap}"
        )
    return float((log_ratio - offsets[i - 1] + offsets[i]) / gap)
