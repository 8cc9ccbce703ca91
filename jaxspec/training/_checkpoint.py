"""Checkpoint and resume of a training run through orbax.

A checkpoint holds everything needed to continue bit-for-bit: the parameters, the optimizer state, the step
reached, and the history recorded so far (steps, loss, tracked leaves). Parameters and optimizer state are
restored into the structure of the caller's templates (so optax's NamedTuple states come back as themselves);
the history is stored as a flat dict of arrays and re-assembled with the tracked pytree's structure.

References:
    Orbax checkpointing, https://orbax.readthedocs.io (CheckpointManager, StandardSave / StandardRestore).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxspec._checks import InputError


class TrainCheckpoint(NamedTuple):
    """The state of a run at one step.

    Attributes:
        step: number of optimizer steps taken.
        params: parameter pytree.
        opt_state: optax state pytree.
        history: dict with ``"steps"`` (T,), ``"loss"`` (T,) and ``"tracked"`` (list of leaves, each
            (T, ...)).
    """

    step: int
    params: Any
    opt_state: Any
    history: dict[str, Any]


def _manager(directory: str | Path, max_to_keep: int | None = 2):
    import orbax.checkpoint as ocp

    directory = Path(directory).expanduser().resolve()
    if directory.exists() and not directory.is_dir():
        raise InputError(f"checkpoint_dir exists and is not a directory: {directory}")
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(directory, options=options, item_names=("state", "history"))


def _history_dict(history: dict[str, Any]) -> dict[str, np.ndarray]:
    flat = {"steps": np.asarray(history["steps"]), "loss": np.asarray(history["loss"])}
    for i, leaf in enumerate(history["tracked"]):
        flat[f"tracked_{i:04d}"] = np.asarray(leaf)
    return flat


def save_checkpoint(directory: str | Path, checkpoint: TrainCheckpoint, max_to_keep: int | None = 2) -> None:
    """Write ``checkpoint`` under ``directory/<step>`` (synchronously; older ones beyond ``max_to_keep`` go).

    Args:
        directory: the run's checkpoint folder (created if missing).
        checkpoint: the state to save.
        max_to_keep: how many checkpoints to keep (``None``: all).
    """
    import orbax.checkpoint as ocp

    state = {"params": checkpoint.params, "opt_state": checkpoint.opt_state}
    with _manager(directory, max_to_keep) as manager:
        manager.save(
            int(checkpoint.step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                history=ocp.args.StandardSave(_history_dict(checkpoint.history)),
            ),
            force=True,
        )
        manager.wait_until_finished()


def latest_checkpoint_step(directory: str | Path) -> int | None:
    """The last saved step in ``directory``, or ``None`` when there is none (or no directory)."""
    if not Path(directory).expanduser().is_dir():
        return None
    with _manager(directory) as manager:
        return manager.latest_step()


def restore_checkpoint(
    directory: str | Path, params_template: Any, opt_state_template: Any, step: int | None = None
) -> TrainCheckpoint:
    """Read a checkpoint back into the structures of the templates.

    Args:
        directory: the run's checkpoint folder.
        params_template: a pytree with the structure, shapes and dtypes of the saved parameters.
        opt_state_template: the same for the optimizer state (``optimizer.init(params_template)``).
        step: which step to restore (default: the latest).

    Returns:
        A :class:`TrainCheckpoint`; ``history["tracked"]`` is the list of tracked leaves in flattening order.
    """
    import orbax.checkpoint as ocp

    with _manager(directory) as manager:
        step = manager.latest_step() if step is None else int(step)
        if step is None:
            raise InputError(f"no checkpoint found in {directory}")
        target = {"params": params_template, "opt_state": opt_state_template}
        abstract = jax.tree.map(
            lambda x: (
                jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype)
                if not hasattr(x, "sharding")
                else jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
            ),
            target,
        )
        try:
            restored = manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), history=ocp.args.StandardRestore()
                ),
            )
        except (ValueError, KeyError) as err:
            raise InputError(
                f"checkpoint in {directory} does not match these parameters or optimizer: "
                f"{' '.join(str(err).split())[:200]}"
            ) from err
    flat = restored["history"]
    tracked_keys = sorted(k for k in flat if k.startswith("tracked_"))
    history = {
        "steps": np.asarray(flat["steps"]),
        "loss": np.asarray(flat["loss"]),
        "tracked": [np.asarray(flat[k]) for k in tracked_keys],
    }
    return TrainCheckpoint(step, restored["state"]["params"], restored["state"]["opt_state"], history)
