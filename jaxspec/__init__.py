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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.2.0"

# The facade is lazy (PEP 562): ``import jaxspec`` costs nothing until a name is used, so the ``jaxspec``
# command starts without importing JAX. Each public name maps to the package it comes from; the imports under
# TYPE_CHECKING spell out the same table for type checkers, IDEs and the docs.
_SOURCES = {
    "jaxspec._errors": ("InputError",),
    "jaxspec.engine": (
        "BlockRangeWarning",
        "LyapunovResult",
        "MapSpectrum",
        "OrthogonalityWarning",
        "SharedWeightsResult",
        "benettin_scan",
        "flow_spectrum",
        "lyapunov_spectrum",
        "map_spectrum",
        "shared_weights_spectrum",
    ),
    "jaxspec.ensembles": (
        "Ensemble",
        "FixedStack",
        "Gaussian",
        "Masked",
        "Orthogonal",
        "ReluNet",
        "fixed_network",
        "gaussian",
        "make_ensemble",
        "masked",
        "orthogonal",
        "relu_net",
    ),
    "jaxspec.networks": ("JacobianSpectrum", "NetworkSpectrum", "jacobian_spectrum", "network_spectrum"),
}
_SUBPACKAGES = ("analysis", "engine", "ensembles", "networks", "theory")
_NAME_SOURCE = {name: module for module, names in _SOURCES.items() for name in names}

if TYPE_CHECKING:
    from jaxspec import analysis, engine, ensembles, networks, theory
    from jaxspec._errors import InputError
    from jaxspec.engine import (
        BlockRangeWarning,
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

__all__ = [
    "BlockRangeWarning",
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


def __getattr__(name: str):
    if name in _NAME_SOURCE:
        value = getattr(importlib.import_module(_NAME_SOURCE[name]), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"jaxspec.{name}")
    else:
        raise AttributeError(f"module 'jaxspec' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
