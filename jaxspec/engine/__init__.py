"""The spectrum engine: an orthonormal frame pushed through a deep product by ``lax.scan`` with periodic QR.

The scan core, from the bottom:

* :mod:`~jaxspec.engine._reortho`: the re-orthonormalisation interval: validation, budget, ``"auto"``.
* :mod:`~jaxspec.engine._config`: :class:`EngineConfig` and :func:`make_config`.
* :mod:`~jaxspec.engine._keys`: per-seed keys and the initial Haar frame.
* :mod:`~jaxspec.engine._qr`: QR backends (Householder, CholeskyQR2, shifted CholeskyQR3, the batched blocked
  Householder).
* :mod:`~jaxspec.engine._scan`: :func:`benettin_scan`, the block loop and the rank-collapse bookkeeping.
* :mod:`~jaxspec.engine._guard`: the orthogonality guard (conditioning and range of every block).

Built on the core:

* :mod:`~jaxspec.engine._samplers`: the exact fast samplers (fresh Gaussian frame, chi-law R factors).
* :mod:`~jaxspec.engine._shared_weights`: stacked frames, one GEMM per layer for many inputs of one network.
* :mod:`~jaxspec.engine._spectrum`: the driver :func:`lyapunov_spectrum` and :class:`LyapunovResult`.
* :mod:`~jaxspec.engine._maps`: any differentiable map: :func:`map_spectrum` (iterated maps) and
  :func:`flow_spectrum` (ODE flows), tangents by ``jax.jvp``.
"""

from jaxspec.engine._config import CONDITIONS, METHODS, EngineConfig, make_config
from jaxspec.engine._guard import BlockRangeWarning, OrthogonalityWarning, run_with_orthogonality_guard
from jaxspec.engine._keys import frame_key, initial_frame, realisation_key, seed_keys
from jaxspec.engine._maps import MapSpectrum, flow_spectrum, map_spectrum, orbit_frame_sums, tangent_step
from jaxspec.engine._qr import (
    QR_BACKENDS,
    QRCallable,
    blocked_householder_qr,
    cholesky_qr2,
    cholesky_qr2_with_status,
    choose_qr,
    householder_qr,
    make_qr,
    orthogonality_loss,
    shifted_cholesky_qr3,
    shifted_cholesky_qr3_with_status,
)
from jaxspec.engine._reortho import (
    choose_reortho_every,
    parse_reortho_every,
    range_limits,
    reortho_from_pilot,
    reortho_limits,
)
from jaxspec.engine._samplers import (
    FAST_METHODS,
    check_fast_path,
    chi_frame_sums,
    fast_path_eligible,
    gaussian_frame_sums,
    log_gamma_variates,
    sampler_frame_sums,
)
from jaxspec.engine._scan import (
    FrameSums,
    accumulate_block,
    accumulator_dtype,
    benettin_scan,
    block_spread,
    counted_layers,
    exponents_from_sums,
    frame_sums,
    initial_totals,
    scan_blocks,
    window_rates,
)
from jaxspec.engine._shared_weights import (
    SharedWeightsResult,
    pilot_reortho_every,
    shared_weights_spectrum,
    stacked_frame_sums,
)
from jaxspec.engine._spectrum import (
    LyapunovResult,
    ensemble_frame_sums,
    lyapunov_spectrum,
    resolve_method,
    resolve_qr,
    resolve_reortho_every,
)

__all__ = [
    "CONDITIONS",
    "BlockRangeWarning",
    "FAST_METHODS",
    "METHODS",
    "QR_BACKENDS",
    "EngineConfig",
    "FrameSums",
    "LyapunovResult",
    "MapSpectrum",
    "OrthogonalityWarning",
    "QRCallable",
    "SharedWeightsResult",
    "accumulate_block",
    "accumulator_dtype",
    "benettin_scan",
    "block_spread",
    "blocked_householder_qr",
    "check_fast_path",
    "chi_frame_sums",
    "cholesky_qr2",
    "cholesky_qr2_with_status",
    "choose_qr",
    "choose_reortho_every",
    "counted_layers",
    "ensemble_frame_sums",
    "exponents_from_sums",
    "fast_path_eligible",
    "flow_spectrum",
    "frame_key",
    "frame_sums",
    "gaussian_frame_sums",
    "householder_qr",
    "initial_frame",
    "initial_totals",
    "log_gamma_variates",
    "lyapunov_spectrum",
    "make_config",
    "make_qr",
    "map_spectrum",
    "orbit_frame_sums",
    "orthogonality_loss",
    "parse_reortho_every",
    "pilot_reortho_every",
    "range_limits",
    "realisation_key",
    "reortho_from_pilot",
    "reortho_limits",
    "resolve_method",
    "resolve_qr",
    "resolve_reortho_every",
    "run_with_orthogonality_guard",
    "sampler_frame_sums",
    "scan_blocks",
    "seed_keys",
    "shared_weights_spectrum",
    "shifted_cholesky_qr3",
    "shifted_cholesky_qr3_with_status",
    "stacked_frame_sums",
    "tangent_step",
    "window_rates",
]
