"""Divergence of a training run: the error that stops it, with the records computed before it.

A run diverges when its loss stops being a finite number. :func:`jaxspec.training.train` checks the loss at
every record; on the first non-finite one it finds the exact optimizer step where the loss first became
non-finite (re-running that stretch one step at a time), and raises :class:`TrainingDivergedError` carrying
the records up to the last finite one, so that nothing computed before the divergence is lost.

References:
    Goodfellow, Bengio, Courville, "Deep Learning", MIT Press 2016, §8.2.4 (exploding gradients).
"""

from __future__ import annotations

from typing import Any

from jaxspec._errors import InputError


class TrainingDivergedError(InputError):
    """Training diverged: the loss became non-finite.

    The message is one line, for example ``training diverged at step 37: loss = inf``. An
    :class:`InputError`, since the cure is a setting (a smaller learning rate, another optimizer).

    Attributes:
        step: the first optimizer step whose parameters have a non-finite loss.
        value: that loss (``inf`` or ``nan``).
        result: a :class:`jaxspec.training.TrainResult` with the records up to the last finite one, and the
            parameters and optimizer state of that record (``None`` when even step 0 is not finite).
        last_good_step: the step of the last record kept (``-1`` when none).

    Example:
        >>> err = TrainingDivergedError(37, float("inf"), None, 20)
        >>> str(err)
        'training diverged at step 37: loss = inf'
    """

    def __init__(self, step: int, value: float, result: Any, last_good_step: int):
        super().__init__(f"training diverged at step {step}: loss = {value:g}")
        self.step = int(step)
        self.value = float(value)
        self.result = result
        self.last_good_step = int(last_good_step)
