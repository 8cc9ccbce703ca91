"""The bottleneck rank of L2-regularised deep networks (Jacot, arXiv:2305.19008), ``||theta||^2 ~ L R0 + R1``:
weight spectra, representations and their ranks, and the log pseudo-determinant of the input Jacobian
(``_ranks``); the per-network inequality and the report that gathers every measurement (``_inequality``); the
closed forms of deep linear nets, minimal-norm factorisation and weight-decay optimum (``_theory``); the depth
fit of ``R0`` and ``R1`` (``_fits``); regression tasks of known bottleneck rank (``_tasks``); the weight-decay
loss and training through :func:`jaxspec.training.train` (``_training``); and the argument checks they share
(``_validation``).
"""

from jaxspec.bottleneck._fits import RankFit, fit_rank_terms
from jaxspec.bottleneck._inequality import (
    BottleneckInequality,
    BottleneckReport,
    bottleneck_inequality,
    bottleneck_report,
)
from jaxspec.bottleneck._ranks import (
    JacobianPseudoDet,
    RepresentationRanks,
    jacobian_pseudo_logdet,
    layer_singular_values,
    parameter_norm_sq,
    representation_ranks,
    representations,
)
from jaxspec.bottleneck._tasks import BottleneckTask, bottleneck_target
from jaxspec.bottleneck._theory import deep_linear_min_norm, deep_linear_weight_decay_optimum
from jaxspec.bottleneck._training import train_weight_decay, weight_decay_loss

__all__ = [
    "BottleneckInequality",
    "BottleneckReport",
    "BottleneckTask",
    "JacobianPseudoDet",
    "RankFit",
    "RepresentationRanks",
    "bottleneck_inequality",
    "bottleneck_report",
    "bottleneck_target",
    "deep_linear_min_norm",
    "deep_linear_weight_decay_optimum",
    "fit_rank_terms",
    "jacobian_pseudo_logdet",
    "layer_singular_values",
    "parameter_norm_sq",
    "representation_ranks",
    "representations",
    "train_weight_decay",
    "weight_decay_loss",
]
