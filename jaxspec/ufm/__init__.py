"""Deep unconstrained feature models (UFMs): collapse, layer-wise Hessian outliers, gradient alignment.

The deep UFM (linear or ReLU, bias-free, MSE with weight and feature decay) is the model in which Garrod &
Keating derive the bulk-plus-outliers Hessian spectra, deep neural collapse and the alignment of gradient
descent with the outlier eigenspace in closed form. This package gives the analytic collapsed optimum
(:func:`collapsed_optimum`, :func:`collapsed_params`), full-batch training with tracked diagnostics
(:func:`train_ufm`), NC1-NC4 per layer, the Kronecker layer-wise Hessian, the Gauss-Newton class / cross-class
/ within-class split, the gradient's coefficients on the class-mean basis, ``f_cc'`` and the gradient-outlier
overlap, so that every prediction sits beside its measurement.

* :mod:`~jaxspec.ufm._model`: the deep UFM, its parameters, forward pass, loss and layer blocks.
* :mod:`~jaxspec.ufm._theory`: the collapsed optimum of the deep linear UFM in closed form.
* :mod:`~jaxspec.ufm._collapse`: neural-collapse metrics NC1-NC4, layer by layer.
* :mod:`~jaxspec.ufm._curvature`: Kronecker Hessian, Gauss-Newton split, class-mean gradients, Lanczos.
* :mod:`~jaxspec.ufm._ranks`: the lower-rank optima (closed-form losses) and the rank a run reached.
* :mod:`~jaxspec.ufm._train`: full-batch training with the collapse and curvature diagnostics tracked, and
  several seeds at once, each classified by the optimum it reached.

Example:
    >>> from jaxspec import ufm
    >>> model = ufm.make_ufm(3, 40, 5, 1e-2, width=6)
    >>> opt = ufm.collapsed_optimum(model)
    >>> top = ufm.layer_eigenpairs(model, ufm.collapsed_params(model), layer=2)
    >>> round(opt.gamma, 6), round(opt.outlier, 6), round(float(top.eigenvalues[0]), 5)
    (0.942277, 0.163243, 0.16324)

References:
    Garrod & Keating, "Unifying low dimensional spectra in deep learning", arXiv:2404.06106.
"""

from jaxspec.ufm._collapse import (
    GEOMETRIES,
    NeuralCollapse,
    collapse_metrics,
    effective_classifiers,
    feature_collapse,
)
from jaxspec.ufm._curvature import (
    GaussNewtonSplit,
    GradientCoefficients,
    alignment_matrix,
    class_mean_gradients,
    data_gradient,
    feature_gram_eigenvalues,
    gauss_newton_parts,
    gauss_newton_split,
    gradient_coefficients,
    gradient_outlier_overlap,
    gram_eigenvalues,
    kronecker_factors,
    kronecker_hessian,
    layer_eigenpairs,
    layer_top_eigenvalues,
    per_sample_jacobians,
)
from jaxspec.ufm._model import (
    ACTIVATIONS,
    UFM,
    UFMParams,
    data_loss,
    init_params,
    labels,
    layer_block,
    layer_features,
    layer_weight,
    loss,
    make_ufm,
    map_layers,
    predict,
    regulariser,
    targets,
    with_layer,
)
from jaxspec.ufm._ranks import feature_rank, rank_losses, rank_params
from jaxspec.ufm._theory import CollapsedOptimum, collapsed_optimum, collapsed_params, solve_gamma
from jaxspec.ufm._train import Diagnostics, SeedRuns, diagnostics, train_ufm, train_ufm_seeds

__all__ = [
    "ACTIVATIONS",
    "GEOMETRIES",
    "UFM",
    "CollapsedOptimum",
    "Diagnostics",
    "GaussNewtonSplit",
    "GradientCoefficients",
    "NeuralCollapse",
    "SeedRuns",
    "UFMParams",
    "alignment_matrix",
    "class_mean_gradients",
    "collapse_metrics",
    "collapsed_optimum",
    "collapsed_params",
    "data_gradient",
    "data_loss",
    "diagnostics",
    "effective_classifiers",
    "feature_collapse",
    "feature_rank",
    "feature_gram_eigenvalues",
    "gauss_newton_parts",
    "gauss_newton_split",
    "gradient_coefficients",
    "gradient_outlier_overlap",
    "gram_eigenvalues",
    "init_params",
    "kronecker_factors",
    "kronecker_hessian",
    "labels",
    "layer_block",
    "layer_eigenpairs",
    "layer_top_eigenvalues",
    "layer_features",
    "layer_weight",
    "loss",
    "make_ufm",
    "map_layers",
    "per_sample_jacobians",
    "predict",
    "rank_losses",
    "rank_params",
    "regulariser",
    "solve_gamma",
    "targets",
    "train_ufm",
    "train_ufm_seeds",
    "with_layer",
]
