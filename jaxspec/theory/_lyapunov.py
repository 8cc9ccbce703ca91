"""Closed-form Lyapunov spectra of products of (masked) random matrices, with their fluctuations.

All functions are exact sums in float64 (numpy/scipy), not large-N approximations. Notation of
[the math reference](https://jaxspec.github.io/jaxspec/math/): layer ``l`` maps ``n_l -> n_{l+1}`` with
``W_l`` entries ``N(0, sigma2 / n_l)`` and ``K_l`` active units among its ``n_{l+1}`` outputs. Given
``K_l``, Bartlett's decomposition gives independent QR factors with
``R_ii^2 ~ (sigma2 / n_l) chi^2_{K_l - i + 1}``, whence

    E log|R_ii| = (1/2) log(2 sigma2 / n_l) + (1/2) psi((K_l - i + 1) / 2),
    Var log|R_ii| = (1/4) psi1((K_l - i + 1) / 2).

References:
    Newman, "The distribution of Lyapunov exponents: exact results for random matrices", CMP 104 (1986).
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from jaxtyping import ArrayLike, Bool, Float
from scipy import special

from jaxspec._checks import InputError, check_choice, check_int, check_positive_int, check_real, check_widths
from jaxspec.theory._expansions import large_n_complex_exponents, large_n_exponents
from jaxspec.theory._validation import check_ensemble, check_k, check_probability, check_sigma2, check_width

#: Rank-collapse conventions: which layers enter index ``i``'s estimate.
CONDITIONS = ("K>=i", "K>=k", "none")


class CountLaw(NamedTuple):
    """The law of one layer's active count.

    Attributes:
        fan_in: ``n_l``, which sets the weight variance ``sigma2 / n_l``.
        pmf: ``(n_{l+1} + 1,)`` probabilities of ``K = 0, 1, ..., n_{l+1}``.
    """

    fan_in: int
    pmf: Float[np.ndarray, " counts"]


class LayerTheory(NamedTuple):
    """Predicted per-layer statistics of ``log|R_ii|`` under a conditioning convention.

    Attributes:
        exponents: ``(k,)`` Lyapunov exponents (``-inf`` where the convention admits no layer).
        variance: ``(k,)`` per-layer variance of ``log|R_ii|`` (conditioned like the exponent).
        prob_counted: ``(k,)`` probability that a layer enters index ``i``'s estimate (``P(K >= i)`` for
            ``"K>=i"``, ``P(K >= k)`` for ``"K>=k"``, 1 for ``"none"``).
    """

    exponents: Float[np.ndarray, " k"]
    variance: Float[np.ndarray, " k"]
    prob_counted: Float[np.ndarray, " k"]


def binomial_count_law(fan_in: int, fan_out: int, p: float) -> CountLaw:
    """``K ~ Binomial(fan_out, p)``: independent Bernoulli(p) gates (p = 1/2 for zero-bias ReLU nets).

    Example:
        >>> np.round(binomial_count_law(4, 2, 0.5).pmf, 2)
        array([0.25, 0.5 , 0.25])
    """
    fan_in = check_width(fan_in, "fan_in")
    fan_out = check_width(fan_out, "fan_out")
    p = check_real("p", p, low=0.0, high=1.0)  # a law, so p = 0 (K = 0 surely) is admitted here
    return CountLaw(fan_in, _binomial_pmf(fan_out, p))


@functools.lru_cache(maxsize=256)
def _binomial_pmf(fan_out: int, p: float) -> np.ndarray:
    # One pmf per (fan_out, p), shared by every layer of a deep ensemble (read-only: the cache hands it out).
    counts = np.arange(fan_out + 1)
    # The binomial pmf in log space (xlogy/xlog1py give 0 log 0 = 0 at p = 0 or 1), without scipy.stats.
    pmf = np.exp(
        special.gammaln(fan_out + 1)
        - special.gammaln(counts + 1)
        - special.gammaln(fan_out - counts + 1)
        + special.xlogy(counts, p)
        + special.xlog1py(fan_out - counts, -p)
    )
    pmf.flags.writeable = False
    return pmf


def fixed_count_law(fan_in: int, fan_out: int, count: int) -> CountLaw:
    """A deterministic active count ``K = count`` (``pmf`` is one-hot at ``count``)."""
    fan_in = check_width(fan_in, "fan_in")
    fan_out = check_width(fan_out, "fan_out")
    count = check_int("count", count, minimum=0, maximum=fan_out)
    pmf = np.zeros(fan_out + 1)
    pmf[count] = 1.0
    return CountLaw(fan_in, pmf)


def check_condition(condition: str) -> None:
    """Raise :class:`jaxspec.InputError` unless ``condition`` is one of :data:`CONDITIONS`."""
    check_choice("condition", condition, CONDITIONS)


def _check_laws(laws) -> list[CountLaw]:
    """``laws`` as a non-empty list of :class:`CountLaw` (else :class:`jaxspec.InputError`)."""
    if isinstance(laws, CountLaw):
        laws = [laws]
    try:
        laws = list(laws)
    except TypeError:
        raise InputError(f"laws must be a sequence of CountLaw, got {type(laws).__name__}") from None
    if not laws or not all(isinstance(law, CountLaw) for law in laws):
        raise InputError("laws must be a non-empty sequence of CountLaw (see count_laws, binomial_count_law)")
    return laws


def _per_layer_sigma2(sigma2, depth: int) -> np.ndarray:
    """``sigma2`` (scalar or one per layer) checked finite and positive, as a ``(depth,)`` float64 array."""
    values = np.asarray(check_sigma2(sigma2, allow_array=True), float)
    if values.ndim > 1 or (values.ndim == 1 and values.shape[0] != depth):
        raise InputError(f"sigma2 needs a scalar or one entry per layer ({depth}), got shape {values.shape}")
    return np.broadcast_to(values, (depth,))


def law_terms(
    law: CountLaw, k: int, sigma2: float, condition: str
) -> tuple[
    Bool[np.ndarray, "k counts"],
    Bool[np.ndarray, "k counts"],
    Float[np.ndarray, "k counts"],
    Float[np.ndarray, "k counts"],
    Float[np.ndarray, "1 counts"],
]:
    """The Bartlett terms of ``log|R_ii|`` of one layer law: index ``i`` (rows) by active count ``K`` (cols).

    Only the counts of the law's support (``pmf > 0``) are columns, so a deterministic count costs one column
    and a binomial law its numerically non-zero range: memory ``O(k x support)``, not ``O(k x width)``.

    Returns:
        ``(alive, admit, half_dof, mean_term, pmf)``: ``K - i + 1 >= 1``; whether the convention counts the
        layer (``K >= k`` for ``"K>=k"``, else ``alive``); ``(K - i + 1)/2`` (1/2 where dead);
        ``E[log|R_ii| | K] = (1/2) log(2 sigma2 / n_l) + (1/2) psi((K - i + 1)/2)``; and the ``(1, support)``
        probabilities of the columns' counts.
    """
    support = np.flatnonzero(law.pmf)
    idx = np.arange(1, k + 1)[:, None]  # (k, 1)
    counts = support[None, :]  # (1, support)
    dof = counts - idx + 1  # chi^2 degrees of freedom, (k, K+1)
    alive = dof >= 1
    admit = np.broadcast_to(counts >= k, dof.shape) if condition == "K>=k" else alive
    half_dof = np.where(alive, dof, 1) / 2.0
    mean_term = 0.5 * np.log(2.0 * sigma2 / law.fan_in) + 0.5 * special.digamma(half_dof)
    return alive, admit, half_dof, mean_term, law.pmf[support][None, :]


def count_law_theory(
    laws: Sequence[CountLaw], k: int, *, sigma2: float | Float[ArrayLike, " L"] = 1.0, condition: str = "K>=i"
) -> LayerTheory:
    """Exponents and per-layer variances of a product whose layer ``l`` has active-count law ``laws[l]``.

    The exponent is the long-run mean of ``log|R_ii|`` over the layers the convention counts: a mixture over
    layers and counts with weights ``P_l(K_l = K)`` restricted to ``K >= i`` (``"K>=i"``) or ``K >= k``
    (``"K>=k"``). The variance is that mixture's variance, ``E[psi1/4] + Var[mean term]``, which for one law
    is the ``v_i = (1/4)[E psi1((K-i+1)/2) + Var psi((K-i+1)/2)]``.

    Args:
        laws: one :class:`CountLaw` per layer (a single law stands for any depth).
        k: number of indices.
        sigma2: weight variance times fan-in (scalar or one per layer).
        condition: ``"K>=i"``, ``"K>=k"`` or ``"none"``.

    Returns:
        :class:`LayerTheory` with ``(k,)`` fields.

    Example:
        >>> np.round(count_law_theory([fixed_count_law(8, 8, 8)], 2).exponents, 6)
        array([-0.065088, -0.141569])

    References:
        Newman, CMP 104 (1986); Haas et al., arXiv:2602.12384
        ([math §1](https://jaxspec.github.io/jaxspec/math/#s1), [math §2](https://jaxspec.github.io/jaxspec/math/#s2)).
    """
    check_condition(condition)
    laws = _check_laws(laws)
    k = check_positive_int("k", k)
    sigma2 = _per_layer_sigma2(sigma2, len(laws))
    weight_sum = np.zeros(k)
    mean_sum = np.zeros(k)
    second_sum = np.zeros(k)
    psi1_sum = np.zeros(k)
    strict_ok = np.ones(k, bool)
    for law, s2 in zip(laws, sigma2, strict=True):
        alive, admit, safe, term, pmf = law_terms(law, k, s2, condition)
        strict_ok &= ~np.any((pmf > 0) & ~alive, axis=1)
        w = np.where(admit, pmf, 0.0)
        weight_sum += w.sum(1)
        mean_sum += (w * term).sum(1)
        second_sum += (w * term**2).sum(1)
        psi1_sum += (w * 0.25 * special.polygamma(1, safe)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = mean_sum / weight_sum
        variance = psi1_sum / weight_sum + second_sum / weight_sum - mean**2
    variance = np.maximum(variance, 0.0)
    prob = weight_sum / len(laws)
    exponents = np.where(weight_sum > 0, mean, -np.inf)
    if condition == "none":
        exponents = np.where(strict_ok, exponents, -np.inf)
        prob = np.where(strict_ok, 1.0, 0.0)
    return LayerTheory(exponents, np.where(weight_sum > 0, variance, np.nan), prob)


def gaussian_exponents(
    n: int, sigma2: float = 1.0, k: int | None = None, *, large_n: bool = False
) -> Float[np.ndarray, " k"]:
    """Newman's spectrum of real Ginibre products: ``(1/2) log sigma2 + (1/2)[log(2/n) + psi((n-i+1)/2)]``.

    Args:
        n: width ``N``.
        sigma2: weight variance times fan-in.
        k: number of exponents (default ``n``).
        large_n: return the large-N expansion ``(1/2) log sigma2 + (1/2) log(1 - (i-1)/N) - 1/(2N)`` instead
            of the exact sum (see :func:`jaxspec.theory.large_n_exponents`).

    Returns:
        ``(k,)`` float64 exponents.

    Example:
        >>> np.round(gaussian_exponents(8)[:2], 6)
        array([-0.065088, -0.141569])

    References:
        Newman, "The distribution of Lyapunov exponents: exact results for random matrices", CMP 104 (1986).
    """
    k = check_k(k, n)
    n = int(n)
    sigma2 = check_sigma2(sigma2)
    if large_n:
        return large_n_exponents(n, 1.0, sigma2, k)
    i = np.arange(1, k + 1)
    return 0.5 * np.log(sigma2) + 0.5 * (np.log(2.0 / n) + special.digamma((n - i + 1) / 2.0))


def complex_gaussian_exponents(
    n: int, sigma2: float = 1.0, k: int | None = None, *, large_n: bool = False
) -> Float[np.ndarray, " k"]:
    """Complex Ginibre products (``E|z|^2 = sigma2/n``): ``(1/2) log sigma2 + (1/2)[psi(n-i+1) - log n]``.

    ``|R_ii|^2 ~ (sigma2/n) Gamma(n-i+1, 1)``, whence the digamma of an integer argument. ``large_n`` gives
    ``(1/2) log sigma2 + (1/2)[log(1 - (i-1)/N) - 1/(2N)]``.

    Args:
        n: width ``N``.
        sigma2: ``E|z|^2`` times ``n``.
        k: number of exponents (default ``n``).
        large_n: the large-N expansion instead of the exact sum.

    Returns:
        ``(k,)`` float64 exponents.

    References:
        Newman, CMP 104 (1986); Forrester, "Lyapunov exponents for products of complex Gaussian random
        matrices", J. Stat. Phys. 151 (2013).
    """
    k = check_k(k, n)
    n = int(n)
    sigma2 = check_sigma2(sigma2)
    if large_n:
        return large_n_complex_exponents(n, sigma2, k)
    i = np.arange(1, k + 1)
    return 0.5 * np.log(sigma2) + 0.5 * (special.digamma(n - i + 1.0) - np.log(n))


def gaussian_variance(n: int, k: int | None = None) -> Float[np.ndarray, " k"]:
    """``(k,)`` per-layer variance of ``log|R_ii|`` for real Ginibre layers: ``psi1((n-i+1)/2)/4``.

    Example:
        >>> np.round(gaussian_variance(8, 1), 6)
        array([0.070956])

    References:
        Newman, CMP 104 (1986) (Bartlett decomposition; [math §2](https://jaxspec.github.io/jaxspec/math/#s2)).
    """
    k = check_k(k, n)
    i = np.arange(1, k + 1)
    return 0.25 * special.polygamma(1, (n - i + 1) / 2.0)


def complex_gaussian_variance(n: int, k: int | None = None) -> Float[np.ndarray, " k"]:
    """``(k,)`` per-layer variance of ``log|R_ii|`` for complex Ginibre layers: ``psi1(n-i+1)/4``."""
    k = check_k(k, n)
    i = np.arange(1, k + 1)
    return 0.25 * special.polygamma(1, n - i + 1.0)


def orthogonal_exponents(n: int, sigma2: float = 1.0, k: int | None = None) -> Float[np.ndarray, " k"]:
    """Haar orthogonal layers times ``sigma``: every exponent is ``log sigma`` exactly.

    Example:
        >>> orthogonal_exponents(4, 4.0, 2)
        array([0.69314718, 0.69314718])
    """
    k = check_k(k, n)
    return np.full(k, 0.5 * np.log(check_sigma2(sigma2)))


def masked_exponents(
    n: int,
    p: float = 0.5,
    sigma2: float = 1.0,
    k: int | None = None,
    *,
    condition: str = "K>=i",
    fixed_count: int | None = None,
    large_n: bool = False,
) -> Float[np.ndarray, " k"]:
    """Masked Gaussian products ``x -> D W x`` with Bernoulli(p) gates (or exactly ``fixed_count`` active).

    ``lambda_i = (1/2) log sigma2 + (1/2) log(2/n) + (1/2) E_K[psi((K-i+1)/2) | convention]``.

    Args:
        n: width ``N``.
        p: gate probability (zero-bias ReLU: ``1/2``).
        sigma2: weight variance times fan-in.
        k: number of exponents.
        condition: ``"K>=i"``, ``"K>=k"`` or ``"none"``.
        fixed_count: exactly ``K`` active units per layer instead of Bernoulli gates.
        large_n: the large-N expansion instead of the exact sum (Bernoulli: ``p``; fixed count: the
            ``K x K`` Ginibre expansion shifted by ``(1/2) log(K/N)``).

    Returns:
        ``(k,)`` float64 exponents.

    Example:
        >>> np.round(masked_exponents(16, 0.5, k=2), 6)
        array([-0.434772, -0.521208])

    References:
        Haas, Gatine, Cosse, Bouraoui, arXiv:2602.12384 ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)).
    """
    k = check_k(k, n)
    n = int(n)
    p = check_probability(p)
    sigma2 = check_sigma2(sigma2)
    check_condition(condition)
    if fixed_count is not None:
        fixed_count = check_int("fixed_count", fixed_count, minimum=0, maximum=n)
    if large_n:
        if fixed_count is None:
            return large_n_exponents(n, p, sigma2, k)
        count = fixed_count
        out = np.full(k, -np.inf)
        m = min(k, count)
        if m > 0:  # no active unit (K = 0): every exponent is -inf
            out[:m] = large_n_exponents(count, 1.0, sigma2 * count / n, m)
        return out
    law = binomial_count_law(n, n, p) if fixed_count is None else fixed_count_law(n, n, fixed_count)
    return count_law_theory([law], k, sigma2=sigma2, condition=condition).exponents


def count_laws(
    widths: Sequence[int], *, p: float | Float[ArrayLike, " L"] = 1.0, counts: Sequence[int] | None = None
) -> list[CountLaw]:
    """Per-layer count laws of a (masked) Gaussian product with widths ``(n_0, ..., n_L)``.

    Args:
        widths: ``(n_0, ..., n_L)``; layer ``l`` maps ``n_l -> n_{l+1}``.
        p: gate probability, scalar or one per layer (``1`` for an ungated layer, ``1/2`` for ReLU).
        counts: deterministic active counts ``K_1..K_L`` (overrides ``p``).

    Returns:
        ``L`` :class:`CountLaw` values.

    Example:
        >>> [law.fan_in for law in count_laws((4, 6, 8), p=0.5)]
        [4, 6]
    """
    widths = check_widths(widths)
    depth = len(widths) - 1
    if counts is not None:
        if isinstance(counts, (str, bytes)) or np.ndim(counts) != 1:
            raise InputError(f"counts must be a sequence of one integer per layer ({depth}), got {counts!r}")
        if len(counts) != depth:
            raise InputError(f"counts needs one entry per layer ({depth}), got {len(counts)}")
        counts = [
            check_int(f"counts[{l}]", c, minimum=0, maximum=n)
            for l, (c, n) in enumerate(zip(counts, widths[1:], strict=True))
        ]
        return [fixed_count_law(widths[l], widths[l + 1], counts[l]) for l in range(depth)]
    ps = np.asarray(check_probability(p, allow_array=True), float)
    ps = np.broadcast_to(ps, (depth,)) if ps.ndim == 0 else ps
    if ps.shape != (depth,):
        raise InputError(f"p needs a scalar or one entry per layer ({depth}), got shape {ps.shape}")
    return [
        fixed_count_law(widths[l], widths[l + 1], widths[l + 1])
        if ps[l] == 1.0
        else binomial_count_law(widths[l], widths[l + 1], float(ps[l]))
        for l in range(depth)
    ]


def product_theory(
    widths: Sequence[int],
    *,
    p: float | Float[ArrayLike, " L"] = 1.0,
    counts: Sequence[int] | None = None,
    sigma2: float | Float[ArrayLike, " L"] = 1.0,
    k: int | None = None,
    condition: str = "K>=i",
) -> LayerTheory:
    """Exponents, per-layer variances and ``P(counted)`` of a product with variable widths and gates.

    The convenient form of :func:`count_law_theory` for deterministic per-layer counts (``counts``), variable
    widths, and layer-dependent gate probabilities: ``lambda_i`` is the layer average of
    ``(1/2) log(2 sigma2_l / n_l) + (1/2) E psi((K_l - i + 1)/2)`` over the layers the convention counts.

    Args:
        widths: ``(n_0, ..., n_L)``.
        p: gate probability, scalar or per layer.
        counts: deterministic active counts per layer (overrides ``p``).
        sigma2: weight variance times fan-in, scalar or per layer.
        k: number of indices (default ``min(widths)``).
        condition: ``"K>=i"``, ``"K>=k"`` or ``"none"``.

    Returns:
        :class:`LayerTheory` with ``(k,)`` fields.

    Example:
        >>> np.round(product_theory((8, 8, 8), counts=(8, 8)).exponents[:2], 6)
        array([-0.065088, -0.141569])

    References:
        Haas et al., arXiv:2602.12384 ([math §1](https://jaxspec.github.io/jaxspec/math/#s1): deterministic
        gates and variable widths).
    """
    laws = count_laws(widths, p=p, counts=counts)
    k = check_k(k, min(check_widths(widths)), "min(widths)")
    return count_law_theory(laws, k, sigma2=sigma2, condition=condition)


def ensemble_count_laws(ensemble) -> list[CountLaw] | None:
    """Per-layer active-count laws of a gated Gaussian ensemble, or ``None`` if it has no closed form.

    The ensemble's own theory hook (:meth:`jaxspec.ensembles.Ensemble.count_laws`): theory knows laws, the
    ensemble knows which law its layers follow.

    Args:
        ensemble: an ensemble of :mod:`jaxspec.ensembles`.

    Returns:
        ``L`` :class:`CountLaw` values (Gaussian, masked and ReLU-network ensembles), else ``None``.
    """
    check_ensemble(ensemble)
    return ensemble.count_laws()


def ensemble_theory(ensemble, k: int | None, condition: str) -> LayerTheory | None:
    """:class:`LayerTheory` of an ensemble from its hook :meth:`jaxspec.ensembles.Ensemble.layer_theory`
    (identical layers collapsed to one law), or ``None`` if unknown."""
    check_ensemble(ensemble)
    check_condition(condition)
    return ensemble.layer_theory(check_k(k, min(ensemble.widths), "the smallest width"), condition)


def lyapunov_exponents(
    ensemble, k: int | None = None, condition: str = "K>=i"
) -> Float[np.ndarray, " k"] | None:
    """The closed-form spectrum of an ensemble, or ``None`` where none is known (fixed networks).

    Args:
        ensemble: an ensemble of :mod:`jaxspec.ensembles`.
        k: number of exponents (default: the smallest width).
        condition: rank-collapse convention, as in :func:`jaxspec.lyapunov_spectrum`.

    Returns:
        ``(k,)`` float64 exponents, or ``None``.

    Example:
        >>> import jaxspec
        >>> np.round(lyapunov_exponents(jaxspec.relu_net(width=32, depth=10), k=1), 6)
        array([-0.04127])
    """
    check_condition(condition)
    theory = ensemble_theory(ensemble, k, condition)
    return None if theory is None else theory.exponents


def per_layer_variance(
    ensemble, k: int | None = None, condition: str = "K>=i"
) -> Float[np.ndarray, " k"] | None:
    """``(k,)`` per-layer variance of ``log|R_ii|`` (Gaussian: ``psi1((n-i+1)/2)/4``), or ``None``."""
    check_condition(condition)
    theory = ensemble_theory(ensemble, k, condition)
    return None if theory is None else theory.variance


def prob_active_at_least(ensemble, k: int | None = None) -> Float[np.ndarray, " k"] | None:
    """``(k,)`` layer-averaged ``P(K_l >= i)``, or ``None`` where the count law is unknown."""
    check_ensemble(ensemble)
    k = check_k(k, min(ensemble.widths), "the smallest width")
    theory = ensemble_theory(ensemble, k, "K>=i")
    if theory is not None:
        return theory.prob_counted
    # Every layer keeps at least k active units, known before sampling (e.g. ungated layers).
    return np.ones(k) if ensemble.min_active_count() >= k else None


def relu_survival(ensemble) -> Float[np.ndarray, " L"]:
    """``(L,)`` probability that layer ``l`` can still be counted (the ensemble's hook ``survival()``).

    For a zero-bias ReLU network, once a layer has ``K_l = 0`` the activation is exactly zero and every later
    gate is off (the state is absorbing), so layer ``l`` can only be counted if ``K_m >= 1`` for every
    ``m < l``: ``S_l = prod_{m<l} (1 - 2^{-n_{m+1}})``. Ensembles with gates independent of the state never
    die (ones).
    """
    check_ensemble(ensemble)
    return np.asarray(ensemble.survival(), float)


def expected_counted_fraction(
    ensemble, k: int | None = None, condition: str = "K>=i"
) -> Float[np.ndarray, " k"] | None:
    """``(k,)`` expected fraction of the ``L`` layers that enter index ``i``'s estimate, or ``None``.

    ``P_i`` (:class:`LayerTheory`'s ``prob_counted``) for ensembles whose gates ignore the state; for ReLU
    networks ``(1/L) sum_l S_l P_l(counted)`` with the survival :func:`relu_survival`.
    """
    check_condition(condition)
    theory = ensemble_theory(ensemble, k, condition)
    if theory is None:
        return None
    survival = relu_survival(ensemble)
    if np.all(survival == 1.0):
        return theory.prob_counted
    k = theory.exponents.shape[0]
    laws = ensemble_count_laws(ensemble)
    fraction = np.zeros(k)
    # Deep networks repeat a few laws (the binomial pmfs are shared objects): one sum per distinct law.
    counted: dict[tuple[int, int], np.ndarray] = {}
    for law, alive in zip(laws, survival, strict=True):
        key = (law.fan_in, id(law.pmf))
        if key not in counted:
            counted[key] = count_law_theory([law], k, condition=condition).prob_counted
        fraction += alive * counted[key]
    return fraction / len(laws)


def predicted_stderr(
    ensemble, k: int | None = None, *, seeds: int = 1, condition: str = "K>=i"
) -> Float[np.ndarray, " k"] | None:
    """Predicted standard error of the engine's mean over ``seeds`` at the ensemble's depth ``L``.

    ``sqrt(v_i / (L f_i seeds))`` with ``f_i`` the expected fraction of counted layers
    (:func:`expected_counted_fraction`: ``P_i``, times the survival of ReLU networks). Exact for
    ``reortho_every = 1`` when the counted number of layers is deterministic (the per-layer terms are
    independent); first order in ``1/(L f_i)`` otherwise.

    References:
        Newman, CMP 104 (1986); Haas et al., arXiv:2602.12384
        ([math §2](https://jaxspec.github.io/jaxspec/math/#s2)).
    """
    check_condition(condition)
    seeds = check_positive_int("seeds", seeds)
    theory = ensemble_theory(ensemble, k, condition)
    if theory is None:
        return None
    depth = len(ensemble.widths) - 1
    fraction = expected_counted_fraction(ensemble, k, condition)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(theory.variance / (depth * fraction * seeds))
