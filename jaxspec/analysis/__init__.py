"""Analysis of finite-depth products: singular values, singular-vector alignment, scaling diagnostics.

* :mod:`~jaxspec.analysis._svals`: exact finite-depth singular values by a stratified (graded) QR scan.
* :mod:`~jaxspec.analysis._alignment`: principal angles, prefix/suffix alignment, the sandwich bounds.
* :mod:`~jaxspec.analysis._diagnostics`: per-layer scaling, fitted slopes, separation ratios, network theory.

The finite-depth predictions :func:`predicted_log_svals`, :func:`predicted_separation` and
:func:`singular_value_offsets` are :mod:`jaxspec.theory`'s, re-exported here beside the diagnostics.
"""

from jaxspec.analysis._alignment import (
    SandwichResult,
    SegmentAlignment,
    prefix_alignment,
    principal_angles,
    sandwich,
    sandwich_from_parts,
    scaled_prefix_products,
    scaled_product,
    scaled_suffix_products,
    segment_alignment,
    split_sandwich,
    subspace_sines,
    suffix_alignment,
    top_singular_pairs,
)
from jaxspec.analysis._diagnostics import (
    NetworkTheory,
    SlopeFit,
    fit_slopes,
    network_theory,
    per_layer_log_svals,
    separation_ratios,
    zscores,
)
from jaxspec.analysis._svals import (
    GradedProduct,
    ProductSvals,
    ensemble_log_svals,
    graded_log_svals,
    graded_step,
    product_log_svals,
    stratified_scan,
)
from jaxspec.theory import predicted_log_svals, predicted_separation, singular_value_offsets

__all__ = [
    "GradedProduct",
    "NetworkTheory",
    "ProductSvals",
    "SandwichResult",
    "SegmentAlignment",
    "SlopeFit",
    "ensemble_log_svals",
    "fit_slopes",
    "graded_log_svals",
    "graded_step",
    "network_theory",
    "per_layer_log_svals",
    "predicted_log_svals",
    "predicted_separation",
    "prefix_alignment",
    "principal_angles",
    "product_log_svals",
    "sandwich",
    "sandwich_from_parts",
    "scaled_prefix_products",
    "scaled_product",
    "scaled_suffix_products",
    "segment_alignment",
    "separation_ratios",
    "singular_value_offsets",
    "split_sandwich",
    "stratified_scan",
    "subspace_sines",
    "suffix_alignment",
    "top_singular_pairs",
    "zscores",
]
