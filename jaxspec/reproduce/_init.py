"""The paper's initialisation experiments: scaling, separation, alignment and the sandwich (figures a-d).

:func:`run_init` computes, and returns as an :class:`InitResult`,

* (a) scaling: ``(1/L) log s_i(J_L)`` (exact, stratified) and ``(1/L) sum log|R_ii|`` (QR) against ``L``
  for the masked model (``p = 1/2``, ``sigma2 = 2``) and for He-initialised zero-bias ReLU MLPs (Jacobians
  by ``jax.jvp`` tangents), beside the closed-form ``lambda_i``
  ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)) and the finite-depth offsets ``c_i``
  ([math §2](https://jaxspec.github.io/jaxspec/math/#s2));
* (b) separation: ``log(s_1 / s_2)`` against ``L / N`` for several widths, beside
  ``L (lambda_1 - lambda_2) + c_1 - c_2``;
* (c) alignment: ``sin angle(v_1(J_l), v_1(J_L))`` along ``l`` (and the left vectors of suffix products along
  ``L - l``), whose log falls with the slope ``lambda_1 - lambda_2``
  ([math §3](https://jaxspec.github.io/jaxspec/math/#s3));
* (d) the sandwich ``s_1(AB) / (s_1(A) s_1(B))`` with its bounds against the depth of the segments on either
  side of a split, for independent segments (Gaussian, ReLU) and an aligned construction (shared singular
  bases plus noise), and the overlaps ``|V_{j+1}^T U_j|`` of the top bases of adjacent segments
  ([math §3](https://jaxspec.github.io/jaxspec/math/#s3)).

:mod:`jaxspec.figures` draws it and writes ``init_*.png``, ``init.nc`` and ``init_summary.json``.

Sines below the resolution of the dtype. Two singular vectors that agree to the last bit give a sine of
exactly 0 (and a few give values below ``eps``): the sine is the norm of a projection residual of unit
vectors, each known to about ``eps``, so nothing below ``eps`` is resolved. Before taking logs the job clips
every sine at ``np.finfo(dtype).eps`` (not ``tiny``: ``log(tiny) = -708`` in float64 would sit hundreds of
units below the curve and dominate the mean and the fitted slope, while ``log(eps) = -36.0`` is the floor of
what the computation can tell apart from 0), and records how many points it clipped.

References:
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, Int

from jaxspec import theory
from jaxspec._checks import InputError
from jaxspec._extras import optional_import
from jaxspec.analysis import (
    ensemble_log_svals,
    network_theory,
    prefix_alignment,
    segment_alignment,
    singular_value_offsets,
    split_sandwich,
    suffix_alignment,
)
from jaxspec.engine import ensemble_frame_sums, initial_frame, make_config, seed_keys
from jaxspec.ensembles import masked
from jaxspec.networks import (
    JacobianConfig,
    gates,
    init_padded_mlp,
    network_frame_sums,
    network_prefix_svals,
    prefix_growth_rates,
)
from jaxspec.reproduce._jobs import progress_bar, resolve_sizes

MODELS = ("masked", "relu")
CONSTRUCTIONS = ("gaussian", "relu", "aligned")


@dataclass(frozen=True)
class InitSizes:
    """Problem sizes of one run (the defaults are the quick CPU preset, about a minute or two).

    Attributes:
        width: ``N`` of figures (a), (c), (d).
        depth: ``L`` of figures (a) and (c).
        seeds: independent networks / products per curve.
        alignment_seeds: independent networks / products per curve of figure (c).
        gaussian_alignment_width: width of the Gaussian product of figure (c) (small, so that
            ``depth * (lambda_1 - lambda_2) >> 1``).
        k: number of singular values shown in (a).
        separation_widths: widths of figure (b).
        separation_depth_over_width: ``L / N`` reached in (b).
        segment_depth: largest segment depth ``d`` in (d) (products of depth ``2 d``).
        segments: number of segments for the overlap matrices.
        aligned_noise: noise level ``epsilon`` of the aligned construction.
        aligned_decay: per-layer log decay of the shared singular values.
    """

    width: int = 24
    depth: int = 160
    seeds: int = 16
    alignment_seeds: int = 32
    gaussian_alignment_width: int = 8
    k: int = 4
    separation_widths: tuple[int, ...] = (16, 24, 32)
    separation_depth_over_width: float = 4.0
    segment_depth: int = 96
    segments: int = 4
    aligned_noise: float = 0.3
    aligned_decay: float = 0.1


#: Paper-scale sizes of ``run_init(full=True)``, meant for a GPU: widths 128-512, depth up to 4N, enough seeds
#: for standard-error bands (the paper's setting).
FULL_INIT_SIZES = InitSizes(
    width=256,
    depth=1024,
    seeds=64,
    alignment_seeds=128,
    gaussian_alignment_width=16,
    k=6,
    separation_widths=(128, 256, 512),
    separation_depth_over_width=4.0,
    segment_depth=512,
    segments=6,
)


class Band(NamedTuple):
    """Mean and standard error over the leading (seed) axis, leaving out non-finite samples.

    Attributes:
        mean: the mean of the finite samples (NaN where there are none).
        se: its standard error ``sqrt(var / count)`` (NaN with fewer than two finite samples).
    """

    mean: Float[np.ndarray, "*shape"]
    se: Float[np.ndarray, "*shape"]


def _mean_se(values: Float[np.ndarray, "seed ..."]) -> Band:
    """:class:`Band` of ``values`` over axis 0, in float64 (a rank collapse gives ``-inf``: left out)."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    count = finite.sum(0)
    safe = np.where(finite, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = safe.sum(0) / count
        var = np.where(finite, (values - mean[None]) ** 2, 0.0).sum(0) / (count - 1)
        return Band(mean, np.sqrt(var / count))


def _window_slope(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of the finite ``y`` with ``lo <= x <= hi``."""
    sel = (x >= lo) & (x <= hi) & np.isfinite(y)
    slope, intercept = np.polyfit(x[sel], y[sel], 1)
    return float(slope), float(intercept)


@dataclass(frozen=True)
class ScalingCurves:
    """Figure (a) for one model: per-seed log singular values and QR sums, and their per-layer rates.

    Attributes:
        log_svals: ``(seed, depth, index)``, ``log s_i(J_l)`` of every prefix (``-inf`` after a rank
            collapse).
        qr_log_r: ``(seed, depth, index)``, per-layer ``log|R_ii|`` (NaN where ``K_l < i``).
        sv_rate: ``(depth, index)`` band of ``(1/l) log s_i(J_l)`` over the seeds with ``s_i > 0``.
        qr_rate: ``(depth, index)`` band of ``(1/l) sum log|R_ii|`` (conditioned on ``K_l >= i``).
        fraction_full_rank: ``(index,)``, the fraction of seeds with ``s_i(J_L) > 0``.
    """

    log_svals: Float[np.ndarray, "seed depth index"]
    qr_log_r: Float[np.ndarray, "seed depth index"]
    sv_rate: Band
    qr_rate: Band
    fraction_full_rank: Float[np.ndarray, " index"]


@dataclass(frozen=True)
class SeparationCurves:
    """Figure (b) for one width ``N``: ``log s_1, log s_2`` of ReLU-MLP prefixes up to ``L = (L/N) N``.

    Attributes:
        width: ``N``.
        log_svals: ``(seed, depth, 2)``, ``log s_1, log s_2`` of every prefix.
        log_ratio: ``(depth,)`` band of ``log(s_1 / s_2)``.
        theory_exponents: ``(2,)``, ``lambda_1, lambda_2`` of the network.
        theory_offsets: ``(2,)``, ``c_1, c_2``.
    """

    width: int
    log_svals: Float[np.ndarray, "seed depth 2"]
    log_ratio: Band
    theory_exponents: Float[np.ndarray, " 2"]
    theory_offsets: Float[np.ndarray, " 2"]

    def theory_log_ratio(self, depth: Float[np.ndarray, " n"]) -> Float[np.ndarray, " n"]:
        """``L (lambda_1 - lambda_2) + c_1 - c_2`` at the depths ``L`` given."""
        lam, off = self.theory_exponents, self.theory_offsets
        return np.asarray(depth) * (lam[0] - lam[1]) + off[0] - off[1]


@dataclass(frozen=True)
class AlignmentCurve:
    """Figure (c) for one model and side: alignment sines along depth and their log-linear decay.

    Attributes:
        sines: ``(alignment_seed, depth)`` as measured: row ``l - 1`` is ``sin angle(v_1(J_l), v_1(J_L))``
            (prefix side) or, with rows indexed by ``suffix_start = 0..L-1``, the left vectors of the suffix
            products (suffix side).
        position: ``(point,)``, ascending: ``l`` (prefix) or ``L - l``, the layers in the suffix (suffix).
        log_sin: ``(point,)`` band of ``log sin`` at ``position``, after clipping at ``floor``.
        floor: the clip level ``np.finfo(dtype).eps`` of the sines.
        clipped: how many of the ``seeds x points`` sines were below ``floor`` (zeros included) and clipped.
        predicted_slope: ``-(lambda_1 - lambda_2)``.
        fit_window: ``(lo, hi)``, the positions of the fitted slope.
        anchor: intercept of the reference line ``anchor + predicted_slope * position``.
    """

    sines: Float[np.ndarray, "seed depth"]
    position: Int[np.ndarray, " point"]
    log_sin: Band
    floor: float
    clipped: int
    predicted_slope: float
    fit_window: tuple[int, int]
    anchor: float


@dataclass(frozen=True)
class SandwichCurves:
    """Figure (d) and the overlaps for one construction.

    Attributes:
        ratio: ``(seed, segment_depth)``, ``s_1(AB) / (s_1(A) s_1(B))`` at a split with ``d`` layers on
            either side.
        lower: ``(seed, segment_depth)``, its lower bound ``c = |<v_1(A), u_1(B)>|``.
        upper: ``(seed, segment_depth)``, its upper bound ``c + r_A + r_B``.
        r_a: ``(seed, segment_depth)``, the remainder ``r_A``.
        r_b: ``(seed, segment_depth)``, the remainder ``r_B``.
        overlaps: ``(seed, pair, later_right, earlier_left)``, ``|<v_i(P_{j+1}), u_j(P_j)>|``.
        bands: ``"ratio"``, ``"lower"``, ``"upper"`` -> ``(segment_depth,)`` band over seeds.
        mean_overlaps: ``(later_right, earlier_left)``, ``overlaps`` averaged over seeds and pairs.
    """

    ratio: Float[np.ndarray, "seed segment_depth"]
    lower: Float[np.ndarray, "seed segment_depth"]
    upper: Float[np.ndarray, "seed segment_depth"]
    r_a: Float[np.ndarray, "seed segment_depth"]
    r_b: Float[np.ndarray, "seed segment_depth"]
    overlaps: Float[np.ndarray, "seed pair later_right earlier_left"]
    bands: dict[str, Band]
    mean_overlaps: Float[np.ndarray, "later_right earlier_left"]


@dataclass(frozen=True)
class InitResult:
    """Everything :func:`run_init` measured, with the closed forms beside it.

    Attributes:
        sizes: the sizes of the run.
        dtype: the compute dtype.
        theory_exponents: ``(index,)``, ``lambda_1..lambda_k`` of the masked model / He ReLU MLP.
        theory_offsets: ``(index,)``, the finite-depth offsets ``c_1..c_k``.
        gaps: ``"relu"``, ``"gaussian"`` -> ``lambda_1 - lambda_2`` of the products of figure (c).
        haar_overlap: ``sqrt(2 / (pi N))``, the mean ``|<u, v>|`` of independent Haar vectors.
        scaling: ``"masked"``, ``"relu"`` -> figure (a).
        separation: width ``N`` -> figure (b).
        alignment: ``"relu_prefix"``, ``"gaussian_prefix"``, ``"relu_suffix"``, ``"gaussian_suffix"`` -> (c).
        sandwich: ``"gaussian"``, ``"relu"``, ``"aligned"`` -> figure (d) and the overlaps.
        summary: the headline numbers (the content of ``init_summary.json``).
    """

    sizes: InitSizes
    dtype: str
    theory_exponents: Float[np.ndarray, " index"]
    theory_offsets: Float[np.ndarray, " index"]
    gaps: dict[str, float]
    haar_overlap: float
    scaling: dict[str, ScalingCurves]
    separation: dict[int, SeparationCurves]
    alignment: dict[str, AlignmentCurve]
    sandwich: dict[str, SandwichCurves]
    summary: dict[str, Any]

    def to_dataset(self):
        """Every curve as one labelled ``xarray.Dataset`` (the content of ``init.nc``; needs xarray)."""
        xr = optional_import("xarray", "figures")

        sizes, depth = self.sizes, self.sizes.depth
        coords = {
            "seed": np.arange(sizes.seeds),
            "alignment_seed": np.arange(sizes.alignment_seeds),
            "depth": np.arange(1, depth + 1),
            "suffix_start": np.arange(depth),
            "index": np.arange(1, sizes.k + 1),
            "segment_depth": np.arange(1, sizes.segment_depth + 1),
        }
        dv = {}
        for model in MODELS:
            dv[f"{model}_log_svals"] = (("seed", "depth", "index"), self.scaling[model].log_svals)
            dv[f"{model}_qr_log_r"] = (("seed", "depth", "index"), self.scaling[model].qr_log_r)
        dv["theory_exponents"] = (("index",), self.theory_exponents)
        dv["theory_offsets"] = (("index",), self.theory_offsets)
        for name in ("relu", "gaussian"):
            dv[f"{name}_prefix_sin"] = (("alignment_seed", "depth"), self.alignment[f"{name}_prefix"].sines)
            dv[f"{name}_suffix_sin"] = (
                ("alignment_seed", "suffix_start"),
                self.alignment[f"{name}_suffix"].sines,
            )
        for name in CONSTRUCTIONS:
            entry = self.sandwich[name]
            for key in ("ratio", "lower", "upper", "r_a", "r_b"):
                dv[f"sandwich_{name}_{key}"] = (("seed", "segment_depth"), getattr(entry, key))
            dv[f"overlaps_{name}"] = (("seed", "pair", "later_right", "earlier_left"), entry.overlaps)
        for n, sep in self.separation.items():
            dv[f"separation_log_s1_over_s2_N{n}"] = (
                ("seed", f"depth_N{n}"),
                sep.log_svals[:, :, 0] - sep.log_svals[:, :, 1],
            )
            coords[f"depth_N{n}"] = np.arange(1, sep.log_svals.shape[1] + 1)
            dv[f"separation_theory_gap_N{n}"] = ((), float(sep.theory_exponents[0] - sep.theory_exponents[1]))
        ds = xr.Dataset(dv, coords=coords)
        ds.attrs.update(
            {
                "description": "jaxspec figures init: scaling, separation, alignment, sandwich at init",
                "reference": "Haas, Gatine, Cosse, Bouraoui, arXiv:2602.12384",
                "sizes": json.dumps(asdict(sizes)),
                "gaps": json.dumps({k: float(v) for k, v in self.gaps.items()}),
                "conventions": "log = natural log; depth index l = 1..L; "
                "sines from projection residuals; "
                "qr_log_r is per-layer log|R_ii| (NaN where K_l < i)",
                "sine_floor": json.dumps({k: c.floor for k, c in self.alignment.items()}),
                "sines_clipped": json.dumps({k: c.clipped for k, c in self.alignment.items()}),
            }
        )
        return ds


# ----------------------------------------------------------------------------------------------------------
# The jitted programs. On a CPU, XLA compilation (seconds per program) dominates these sizes, so the random
# draws and the measurements of one figure are compiled together, once per process and size.


def _seed_keys(seed: int, name: str, count: int):
    return seed_keys(seed + sum(map(ord, name)) * 1000, count)


def _relu_networks(keys, widths, dtype):
    """``S`` He ReLU MLPs stacked as one ``PaddedMLP`` pytree (leading seed axis), one Gaussian input each."""

    def one(key):
        k_net, k_x = jax.random.split(key)
        padded = init_padded_mlp(k_net, widths, dtype=dtype)
        x = jax.random.normal(k_x, (widths[0],), jnp.float32).astype(dtype)
        return padded, x

    return jax.vmap(one)(keys)


def _gaussian_stacks(keys, depth, n, dtype):
    def one(key):
        return jax.random.normal(key, (depth, n, n), jnp.float32).astype(dtype) / np.sqrt(n)

    return jax.vmap(one)(keys)


def _relu_stacks(keys, depth, n, dtype):
    """Weights ``(S, L, N, N)`` and gates ``(S, L, N)`` at one input of He ReLU MLPs (every layer gated)."""
    nets, xs = _relu_networks(keys, (n,) * (depth + 1), dtype)
    masks = jax.vmap(lambda p, x: gates(p, x, final_activation=True))(nets, xs)
    return nets.weights, masks


def _aligned_stacks(keys, depth, n, decay, noise, dtype):
    """Shared singular bases plus noise.

    ``W_l = Q_{l+1} diag(e^{-decay (i-1)}) Q_l^T + noise G_l / sqrt(n)``, Haar ``Q_l``, Gaussian ``G_l``.
    """

    def one(key):
        k_q, k_g = jax.random.split(key)
        g = jax.random.normal(k_q, (depth + 1, n, n), jnp.float32).astype(dtype)
        q, r = jnp.linalg.qr(g)
        q = q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
        sigma = jnp.exp(-decay * jnp.arange(n, dtype=dtype))
        core = jnp.einsum("lij,j,lkj->lik", q[1:], sigma, q[:-1])
        return core + noise * jax.random.normal(k_g, (depth, n, n), jnp.float32).astype(dtype) / np.sqrt(n)

    return jax.vmap(one)(keys)


@functools.partial(jax.jit, static_argnames=("sizes", "dtype"))
def _scaling_program(keys_masked, keys_relu, keys_frame, sizes, dtype):
    n, depth, k = sizes.width, sizes.depth, sizes.k
    ens = masked(width=n, depth=depth, p=0.5, sigma2=2.0)
    cfg = make_config(k, max_k=n, rates_every=1, dtype=dtype)

    def masked_one(key):
        sums = ensemble_frame_sums(ens, key, cfg)
        return sums.block_log_r, ensemble_log_svals(ens, key, prefixes=True, dtype=dtype).log_svals[:, :k]

    nets, xs = _relu_networks(keys_relu, (n,) * (depth + 1), jnp.dtype(dtype))
    jcfg = JacobianConfig(k=k, final_activation=True, dtype=dtype, prefixes=True)

    def relu_one(padded, x, key):
        frame = initial_frame(key, n, n, k, jnp.dtype(dtype))
        sums = network_frame_sums(padded, x, frame, jcfg)
        return sums.block_log_r, network_prefix_svals(padded, x, jcfg).log_svals[:, :k]

    return jax.vmap(masked_one)(keys_masked), jax.vmap(relu_one)(nets, xs, keys_frame)


@functools.partial(jax.jit, static_argnames=("n", "depth", "dtype"))
def _separation_program(keys, n, depth, dtype):
    nets, xs = _relu_networks(keys, (n,) * (depth + 1), jnp.dtype(dtype))
    jcfg = JacobianConfig(k=2, final_activation=True, dtype=dtype, prefixes=True)
    return jax.vmap(lambda p, x: network_prefix_svals(p, x, jcfg).log_svals[:, :2])(nets, xs)


def _prefix_and_suffix(w, m):
    return prefix_alignment(w, m)[:, 0], suffix_alignment(w, m)[:, 0]


@functools.partial(jax.jit, static_argnames=("sizes", "dtype"))
def _alignment_program(keys_relu, keys_gauss, sizes, dtype):
    n, depth, dt = sizes.width, sizes.depth, jnp.dtype(dtype)
    w, m = _relu_stacks(keys_relu, depth, n, dt)
    g = _gaussian_stacks(keys_gauss, depth, sizes.gaussian_alignment_width, dt)
    return jax.vmap(_prefix_and_suffix)(w, m), jax.vmap(_prefix_and_suffix)(g, jnp.ones(g.shape[:3], dt))


# The three constructions of figure (d) are drawn by separate programs and measured by one shared program
# (compiling all of it as a single XLA program took minutes on a CPU).
_STACK_PROGRAMS = {
    "gaussian": jax.jit(
        lambda keys, sizes, dt: (_gaussian_stacks(keys, 2 * sizes.segment_depth, sizes.width, dt), None),
        static_argnums=(1, 2),
    ),
    "relu": jax.jit(
        lambda keys, sizes, dt: _relu_stacks(keys, 2 * sizes.segment_depth, sizes.width, dt),
        static_argnums=(1, 2),
    ),
    "aligned": jax.jit(
        lambda keys, sizes, dt: (
            _aligned_stacks(
                keys, 2 * sizes.segment_depth, sizes.width, sizes.aligned_decay, sizes.aligned_noise, dt
            ),
            None,
        ),
        static_argnums=(1, 2),
    ),
}


@functools.partial(jax.jit, static_argnames=("split", "boundaries", "k"))
def _measure_segments(w, m, split, boundaries, k):
    sw = jax.vmap(lambda a, b: split_sandwich(a, b, split))(w, m)
    seg = jax.vmap(lambda a, b: segment_alignment(a, b, boundaries, k))(w, m)
    return {
        "ratio": sw.ratio,
        "lower": sw.lower,
        "upper": sw.upper,
        "r_a": sw.r_a,
        "r_b": sw.r_b,
        "overlaps": jnp.abs(seg.overlaps),
    }


# ----------------------------------------------------------------------------------------------------------
# The four parts: measurements, then their bands, fits and summaries.


def _scaling(sizes: InitSizes, seed: int, dtype: str) -> dict[str, ScalingCurves]:
    s, depth = sizes.seeds, sizes.depth
    out = _scaling_program(
        _seed_keys(seed, "a-masked", s),
        _seed_keys(seed, "a-relu", s),
        _seed_keys(seed, "a-frames", s),
        sizes=sizes,
        dtype=dtype,
    )
    l = np.arange(1, depth + 1)
    curves = {}
    for model, (qr, sv) in zip(MODELS, out, strict=True):
        sv, qr = np.asarray(sv), np.asarray(qr)
        curves[model] = ScalingCurves(
            log_svals=sv,
            qr_log_r=qr,
            sv_rate=_mean_se(sv / l[None, :, None]),
            qr_rate=_mean_se(np.asarray(prefix_growth_rates(qr, np.ones(depth)))),
            fraction_full_rank=np.isfinite(sv[:, -1]).mean(0),
        )  # seeds with rank >= i at depth L
    return curves


def _scaling_summary(curves: ScalingCurves) -> dict:
    return {
        "fraction_full_rank_at_L": curves.fraction_full_rank.tolist(),
        "sv_at_L": curves.sv_rate.mean[-1].tolist(),
        "sv_se_at_L": curves.sv_rate.se[-1].tolist(),
        "qr_at_L": curves.qr_rate.mean[-1].tolist(),
        "qr_se_at_L": curves.qr_rate.se[-1].tolist(),
    }


def _separation(sizes: InitSizes, seed: int, dtype: str) -> dict[int, SeparationCurves]:
    out = {}
    for n in sizes.separation_widths:
        depth = int(round(sizes.separation_depth_over_width * n))
        sv = np.asarray(
            _separation_program(_seed_keys(seed, f"b-{n}", sizes.seeds), n=n, depth=depth, dtype=dtype)
        )
        th = network_theory((n,) * 3, k=2, final_activation=True)
        out[n] = SeparationCurves(
            width=n,
            log_svals=sv,
            log_ratio=_mean_se(sv[:, :, 0] - sv[:, :, 1]),
            theory_exponents=np.asarray(th.exponents),
            theory_offsets=np.asarray(singular_value_offsets(n, 2)),
        )
    return out


def _separation_summary(sep: SeparationCurves) -> dict:
    depth = sep.log_svals.shape[1]
    l = np.arange(1, depth + 1)
    m, se = sep.log_ratio
    slope, _ = _window_slope(l, m, depth // 4, depth)
    lam = sep.theory_exponents
    return {
        "fitted_slope_per_layer": slope,
        "theory_gap": float(lam[0] - lam[1]),
        "mean_at_L": float(m[-1]),
        "se_at_L": float(se[-1]),
        "theory_at_L": float(sep.theory_log_ratio(depth)),
    }


def _alignment_curve(sines: np.ndarray, side: str, depth: int, gap: float) -> AlignmentCurve:
    if side == "prefix":
        x, kept = np.arange(1, depth), sines[:, :-1]  # J_L against itself is 0
    else:
        x, kept = depth - np.arange(1, depth), sines[:, 1:]  # layers left in the suffix
    floor = float(np.finfo(sines.dtype).eps)
    m, se = _mean_se(np.log(np.maximum(kept, floor)))
    order = np.argsort(x)
    x, m, se = x[order], m[order], se[order]
    # The rate is asymptotic: fit where l * gap >~ 1, and away from the far end (l -> L).
    lo, hi = max(4, int(np.ceil(1 / gap))), depth - max(int(np.ceil(1 / gap)), depth // 4)
    window = (x >= lo) & (x <= hi)
    return AlignmentCurve(
        sines=sines,
        position=x,
        log_sin=Band(m, se),
        floor=floor,
        clipped=int(np.sum(kept < floor)),
        predicted_slope=-gap,
        fit_window=(lo, hi),
        anchor=float(np.mean(m[window] + gap * x[window])),
    )


def _alignment(sizes: InitSizes, seed: int, dtype: str, gaps: dict[str, float]) -> dict[str, AlignmentCurve]:
    relu, gauss = _alignment_program(
        _seed_keys(seed, "c-relu", sizes.alignment_seeds),
        _seed_keys(seed, "c-gauss", sizes.alignment_seeds),
        sizes=sizes,
        dtype=dtype,
    )
    measured = {"relu": relu, "gaussian": gauss}
    return {
        f"{name}_{side}": _alignment_curve(np.asarray(measured[name][index]), side, sizes.depth, gaps[name])
        for index, side in enumerate(("prefix", "suffix"))
        for name in ("relu", "gaussian")
    }


def _alignment_summary(curve: AlignmentCurve) -> dict:
    lo, hi = curve.fit_window
    slope, _ = _window_slope(curve.position, curve.log_sin.mean, lo, hi)
    gap = -curve.predicted_slope
    return {
        "fitted_slope": slope,
        "predicted_slope": curve.predicted_slope,
        "relative_error": abs(-slope - gap) / gap,
        "fit_window": [lo, hi],
        "clipped_points": curve.clipped,
        "points": int(curve.sines.shape[0] * curve.position.size),
        "sine_floor": curve.floor,
    }


def _sandwich(sizes: InitSizes, seed: int, dtype: str) -> dict[str, SandwichCurves]:
    dt = jnp.dtype(dtype)
    boundaries = tuple(int(b) for b in np.linspace(0, 2 * sizes.segment_depth, sizes.segments + 1))
    out = {}
    for name in CONSTRUCTIONS:
        w, m = _STACK_PROGRAMS[name](_seed_keys(seed, f"d-{name}", sizes.seeds), sizes, dt)
        m = jnp.ones(w.shape[:3], dt) if m is None else m
        entry = {
            key: np.asarray(v)
            for key, v in _measure_segments(
                w, m, sizes.segment_depth, boundaries, min(4, sizes.width)
            ).items()
        }
        bands = {key: _mean_se(entry[key]) for key in ("upper", "ratio", "lower")}
        out[name] = SandwichCurves(
            **entry, bands=bands, mean_overlaps=entry["overlaps"].mean(axis=(0, 1))
        )  # over seeds and pairs
    return out


def _sandwich_summary(entry: SandwichCurves) -> dict:
    slack = 1 + 1e-9  # rounding of the three computed quantities
    held = np.mean((entry.lower <= entry.ratio * slack) & (entry.ratio <= entry.upper * slack))
    return {
        "ratio_at_max_depth": float(np.mean(entry.ratio[:, -1])),
        "overlap_at_max_depth": float(np.mean(entry.lower[:, -1])),
        "upper_minus_lower_at_max_depth": float(np.mean(entry.upper[:, -1] - entry.lower[:, -1])),
        "fraction_bounds_hold": float(held),
    }


def run_init(
    *, full: bool = False, seed: int = 0, progress: bool = True, dtype: str = "float64", **overrides: Any
) -> InitResult:
    """Measure figures (a)-(d) and the overlaps at initialisation, beside their closed forms.

    Args:
        full: paper-scale sizes (:data:`FULL_INIT_SIZES`, meant for a GPU) instead of the quick
            :class:`InitSizes` defaults.
        seed: base seed.
        progress: a progress bar over the four parts.
        dtype: compute dtype, ``"float64"`` (default: small alignment sines need it; turns on 64-bit JAX) or
            ``"float32"``.
        **overrides: fields of :class:`InitSizes` replacing those of the preset.

    Returns:
        An :class:`InitResult`; ``result.summary`` holds the headline numbers (rates at ``L``, separation,
        fitted alignment slopes with the number of clipped sines, sandwich bounds, mean overlaps, seconds).

    Example:
        >>> res = run_init(width=8, depth=24, seeds=3, alignment_seeds=3, gaussian_alignment_width=4, k=2,
        ...                separation_widths=(8,), separation_depth_over_width=2.0, segment_depth=6,
        ...                segments=3, progress=False)  # doctest: +SKIP
        >>> res.scaling["relu"].log_svals.shape  # doctest: +SKIP
        (3, 24, 2)
    """
    if dtype not in ("float32", "float64"):
        raise InputError(f"dtype must be float32 or float64, got {dtype!r}")
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    sizes = resolve_sizes(InitSizes(), FULL_INIT_SIZES, full, overrides)
    n = sizes.width
    lam = theory.lyapunov_exponents(masked(width=n, depth=sizes.depth, p=0.5, sigma2=2.0), n)
    offsets = singular_value_offsets(n)
    gaps = {
        "relu": float(lam[0] - lam[1]),
        "gaussian": float(-np.diff(theory.gaussian_exponents(sizes.gaussian_alignment_width, k=2))[0]),
    }

    timings = {}
    bar = progress_bar(4, "init figures", progress)

    def timed(name, compute, *args):
        start = time.perf_counter()
        value = compute(sizes, seed, dtype, *args)
        timings[name] = time.perf_counter() - start
        bar.update()
        return value

    scaling = timed("a_scaling", _scaling)
    separation = timed("b_separation", _separation)
    alignment = timed("c_alignment", _alignment, gaps)
    sandwich = timed("d_sandwich", _sandwich)
    bar.close()

    summary = {
        "sizes": asdict(sizes),
        "seconds": timings,
        "theory_exponents": lam[: sizes.k].tolist(),
        "theory_offsets": offsets[: sizes.k].tolist(),
        "a_scaling": {model: _scaling_summary(c) for model, c in scaling.items()},
        "b_separation": {int(w): _separation_summary(c) for w, c in separation.items()},
        "c_alignment": {name: _alignment_summary(c) for name, c in alignment.items()},
        "d_sandwich": {name: _sandwich_summary(c) for name, c in sandwich.items()},
        "overlaps_mean": {name: c.mean_overlaps.tolist() for name, c in sandwich.items()},
    }
    return InitResult(
        sizes=sizes,
        dtype=dtype,
        theory_exponents=np.asarray(lam[: sizes.k]),
        theory_offsets=np.asarray(offsets[: sizes.k]),
        gaps=gaps,
        haar_overlap=float(np.sqrt(2 / (np.pi * n))),
        scaling=scaling,
        separation=separation,
        alignment=alignment,
        sandwich=sandwich,
        summary=summary,
    )
