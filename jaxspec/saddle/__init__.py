"""The low-rank saddle escape of bias-free deep ReLU networks (Bantzis, Simon, Jacot, arXiv:2505.21722): the
loss near the origin and its localised first-order term ``L0`` (``_losses``); the sphere ``||theta||^2 = L``,
escape speeds, the balanced speed and KKT statistics (``_escape``); a generalised stationarity certificate
that holds on ReLU kinks (``_certificate``); optimal escape directions by restarts of projected gradient
ascent and an L-BFGS polish (``_optimal``); the scale-free step and gradient descent from a tiny
initialisation through :func:`jaxspec.training.train` (``_training``); plateaus of the loss and the direction
at the end of the first one (``_plateaus``); the per-layer low-rank bias, ``s_1/s_2`` and non-leading
energies (``_low_rank``); toy problems, the unit-circle example and a ridge teacher (``_toys``); and the
argument checks they share (``_validation``).
"""

from jaxspec.saddle._certificate import Stationarity, min_norm_point, stationarity_certificate
from jaxspec.saddle._escape import (
    EscapeStats,
    balanced_speed,
    escape_speed,
    escape_stats,
    project_to_sphere,
)
from jaxspec.saddle._losses import localised_loss, mse_loss, mse_output_gradient
from jaxspec.saddle._low_rank import LayerRatios, dominant_counts, layer_ratios
from jaxspec.saddle._optimal import EscapeDirection, optimal_escape_direction
from jaxspec.saddle._plateaus import Plateaus, detect_plateaus, first_plateau_direction
from jaxspec.saddle._toys import ridge_target, unit_circle_example, unit_circle_rank_two_direction
from jaxspec.saddle._training import escape_step, train_from_small_init

__all__ = [
    "EscapeDirection",
    "EscapeStats",
    "LayerRatios",
    "Plateaus",
    "Stationarity",
    "balanced_speed",
    "detect_plateaus",
    "dominant_counts",
    "escape_speed",
    "escape_stats",
    "escape_step",
    "first_plateau_direction",
    "layer_ratios",
    "localised_loss",
    "min_norm_point",
    "mse_loss",
    "mse_output_gradient",
    "optimal_escape_direction",
    "project_to_sphere",
    "ridge_target",
    "stationarity_certificate",
    "train_from_small_init",
    "unit_circle_example",
    "unit_circle_rank_two_direction",
]
