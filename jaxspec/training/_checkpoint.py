"""Checkpoint and resume of a training run through orbax, with damage detection and fallback.

A checkpoint holds everything needed to continue bit-for-bit: the parameters, the optimizer state, the step
reached, and the history recorded so far (steps, loss, tracked leaves). Parameters and optimizer state are
restored into the structure of the caller's templates (so optax's NamedTuple states come back as themselves);
the history is stored as a flat dict of arrays and re-assembled with the tracked pytree's structure.

Beside them every checkpoint stores a small JSON item, ``meta``: the run's *signature* (the settings that fix
its trajectory, compared on resume) and a SHA-256 checksum of every array. A checkpoint that cannot be read
or whose arrays do not match the checksum is *damaged*; :func:`restore_latest_good` then falls back to the
newest good one and moves the damaged ones aside (``DIR/damaged-<step>``), saying so in its notes. Orbax
writes each checkpoint into a temporary folder and renames it when complete, so a run killed while saving
leaves no half checkpoint under a step's name.

References:
    Orbax checkpointing, https://orbax.readthedocs.io (CheckpointManager, StandardSave / StandardRestore).
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxspec._checks import InputError
from jaxspec._extras import optional_import

_ITEMS = ("state", "history", "meta")


class _Damaged(InputError):
    """A checkpoint that cannot be read back, or whose arrays differ from their checksum."""


class CheckpointFallbackWarning(UserWarning):
    """A damaged checkpoint was passed over and the run resumed from an older one (a one-line message)."""


class TrainCheckpoint(NamedTuple):
    """The state of a run at one step.

    Attributes:
        step: number of optimizer steps taken.
        params: parameter pytree.
        opt_state: optax state pytree.
        history: dict with ``"steps"`` (T,), ``"loss"`` (T,) and ``"tracked"`` (list of leaves, each
            (T, ...)).
        signature: the run's settings saved with it (a JSON-ready dict), or ``None``.
    """

    step: int
    params: Any
    opt_state: Any
    history: dict[str, Any]
    signature: dict[str, Any] | None = None


def _ocp():
    return optional_import("orbax.checkpoint", "train")


def _manager(directory: str | Path, max_to_keep: int | None = 2):
    ocp = _ocp()
    directory = Path(directory).expanduser().resolve()
    if directory.exists() and not directory.is_dir():
        raise InputError(f"checkpoint_dir exists and is not a directory: {directory}")
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(directory, options=options, item_names=_ITEMS)


def _history_dict(history: dict[str, Any]) -> dict[str, np.ndarray]:
    flat = {"steps": np.asarray(history["steps"]), "loss": np.asarray(history["loss"])}
    for i, leaf in enumerate(history["tracked"]):
        flat[f"tracked_{i:04d}"] = np.asarray(leaf)
    return flat


def checksum(tree: Any) -> str:
    """SHA-256 over the dtype, shape and bytes of every leaf of ``tree`` (in flattening order).

    Example:
        >>> checksum({"a": np.zeros(2)}) == checksum({"a": np.zeros(2)})
        True
    """
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        array = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _payload(checkpoint: TrainCheckpoint) -> tuple[dict, dict]:
    state = {"params": checkpoint.params, "opt_state": checkpoint.opt_state}
    return state, _history_dict(checkpoint.history)


def save_checkpoint(
    directory: str | Path,
    checkpoint: TrainCheckpoint,
    max_to_keep: int | None = 2,
) -> None:
    """Write ``checkpoint`` under ``directory/<step>`` (synchronously; older ones beyond ``max_to_keep`` go).

    Args:
        directory: the run's checkpoint folder (created if missing).
        checkpoint: the state to save; its ``signature`` and a checksum of its arrays go in ``meta``.
        max_to_keep: how many checkpoints to keep (``None``: all).

    Example:
        >>> save_checkpoint("ckpt", TrainCheckpoint(10, params, opt_state, history))  # doctest: +SKIP
    """
    ocp = _ocp()
    state, history = _payload(checkpoint)
    meta = {
        "format": 2,
        "step": int(checkpoint.step),
        "signature": checkpoint.signature,
        "checksum": checksum((state, history)),
    }
    with _manager(directory, max_to_keep) as manager:
        manager.save(
            int(checkpoint.step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                history=ocp.args.StandardSave(history),
                meta=ocp.args.JsonSave(meta),
            ),
            force=True,
        )
        manager.wait_until_finished()


def checkpoint_steps(directory: str | Path) -> list[int]:
    """The saved steps in ``directory``, ascending (empty when there is none, or no directory).

    Example:
        >>> checkpoint_steps("/nonexistent")
        []
    """
    if not Path(directory).expanduser().is_dir():
        return []
    with _manager(directory) as manager:
        return sorted(int(s) for s in manager.all_steps())


def latest_checkpoint_step(directory: str | Path) -> int | None:
    """The last saved step in ``directory``, or ``None`` when there is none (or no directory).

    Example:
        >>> latest_checkpoint_step("/nonexistent") is None
        True
    """
    steps = checkpoint_steps(directory)
    return steps[-1] if steps else None


@contextlib.contextmanager
def _quiet_unraisable() -> Iterator[None]:
    """Silence the 'Exception ignored in coroutine' reports tensorstore leaves behind when a read fails."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _: None
    try:
        yield
    finally:
        sys.unraisablehook = hook


def _abstract(tree: Any) -> Any:
    return jax.tree.map(
        lambda x: (
            jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
            if hasattr(x, "sharding")
            else jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype)
        ),
        tree,
    )


def _one_line(err: BaseException, limit: int = 160) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:limit]


def restore_checkpoint(
    directory: str | Path, params_template: Any, opt_state_template: Any, step: int | None = None
) -> TrainCheckpoint:
    """Read a checkpoint back into the structures of the templates, verifying its checksum.

    Args:
        directory: the run's checkpoint folder.
        params_template: a pytree with the structure, shapes and dtypes of the saved parameters.
        opt_state_template: the same for the optimizer state (``optimizer.init(params_template)``).
        step: which step to restore (default: the latest).

    Returns:
        A :class:`TrainCheckpoint`; ``history["tracked"]`` is the list of tracked leaves in flattening order.

    Raises:
        InputError: no checkpoint, a checkpoint that does not match the templates, or a damaged one
            (unreadable, or arrays that differ from the saved checksum).

    Example:
        >>> ckpt = restore_checkpoint("ckpt", params, optax.sgd(0.1).init(params))  # doctest: +SKIP
    """
    ocp = _ocp()
    with _manager(directory) as manager:
        step = manager.latest_step() if step is None else int(step)
        if step is None:
            raise InputError(f"no checkpoint found in {directory}")
        has_meta = (Path(manager.directory) / str(step) / "meta").exists()
        target = {"params": params_template, "opt_state": opt_state_template}
        items = {
            "state": ocp.args.StandardRestore(_abstract(target)),
            "history": ocp.args.StandardRestore(),
        }
        if has_meta:
            items["meta"] = ocp.args.JsonRestore()
        try:
            with _quiet_unraisable():
                restored = manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as err:  # orbax/tensorstore raise many types for unreadable or mismatched files
            raise _Damaged(
                f"cannot restore the checkpoint at step {step} in {directory} (damaged, or not made with "
                f"these parameters and optimizer): {_one_line(err)}"
            ) from err
    meta = restored["meta"] if has_meta else {}
    flat = {k: np.asarray(v) for k, v in restored["history"].items()}
    state = restored["state"]
    if meta.get("checksum") is not None:
        found = checksum(({"params": state["params"], "opt_state": state["opt_state"]}, flat))
        if found != meta["checksum"]:
            raise _Damaged(
                f"the checkpoint at step {step} in {directory} is damaged: its arrays do not match the "
                "checksum saved with them"
            )
    tracked_keys = sorted(k for k in flat if k.startswith("tracked_"))
    history = {
        "steps": flat["steps"],
        "loss": flat["loss"],
        "tracked": [flat[k] for k in tracked_keys],
    }
    return TrainCheckpoint(step, state["params"], state["opt_state"], history, meta.get("signature"))


def read_signature(directory: str | Path, step: int) -> dict[str, Any] | None:
    """The signature saved with the checkpoint at ``step`` (``None`` for a checkpoint without one).

    Raises:
        InputError: when the checkpoint's ``meta`` item cannot be read (a damaged checkpoint).

    Example:
        >>> read_signature("ckpt", 100)  # doctest: +SKIP
        {'log_every': 10, 'learning_rate': 0.005, ...}
    """
    ocp = _ocp()
    with _manager(directory) as manager:
        if not (Path(manager.directory) / str(step) / "meta").exists():
            return None
        try:
            with _quiet_unraisable():
                restored = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        except Exception as err:  # unreadable JSON, truncated file: the checkpoint is damaged
            raise _Damaged(
                f"cannot read the checkpoint at step {step} in {directory} (damaged): {_one_line(err)}"
            ) from err
    meta = restored["meta"]
    return meta.get("signature") if isinstance(meta, dict) else None


def restore_latest_good(
    directory: str | Path,
    params_template: Any,
    opt_state_template: Any,
    signature: Mapping[str, Any] | None = None,
) -> tuple[TrainCheckpoint | None, list[str]]:
    """The newest checkpoint that restores and passes its checksum, falling back past damaged ones.

    With ``signature``, the newest readable checkpoint's saved signature is compared first, before any array
    is read (:func:`check_signature`): a run with other settings is refused by name, not mistaken for damage.
    Damaged checkpoints newer than the one restored are moved aside to ``directory/damaged-<step>`` (so the
    resumed run can save its own checkpoints at those steps) and named in the notes.

    Args:
        directory: the run's checkpoint folder.
        params_template, opt_state_template: as in :func:`restore_checkpoint`.
        signature: the resumed run's settings (``None``: not compared).

    Returns:
        ``(checkpoint, notes)``: ``checkpoint`` is ``None`` when the folder holds no checkpoint; ``notes``
        are one-line messages, one per damaged checkpoint passed over.

    Raises:
        InputError: a changed setting (named), or no checkpoint restores (the newest one's error is named).

    Example:
        >>> ckpt, notes = restore_latest_good("ckpt", params, opt_state)  # doctest: +SKIP
    """
    steps = checkpoint_steps(directory)
    failures: list[tuple[int, InputError]] = []
    compared = signature is None
    for step in reversed(steps):
        try:
            if not compared:
                saved = read_signature(directory, step)
                check_signature(directory, saved, signature)  # a refusal here is not damage: it propagates
                compared = True
            checkpoint = restore_checkpoint(directory, params_template, opt_state_template, step)
        except _Damaged as err:
            failures.append((step, err))
            continue
        notes = []
        root = Path(directory).expanduser().resolve()
        for bad, err in failures:
            aside = root / f"damaged-{bad}"
            (root / str(bad)).rename(aside)
            notes.append(f"{err}; resuming from step {step} instead (the damaged one is kept as {aside})")
        return checkpoint, notes
    if failures:
        raise failures[0][1]
    return None, []


def check_signature(directory: str | Path, saved: Mapping[str, Any] | None, now: Mapping[str, Any]) -> None:
    """Refuse to resume when a setting that fixes the trajectory differs from the saved run's.

    Args:
        directory: the checkpoint folder (for the message).
        saved: the signature stored with the checkpoint (``None``: an old checkpoint without one; accepted).
        now: the signature of the run being resumed.

    Raises:
        InputError: naming the first differing field, with both values.

    Example:
        >>> check_signature("ckpt", {"learning_rate": 0.1}, {"learning_rate": 0.1})  # same run: no error
    """
    if saved is None:
        return
    for name in [*now, *(k for k in saved if k not in now)]:  # the caller's order: settings before data
        before, after = saved.get(name, "<unset>"), now.get(name, "<unset>")
        if before != after:
            raise InputError(
                f"cannot resume from {directory}: {name} was {before!r} in the checkpointed run, {after!r} "
                "now; a resumed run must keep every setting that changes its trajectory (only the number of "
                "steps may grow)"
            )
