"""jaxspec: spectra of deep networks in JAX.

Lyapunov exponents, finite-depth singular values and singular-vector alignment of deep Jacobians (products of
masked linear maps ``D_l W_l``), each next to its closed form.

The top level holds the entry points and the ensembles; everything else lives in subpackages that read like
the architecture: :mod:`jaxspec.ensembles` -> :mod:`jaxspec.engine` (scan + QR) -> results, with
:mod:`jaxspec.theory` and :mod:`jaxspec.analysis` beside them, and :mod:`jaxspec.networks`,
:mod:`jaxspec.training`, :mod:`jaxspec.hessian`, :mod:`jaxspec.ufm`, :mod:`jaxspec.saddle`,
:mod:`jaxspec.bottleneck`, :mod:`jaxspec.sweeps`, :mod:`jaxspec.reproduce` and :mod:`jaxspec.cli` on top.

Example:
    >>> import jaxspec
    >>> res = jaxspec.lyapunov_spectrum(jaxspec.gaussian(width=8, depth=1000), seeds=4)
    >>> theory = jaxspec.theory.lyapunov_exponents(res.ensemble)
"""

from jaxspec import analysis, engine, ensembles, networks, theory
from jaxspec._checks import InputError
from jaxspec.engine import (
    LyapunovResult,
    MapSpectrum,
    OrthogonalityWarning,
    SharedWeightsResult,
    benettin_scan,
    flow_spectrum,
    lyapunov_spectrum,
    map_spectrum,
    shared_weights_spectrum,
)
from jaxspec.ensembles import (
    Ensemble,
    FixedStack,
    Gaussian,
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
from jaxspec.networks import JacobianSpectrum, NetworkSpectrum, jacobian_spectrum, network_spectrum

__version__ = "0.2.0"

__all__ = [
    "Ensemble",
    "FixedStack",
    "Gaussian",
    "InputError",
    "JacobianSpectrum",
    "LyapunovResult",
    "MapSpectrum",
    "Masked",
    "NetworkSpectrum",
    "Orthogonal",
    "OrthogonalityWarning",
    "ReluNet",
    "SharedWeightsResult",
    "analysis",
    "benettin_scan",
    "engine",
    "ensembles",
    "fixed_network",
    "flow_spectrum",
    "gaussian",
    "jacobian_spectrum",
    "lyapunov_spectrum",
    "make_ensemble",
    "map_spectrum",
    "masked",
    "network_spectrum",
    "networks",
    "orthogonal",
    "relu_net",
    "shared_weights_spectrum",
    "theory",
]
