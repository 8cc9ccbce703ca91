"""Closed forms next to every simulation (MATH.md sections 1-3)."""

from jaxspec.theory._lyapunov import (
    CONDITIONS,
    CountLaw,
    LayerTheory,
    binomial_count_law,
    complex_gaussian_exponents,
    count_law_theory,
    ensemble_count_laws,
    fixed_count_law,
    gaussian_exponents,
    lyapunov_exponents,
    masked_exponents,
    orthogonal_exponents,
    per_layer_variance,
    predicted_stderr,
    prob_active_at_least,
)

__all__ = [
    "CONDITIONS",
    "CountLaw",
    "LayerTheory",
    "binomial_count_law",
    "complex_gaussian_exponents",
    "count_law_theory",
    "ensemble_count_laws",
    "fixed_count_law",
    "gaussian_exponents",
    "lyapunov_exponents",
    "masked_exponents",
    "orthogonal_exponents",
    "per_layer_variance",
    "predicted_stderr",
    "prob_active_at_least",
]
