"""Closed forms of jaxspec.theory against exact identities, independent derivations and [math §7](https://jaxspec.github.io/jaxspec/math/#s7).

Monte Carlo comparisons with simulations live in tests/test_statistics.py.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

import jaxspec
from jaxspec import InputError, theory
from tests.conftest import PRINTED_5_DECIMALS, PRINTED_6_DECIMALS, Z_MAX, assert_close, zscores

# ----------------------------------------------------------------------------------------------------------
# [math §7](https://jaxspec.github.io/jaxspec/math/#s7): the public check values.


def test_public_newman_values():
    lam = theory.gaussian_exponents(8)
    np.testing.assert_allclose(
        lam,
        [-0.065088, -0.141569, -0.231755, -0.341569, -0.481755, -0.674902, -0.981755, -1.674902],
        atol=PRINTED_6_DECIMALS,
    )
    assert abs(lam.sum() - (-4.593295)) < PRINTED_6_DECIMALS


def test_public_masked_values_conditioned_on_k_ge_i():
    np.testing.assert_allclose(
        theory.masked_exponents(16, 0.5, 1.0, 4, condition="K>=i"),
        [-0.434772, -0.521208, -0.627332, -0.757833],
        atol=PRINTED_6_DECIMALS,
    )


def test_public_relu_he_values_from_the_relu_ensemble():
    lam = theory.lyapunov_exponents(jaxspec.relu_net(width=32, depth=5), k=4)
    np.testing.assert_allclose(lam, [-0.041270, -0.077195, -0.116062, -0.158443], atol=PRINTED_6_DECIMALS)
    assert_close(lam, theory.masked_exponents(32, 0.5, 2.0, 4), scale=3e-3)


def test_public_offsets():
    c = theory.singular_value_offsets(8)
    half = [1.60981, 0.84019, 0.44315, 0.14019]
    np.testing.assert_allclose(c, half + [-x for x in reversed(half)], atol=PRINTED_5_DECIMALS)


@pytest.mark.parametrize("n, mean, var", [(8, -0.39878, 1.24699), (32, -0.08254, 0.17750)])
def test_public_relu_per_layer_log_norm_moments(n, mean, var):
    m = theory.relu_log_norm_moments((n, n))
    assert abs(m.mean - mean) < PRINTED_5_DECIMALS and abs(m.variance - var) < PRINTED_5_DECIMALS


# ----------------------------------------------------------------------------------------------------------
# Spectra: independent forms of the same closed forms.


def test_gaussian_gaps_at_n4_have_elementary_forms():
    # psi(2) - psi(3/2) = 2 log 2 - 1, psi(3/2) - psi(1) = 2 - 2 log 2, psi(1) - psi(1/2) = 2 log 2.
    lam = theory.gaussian_exponents(4, sigma2=3.0)
    expected = [np.log(2) - 0.5, 1 - np.log(2), np.log(2)]
    assert_close(theory.spectral_gaps(lam), np.array(expected), scale=0.03)
    assert_close(theory.alignment_slope(lam), np.log(2) - 0.5)
    assert_close(theory.separation_rate(lam, 3), np.log(2))


def test_gaussian_sum_is_the_log_determinant_rate():
    # E log|det W| for W with N(0, 1/n) entries: (1/2) sum_m [log(2/n) + psi(m/2)], m = 1..n (Bartlett).
    n = 6
    direct = 0.5 * (n * np.log(2.0 / n) + sum(special.digamma(m / 2.0) for m in range(1, n + 1)))
    assert_close(theory.gaussian_exponents(n).sum(), direct, scale=0.1)


def test_complex_gaussian_is_a_gamma_expectation():
    # |R_ii|^2 ~ (1/n) Gamma(n - i + 1): E log Gamma(a) = psi(a); Var = psi1(a).
    n = 5
    a = n - np.arange(n)
    assert_close(
        theory.complex_gaussian_exponents(n, 2.0),
        0.5 * np.log(2.0) + 0.5 * (special.digamma(a) - np.log(n)),
        scale=1e-3,
    )
    assert_close(theory.complex_gaussian_variance(n), 0.25 * special.polygamma(1, a), scale=3e-3)


def test_fixed_count_is_the_shifted_smaller_ginibre_spectrum():
    lam = theory.masked_exponents(10, fixed_count=6, sigma2=1.5)
    assert_close(lam[:6], theory.gaussian_exponents(6, 1.5) + 0.5 * np.log(6 / 10), scale=0.03)
    assert np.all(np.isneginf(theory.masked_exponents(10, fixed_count=6, condition="none")[6:]))
    assert np.all(np.isnan(theory.count_law_theory([theory.fixed_count_law(10, 10, 6)], 10).variance[6:]))


def test_product_theory_for_deterministic_counts_and_variable_widths():
    assert_close(
        theory.product_theory((8,) * 4, counts=(8, 8, 8)).exponents, theory.gaussian_exponents(8), scale=3e-3
    )
    assert_close(
        theory.product_theory((8,) * 3, counts=(5, 5)).exponents[:5],
        theory.masked_exponents(8, fixed_count=5)[:5],
        scale=3e-3,
    )
    # Variable widths, ungated: the layer average of (1/2) log(2 sigma2/n_l) + (1/2) psi((n_{l+1} - i + 1)/2).
    widths, sigma2 = (5, 9, 6, 7), 1.3
    i = np.arange(1, 6)
    manual = np.mean(
        [
            0.5 * np.log(2 * sigma2 / widths[l]) + 0.5 * special.digamma((widths[l + 1] - i + 1) / 2)
            for l in range(3)
        ],
        axis=0,
    )
    assert_close(theory.product_theory(widths, sigma2=sigma2).exponents, manual, scale=0.03)
    # Mixed counts: layers with K_l < i do not count for index i under "K>=i".
    res = theory.product_theory((6, 6, 6), counts=(6, 3), k=5)
    full = 0.5 * np.log(2 / 6) + 0.5 * special.digamma((6 - i + 1) / 2)
    low = 0.5 * np.log(2 / 6) + 0.5 * special.digamma((3 - i[:3] + 1) / 2)
    assert_close(res.exponents, np.r_[(full[:3] + low) / 2, full[3:]], scale=0.03)
    assert_close(res.prob_counted, np.array([1, 1, 1, 0.5, 0.5]))


def test_ensemble_theory_matches_product_theory_for_variable_width_masks():
    ens = jaxspec.masked(widths=(6, 10, 8, 12), p=0.7, sigma2=1.2)
    assert_close(
        theory.lyapunov_exponents(ens),
        theory.product_theory((6, 10, 8, 12), p=0.7, sigma2=1.2).exponents,
        scale=3e-3,
    )


# ----------------------------------------------------------------------------------------------------------
# Large-N expansions: second order at fixed i and p.


@pytest.mark.parametrize("p", [1.0, 0.5, 0.3])
def test_large_n_expansions_have_errors_of_order_n_minus_two(p):
    def errors(n):
        exact = theory.count_law_theory(
            [theory.binomial_count_law(n, n, p) if p < 1 else theory.fixed_count_law(n, n, n)], 3, sigma2=1.3
        )
        return np.concatenate(
            [
                np.abs(exact.exponents - theory.large_n_exponents(n, p, 1.3, 3)),
                np.abs(exact.variance - theory.large_n_variance(n, p, 3)),
                np.abs(theory.spectral_gaps(exact.exponents) - theory.large_n_gaps(n, p, 3)),
            ]
        )

    ratio = errors(800) / errors(400)
    assert np.all((ratio > 0.22) & (ratio < 0.28)), ratio  # halving N quarters the error: O(N^-2)


def test_large_n_options_route_to_the_expansions():
    np.testing.assert_array_equal(
        theory.gaussian_exponents(50, 2.0, 3, large_n=True), theory.large_n_exponents(50, 1.0, 2.0, 3)
    )
    np.testing.assert_array_equal(
        theory.masked_exponents(50, 0.4, 2.0, 3, large_n=True), theory.large_n_exponents(50, 0.4, 2.0, 3)
    )

    def complex_err(n):
        return np.abs(theory.complex_gaussian_exponents(n, k=3) - theory.large_n_complex_exponents(n, k=3))

    ratio = complex_err(800) / complex_err(400)
    assert np.all((ratio > 0.22) & (ratio < 0.28))  # halving N quarters the error: O(N^-2)
    assert_close(theory.large_n_exponents(1000, 0.5, 2.0, 1)[0], -2.5 / 2000)


# ----------------------------------------------------------------------------------------------------------
# Finite-depth offsets: Wilks' decomposition of Haar blocks.


def _wilks_log_det_moments(n, i):
    """E and Var of log det(B_i)^2, B_i the top-left i x i block of a Haar O(n) matrix (Wilks' Lambda)."""
    j = np.arange(1, i + 1)
    a, ab = (i + 1 - j) / 2.0, (n + 1 - j) / 2.0
    return (
        np.sum(special.digamma(a) - special.digamma(ab)),
        np.sum(special.polygamma(1, a) - special.polygamma(1, ab)),
    )


def test_offsets_are_the_haar_block_determinant_increments():
    n = 7
    means = [0.0] + [_wilks_log_det_moments(n, i)[0] for i in range(1, n + 1)]
    assert_close(theory.singular_value_offsets(n), -0.5 * np.diff(means), scale=0.1)
    assert_close(theory.singular_value_offsets(n), -theory.singular_value_offsets(n)[::-1], scale=0.1)


def test_wilks_law_of_haar_blocks_by_monte_carlo(rng):
    n, samples = 5, 20000
    g = rng.normal(size=(samples, n, n))
    q, r = np.linalg.qr(g)
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    for i in range(1, n):
        logdet = 2 * np.linalg.slogdet(q[:, :i, :i])[1]
        mean, var = _wilks_log_det_moments(n, i)
        z = zscores(logdet.mean(), mean, np.sqrt(var / samples))
        assert abs(z) < Z_MAX, (i, z)


def test_predicted_separation_and_depth():
    lam, c = theory.gaussian_exponents(16), theory.singular_value_offsets(16)
    depth = theory.separation_depth(lam, c, np.log(10.0))
    assert_close(theory.predicted_separation(lam, c, depth)[0], np.log(10.0), scale=0.3)
    pred = theory.predicted_log_svals(lam, c, np.array([10, 20]))
    assert_close(pred[1] - pred[0], 10 * lam, scale=0.03)


# ----------------------------------------------------------------------------------------------------------
# ReLU ||J u|| moments (Hanin-Nica).


def test_relu_norm_moments_exact_products():
    m = theory.relu_log_norm_moments((8,) * 6)
    assert_close(m.second, 1.0, scale=0.3)
    assert_close(m.fourth, (1 + 5 / 8) ** 5, scale=0.03)
    assert_close(m.prob_nonzero, (1 - 2.0**-8) ** 5)
    assert_close(m.mean, 5 * -0.39877726986675666, scale=0.3)
    widths = (6, 10, 8)
    v = theory.relu_log_norm_moments(widths)
    assert_close(v.second, (10 / 6) * (8 / 10), scale=0.3)
    assert_close(v.fourth, (10**2 + 50) / 36 * (8**2 + 40) / 100, scale=0.1)
    # A linear last layer has K = n_L: chi^2_{n_L} moments.
    lin = theory.relu_log_norm_moments((8, 8, 8), final_activation=False)
    assert_close(lin.fourth, (1 + 5 / 8) * (4 / 64) * (64 + 16), scale=0.1)
    # E||Ju||^6 = prod (sigma2/n)^3 E[K(K+2)(K+4)] from the raw binomial sum.
    laws = theory.count_laws((8, 8), p=0.5)
    k = np.arange(9)
    direct = (2 / 8) ** 3 * np.sum(special.comb(8, k) / 256 * k * (k + 2) * (k + 4))
    assert_close(theory.norm_power_moment(laws, 3), direct, scale=0.1)


def test_relu_log_norm_moments_approach_hanin_nica_at_large_width():
    def rel_err(n):
        exact = theory.relu_log_norm_moments((n, n, n))
        approx = theory.relu_log_norm_moments((n, n, n), large_n=True)
        assert_close(approx.mean, -2.5 * 2 / n)
        assert_close(approx.variance, 5 * 2 / n)
        return np.abs(np.array([exact.mean / approx.mean, exact.variance / approx.variance]) - 1)

    ratio = rel_err(1600) / rel_err(800)
    assert np.all((ratio > 0.4) & (ratio < 0.6)), ratio  # relative error O(1/n)


# ----------------------------------------------------------------------------------------------------------
# Wide-first regime.


def test_wide_spectral_variances():
    values = {
        (a, w): theory.wide_spectral_variance(4, activation=a, weights=w)
        for a in ("linear", "relu")
        for w in ("gaussian", "orthogonal")
    }
    assert values == {
        ("linear", "gaussian"): 4.0,
        ("linear", "orthogonal"): 0.0,
        ("relu", "gaussian"): 8.0,
        ("relu", "orthogonal"): 4.0,
    }


def test_fuss_catalan_moments_and_top_edge():
    for depth in (1, 2, 5):
        assert_close(theory.fuss_catalan_moment(depth, 1), 1.0)
        # Second moment - 1 is the wide linear Gaussian spectral variance L.
        assert_close(theory.fuss_catalan_moment(depth, 2) - 1, theory.wide_spectral_variance(depth))
        # m_{k+1}/m_k -> edge (1 - 3/(2k)) for the square-root edge of the density.
        k = 10**6
        log_ratio = theory.fuss_catalan_moment(depth, k + 1, log=True) - theory.fuss_catalan_moment(
            depth, k, log=True
        )
        ratio = np.exp(log_ratio)
        edge = theory.linear_gaussian_top_edge(depth)
        # O(1/k^2) = 1e-12 from the expansion, plus the rounding of a difference of two log-moments of size
        # ~k log(edge) ~ 1e6 (~1e-10).
        assert abs(ratio / (edge * (1 - 1.5 / k)) - 1) < 1e-8
    assert_close(theory.linear_gaussian_top_edge(2), 27 / 4)


def test_finite_width_jjt_moments():
    # One Gaussian layer: E (1/n) tr (W W^T)^2 = 2 + 1/n (Wishart).
    assert_close(theory.jjt_moments(7, 1).second, 2 + 1 / 7, scale=0.3)
    for p, sigma2 in ((1.0, None), (0.5, None), (0.3, 2.0)):
        m = theory.jjt_moments(64, 3, p=p, sigma2=sigma2)
        assert_close(m.mean, (p * (1 / p if sigma2 is None else sigma2)) ** 3, scale=0.3)
        # The wide limit, approached like 1/n.
        wide = theory.wide_spectral_variance(3, p=p)
        errs = [theory.jjt_moments(n, 3, p=p).spectral_variance - wide for n in (4000, 8000)]
        assert errs[0] > 0 and 0.45 < errs[1] / errs[0] < 0.55


# ----------------------------------------------------------------------------------------------------------
# Covariance across indices.


def test_layer_covariance_diagonal_and_structure():
    law = theory.binomial_count_law(8, 8, 0.5)
    cov = theory.layer_covariance([law], 5)
    base = theory.count_law_theory([law], 5)
    assert_close(np.diag(cov), base.variance / base.prob_counted, scale=0.3)
    assert np.all(np.linalg.eigvalsh(cov) > 0) and np.all(cov[~np.eye(5, dtype=bool)] > 0)
    # Ginibre layers: independent across indices.
    assert_close(
        theory.layer_covariance([theory.fixed_count_law(6, 6, 6)], 6),
        np.diag(theory.gaussian_variance(6)),
        scale=0.1,
    )
    # "K>=k": every index averages over the same layers.
    cov_k = theory.layer_covariance([law], 3, condition="K>=k")
    by_k = theory.count_law_theory([law], 3, condition="K>=k")
    assert_close(np.diag(cov_k), by_k.variance / by_k.prob_counted, scale=0.3)


def test_estimator_covariance_matches_predicted_stderr():
    ens = jaxspec.masked(width=8, depth=300, p=0.6)
    cov = theory.estimator_covariance(ens, 4, seeds=5)
    assert_close(np.sqrt(np.diag(cov)), theory.predicted_stderr(ens, 4, seeds=5), scale=0.3)
    assert np.all(theory.estimator_covariance(jaxspec.orthogonal(width=4, depth=3), seeds=2) == 0)


# ----------------------------------------------------------------------------------------------------------
# Jittable variants.


class JaxVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_jax_variants_equal_the_reference_under_jit_and_vmap(self):
        ps = jnp.array([0.3, 0.5, 1.0])
        out = self.variant(jax.vmap(lambda p: theory.masked_exponents_jax(12, p, 1.7, 5)))(ps)
        for row, p in zip(np.asarray(out), np.asarray(ps), strict=True):
            assert_close(row, theory.masked_exponents(12, float(p), 1.7, 5), scale=0.1)
        assert_close(
            self.variant(lambda s: theory.gaussian_exponents_jax(9, s))(2.5),
            theory.gaussian_exponents(9, 2.5),
            scale=0.3,
        )


# ----------------------------------------------------------------------------------------------------------
# Boundary validation.


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: theory.large_n_exponents(10, 1.5), "p must lie"),
        (lambda: theory.gaussian_exponents(4, k=5), "k must lie"),
        (lambda: theory.count_laws((4, 4), counts=(5,)), "counts"),
        (lambda: theory.count_laws((4, 4, 4), p=(0.5,)), "one entry per layer"),
        (lambda: theory.count_laws((4,)), "at least two"),
        (lambda: theory.wide_spectral_variance(0), "depth"),
        (lambda: theory.wide_spectral_variance(2, activation="tanh"), "activation"),
        (lambda: theory.wide_spectral_variance(2, weights="uniform"), "weights"),
        (lambda: theory.layer_covariance([theory.fixed_count_law(4, 4, 4)], 2, condition="K>i"), "condition"),
        (lambda: theory.separation_rate([0.0], 1), "at least two exponents"),
        (lambda: theory.norm_power_moment([], -1), "power"),
        (lambda: theory.relu_log_norm_moments((4, 0)), "positive"),
    ],
)
def test_bad_arguments_raise_input_error(call, message):
    with pytest.raises(InputError, match=message):
        call()
