"""Ensembles of layers ``A_l = D_l W_l``: the :class:`Ensemble` protocol and its implementations.

* :mod:`~jaxspec.ensembles._protocol`: the :class:`Ensemble` protocol (what the engine asks of a product), the
  :class:`GatedGaussian` capability (the exact fast samplers apply), :class:`LayerStack`, :func:`layer_key`.
* :mod:`~jaxspec.ensembles._padded`: the padded-layers base shared by every ensemble (shapes, keys, default
  hooks).
* :mod:`~jaxspec.ensembles._random`: Ginibre, Haar-orthogonal, masked and ReLU-network layers, their validated
  constructors and :func:`make_ensemble`.
* :mod:`~jaxspec.ensembles._fixed`: a user-supplied network (explicit weights and masks).
"""

from jaxspec.ensembles._fixed import FixedStack, fixed_network
from jaxspec.ensembles._padded import PaddedLayers
from jaxspec.ensembles._protocol import Ensemble, GatedGaussian, LayerStack, layer_key
from jaxspec.ensembles._random import (
    ENSEMBLE_NAMES,
    Gaussian,
    Masked,
    Orthogonal,
    ReluNet,
    gaussian,
    make_ensemble,
    masked,
    orthogonal,
    relu_net,
)

__all__ = [
    "ENSEMBLE_NAMES",
    "Ensemble",
    "FixedStack",
    "GatedGaussian",
    "Gaussian",
    "LayerStack",
    "Masked",
    "Orthogonal",
    "PaddedLayers",
    "ReluNet",
    "fixed_network",
    "gaussian",
    "layer_key",
    "make_ensemble",
    "masked",
    "orthogonal",
    "relu_net",
]
