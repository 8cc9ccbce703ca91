"""Decoupled singular-value dynamics of deep linear and fixed-gates networks, beside their predictions.

:func:`run_dynamics` trains, with full-batch gradient descent and every spectral quantity tracked, a deep
linear network and a fixed-gates ReLU network (gates frozen per training input) on the synthetic teacher and
on scikit-learn's digits, and integrates the predictions of
[math §5](https://jaxspec.github.io/jaxspec/math/#s5) beside each run: the shared-basis mode ODE from the
measured factors (with and without the measured kernel ratio), the balanced L-layer law (Saxe / Arora) and
Arora's end-to-end matrix ODE. Each prediction of mode ``r`` starts once that mode is aligned with the
target's (``|<u_r, u*_r>| |<v_r, v*_r>| >= 0.9``), or at step 0 for the aligned initialisations. The summary
gives, per prediction and mode, the largest relative error ``|measured / predicted - 1|`` after the start,
and the relative error of the learning time (the time to reach half the target).

References:
    Saxe et al., arXiv:1312.6120; Arora et al., arXiv:1802.06509, arXiv:1905.13655;
    Haas, Gatine, Cosse, Bouraoui, arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from jaxspec.reproduce._jobs import check_names, resolve_sizes
from jaxspec.training import TrainConfig, run_experiment

_TEACHER = {
    "data": "teacher",
    "input_dim": 8,
    "output_dim": 4,
    "num_samples": 64,
    "teacher_sv": (3.0, 2.0, 1.0),
}
_DIGITS = {"data": "digits", "whiten_dim": 16, "limit": 600}

#: name -> (description, config). Quick sizes; ``full`` multiplies the training length and halves the step.
EXPERIMENTS: dict[str, tuple[str, TrainConfig]] = {
    "linear_teacher_aligned": (
        "deep linear, teacher, aligned balanced init",
        TrainConfig(
            model="linear",
            init="aligned",
            sigma0=1e-2,
            depth=3,
            width=16,
            steps=5000,
            learning_rate=2e-3,
            log_every=25,
            **_TEACHER,
        ),
    ),
    "linear_teacher_unbalanced": (
        "deep linear, teacher, aligned unbalanced init (ratio 2)",
        TrainConfig(
            model="linear",
            init="aligned",
            sigma0=1e-2,
            imbalance=2.0,
            depth=3,
            width=16,
            steps=5000,
            learning_rate=2e-3,
            log_every=25,
            **_TEACHER,
        ),
    ),
    "linear_teacher_random": (
        "deep linear, teacher, small random init",
        TrainConfig(
            model="linear",
            init="random",
            init_scale=0.1,
            depth=3,
            width=16,
            steps=7500,
            learning_rate=2e-3,
            log_every=25,
            predict_from=-1,
            **_TEACHER,
        ),
    ),
    "fixed_gates_teacher": (
        "fixed-gates ReLU, teacher, small random init",
        TrainConfig(
            model="fixed_gates",
            init="random",
            init_scale=0.1,
            depth=3,
            width=64,
            steps=7500,
            learning_rate=4e-3,
            log_every=25,
            predict_from=-1,
            **_TEACHER,
        ),
    ),
    "linear_digits": (
        "deep linear, digits (16 whitened components), small random init",
        TrainConfig(
            model="linear",
            init="random",
            init_scale=0.1,
            depth=3,
            width=32,
            steps=6000,
            learning_rate=2e-2,
            log_every=25,
            predict_from=-1,
            **_DIGITS,
        ),
    ),
    "fixed_gates_digits": (
        "fixed-gates ReLU, digits (16 whitened components), small random init",
        TrainConfig(
            model="fixed_gates",
            init="random",
            init_scale=0.1,
            depth=3,
            width=64,
            steps=6000,
            learning_rate=2e-2,
            log_every=25,
            predict_from=-1,
            **_DIGITS,
        ),
    ),
}


def _full(cfg: TrainConfig) -> TrainConfig:
    return dataclasses.replace(
        cfg,
        steps=cfg.steps * 4,
        learning_rate=cfg.learning_rate / 2,
        log_every=cfg.log_every * 2,
        limit=None if cfg.data == "digits" else cfg.limit,
    )


@dataclass(frozen=True)
class DynamicsRun:
    """One trained network and its predictions.

    Attributes:
        description: what the experiment is (one line).
        config: the :class:`~jaxspec.training.TrainConfig` it ran with.
        dataset: the labelled ``xarray.Dataset`` of :func:`jaxspec.training.run_experiment`: dims ``step``
            (records; coordinate ``time = step x learning rate``), ``mode``, ``layer``, ``pair``; variables
            ``sigma (step, mode)``, ``predicted_<p> (step, mode)``, ``relative_error_<p> (step, mode)``,
            ``alignment (step, pair, align_mode)``, ``target_strength (mode,)``, ``prediction_start (mode,)``,
            the loss and the other tracked quantities.
    """

    description: str
    config: TrainConfig
    dataset: Any

    @property
    def title(self) -> str:
        """The title of its figure: description, depth, width and step size."""
        cfg = self.config
        return f"{self.description}: depth {cfg.depth}, width {cfg.width}, GD lr {cfg.learning_rate:g}"


@dataclass(frozen=True)
class DynamicsResult:
    """The experiments of :func:`run_dynamics`.

    Attributes:
        runs: experiment name -> :class:`DynamicsRun`, in the order run.
        summary: experiment name -> ``description``, ``max_relative_error`` and ``half_time_error``
            (prediction -> one number per mode), ``prediction_start_step`` (per mode), ``final_loss``,
            ``final_sigma``, ``target``, ``final_alignment_min``, ``seconds``, ``config`` (the content of
            ``summary.json``).
    """

    runs: dict[str, DynamicsRun]
    summary: dict[str, dict[str, Any]]


def run_dynamics(
    *, full: bool = False, experiments: Sequence[str] | None = None, progress: bool = True, **overrides: Any
) -> DynamicsResult:
    """Train every experiment in float64 and compare the measured ``sigma_r(t)`` with the predictions.

    Args:
        full: longer runs (4x the steps) with half the learning rate (smaller discretisation error) and all of
            digits.
        experiments: names from :data:`EXPERIMENTS` (default: all).
        progress: tqdm progress bars.
        **overrides: fields of :class:`~jaxspec.training.TrainConfig` replaced in every experiment (for
            example ``steps=500`` for a quick check).

    Returns:
        A :class:`DynamicsResult`.

    Example:
        >>> res = run_dynamics(experiments=["linear_teacher_aligned"], steps=500,
        ...                    progress=False)  # doctest: +SKIP
        >>> errors = res.summary["linear_teacher_aligned"]["max_relative_error"]  # doctest: +SKIP
        >>> max(errors["mode_ode"]) < 0.05  # doctest: +SKIP
        True
    """
    jax.config.update("jax_enable_x64", True)
    runs, summary = {}, {}
    for name in check_names("experiments", experiments, list(EXPERIMENTS)):
        description, cfg = EXPERIMENTS[name]
        cfg = dataclasses.replace(resolve_sizes(cfg, _full(cfg), full, overrides), dtype="float64")
        start = time.perf_counter()
        result, comparison, ds = run_experiment(cfg, progress=progress)
        seconds = time.perf_counter() - start
        summary[name] = {
            "description": description,
            "max_relative_error": {
                k: [float(x) for x in v] for k, v in comparison.max_relative_error.items()
            },
            "half_time_error": {k: [float(x) for x in v] for k, v in comparison.half_time_error.items()},
            "prediction_start_step": [int(result.steps[i]) for i in comparison.start_index],
            "final_loss": float(result.loss[-1]),
            "final_sigma": comparison.measured[-1].tolist(),
            "target": comparison.target.tolist(),
            "final_alignment_min": float(np.min(np.asarray(result.tracked["alignment"][-1]))),
            "seconds": seconds,
            "config": cfg.to_dict(),
        }
        runs[name] = DynamicsRun(description=description, config=cfg, dataset=ds)
    return DynamicsResult(runs=runs, summary=summary)
