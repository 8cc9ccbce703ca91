"""Training with tracked spectral quantities: a jitted optax loop, trackers, checkpoints.

Example:
    >>> import jax.numpy as jnp
    >>> from jaxspec.training import train
    >>> res = train(lambda w: jnp.sum((w - 1.0) ** 2), jnp.zeros(3), num_steps=50, progress=False)
"""

from jaxspec.training.checkpoint import (
    TrainCheckpoint,
    latest_checkpoint_step,
    restore_checkpoint,
    save_checkpoint,
)
from jaxspec.training.loop import TrainResult, train

__all__ = [
    "TrainCheckpoint",
    "TrainResult",
    "latest_checkpoint_step",
    "restore_checkpoint",
    "save_checkpoint",
    "train",
]
