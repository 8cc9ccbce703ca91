"""The papers' experiments: each job computes and returns labelled data, and does nothing else.

A job ``run_<name>(*, full=False, seed=0, progress=True, **size_overrides)`` returns a frozen result dataclass
of numpy arrays with documented axes plus a ``summary`` dict of the headline numbers. The quick sizes (the
defaults of ``<Name>Sizes``) run on a CPU in minutes, ``full=True`` selects paper-scale sizes meant for a GPU,
and keyword overrides change any size (a test runs every job at a tiny size this way). Drawing and writing
files is the job of :mod:`jaxspec.figures`; ``jaxspec figures <name>`` runs both.

Example:
    >>> from jaxspec.reproduce import run_init
    >>> res = run_init(width=8, depth=24, seeds=3, alignment_seeds=3, k=2, separation_widths=(8,),
    ...                segment_depth=6, segments=3, progress=False)  # doctest: +SKIP
    >>> res.summary["d_sandwich"]["relu"]["fraction_bounds_hold"]  # doctest: +SKIP
    1.0
"""

from jaxspec.reproduce._bottleneck import (
    FULL_BOTTLENECK_SIZES,
    TARGETS,
    BottleneckNetwork,
    BottleneckResult,
    BottleneckSizes,
    BottleneckTarget,
    run_bottleneck,
)
from jaxspec.reproduce._dynamics import EXPERIMENTS, DynamicsResult, DynamicsRun, run_dynamics
from jaxspec.reproduce._init import (
    FULL_INIT_SIZES,
    AlignmentCurve,
    Band,
    InitResult,
    InitSizes,
    SandwichCurves,
    ScalingCurves,
    SeparationCurves,
    run_init,
)
from jaxspec.reproduce._saddle import (
    CASES,
    FULL_SADDLE_SIZES,
    RATIO_CLIP,
    EscapeCase,
    LowRankProfile,
    SaddleResult,
    SaddleSizes,
    TrainingRun,
    run_saddle,
)
from jaxspec.reproduce._ufm import (
    FULL_UFM_SIZES,
    DigitsRuns,
    SpectralDensity,
    UFMResult,
    UFMRun,
    UFMSizes,
    count_outliers,
    run_ufm,
)

__all__ = [
    "CASES",
    "EXPERIMENTS",
    "FULL_BOTTLENECK_SIZES",
    "FULL_INIT_SIZES",
    "FULL_SADDLE_SIZES",
    "FULL_UFM_SIZES",
    "RATIO_CLIP",
    "TARGETS",
    "AlignmentCurve",
    "Band",
    "BottleneckNetwork",
    "BottleneckResult",
    "BottleneckSizes",
    "BottleneckTarget",
    "DigitsRuns",
    "DynamicsResult",
    "DynamicsRun",
    "EscapeCase",
    "InitResult",
    "InitSizes",
    "LowRankProfile",
    "SaddleResult",
    "SaddleSizes",
    "SandwichCurves",
    "ScalingCurves",
    "SeparationCurves",
    "SpectralDensity",
    "TrainingRun",
    "UFMResult",
    "UFMRun",
    "UFMSizes",
    "count_outliers",
    "run_bottleneck",
    "run_dynamics",
    "run_init",
    "run_saddle",
    "run_ufm",
]
