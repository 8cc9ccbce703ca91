"""Networks: MLPs (pure and Flax), their gates, and matrix-free Jacobian spectra of real networks.

* :mod:`~jaxspec.networks._mlp`: MLPs (lists of layer dicts, the padded stack, Flax), gates, fixed-gates view.
* :mod:`~jaxspec.networks._jacobian`: growth rates and exact singular values of ``J_l(x)``, and a dense route.
* :mod:`~jaxspec.networks._blocks`: any deep network of blocks (segments), :func:`network_spectrum`.
* :mod:`~jaxspec.networks._adapters`: Flax NNX and linen modules as segments.
"""

from jaxspec.networks._adapters import linen_segment, nnx_segment
from jaxspec.networks._blocks import NetworkSpectrum, Segment, mlp_segments, network_spectrum
from jaxspec.networks._jacobian import (
    JacobianConfig,
    JacobianSpectrum,
    dense_jacobian,
    dense_prefix_jacobians,
    dense_prefix_log_svals,
    input_frame,
    jacobian_spectrum,
    make_jacobian_config,
    mlp_tangent_layer,
    network_frame_sums,
    network_prefix_svals,
    prefix_growth_rates,
)
from jaxspec.networks._mlp import (
    ACTIVATIONS,
    INITS,
    MLP,
    PaddedMLP,
    activation_derivative,
    apply_activation,
    fixed_gates_apply,
    gates,
    init_gain,
    init_mlp,
    init_padded_mlp,
    mlp_apply,
    mlp_widths,
    network_layer_stack,
    pad_params,
    unpad_params,
)

__all__ = [
    "ACTIVATIONS",
    "INITS",
    "JacobianConfig",
    "JacobianSpectrum",
    "MLP",
    "NetworkSpectrum",
    "PaddedMLP",
    "Segment",
    "activation_derivative",
    "apply_activation",
    "dense_jacobian",
    "dense_prefix_jacobians",
    "dense_prefix_log_svals",
    "fixed_gates_apply",
    "gates",
    "init_gain",
    "init_mlp",
    "init_padded_mlp",
    "input_frame",
    "jacobian_spectrum",
    "linen_segment",
    "make_jacobian_config",
    "mlp_apply",
    "mlp_segments",
    "mlp_tangent_layer",
    "mlp_widths",
    "network_frame_sums",
    "network_layer_stack",
    "network_spectrum",
    "nnx_segment",
    "network_prefix_svals",
    "pad_params",
    "prefix_growth_rates",
    "unpad_params",
]
