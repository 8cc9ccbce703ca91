"""The driver: :func:`lyapunov_spectrum` validates, resolves ``method``/``qr``/``reortho_every``, vmaps over
seeds, jits, guards, and returns a :class:`LyapunovResult`.

Three layers of API, from the bottom: :func:`benettin_scan` (generic scan core, any ``apply_layer``),
:func:`ensemble_frame_sums` (one realisation of an :class:`~jaxspec.ensembles.Ensemble`; vmap it yourself in
sweeps) and :func:`lyapunov_spectrum` (the convenience entry point).

References:
    Benettin, Galgani, Giorgilli, Strelcyn, Meccanica 15 (1980); Shimada, Nagashima, Prog. Theor. Phys. 61
    (1979).
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, PRNGKeyArray

from jaxspec._checks import InputError, check_choice, check_positive_int, check_scale_range, check_seed
from jaxspec.engine._config import METHODS, EngineConfig, make_config
from jaxspec.engine._guard import run_with_orthogonality_guard
from jaxspec.engine._keys import frame_key, initial_frame, realisation_key, seed_keys
from jaxspec.engine._qr import QR_BACKENDS, choose_qr, make_qr
from jaxspec.engine._reortho import choose_reortho_every, parse_reortho_every, reortho_from_pilot
from jaxspec.engine._samplers import check_fast_path, fast_path_eligible, sampler_frame_sums
from jaxspec.engine._scan import FrameSums, benettin_scan, counted_layers, exponents_from_sums, window_rates
from jaxspec.ensembles import Ensemble

_SEED_AXIS = "seeds"


def _direct_layer(ensemble: Ensemble, config: EngineConfig):
    """``apply_layer`` of the direct product: ``frame -> D_l (W_l frame)``."""
    dtype, precision = config.jnp_dtype, config.lax_precision

    def apply_layer(state, frame, key, index):
        state, weight, mask = ensemble.layer(state, key, index, dtype)
        frame = mask[:, None] * jnp.matmul(weight, frame, precision=precision)
        return state, frame, jnp.sum(mask > 0)

    return apply_layer


def _direct_frame_sums(
    ensemble: Ensemble,
    seed_key: PRNGKeyArray,
    config: EngineConfig,
    *,
    depth: int,
    record_blocks: bool,
    batch_axis_name: str | None = None,
) -> FrameSums:
    dtype = config.jnp_dtype
    key_state, key_layers = jax.random.split(realisation_key(seed_key))
    frame = initial_frame(frame_key(seed_key), ensemble.input_width, ensemble.max_width, config.k, dtype)
    qr = make_qr(config.qr, precision=config.lax_precision, batch_axis_name=batch_axis_name)
    return benettin_scan(
        _direct_layer(ensemble, config),
        ensemble.init_state(key_state, dtype),
        frame,
        key_layers,
        depth,
        reortho_every=config.reortho_every,
        record_blocks=record_blocks,
        qr=qr,
    )


def ensemble_frame_sums(
    ensemble: Ensemble, seed_key: PRNGKeyArray, config: EngineConfig, *, batch_axis_name: str | None = None
) -> FrameSums:
    """Run the engine on one realisation (one seed) of an ensemble. Pure; vmap it over seeds.

    Args:
        ensemble: any :class:`~jaxspec.ensembles.Ensemble`.
        seed_key: this seed's key (see :func:`seed_keys`).
        config: an :class:`EngineConfig`. ``config.method`` other than ``"direct"`` runs an exact fast
            sampler (same law of the exponents, no frame; :func:`sampler_frame_sums`).
        batch_axis_name: name of the enclosing seeds ``vmap`` axis, if any: the Cholesky QR backends then take
            their fallback decision for the whole batch (a real branch instead of a select).

    Returns:
        :class:`FrameSums`.

    Example:
        >>> import jaxspec
        >>> ens = jaxspec.gaussian(width=8, depth=100)
        >>> ensemble_frame_sums(ens, seed_keys(0, 1)[0], make_config(4, max_k=8)).log_r_sum.shape
        (4,)
    """
    if config.method != "direct":
        return sampler_frame_sums(ensemble, seed_key, config)
    return _direct_frame_sums(
        ensemble,
        seed_key,
        config,
        depth=ensemble.depth,
        record_blocks=config.rates_every is not None,
        batch_axis_name=batch_axis_name,
    )


@struct.dataclass
class LyapunovResult:
    """The result of :func:`lyapunov_spectrum` (a frozen pytree).

    Attributes:
        exponents: ``(seeds, k)`` per-seed exponents (per-layer rates of ``log s_i``), descending in
            expectation.
        mean: ``(k,)`` mean over seeds (NaN-aware).
        stderr: ``(k,)`` standard error of the mean across seeds (``std(ddof=1)/sqrt(seeds)``).
        active_counts: ``(seeds, L)`` active units ``K_l`` per layer.
        min_active: ``(seeds,)`` ``min_l K_l``.
        counted_layers: ``(seeds, k)`` layers that entered each index's estimate under the convention.
        local_rates: ``(seeds, windows, k)`` windowed local growth rates, or ``None``.
        config: the :class:`EngineConfig` (static).
        ensemble: the ensemble (its static description is in ``ensemble.name`` / ``ensemble.widths``).
        max_block_spread: ``(seeds,)`` orthogonality guard, the largest log condition number a block grew the
            frame to (see :func:`reortho_limits`); ``None`` for the fast samplers, which form no frame.
    """

    exponents: jax.Array
    mean: jax.Array
    stderr: jax.Array
    active_counts: jax.Array
    min_active: jax.Array
    counted_layers: jax.Array
    local_rates: jax.Array | None
    ensemble: Any
    config: EngineConfig = struct.field(pytree_node=False)
    max_block_spread: jax.Array | None = None

    @property
    def num_seeds(self) -> int:
        return self.exponents.shape[0]


def _mean_and_stderr(exponents: jax.Array) -> tuple[jax.Array, jax.Array]:
    # Seeds with no qualifying layer (NaN) are left out; -inf (strict convention) stays visible.
    finite = jnp.isfinite(exponents)
    n = jnp.sum(finite, axis=0)
    mean = jnp.sum(jnp.where(finite, exponents, 0.0), axis=0) / jnp.where(n > 0, n, np.nan)
    var = jnp.sum(jnp.where(finite, (exponents - mean) ** 2, 0.0), axis=0) / jnp.where(n > 1, n - 1, np.nan)
    has_neg_inf = jnp.any(exponents == -jnp.inf, axis=0)
    return jnp.where(has_neg_inf, -jnp.inf, mean), jnp.where(has_neg_inf, jnp.nan, jnp.sqrt(var / n))


@functools.partial(jax.jit, static_argnames=("config",))
def _run(ensemble: Ensemble, keys: PRNGKeyArray, config: EngineConfig) -> LyapunovResult:
    sums = jax.vmap(
        lambda key: ensemble_frame_sums(ensemble, key, config, batch_axis_name=_SEED_AXIS),
        axis_name=_SEED_AXIS,
    )(keys)
    exponents = exponents_from_sums(sums, config.condition)
    mean, stderr = _mean_and_stderr(exponents)
    local_rates = None
    if config.rates_every is not None:
        local_rates = window_rates(
            sums.block_log_r, sums.block_size, config.reortho_every, config.rates_every
        )
    return LyapunovResult(
        exponents=exponents,
        mean=mean,
        stderr=stderr,
        active_counts=sums.active_counts,
        min_active=sums.min_active,
        counted_layers=counted_layers(sums, config.condition),
        local_rates=local_rates,
        ensemble=ensemble,
        config=config,
        max_block_spread=sums.max_block_spread,
    )


def resolve_method(ensemble: Ensemble, method: str) -> str:
    """``"auto"`` is ``"chi"`` where the exact samplers apply (a :class:`~jaxspec.ensembles.GatedGaussian`
    ensemble), else ``"direct"``; an explicit sampler is checked against the ensemble."""
    if method == "auto":
        return "chi" if fast_path_eligible(ensemble) else "direct"
    check_choice("method", method, METHODS + ("auto",))
    if method != "direct":
        check_fast_path(ensemble, method)
    return method


def resolve_qr(ensemble: Ensemble, qr: str, k: int) -> str:
    """``"auto"``: :func:`choose_qr` from the ensemble's
    :meth:`~jaxspec.ensembles.Ensemble.min_active_count`."""
    if qr == "auto":
        return choose_qr(ensemble.min_active_count(), k, n=ensemble.max_width)
    check_choice("qr", qr, QR_BACKENDS + ("auto",))
    return qr


@functools.partial(jax.jit, static_argnames=("config", "layers"))
def _pilot_log_r(ensemble: Ensemble, seed_key: PRNGKeyArray, config: EngineConfig, layers: int) -> Array:
    """``(layers, k)`` per-layer ``log|R_ii|`` of the first layers of one realisation (NaN: not counted)."""
    pilot = dataclasses.replace(config, reortho_every=1, method="direct")
    return _direct_frame_sums(ensemble, seed_key, pilot, depth=layers, record_blocks=True).block_log_r


def resolve_reortho_every(
    ensemble: Ensemble, config: EngineConfig, seed: int = 0, *, pilot_layers: int = 32
) -> int:
    """``reortho_every="auto"`` for an ensemble ([math §4](https://jaxspec.github.io/jaxspec/math/#s4)).

    From the closed form where the ensemble's :meth:`~jaxspec.ensembles.Ensemble.layer_theory` knows one,
    else from a ``pilot_layers`` pilot of seed ``seed`` re-orthonormalised every layer. The exact samplers
    factor every layer anyway: for them ``m`` only sets the rank-collapse bookkeeping, and is 1.

    Args:
        ensemble: the ensemble.
        config: the run's :class:`EngineConfig` (its ``reortho_every`` is ignored).
        seed: base seed of the pilot.
        pilot_layers: layers of the pilot.

    Returns:
        ``m`` in ``[1, depth]`` (a divisor of ``config.rates_every`` when that is set).
    """
    if config.method != "direct":
        return 1
    try:
        theory = ensemble.layer_theory(config.k, config.condition)
    except (InputError, jax.errors.ConcretizationTypeError, TypeError):
        theory = None  # traced parameters (inside a sweep's vmap): fall back to the pilot
    if theory is not None:
        return choose_reortho_every(
            theory.exponents, theory.variance, ensemble.depth, config.dtype, config.rates_every
        )
    log_r = _pilot_log_r(ensemble, seed_keys(seed, 1)[0], config, min(ensemble.depth, pilot_layers))
    return reortho_from_pilot(log_r, ensemble.depth, config.dtype, config.rates_every)


def _guarded_run(
    ensemble: Ensemble, keys: PRNGKeyArray, config: EngineConfig, jit: bool, auto: bool
) -> LyapunovResult:
    """``_run`` (jitted or eager) under :func:`run_with_orthogonality_guard`."""

    def run(config):
        if jit:
            result = _run(ensemble, keys, config)
        else:
            with jax.disable_jit():
                result = _run(ensemble, keys, config)
        spread = None if result.max_block_spread is None else float(jnp.max(result.max_block_spread))
        return result, spread

    return run_with_orthogonality_guard(run, config, auto, divisor_of=config.rates_every, stacklevel=4)[0]


def lyapunov_spectrum(
    ensemble,
    *,
    k: int | None = None,
    seeds: int = 1,
    seed: int = 0,
    reortho_every: int | str = 1,
    dtype: str = "float32",
    precision: str = "highest",
    condition: str = "K>=i",
    rates_every: int | None = None,
    jit: bool = True,
    qr: str = "householder",
    method: str = "auto",
) -> LyapunovResult:
    """Lyapunov exponents of a product of (masked) random or fixed layers, by QR iteration.

    Args:
        ensemble: an ensemble from :mod:`jaxspec.ensembles`, e.g. ``jaxspec.gaussian(width=8, depth=2000)``.
        k: number of exponents (default: the smallest width, i.e. the full spectrum).
        seeds: number of independent realisations (vmapped).
        seed: base integer seed; seed ``s`` uses ``fold_in(key(seed), s)``.
        reortho_every: layers between QRs ([math §4](https://jaxspec.github.io/jaxspec/math/#s4): keep
            ``m (lambda_1 - lambda_k)`` below ~16 in float32, ~36 in float64), or ``"auto"``: the largest
            ``m`` that keeps a block's predicted log condition number within 3/8 of the dtype's digits
            (:func:`choose_reortho_every`, from the closed form or a 32-layer pilot run), re-run with a
            smaller ``m`` if the guard trips. With any ``m > 1`` the guard (``result.max_block_spread``) is
            checked: a block that exceeded half the digits raises an :class:`OrthogonalityWarning`, one that
            left the dtype's range (underflow to zero, overflow, NaN) a :class:`BlockRangeWarning`.
        dtype: compute dtype, ``"float32"`` or ``"float64"`` (needs ``jax_enable_x64``).
        precision: matmul precision, ``"highest"`` by default.
        condition: rank-collapse convention: ``"K>=i"`` (default), ``"K>=k"`` or ``"none"``.
        rates_every: also return local growth rates averaged over windows of this many layers.
        jit: run under ``jax.jit`` (default) or eagerly (for debugging and tests).
        qr: QR backend, ``"householder"`` (default), ``"cholesky2"``, ``"shifted_cholesky3"`` (GEMM-based,
            with a Householder fallback on an ill-conditioned Gram matrix; :func:`make_qr`),
            ``"blocked_householder"`` (the batched Householder in JAX), or ``"auto"`` (:func:`choose_qr`:
            CholeskyQR2 where no layer can have fewer than ``k`` active units and ``width >= 4 k``, else
            Householder).
        method: ``"auto"`` (default): ``"chi"`` where it is exact (Gaussian and independently-gated masked
            ensembles), else ``"direct"``. ``"direct"``: the product itself, one realisation of the
            matrices. ``"gaussian_frame"`` (``W Q`` drawn as a fresh ``n x k`` Gaussian) and ``"chi"``
            (independent chi-law ``R`` factors, O(k) per layer) are the exact fast samplers of
            the exact samplers: the same joint law of the exponents at every depth, every ``k``, every
            rank-collapse convention, but not the realisation of the direct path for a given seed, and no
            frame. Exponents are all this function returns; use ``method="direct"`` to time or debug the
            product itself (benchmarks/RESULTS.md: the default is 30-100x faster on Gaussian and masked
            ensembles).

    Returns:
        A :class:`LyapunovResult`; ``result.mean`` is ``(k,)``.

    Raises:
        InputError: before any work, for an argument out of its domain, including a weight variance whose
            single layer leaves the compute dtype's range (``sigma2 = 1e50`` in float32; float64 takes it).

    Example:
        >>> import jaxspec
        >>> res = jaxspec.lyapunov_spectrum(jaxspec.gaussian(width=8, depth=500), seeds=4)
        >>> res.exponents.shape
        (4, 8)

    References:
        Newman (1986) for the Gaussian closed form; Haas et al., arXiv:2602.12384, for masked products.
    """
    if not isinstance(ensemble, Ensemble):
        raise InputError(
            f"ensemble must be a jaxspec ensemble (see jaxspec.ensembles), got {type(ensemble).__name__}"
        )
    max_k = min(ensemble.widths)
    reortho_every, auto = parse_reortho_every(reortho_every)
    config = make_config(
        max_k if k is None else k,
        max_k=max_k,
        reortho_every=reortho_every,
        dtype=dtype,
        precision=precision,
        condition=condition,
        rates_every=rates_every,
    )
    config = dataclasses.replace(
        config, method=resolve_method(ensemble, method), qr=resolve_qr(ensemble, qr, config.k)
    )
    seeds = check_positive_int("seeds", seeds)
    seed = check_seed(seed)  # before the pilot run that resolve_reortho_every may make
    sigma2 = getattr(ensemble, "sigma2", None)
    if sigma2 is not None:
        # A weight variance whose single layer leaves the dtype's range gives NaN on every path (the chi
        # sampler forms sigma in the compute dtype too): refuse it here, as the command line does.
        check_scale_range("sigma2", sigma2, config.dtype, width=max(ensemble.widths))
    if auto:
        config = dataclasses.replace(config, reortho_every=resolve_reortho_every(ensemble, config, seed))
    keys = seed_keys(seed, seeds)
    return _guarded_run(ensemble, keys, config, jit, auto)
