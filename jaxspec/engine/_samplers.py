"""Exact fast samplers: the law of the engine's exponents without the ``n x n`` matrices.

For a :class:`~jaxspec.ensembles.GatedGaussian` ensemble (Gaussian layers, optionally behind gates independent
of the weights), the frame the engine propagates never needs the matrices
([math §1](https://jaxspec.github.io/jaxspec/math/#s1)):

* **Fresh Gaussian frame** (``method="gaussian_frame"``). For an orthonormal ``Q`` independent of ``W``,
  ``W Q`` is again an ``n_out x k`` matrix of iid ``N(0, sigma2 / n_in)`` entries, independent of the past.
  So layer ``l``'s QR factor has the law of the R factor of ``D_l G_l`` with ``G_l`` a fresh ``n_out x k``
  Gaussian: ``n k`` random numbers and an ``n k^2`` QR per layer instead of ``n^2`` numbers and an ``n^2 k``
  product.
* **Chi-law R factors** (``method="chi"``). Bartlett's decomposition of ``D_l G_l``: given the active count
  ``K_l``, the diagonal entries are independent with ``R_ii^2 ~ (sigma2 / n_in) chi^2_{K_l - i + 1}`` for
  ``i <= K_l`` (and ``R_ii = 0`` beyond, where the engine's rank-collapse convention excludes the layer). So
  ``k`` log-gamma variates and one count per layer sample the exact finite-depth QR estimator, O(k) per layer.

Both are *exact in distribution*: the per-seed exponents (every index, every depth, every rank-collapse
convention and ``reortho_every``, whose block bookkeeping is the engine's own :func:`scan_blocks`) have the
same joint law as those of the direct path; they are not the same realisation. They are exponents-only
samplers: no frame of the product exists, so :class:`FrameSums` has ``frame=None`` and they must never stand
in for the product when vectors, alignment or finite-depth singular values are wanted. ReLU networks (gates
depend on the weights), orthogonal and fixed networks are not :class:`~jaxspec.ensembles.GatedGaussian` and
go through the direct path.

References:
    Newman, "The distribution of Lyapunov exponents: exact results for random matrices", CMP 104 (1986);
    Bartlett, "On the theory of statistical regression", Proc. R. Soc. Edinburgh 53 (1933);
    Marsaglia, Tsang, "A simple method for generating gamma variables", ACM TOMS 26 (2000);
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from jaxspec._checks import InputError
from jaxspec.engine._config import EngineConfig
from jaxspec.engine._keys import realisation_key
from jaxspec.engine._scan import FrameSums, accumulate_block, frame_sums, initial_totals, scan_blocks
from jaxspec.ensembles import GatedGaussian, layer_key

#: The exact fast samplers, by ``method`` name.
FAST_METHODS = ("gaussian_frame", "chi")
# Vectorised Marsaglia-Tsang attempts per variate before the (rarely entered) rejection loop.
_GAMMA_ATTEMPTS = 3


def fast_path_eligible(ensemble) -> bool:
    """Whether the exact samplers apply: the ensemble is a :class:`~jaxspec.ensembles.GatedGaussian`."""
    return isinstance(ensemble, GatedGaussian)


def check_fast_path(ensemble, method: str) -> None:
    """Raise :class:`~jaxspec.InputError` unless ``method`` is a sampler that is exact for ``ensemble``."""
    if method not in FAST_METHODS:
        raise InputError(f"fast method must be one of {', '.join(FAST_METHODS)}, got {method!r}")
    if not fast_path_eligible(ensemble):
        name = getattr(ensemble, "name", type(ensemble).__name__)
        raise InputError(
            f"method={method!r} is exact only for Gaussian layers behind gates independent of the weights "
            f"(gaussian and masked ensembles), not {name!r}; use method='direct'"
        )


def log_gamma_variates(
    key: PRNGKeyArray, shape_param: Float[Array, "*shape"], dtype=jnp.float32, attempts: int = _GAMMA_ATTEMPTS
) -> Float[Array, "*shape"]:
    """Exact samples of ``log X`` with ``X ~ Gamma(a, 1)``, vectorised (Marsaglia-Tsang, boosted below 1).

    Every variate gets ``attempts`` independent proposals drawn in one batch; the first accepted one is kept
    (this *is* the rejection sampler), and a ``while_loop`` redraws the rare variates that rejected them all.
    For ``a < 1``, ``log X = log Y + log(U) / a`` with ``Y ~ Gamma(a + 1)``, which stays finite where ``X``
    itself would underflow. The normals and uniforms are drawn in float32 and cast, as the ensembles draw
    their weights, so float32 and float64 runs share realisations (a float64 run is a rounding reference).

    Args:
        key: a PRNG key.
        shape_param: ``(...)`` shape parameters ``a > 0``.
        dtype: floating dtype of the variates.
        attempts: proposals per variate before the rejection loop.

    Returns:
        ``(...)`` samples of ``log Gamma(a, 1)``: mean ``psi(a)``, variance ``psi1(a)``.

    Example:
        >>> x = log_gamma_variates(jax.random.key(0), jnp.full((4,), 2.5))
        >>> x.shape
        (4,)

    References:
        Marsaglia, Tsang, ACM TOMS 26 (2000), 363-372.
    """
    a = jnp.asarray(shape_param, dtype)
    boost = a < 1
    a1 = jnp.where(boost, a + 1, a)
    d = a1 - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    key_try, key_boost, key_loop = jax.random.split(key, 3)

    def propose(key, lead):
        key_x, key_u = jax.random.split(key)
        x = jax.random.normal(key_x, lead + a.shape, jnp.float32).astype(dtype)
        u = jax.random.uniform(key_u, lead + a.shape, jnp.float32).astype(dtype)
        w = c * x
        positive = w > -1
        log1p_w = jnp.log1p(jnp.where(positive, w, 0.0))
        # Accept iff log u < x^2/2 + d - d v + d log v with v = (1 + w)^3; written with log1p for float32.
        v_minus_1 = jnp.expm1(3.0 * log1p_w)
        accept = positive & (jnp.log(u) < 0.5 * x * x - d * (v_minus_1 - 3.0 * log1p_w))
        return accept, jnp.log(d) + 3.0 * log1p_w

    accept, value = propose(key_try, (attempts,))
    first = jnp.argmax(accept, axis=0)
    done = jnp.any(accept, axis=0)
    log_y = jnp.take_along_axis(value, first[None], axis=0)[0]

    def redraw(state):
        key, done, log_y = state
        key, sub = jax.random.split(key)
        ok, val = propose(sub, ())
        take = ok & ~done
        return key, done | ok, jnp.where(take, val, log_y)

    _, _, log_y = jax.lax.while_loop(lambda s: ~jnp.all(s[1]), redraw, (key_loop, done, log_y))
    u = jax.random.uniform(key_boost, a.shape, jnp.float32, minval=jnp.finfo(jnp.float32).tiny).astype(dtype)
    return jnp.where(boost, log_y + jnp.log(u) / a, log_y)


# layer(key, index) -> (log|R_ii| of the layer (k,), active count K_l)
SampledLayer = Callable[[PRNGKeyArray, Array], tuple[Float[Array, " k"], Array]]


def _gaussian_frame_layer(ensemble: GatedGaussian, k: int, dtype) -> SampledLayer:
    n = max(ensemble.widths)

    def layer(key, index):
        key_g, key_k = jax.random.split(key)
        count = ensemble.sample_active_count(key_k, index)
        g = jax.random.normal(key_g, (n, k), jnp.float32).astype(dtype)
        # Active rows first: the R factor's law does not depend on which rows are active (iid rows).
        g = g * (jnp.arange(n) < count)[:, None].astype(dtype)
        r = jnp.linalg.qr(g, mode="r")
        log_r = jnp.log(jnp.abs(jnp.diagonal(r))) + 0.5 * ensemble.log_weight_variance(index, dtype)
        return log_r, count

    return layer


def _chi_layer(ensemble: GatedGaussian, k: int, dtype) -> SampledLayer:
    def layer(key, index):
        key_c, key_k = jax.random.split(key)
        count = ensemble.sample_active_count(key_k, index)
        dof = count - jnp.arange(k)  # chi^2 degrees of freedom K - i + 1
        alive = dof >= 1
        log_gamma = log_gamma_variates(key_c, jnp.where(alive, dof, 1).astype(dtype) / 2, dtype)
        # R_ii^2 = (sigma2 / n_in) * 2 * Gamma((K - i + 1) / 2)
        log_r = 0.5 * (
            ensemble.log_weight_variance(index, dtype) + jnp.log(jnp.asarray(2.0, dtype)) + log_gamma
        )
        return jnp.where(alive, log_r, 0.0), count

    return layer


_SAMPLED_LAYERS = {"gaussian_frame": _gaussian_frame_layer, "chi": _chi_layer}


def sampler_frame_sums(ensemble: GatedGaussian, seed_key: PRNGKeyArray, config: EngineConfig) -> FrameSums:
    """Exponent sums of one seed from the exact sampler ``config.method`` (exact in law, no frame).

    Within a block the per-layer logs add up: ``diag(R_m ... R_1) = prod diag(R_j)``, which is what the direct
    path's single QR per block returns in exact arithmetic; the block bookkeeping is the engine's own.

    Args:
        ensemble: a :class:`~jaxspec.ensembles.GatedGaussian` ensemble (Gaussian or masked).
        seed_key: this seed's key (see :func:`seed_keys`).
        config: an :class:`EngineConfig` with ``method`` ``"gaussian_frame"`` or ``"chi"`` (its
            ``reortho_every`` sets the block bookkeeping).

    Returns:
        :class:`FrameSums` with ``frame=None``.

    Example:
        >>> import jaxspec
        >>> from jaxspec.engine import make_config, seed_keys
        >>> ens = jaxspec.masked(width=128, depth=1000, p=0.5)
        >>> cfg = make_config(8, max_k=128, method="chi")
        >>> sampler_frame_sums(ens, seed_keys(0, 1)[0], cfg).layer_count.shape
        (8,)

    References:
        Newman, CMP 104 (1986), section 2 (rotation invariance); Bartlett (1933).
    """
    check_fast_path(ensemble, config.method)
    k, dtype, record = config.k, config.jnp_dtype, config.rates_every is not None
    layer = _SAMPLED_LAYERS[config.method](ensemble, k, dtype)
    _, key = jax.random.split(realisation_key(seed_key))
    depth = len(ensemble.widths) - 1

    def block(totals, block_indices):
        def one_layer(inner, index):
            total, kmin = inner
            log_r, active = layer(layer_key(key, index), index)
            active = jnp.asarray(active, jnp.int32)
            return (total + log_r.astype(total.dtype), jnp.minimum(kmin, active)), active

        start = (jnp.zeros_like(totals.log_r_sum), jnp.full_like(totals.min_active, jnp.iinfo(jnp.int32).max))
        (log_r, kmin), actives = jax.lax.scan(one_layer, start, block_indices)
        totals, valid = accumulate_block(totals, log_r, kmin, block_indices.shape[0])
        return totals, (actives, jnp.where(valid, log_r, jnp.nan) if record else None)

    totals, actives, block_log_r, block_size = scan_blocks(
        block, initial_totals((), k), depth, config.reortho_every, record
    )
    return frame_sums(totals, depth, actives, block_log_r, block_size, None, track_spread=False)


def gaussian_frame_sums(ensemble: GatedGaussian, seed_key: PRNGKeyArray, config: EngineConfig) -> FrameSums:
    """:func:`sampler_frame_sums` with ``W Q`` drawn as a fresh ``n_out x k`` Gaussian per layer."""
    return sampler_frame_sums(ensemble, seed_key, _with_method(config, "gaussian_frame"))


def chi_frame_sums(ensemble: GatedGaussian, seed_key: PRNGKeyArray, config: EngineConfig) -> FrameSums:
    """:func:`sampler_frame_sums` with independent chi-law ``R`` factors, O(k) per layer."""
    return sampler_frame_sums(ensemble, seed_key, _with_method(config, "chi"))


def _with_method(config: EngineConfig, method: str) -> EngineConfig:
    return dataclasses.replace(config, method=method)
