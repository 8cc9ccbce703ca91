"""Ensembles of layers ``A_l = D_l W_l``: random (Gaussian, Haar, masked, ReLU) and fixed networks."""

from jaxspec.ensembles._layers import (
    ENSEMBLE_NAMES,
    Ensemble,
    FixedStack,
    Gaussian,
    LayerStack,
    Masked,
    Orthogonal,
    ReluNet,
    fixed_network,
    gaussian,
    layer_key,
    make_ensemble,
    masked,
    orthogonal,
    relu_net,
)

__all__ = [
    "ENSEMBLE_NAMES",
    "Ensemble",
    "FixedStack",
    "Gaussian",
    "LayerStack",
    "Masked",
    "Orthogonal",
    "ReluNet",
    "fixed_network",
    "gaussian",
    "layer_key",
    "make_ensemble",
    "masked",
    "orthogonal",
    "relu_net",
]
