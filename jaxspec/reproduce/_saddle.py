"""The low-rank escape from the saddle at the origin of deep bias-free ReLU networks.

:func:`run_saddle` computes, and returns as a :class:`SaddleResult`,

* **optimal escape directions** (vmapped restarts of projected gradient ascent of ``-L0`` on
  ``||theta||^2 = L``, then a BFGS polish, with the generalised stationarity certificate) for three
  localised losses: a teacher of three ReLU ridges (MSE), scikit-learn's digits (MSE on centred one-hot
  targets) and the 8-point unit-circle example
  ([math §6](https://jaxspec.github.io/jaxspec/math/#s6)), with the per-layer ``s_1/s_2`` and non-leading
  energy fractions of the weights and activations;
* **training from a tiny initialisation** on the ridge teacher with ``eta = c ||theta||^(2-L)``
  (``c = c0 L^((L-2)/2)``, the step that is scale-free on the sphere ``||theta||^2 = L``): the plateaus are
  detected and the direction at the end of the first plateau is compared with the optimal one;
* a **saddle-to-saddle** run (shallower net, moderate initialisation) whose loss goes through several plateaus
  while the number of dominant singular values of every layer rises at each escape.

References:
    Bantzis, Simon, Jacot, "Saddle-to-Saddle Dynamics in Deep ReLU Networks: Low-Rank Bias in the First Saddle
    Escape", ICLR 2026, arXiv:2505.21722.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import jax
import numpy as np
from jaxtyping import Float, Int

from jaxspec.data import digits
from jaxspec.networks import init_mlp
from jaxspec.reproduce._jobs import progress_bar, resolve_sizes
from jaxspec.saddle import (
    LayerRatios,
    detect_plateaus,
    dominant_counts,
    escape_speed,
    layer_ratios,
    mse_output_gradient,
    optimal_escape_direction,
    ridge_target,
    train_from_small_init,
    unit_circle_example,
)

#: The localised losses of the escape-direction experiment.
CASES = ("ridge", "digits", "unit_circle")
#: ``s_1/s_2`` above this counts as numerically rank one (the summary and the figure clip there).
RATIO_CLIP = 1e6


@dataclass(frozen=True)
class SaddleSizes:
    """Problem sizes of one run (the defaults are the quick CPU preset, a few minutes).

    Attributes:
        depth: depth ``L`` of the escape-direction and tiny-init experiments.
        width: their hidden width.
        restarts: random restarts of the ascent.
        ascent_steps: ascent steps per restart.
        num_points: training points of the ridge teacher.
        digits_limit: digits samples.
        digits_dim: PCA-whitened digits dimension.
        plateau_init: scale of the tiny initialisation (times a He-initialised net).
        plateau_steps: GD steps of the tiny-init run.
        step_scale0: ``c0`` in ``c = c0 L^((L-2)/2)``.
        s2s_depth: depth of the saddle-to-saddle run.
        s2s_width: its width.
        s2s_init: its initialisation scale.
        s2s_steps: its GD steps.
    """

    depth: int = 8
    width: int = 16
    restarts: int = 8
    ascent_steps: int = 1500
    num_points: int = 256
    digits_limit: int = 300
    digits_dim: int = 16
    plateau_init: float = 1e-3
    plateau_steps: int = 20000
    step_scale0: float = 0.5
    s2s_depth: int = 4
    s2s_width: int = 16
    s2s_init: float = 0.05
    s2s_steps: int = 20000


#: GPU sizes of ``run_saddle(full=True)``.
FULL_SADDLE_SIZES = SaddleSizes(
    depth=16,
    width=48,
    restarts=64,
    ascent_steps=4000,
    num_points=1024,
    digits_limit=1797,
    digits_dim=32,
    plateau_init=1e-4,
    plateau_steps=80000,
    s2s_depth=6,
    s2s_width=32,
    s2s_init=0.1,
    s2s_steps=100000,
)


@dataclass(frozen=True)
class LowRankProfile:
    """Per-layer low-rank measurements of one direction (layer ``l = 1..L``).

    Attributes:
        s1_over_s2: ``(layer,)``, ``s_1(W_l) / s_2(W_l)`` (``inf`` for an exactly rank-one layer).
        weight_tail: ``(layer,)``, the non-leading energy ``1 - s_1(W_l)^2 / ||W_l||_F^2``.
        activation_tail: ``(layer,)``, the same for the activations after layer ``l``.
    """

    s1_over_s2: Float[np.ndarray, " layer"]
    weight_tail: Float[np.ndarray, " layer"]
    activation_tail: Float[np.ndarray, " layer"]

    @classmethod
    def of(cls, ratios: LayerRatios) -> LowRankProfile:
        """From :func:`jaxspec.saddle.layer_ratios`, as float64 numpy arrays."""
        return cls(
            np.asarray(ratios.s1_over_s2, dtype=float),
            np.asarray(ratios.weight_tail_energy, dtype=float),
            np.asarray(ratios.activation_tail_energy, dtype=float),
        )

    def min_ratio_over_l_quarter(self) -> float:
        """``min over l >= 2 of min(s_1/s_2, RATIO_CLIP) / l^(1/4)`` (>= 1 where the low-rank bound holds)."""
        deep = np.arange(2, self.s1_over_s2.size + 1)
        return float(np.min(np.minimum(self.s1_over_s2[1:], RATIO_CLIP) / deep**0.25))


@dataclass(frozen=True)
class EscapeCase:
    """The optimal escape direction of one localised loss.

    Attributes:
        speed: its speed ``-L0`` (the best restart).
        kkt_residual: tangential part of ``grad L0`` over its norm (0 at a smooth critical point on the
            sphere; not at ReLU kinks).
        stationarity: the generalised stationarity measure (:func:`jaxspec.saddle.stationarity_certificate`;
            0 at a stationary point, kinks included).
        num_kinks: (unit, input) pairs at a kink in the certificate.
        layer_norms_sq: ``(layer,)``, ``||W_l||^2`` (balanced: all 1).
        restart_speeds: ``(restart,)``, final speed of every restart.
        speed_history: ``(restart, ascent_step)``, the speed along the ascent.
        profile: the per-layer ratios of the direction.
        seconds: wall time.
    """

    speed: float
    kkt_residual: float
    stationarity: float
    num_kinks: int
    layer_norms_sq: Float[np.ndarray, " layer"]
    restart_speeds: Float[np.ndarray, " restart"]
    speed_history: Float[np.ndarray, "restart ascent_step"]
    profile: LowRankProfile
    seconds: float


@dataclass(frozen=True)
class TrainingRun:
    """Gradient descent from a small initialisation with ``eta = c ||theta||^(2-L)``, tracked at records.

    Attributes:
        depth: ``L``.
        init_scale: scale of the initialisation (times a He-initialised net).
        steps: ``(record,)`` GD step of each record.
        loss: ``(record,)``.
        speed: ``(record,)``, escape speed ``-L0`` of the current direction projected on ``||theta||^2 = L``.
        norm_sq: ``(record,)``, ``||theta||^2``.
        singular_values: ``(record, layer, index)`` of every layer.
        counts: ``(record, layer)``, dominant singular values ``#{s_i > 0.1 s_1}``.
        plateau_start, plateau_end: ``(plateau,)`` record indices (inclusive) of the detected plateaus.
        step_scale: ``c``.
        seconds: wall time.
    """

    depth: int
    init_scale: float
    steps: Int[np.ndarray, " record"]
    loss: Float[np.ndarray, " record"]
    speed: Float[np.ndarray, " record"]
    norm_sq: Float[np.ndarray, " record"]
    singular_values: Float[np.ndarray, "record layer index"]
    counts: Int[np.ndarray, "record layer"]
    plateau_start: Int[np.ndarray, " plateau"]
    plateau_end: Int[np.ndarray, " plateau"]
    step_scale: float
    seconds: float

    def plateau_steps(self) -> list[list[int]]:
        """``[[first step, last step], ...]`` of the plateaus."""
        return [
            [int(self.steps[a]), int(self.steps[b])]
            for a, b in zip(self.plateau_start, self.plateau_end, strict=True)
        ]


@dataclass(frozen=True)
class SaddleResult:
    """Everything :func:`run_saddle` measured.

    Attributes:
        sizes: the sizes of the run.
        escapes: case (:data:`CASES`) -> its optimal escape direction.
        tiny: the run from a tiny initialisation (depth ``sizes.depth``) on the ridge teacher.
        first_plateau_end: record index of ``tiny`` where its first plateau ends.
        first_plateau: per-layer ratios of the direction of ``tiny`` at that record.
        saddle_to_saddle: the shallower run through several plateaus.
        ratio_clip: :data:`RATIO_CLIP`.
        summary: speeds, KKT residuals, stationarity certificates, ratios against ``l^(1/4)``, plateaus and
            counts (``saddle_summary.json``).
    """

    sizes: SaddleSizes
    escapes: dict[str, EscapeCase]
    tiny: TrainingRun
    first_plateau_end: int
    first_plateau: LowRankProfile
    saddle_to_saddle: TrainingRun
    ratio_clip: float
    summary: dict[str, Any]

    def escape_dataset(self):
        """The escape directions as a labelled ``xarray.Dataset`` (``saddle_escape.nc``; needs xarray)."""
        import xarray as xr

        profiles = [self.escapes[c].profile for c in CASES] + [self.first_plateau]
        return xr.Dataset(
            {
                "s1_over_s2": (
                    ("case", "layer"),
                    np.stack([np.minimum(p.s1_over_s2, 1e300) for p in profiles]),
                ),
                "weight_tail_energy": (("case", "layer"), np.stack([p.weight_tail for p in profiles])),
                "activation_tail_energy": (
                    ("case", "layer"),
                    np.stack([p.activation_tail for p in profiles]),
                ),
                "speed": (
                    ("case",),
                    np.array(
                        [self.escapes[c].speed for c in CASES]
                        + [float(self.tiny.speed[self.first_plateau_end])]
                    ),
                ),
                "restart_speeds": (
                    ("case3", "restart"),
                    np.stack([self.escapes[c].restart_speeds for c in CASES]),
                ),
            },
            coords={
                "case": list(CASES) + ["ridge_gd_first_plateau"],
                "layer": np.arange(1, self.sizes.depth + 1),
                "case3": list(CASES),
                "restart": np.arange(self.sizes.restarts),
            },
            attrs={
                "depth": self.sizes.depth,
                "width": self.sizes.width,
                "ratio_of_exact_rank_one": "stored as 1e300",
            },
        )

    def training_dataset(self):
        """Both training runs as a labelled ``xarray.Dataset`` (``saddle_training.nc``; needs xarray)."""
        import xarray as xr

        data = {}
        for name, r in (("tiny", self.tiny), ("s2s", self.saddle_to_saddle)):
            data[f"{name}_loss"] = ((f"{name}_record",), r.loss)
            data[f"{name}_speed"] = ((f"{name}_record",), r.speed)
            data[f"{name}_norm_sq"] = ((f"{name}_record",), r.norm_sq)
            data[f"{name}_dominant_counts"] = ((f"{name}_record", f"{name}_layer"), r.counts)
            data[f"{name}_singular_values"] = (
                (f"{name}_record", f"{name}_layer", f"{name}_index"),
                r.singular_values,
            )
        return xr.Dataset(
            data,
            coords={"tiny_record": self.tiny.steps, "s2s_record": self.saddle_to_saddle.steps},
            attrs={
                "tiny_step_scale": self.tiny.step_scale,
                "s2s_step_scale": self.saddle_to_saddle.step_scale,
            },
        )


def _ridge(sizes: SaddleSizes, seed: int):
    return ridge_target(
        jax.random.key(seed), sizes.num_points, input_dim=8, output_dim=4, amplitudes=(4.0, 2.0, 1.0)
    )


def _case_data(case: str, sizes: SaddleSizes, seed: int):
    if case == "ridge":
        x, y = _ridge(sizes, seed)
        return x, mse_output_gradient(y)
    if case == "digits":
        data = digits(whiten_dim=sizes.digits_dim, limit=sizes.digits_limit, centre_targets=True)
        return data.x, mse_output_gradient(data.y)
    return unit_circle_example()


def _escape_case(case: str, sizes: SaddleSizes, seed: int) -> EscapeCase:
    x, g = _case_data(case, sizes, seed)
    widths = (x.shape[1],) + (sizes.width,) * (sizes.depth - 1) + (g.shape[1],)
    start = time.perf_counter()
    esc = optimal_escape_direction(
        jax.random.key(seed + 17), widths, x, g, num_restarts=sizes.restarts, num_steps=sizes.ascent_steps
    )
    profile = LowRankProfile.of(layer_ratios(esc.params, x))
    return EscapeCase(
        speed=float(esc.speed),
        kkt_residual=float(esc.kkt_residual),
        stationarity=float(esc.stationarity.measure),
        num_kinks=esc.stationarity.num_kinks,
        layer_norms_sq=np.asarray(esc.layer_norms_sq, dtype=float),
        restart_speeds=np.asarray(esc.restart_speeds, dtype=float),
        speed_history=np.asarray(esc.speed_history, dtype=float),
        profile=profile,
        seconds=time.perf_counter() - start,
    )


def _train_run(
    x, y, depth: int, width: int, init_scale: float, steps: int, step_scale0: float, seed: int
) -> tuple[TrainingRun, Any]:
    """The run and its tracked parameters (leading record axis)."""
    widths = (x.shape[1],) + (width,) * (depth - 1) + (y.shape[1],)
    params = [{"w": init_scale * p["w"]} for p in init_mlp(jax.random.key(seed + 5), widths)]
    c = step_scale0 * depth ** ((depth - 2) / 2)
    start = time.perf_counter()
    res = train_from_small_init(
        params, x, y, step_scale=c, num_steps=steps, log_every=max(steps // 400, 1), progress=False
    )
    g = mse_output_gradient(y)
    speeds = jax.jit(jax.vmap(lambda p: escape_speed(p, x, g)))(res.tracked["params"])
    loss = np.asarray(res.loss, dtype=float)
    plateaus = detect_plateaus(loss)
    run = TrainingRun(
        depth=depth,
        init_scale=init_scale,
        steps=np.asarray(res.steps),
        loss=loss,
        speed=np.asarray(speeds, dtype=float),
        norm_sq=np.asarray(res.tracked["norm_sq"], dtype=float),
        singular_values=np.asarray(res.tracked["singular_values"], dtype=float),
        counts=np.asarray(dominant_counts(res.tracked["singular_values"])),
        plateau_start=np.asarray(plateaus.start),
        plateau_end=np.asarray(plateaus.end),
        step_scale=c,
        seconds=time.perf_counter() - start,
    )
    return run, res.tracked["params"]


def _profile_summary(profile: LowRankProfile) -> dict:
    return {
        "s1_over_s2": [min(v, RATIO_CLIP) for v in profile.s1_over_s2.tolist()],
        "weight_tail": profile.weight_tail.tolist(),
        "activation_tail": profile.activation_tail.tolist(),
        "min_ratio_over_l_quarter_deep_layers": profile.min_ratio_over_l_quarter(),
    }


def _summary(
    sizes: SaddleSizes,
    escapes: dict[str, EscapeCase],
    tiny: TrainingRun,
    end: int,
    first: LowRankProfile,
    s2s: TrainingRun,
) -> dict:
    summary = {"sizes": asdict(sizes), "escape": {}, "first_plateau": {}, "saddle_to_saddle": {}}
    for case, e in escapes.items():
        profile = _profile_summary(e.profile)
        summary["escape"][case] = {
            "speed": e.speed,
            "kkt_residual": e.kkt_residual,
            "stationarity": e.stationarity,
            "num_kinks": e.num_kinks,
            "restart_speeds": e.restart_speeds.tolist(),
            "layer_norms_sq": e.layer_norms_sq.tolist(),
            **profile,
            "seconds": e.seconds,
        }
    speed_at_end = float(tiny.speed[end])
    summary["first_plateau"] = {
        "end_step": int(tiny.steps[end]),
        "speed_at_end": speed_at_end,
        "optimal_speed": escapes["ridge"].speed,
        "speed_ratio": speed_at_end / escapes["ridge"].speed,
        **_profile_summary(first),
        "plateaus_steps": tiny.plateau_steps(),
        "step_scale": tiny.step_scale,
        "seconds": tiny.seconds,
    }
    summary["saddle_to_saddle"] = {
        "depth": sizes.s2s_depth,
        "step_scale": s2s.step_scale,
        "plateaus_steps": s2s.plateau_steps(),
        "loss_at_plateau_end": [float(s2s.loss[b]) for b in s2s.plateau_end],
        "median_dominant_count_at_plateau_end": [float(np.median(s2s.counts[b])) for b in s2s.plateau_end],
        "dominant_counts_at_plateau_end": [s2s.counts[b].tolist() for b in s2s.plateau_end],
        "seconds": s2s.seconds,
    }
    return summary


def run_saddle(*, full: bool = False, seed: int = 0, progress: bool = True, **overrides: Any) -> SaddleResult:
    """Optimal escape directions, the tiny-init run and the saddle-to-saddle run.

    Args:
        full: GPU sizes (:data:`FULL_SADDLE_SIZES`) instead of the quick :class:`SaddleSizes` defaults.
        seed: base random seed.
        progress: a progress bar over the five parts.
        **overrides: fields of :class:`SaddleSizes` replacing those of the preset.

    Returns:
        A :class:`SaddleResult`.

    Example:
        >>> res = run_saddle(depth=3, width=8, ascent_steps=300, plateau_steps=2000, s2s_steps=2000,
        ...                  progress=False)  # doctest: +SKIP
        >>> res.escapes["unit_circle"].speed  # doctest: +SKIP
        0.5
    """
    sizes = resolve_sizes(SaddleSizes(), FULL_SADDLE_SIZES, full, overrides)
    bar = progress_bar(len(CASES) + 2, "saddle", progress, unit="job")
    escapes = {}
    for case in CASES:
        escapes[case] = _escape_case(case, sizes, seed)
        bar.update(1)

    x, y = _ridge(sizes, seed)
    tiny, params = _train_run(
        x, y, sizes.depth, sizes.width, sizes.plateau_init, sizes.plateau_steps, sizes.step_scale0, seed
    )
    bar.update(1)
    end = int(tiny.plateau_end[0])
    first = LowRankProfile.of(layer_ratios(jax.tree.map(lambda a: a[end], params), x))
    s2s, _ = _train_run(
        x, y, sizes.s2s_depth, sizes.s2s_width, sizes.s2s_init, sizes.s2s_steps, sizes.step_scale0, seed + 1
    )
    bar.update(1)
    bar.close()
    return SaddleResult(
        sizes=sizes,
        escapes=escapes,
        tiny=tiny,
        first_plateau_end=end,
        first_plateau=first,
        saddle_to_saddle=s2s,
        ratio_clip=RATIO_CLIP,
        summary=_summary(sizes, escapes, tiny, end, first, s2s),
    )
