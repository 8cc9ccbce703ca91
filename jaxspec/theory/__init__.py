"""Closed forms next to every simulation ([math §1-3](https://jaxspec.github.io/jaxspec/math/#s1)).

* :mod:`~jaxspec.theory._lyapunov`: Lyapunov spectra of (masked) products, count laws, variances, errors.
* :mod:`~jaxspec.theory._expansions`: large-N expansions (an option; exact sums are the default).
* :mod:`~jaxspec.theory._covariance`: covariance across indices of the exponent estimates.
* :mod:`~jaxspec.theory._finite_depth`: offsets ``c_i`` of finite-depth singular values, gaps, separation.
* :mod:`~jaxspec.theory._moments`: exact moments of ``||J u||^2`` (Hanin-Nica) for ReLU networks.
* :mod:`~jaxspec.theory._wide`: the wide-first regime (spectral variance of ``J J^T``, Fuss-Catalan edge).
* :mod:`~jaxspec.theory._jax`: jittable variants for sweeps.
* :mod:`~jaxspec.theory._validation`: the argument checks the closed forms share (``k``, ``p``).
"""

from jaxspec.theory._covariance import estimator_covariance, layer_covariance
from jaxspec.theory._expansions import (
    large_n_complex_exponents,
    large_n_exponents,
    large_n_gaps,
    large_n_variance,
)
from jaxspec.theory._finite_depth import (
    alignment_slope,
    predicted_log_svals,
    predicted_separation,
    separation_depth,
    separation_rate,
    singular_value_offsets,
    spectral_gaps,
)
from jaxspec.theory._jax import gaussian_exponents_jax, masked_exponents_jax
from jaxspec.theory._lyapunov import (
    CONDITIONS,
    CountLaw,
    LayerTheory,
    binomial_count_law,
    complex_gaussian_exponents,
    complex_gaussian_variance,
    count_law_theory,
    count_laws,
    ensemble_count_laws,
    expected_counted_fraction,
    fixed_count_law,
    gaussian_exponents,
    gaussian_variance,
    lyapunov_exponents,
    masked_exponents,
    orthogonal_exponents,
    per_layer_variance,
    predicted_stderr,
    prob_active_at_least,
    product_theory,
    relu_survival,
)
from jaxspec.theory._moments import (
    LogNormMoments,
    count_law_log_norm_moments,
    norm_power_moment,
    relu_log_norm_moments,
)
from jaxspec.theory._wide import (
    JJtMoments,
    fuss_catalan_moment,
    jjt_moments,
    linear_gaussian_top_edge,
    wide_spectral_variance,
)

__all__ = [
    "CONDITIONS",
    "CountLaw",
    "JJtMoments",
    "LayerTheory",
    "LogNormMoments",
    "alignment_slope",
    "binomial_count_law",
    "complex_gaussian_exponents",
    "complex_gaussian_variance",
    "count_law_log_norm_moments",
    "count_law_theory",
    "count_laws",
    "ensemble_count_laws",
    "estimator_covariance",
    "expected_counted_fraction",
    "fixed_count_law",
    "fuss_catalan_moment",
    "gaussian_exponents",
    "gaussian_exponents_jax",
    "gaussian_variance",
    "jjt_moments",
    "large_n_complex_exponents",
    "large_n_exponents",
    "large_n_gaps",
    "large_n_variance",
    "layer_covariance",
    "linear_gaussian_top_edge",
    "lyapunov_exponents",
    "masked_exponents",
    "masked_exponents_jax",
    "norm_power_moment",
    "orthogonal_exponents",
    "per_layer_variance",
    "predicted_log_svals",
    "predicted_separation",
    "predicted_stderr",
    "prob_active_at_least",
    "product_theory",
    "relu_log_norm_moments",
    "relu_survival",
    "separation_depth",
    "separation_rate",
    "singular_value_offsets",
    "spectral_gaps",
    "wide_spectral_variance",
]
