"""Training with tracked spectral quantities: a jitted optax loop, models, trackers, checkpoints, experiments.

* :mod:`~jaxspec.training._loop`: :func:`train`, the jitted optax loop recording on a schedule.
* :mod:`~jaxspec.training._checkpoint`: checkpoint and resume through orbax (an optional extra), with
  checksums, run signatures and fallback past damaged checkpoints.
* :mod:`~jaxspec.training._divergence`: :class:`TrainingDivergedError`, raised with the records kept.
* :mod:`~jaxspec.training._models`: deep linear, fixed-gates and ReLU models, end-to-end maps, losses.
* :mod:`~jaxspec.training._tracking`: end-to-end modes, layer spectra, alignment, balancedness, mode factors.
* :mod:`~jaxspec.training._mode_dynamics`: predicted singular-value dynamics (Saxe, Arora, shared-basis ODEs).
* :mod:`~jaxspec.training._experiment`: one experiment end to end (config, data, run, dataset, figure).

Example:
    >>> import jax.numpy as jnp
    >>> from jaxspec.training import train
    >>> res = train(lambda w: jnp.sum((w - 1.0) ** 2), jnp.zeros(3), num_steps=50, progress=False)
"""

from jaxspec.training._checkpoint import (
    CheckpointFallbackWarning,
    TrainCheckpoint,
    check_signature,
    checkpoint_steps,
    latest_checkpoint_step,
    restore_checkpoint,
    restore_latest_good,
    save_checkpoint,
)
from jaxspec.training._divergence import TrainingDivergedError
from jaxspec.training._experiment import (
    TrainConfig,
    alignment_start_index,
    load_config,
    plot_dynamics,
    run_experiment,
    run_signature,
    save_experiment,
    to_dataset,
    unlearned_modes,
)
from jaxspec.training._loop import TrainResult, train
from jaxspec.training._mode_dynamics import (
    PREDICTIONS,
    DynamicsComparison,
    ModeTrajectory,
    arora_end_to_end,
    balanced_mode_ode,
    compare_dynamics,
    mode_gd,
    mode_ode,
    mode_targets,
    rk4_integrate,
    saxe_two_layer,
)
from jaxspec.training._models import (
    LOSSES,
    MODEL_KINDS,
    Model,
    aligned_init,
    balanced_factors,
    deep_linear_init,
    end_to_end_fn,
    make_loss,
    make_model,
    model_apply,
    weight_matrices,
)
from jaxspec.training._tracking import (
    adjacent_alignment,
    balancedness,
    balancedness_norms,
    end_to_end_svd,
    fix_signs,
    layer_singular_values,
    make_tracker,
    mode_factors,
)

__all__ = [
    "PREDICTIONS",
    "DynamicsComparison",
    "ModeTrajectory",
    "arora_end_to_end",
    "balanced_mode_ode",
    "compare_dynamics",
    "mode_gd",
    "mode_ode",
    "mode_targets",
    "rk4_integrate",
    "saxe_two_layer",
    "LOSSES",
    "MODEL_KINDS",
    "CheckpointFallbackWarning",
    "Model",
    "TrainCheckpoint",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "adjacent_alignment",
    "aligned_init",
    "alignment_start_index",
    "balanced_factors",
    "balancedness",
    "balancedness_norms",
    "check_signature",
    "checkpoint_steps",
    "deep_linear_init",
    "end_to_end_fn",
    "end_to_end_svd",
    "fix_signs",
    "latest_checkpoint_step",
    "layer_singular_values",
    "load_config",
    "make_loss",
    "make_model",
    "make_tracker",
    "mode_factors",
    "model_apply",
    "plot_dynamics",
    "restore_checkpoint",
    "restore_latest_good",
    "run_experiment",
    "run_signature",
    "save_checkpoint",
    "save_experiment",
    "to_dataset",
    "train",
    "unlearned_modes",
    "weight_matrices",
]
