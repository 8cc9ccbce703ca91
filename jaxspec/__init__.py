"""jaxspec: spectra of deep networks in JAX.

Lyapunov exponents, finite-depth singular values and singular-vector alignment of deep Jacobians (products of
masked linear maps ``D_l W_l``), each next to its closed form.

Example:
    >>> import jaxspec
    >>> res = jaxspec.lyapunov_spectrum(jaxspec.gaussian(width=8, depth=1000), seeds=4)
    >>> theory = jaxspec.theory.lyapunov_exponents(res.ensemble)
"""

from jaxspec import theory
from jaxspec.engine import (
    CONDITIONS,
    EngineConfig,
    FrameSums,
    LyapunovResult,
    benettin_scan,
    ensemble_frame_sums,
    exponents_from_sums,
    frame_key,
    initial_frame,
    lyapunov_spectrum,
    make_config,
    realisation_key,
    seed_keys,
)
from jaxspec.ensembles import (
    ENSEMBLE_NAMES,
    FixedStack,
    Gaussian,
    LayerStack,
    Masked,
    Orthogonal,
    ReluNet,
    fixed_network,
    gaussian,
    make_ensemble,
    masked,
    orthogonal,
    relu_net,
)
from jaxspec.errors import InputError

__version__ = "0.1.0"

__all__ = [
    "CONDITIONS",
    "ENSEMBLE_NAMES",
    "EngineConfig",
    "FixedStack",
    "FrameSums",
    "Gaussian",
    "InputError",
    "LayerStack",
    "LyapunovResult",
    "Masked",
    "Orthogonal",
    "ReluNet",
    "benettin_scan",
    "ensemble_frame_sums",
    "exponents_from_sums",
    "fixed_network",
    "frame_key",
    "gaussian",
    "initial_frame",
    "lyapunov_spectrum",
    "make_config",
    "make_ensemble",
    "masked",
    "orthogonal",
    "realisation_key",
    "relu_net",
    "seed_keys",
    "theory",
]
