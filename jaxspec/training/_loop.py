"""A pure, jitted optax training loop over a pytree of parameters, with quantities tracked on a schedule.

Whole stretches of ``log_every`` optimizer steps run inside one ``lax.scan``; several stretches are fused in
one jitted call (an outer ``lax.scan``) so that the Python side only advances a progress bar and writes
checkpoints. After every stretch (and at step 0) the loss and ``track_fn(params)`` are recorded, so
``result.loss[t]`` is the loss of the parameters reached after ``result.steps[t]`` steps.

Full-batch gradient descent (the default, ``optax.sgd(learning_rate)``) with step ``eta`` approximates
gradient flow at time ``t = step * eta``; that is how :func:`jaxspec.training.compare_dynamics` compares a run
with its ODE prediction.

References:
    Saxe, McClelland, Ganguli, "Exact solutions to the nonlinear dynamics of learning in deep linear neural
    networks", ICLR 2014, arXiv:1312.6120. DeepMind et al., "The DeepMind JAX Ecosystem" (optax), 2020.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int
from tqdm.auto import tqdm

from jaxspec._checks import InputError, check_real
from jaxspec.training._checkpoint import (
    CheckpointFallbackWarning,
    TrainCheckpoint,
    restore_latest_good,
    save_checkpoint,
)
from jaxspec.training._divergence import TrainingDivergedError

# Progress-bar granularity: about this many jitted calls per run (each call fuses several logged stretches).
_TARGET_CALLS = 25


class TrainResult(NamedTuple):
    """The outcome of :func:`train`.

    Attributes:
        params: final parameter pytree.
        opt_state: final optax state.
        steps: (T,) int, optimizer steps taken at each record (``0, log_every, 2 log_every, ..., num_steps``).
        loss: (T,) loss of the parameters at each record.
        tracked: the pytree returned by ``track_fn`` with a leading axis T on every leaf (``None`` without
            ``track_fn``).
    """

    params: Any
    opt_state: Any
    steps: Int[Array, " T"]
    loss: Float[Array, " T"]
    tracked: Any


def _is_positive_int(x) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, np.integer)) and x >= 1


def _validate(
    loss_fn,
    params,
    optimizer,
    num_steps,
    log_every,
    track_fn,
    checkpoint_dir,
    checkpoint_every,
    resume,
    signature,
):
    if signature is not None and not isinstance(signature, Mapping):
        raise InputError(f"signature must be a mapping of setting names to JSON values, got {signature!r}")
    if not callable(loss_fn):
        raise InputError("loss_fn must be a callable params -> scalar loss")
    if track_fn is not None and not callable(track_fn):
        raise InputError("track_fn must be a callable params -> pytree, or None")
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise InputError("optimizer must be an optax.GradientTransformation (with init and update)")
    if not _is_positive_int(num_steps):
        raise InputError(f"num_steps must be a positive integer, got {num_steps!r}")
    if not _is_positive_int(log_every):
        raise InputError(f"log_every must be a positive integer, got {log_every!r}")
    if checkpoint_every is not None:
        if checkpoint_dir is None:
            raise InputError("checkpoint_every needs checkpoint_dir")
        if not _is_positive_int(checkpoint_every) or checkpoint_every % log_every:
            raise InputError(
                f"checkpoint_every must be a positive multiple of log_every={log_every}, "
                f"got {checkpoint_every!r}"
            )
    if resume and checkpoint_dir is None:
        raise InputError("resume=True needs checkpoint_dir")
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise InputError("params must be a non-empty pytree of arrays")
    for leaf in leaves:
        if not jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact):
            raise InputError(f"every parameter must be a float array, got dtype {jnp.asarray(leaf).dtype}")
    try:
        shape = jax.eval_shape(loss_fn, params)
    except Exception as err:  # the user's loss does not run on these params: say so in one line
        message = " ".join(str(err).split())[:200]
        raise InputError(f"loss_fn(params) failed: {type(err).__name__}: {message}") from err
    if not (hasattr(shape, "shape") and shape.shape == ()):
        raise InputError(f"loss_fn(params) must return a scalar, got {getattr(shape, 'shape', type(shape))}")


def _calls_per_record_block(num_records: int, checkpoint_records: int | None) -> int:
    """How many logged stretches one jitted call fuses.

    About ``num_records / _TARGET_CALLS``, preferably a divisor of the number of full stretches so that a
    single shape is compiled. With checkpoints the block divides the checkpoint interval: the blocks are
    aligned on absolute record indices, so a resumed run executes exactly the calls of an uninterrupted one.
    """
    target = max(1, math.ceil(num_records / _TARGET_CALLS))
    period = num_records if checkpoint_records is None else checkpoint_records
    divisors = [d for d in range(1, min(period, 2 * target) + 1) if period % d == 0]
    best = min(divisors, key=lambda d: (abs(math.log(d / target)), -d))
    if checkpoint_records is None and best < target / 2:
        return target  # no divisor near the target: one extra compilation for the last block
    return best


def _make_runner(loss_fn, optimizer, track_fn):
    """The jitted kernel: ``num_records`` stretches of ``stretch`` steps each, recording after each one."""

    def step(carry, _):
        params, opt_state = carry
        grads = jax.grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    def record(params):
        return loss_fn(params), (None if track_fn is None else track_fn(params))

    def run(params, opt_state, *, stretch: int, num_records: int):
        def one_stretch(carry, _):
            carry, _ = jax.lax.scan(step, carry, None, length=stretch)
            return carry, record(carry[0])

        (params, opt_state), (loss, tracked) = jax.lax.scan(
            one_stretch, (params, opt_state), None, length=num_records
        )
        return params, opt_state, loss, tracked

    def probe(params, opt_state, *, num_steps: int):
        """The loss after each of ``num_steps`` steps (to find the step where a run diverged)."""

        def one(carry, _):
            carry, _ = step(carry, None)
            return carry, loss_fn(carry[0])

        return jax.lax.scan(one, (params, opt_state), None, length=num_steps)[1]

    return (
        jax.jit(run, static_argnames=("stretch", "num_records")),
        jax.jit(record),
        jax.jit(probe, static_argnames=("num_steps",)),
    )


def _schedule(start: int, num_steps: int, log_every: int, block: int) -> list[tuple[int, int]]:
    """The jitted calls as ``(stretch, num_records)`` from step ``start`` (a record step) to ``num_steps``."""
    calls = []
    step = start
    full_end = (num_steps // log_every) * log_every
    while step < full_end:
        record_index = step // log_every
        next_boundary = min((record_index // block + 1) * block * log_every, full_end)
        n = (next_boundary - step) // log_every
        calls.append((log_every, n))
        step = next_boundary
    if step < num_steps:
        calls.append((num_steps - step, 1))
    return calls


def train(
    loss_fn: Callable[[Any], Float[Array, ""]],
    params: Any,
    optimizer: optax.GradientTransformation | None = None,
    *,
    num_steps: int,
    log_every: int = 1,
    track_fn: Callable[[Any], Any] | None = None,
    learning_rate: float = 1e-2,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    signature: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``params`` by minimising ``loss_fn`` with an optax optimizer, recording on a schedule.

    Args:
        loss_fn: ``params -> scalar`` loss, a full-batch closure over the data (it is traced once).
        params: initial parameter pytree of float arrays.
        optimizer: any ``optax.GradientTransformation``; default ``optax.sgd(learning_rate)`` (full-batch GD).
        num_steps: total optimizer steps (when resuming, the total including the steps already taken).
        log_every: steps between records; ``loss`` and ``track_fn`` are evaluated at step 0, every
            ``log_every`` steps and at ``num_steps``.
        track_fn: ``params -> pytree`` of arrays evaluated at every record (inside jit), or ``None``.
        learning_rate: step size of the default optimizer (ignored when ``optimizer`` is given).
        progress: show a tqdm bar over the steps.
        checkpoint_dir: folder for orbax checkpoints (``None``: no checkpoints).
        checkpoint_every: steps between checkpoints (a multiple of ``log_every``); a checkpoint is also
            written at the end whenever ``checkpoint_dir`` is set.
        resume: continue from the latest checkpoint in ``checkpoint_dir`` when there is one; ``params`` then
            only gives the structure. The continuation is bit-for-bit the uninterrupted run. A damaged latest
            checkpoint (unreadable, or not matching its checksum) is passed over for the newest good one,
            with a :class:`CheckpointFallbackWarning` saying so.
        signature: the settings that fix the trajectory (JSON values: learning rate, seed, sizes, data...),
            saved with every checkpoint together with ``log_every``. Resuming refuses a checkpoint whose
            signature differs, naming the field; only ``num_steps`` may change (grow).

    Returns:
        :class:`TrainResult` with ``steps`` (T,), ``loss`` (T,), and ``tracked`` leaves of shape (T, ...),
        T = ceil(num_steps / log_every) + 1.

    Raises:
        TrainingDivergedError: the loss became non-finite. Its message names the first such step and the
            value; its ``result`` holds the records up to the last finite one. Checkpoints already written
            are kept; none is written after the divergence.

    Example:
        >>> import jax.numpy as jnp
        >>> res = train(lambda w: jnp.sum((w - 3.0) ** 2), jnp.zeros(2), num_steps=100, log_every=10,
        ...             learning_rate=0.1, progress=False)
        >>> res.loss.shape
        (11,)

    References:
        Saxe, McClelland, Ganguli, arXiv:1312.6120 (full-batch GD as a discretised gradient flow).
    """
    if optimizer is None:
        learning_rate = check_real("learning_rate", learning_rate, low=0.0, low_open=True)
        optimizer = optax.sgd(learning_rate)
    _validate(
        loss_fn,
        params,
        optimizer,
        num_steps,
        log_every,
        track_fn,
        checkpoint_dir,
        checkpoint_every,
        resume,
        signature,
    )
    signature = {"log_every": int(log_every), **(dict(signature) if signature is not None else {})}
    params = jax.tree.map(jnp.asarray, params)
    opt_state = optimizer.init(params)
    run, record, probe = _make_runner(loss_fn, optimizer, track_fn)
    tracked_treedef = jax.tree.structure(jax.eval_shape(lambda p: record(p)[1], params))

    start = 0
    history: dict[str, Any] = {"steps": [], "loss": [], "tracked": []}
    ckpt = None
    if resume:
        ckpt, notes = restore_latest_good(checkpoint_dir, params, opt_state, signature)
        for note in notes:
            warnings.warn(note, CheckpointFallbackWarning, stacklevel=2)
    if ckpt is not None:
        if ckpt.step > num_steps:
            raise InputError(
                f"the checkpoint in {checkpoint_dir} is at step {ckpt.step}, past num_steps={num_steps}"
            )
        if ckpt.step % log_every and ckpt.step != num_steps:
            raise InputError(f"the checkpoint step {ckpt.step} is not a multiple of log_every={log_every}")
        start, params, opt_state = ckpt.step, ckpt.params, ckpt.opt_state
        history = {
            "steps": [ckpt.history["steps"]],
            "loss": [ckpt.history["loss"]],
            "tracked": [[leaf] for leaf in ckpt.history["tracked"]],
        }
    else:
        loss0, tracked0 = jax.device_get(record(params))
        if not np.isfinite(loss0):
            raise TrainingDivergedError(0, float(loss0), None, -1)
        history = {
            "steps": [np.zeros(1, dtype=np.int64)],
            "loss": [np.asarray(loss0)[None]],
            "tracked": [[np.asarray(leaf)[None]] for leaf in jax.tree.leaves(tracked0)],
        }

    checkpoint_records = None if checkpoint_every is None else checkpoint_every // log_every
    block = _calls_per_record_block(max(1, num_steps // log_every), checkpoint_records)

    def current_history():
        return {
            "steps": np.concatenate(history["steps"]),
            "loss": np.concatenate(history["loss"]),
            "tracked": [np.concatenate(parts) for parts in history["tracked"]],
        }

    with tqdm(
        total=num_steps, initial=start, unit="step", disable=not progress, desc="train", leave=False
    ) as bar:
        step = start
        for stretch, n in _schedule(start, num_steps, log_every, block):
            before = (params, opt_state)
            params, opt_state, loss, tracked = run(params, opt_state, stretch=stretch, num_records=n)
            loss, tracked = jax.device_get((loss, tracked))
            if not np.all(np.isfinite(loss)):
                kept = int(np.argmin(np.isfinite(loss)))  # records of this call before the first bad one
                _diverged(before, step, stretch, kept, loss, tracked, history, run, probe, tracked_treedef)
            steps = step + stretch * np.arange(1, n + 1, dtype=np.int64)
            step = int(steps[-1])
            history["steps"].append(steps)
            history["loss"].append(np.asarray(loss))
            for parts, leaf in zip(history["tracked"], jax.tree.leaves(tracked), strict=True):
                parts.append(np.asarray(leaf))
            bar.update(stretch * n)
            bar.set_postfix(loss=f"{float(np.asarray(loss)[-1]):.4g}", refresh=False)
            if checkpoint_every is not None and step % checkpoint_every == 0 and step < num_steps:
                save_checkpoint(
                    checkpoint_dir, TrainCheckpoint(step, params, opt_state, current_history(), signature)
                )

    final = current_history()
    if checkpoint_dir is not None and start < num_steps:
        save_checkpoint(checkpoint_dir, TrainCheckpoint(num_steps, params, opt_state, final, signature))
    tracked = jax.tree.unflatten(tracked_treedef, [jnp.asarray(x) for x in final["tracked"]])
    return TrainResult(params, opt_state, jnp.asarray(final["steps"]), jnp.asarray(final["loss"]), tracked)


def _diverged(before, step, stretch, kept, loss, tracked, history, run, probe, tracked_treedef):
    """Raise :class:`TrainingDivergedError` for a call from ``step`` whose record ``kept`` is not finite.

    The exact step is found by re-running the call's steps one at a time from ``before`` (the state at
    ``step``); the parameters of the last finite record are recomputed by the same jitted call as the run.
    """
    params, opt_state = before
    per_step = np.asarray(jax.device_get(probe(params, opt_state, num_steps=stretch * (kept + 1))))
    bad = np.nonzero(~np.isfinite(per_step))[0]
    if bad.size:
        first, value = step + int(bad[0]) + 1, float(per_step[bad[0]])
    else:  # the one-step re-run stayed finite (rounding differs from the fused call): name the record
        first, value = step + stretch * (kept + 1), float(loss[kept])
    if kept:
        params, opt_state, _, _ = run(params, opt_state, stretch=stretch, num_records=kept)
    steps = np.concatenate([*history["steps"], step + stretch * np.arange(1, kept + 1, dtype=np.int64)])
    losses = np.concatenate([*history["loss"], np.asarray(loss)[:kept]])
    leaves = [
        np.concatenate([*parts, np.asarray(leaf)[:kept]])
        for parts, leaf in zip(history["tracked"], jax.tree.leaves(tracked), strict=True)
    ]
    partial = TrainResult(
        params,
        opt_state,
        jnp.asarray(steps),
        jnp.asarray(losses),
        jax.tree.unflatten(tracked_treedef, [jnp.asarray(x) for x in leaves]),
    )
    raise TrainingDivergedError(first, value, partial, int(steps[-1]))
