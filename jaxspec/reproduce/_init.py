"""Reproduce the paper's initialisation experiments: scaling, separation, alignment and the sandwich.

``jaxspec figures init [--out DIR] [--full]`` (or ``python scripts/reproduce_init.py``) writes

* ``init_a_scaling.png``: ``(1/L) log s_i(J_L)`` (exact, stratified) and ``(1/L) sum log|R_ii|`` (QR) against
  ``L`` for the masked model (``p = 1/2``, ``sigma2 = 2``) and for He-initialised zero-bias ReLU MLPs
  (Jacobians by ``jax.jvp`` tangents), with the closed-form ``lambda_i``, the finite-depth curve
  ``lambda_i + c_i / L`` and +-1 standard-error bands across seeds;
* ``init_b_separation.png``: ``log(s_1 / s_2)`` against ``L / N`` for several widths, beside
  ``L (lambda_1 - lambda_2) + c_1 - c_2``;
* ``init_c_alignment.png``: ``log sin angle(v_1(J_l), v_1(J_L))`` against ``l`` (and the left vectors of
  suffix products against ``L - l``), with the predicted slope ``lambda_1 - lambda_2``;
* ``init_d_sandwich.png``: ``s_1(AB) / (s_1(A) s_1(B))`` with its bounds against the depth of the segments
  ``A`` and ``B`` on either side of a split, for independent segments at initialisation (Gaussian, ReLU) and
  for an aligned construction (shared singular bases plus noise);
* ``init_overlaps.png``: mean ``|V_{j+1}^T U_j|`` between the top singular bases of adjacent segments;
* ``init.nc``: every curve above as a labelled xarray dataset (netCDF3), and ``init_summary.json``.

References:
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import typer

__all__ = ["InitSizes", "default_sizes", "print_summary", "register", "run"]


@dataclass(frozen=True)
class InitSizes:
    """Problem sizes of one reproduction run.

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


def default_sizes(full: bool = False) -> InitSizes:
    """CPU-sized defaults (about a minute), or paper-scale sizes for a GPU with ``full``."""
    if full:
        return InitSizes(width=64, depth=1000, seeds=64, alignment_seeds=128, gaussian_alignment_width=16,
                         k=6, separation_widths=(16, 32, 64, 128), separation_depth_over_width=6.0,
                         segment_depth=500,
                         segments=6)
    return InitSizes()


# ----------------------------------------------------------------------------------------------------------
# Computations (each returns plain numpy arrays).


# One jitted program per figure: on a CPU, XLA compilation (seconds per program) dominates these sizes, so the
# random draws and the measurements of one figure are compiled together, once.


def _seed_keys(seed: int, name: str, count: int):
    from jaxspec.engine._spectrum import seed_keys

    return seed_keys(seed + sum(map(ord, name)) * 1000, count)


def _relu_networks(keys, widths, dtype):
    """``S`` He ReLU MLPs stacked as one ``PaddedMLP`` pytree (leading seed axis), one Gaussian input each."""
    import jax
    import jax.numpy as jnp

    from jaxspec.networks._mlp import init_padded_mlp

    def one(key):
        k_net, k_x = jax.random.split(key)
        padded = init_padded_mlp(k_net, widths, dtype=dtype)
        x = jax.random.normal(k_x, (widths[0],), jnp.float32).astype(dtype)
        return padded, x

    return jax.vmap(one)(keys)


def _gaussian_stacks(keys, depth, n, dtype):
    import jax
    import jax.numpy as jnp

    def one(key):
        return jax.random.normal(key, (depth, n, n), jnp.float32).astype(dtype) / np.sqrt(n)

    return jax.vmap(one)(keys)


def _relu_stacks(keys, depth, n, dtype):
    """Weights ``(S, L, N, N)`` and gates ``(S, L, N)`` at one input of He ReLU MLPs (every layer gated)."""
    import jax

    from jaxspec.networks._mlp import gates

    nets, xs = _relu_networks(keys, (n,) * (depth + 1), dtype)
    masks = jax.vmap(lambda p, x: gates(p, x, final_activation=True))(nets, xs)
    return nets.weights, masks


def _aligned_stacks(keys, depth, n, decay, noise, dtype):
    """Shared singular bases plus noise.

    ``W_l = Q_{l+1} diag(e^{-decay (i-1)}) Q_l^T + noise G_l / sqrt(n)``, Haar ``Q_l``, Gaussian ``G_l``.
    """
    import jax
    import jax.numpy as jnp

    def one(key):
        k_q, k_g = jax.random.split(key)
        g = jax.random.normal(k_q, (depth + 1, n, n), jnp.float32).astype(dtype)
        q, r = jnp.linalg.qr(g)
        q = q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
        sigma = jnp.exp(-decay * jnp.arange(n, dtype=dtype))
        core = jnp.einsum("lij,j,lkj->lik", q[1:], sigma, q[:-1])
        return core + noise * jax.random.normal(k_g, (depth, n, n), jnp.float32).astype(dtype) / np.sqrt(n)

    return jax.vmap(one)(keys)


@functools.cache
def _programs():
    """The jitted per-figure programs (built once per process)."""
    import jax
    import jax.numpy as jnp

    import jaxspec
    from jaxspec.analysis._alignment import (
        prefix_alignment,
        segment_alignment,
        split_sandwich,
        suffix_alignment,
    )
    from jaxspec.analysis._svals import ensemble_log_svals
    from jaxspec.engine._spectrum import ensemble_frame_sums, make_config
    from jaxspec.networks._jacobian import JacobianConfig, network_frame_sums, network_prefix_svals

    @functools.partial(jax.jit, static_argnames=("sizes", "dtype"))
    def scaling(keys_masked, keys_relu, keys_frame, sizes, dtype):
        n, depth, k = sizes.width, sizes.depth, sizes.k
        ens = jaxspec.masked(width=n, depth=depth, p=0.5, sigma2=2.0)
        cfg = make_config(k, max_k=n, rates_every=1, dtype=dtype)

        def masked_one(key):
            sums = ensemble_frame_sums(ens, key, cfg)
            return sums.block_log_r, ensemble_log_svals(ens, key, prefixes=True, dtype=dtype).log_svals[:, :k]

        nets, xs = _relu_networks(keys_relu, (n,) * (depth + 1), jnp.dtype(dtype))
        jcfg = JacobianConfig(k=k, final_activation=True, dtype=dtype, prefixes=True)

        def relu_one(padded, x, key):
            frame = jaxspec.engine.initial_frame(key, n, n, k, jnp.dtype(dtype))
            sums = network_frame_sums(padded, x, frame, jcfg)
            return sums.block_log_r, network_prefix_svals(padded, x, jcfg).log_svals[:, :k]

        return jax.vmap(masked_one)(keys_masked), jax.vmap(relu_one)(nets, xs, keys_frame)

    @functools.partial(jax.jit, static_argnames=("n", "depth", "dtype"))
    def separation(keys, n, depth, dtype):
        nets, xs = _relu_networks(keys, (n,) * (depth + 1), jnp.dtype(dtype))
        jcfg = JacobianConfig(k=2, final_activation=True, dtype=dtype, prefixes=True)
        return jax.vmap(lambda p, x: network_prefix_svals(p, x, jcfg).log_svals[:, :2])(nets, xs)

    def pair(w, m):
        return prefix_alignment(w, m)[:, 0], suffix_alignment(w, m)[:, 0]

    @functools.partial(jax.jit, static_argnames=("sizes", "dtype"))
    def alignment(keys_relu, keys_gauss, sizes, dtype):
        n, depth, dt = sizes.width, sizes.depth, jnp.dtype(dtype)
        w, m = _relu_stacks(keys_relu, depth, n, dt)
        g = _gaussian_stacks(keys_gauss, depth, sizes.gaussian_alignment_width, dt)
        return jax.vmap(pair)(w, m), jax.vmap(pair)(g, jnp.ones(g.shape[:3], dt))

    # The three constructions of figure (d) are drawn by separate programs and measured by one shared program
    # (compiling all of it as a single XLA program took minutes on a CPU).
    stack_programs = {
        "gaussian": jax.jit(lambda keys, sizes, dt: (_gaussian_stacks(keys, 2 * sizes.segment_depth,
                                                                      sizes.width, dt),
                                                     None), static_argnums=(1, 2)),
        "relu": jax.jit(lambda keys, sizes, dt: _relu_stacks(keys, 2 * sizes.segment_depth, sizes.width, dt),
                        static_argnums=(1, 2)),
        "aligned": jax.jit(lambda keys, sizes, dt: (_aligned_stacks(keys, 2 * sizes.segment_depth,
                                                                    sizes.width, sizes.aligned_decay,
                                                                    sizes.aligned_noise, dt),
                                                    None), static_argnums=(1, 2)),
    }

    @functools.partial(jax.jit, static_argnames=("split", "boundaries", "k"))
    def measure_segments(w, m, split, boundaries, k):
        sw = jax.vmap(lambda a, b: split_sandwich(a, b, split))(w, m)
        seg = jax.vmap(lambda a, b: segment_alignment(a, b, boundaries, k))(w, m)
        return {"ratio": sw.ratio, "lower": sw.lower, "upper": sw.upper, "r_a": sw.r_a, "r_b": sw.r_b,
                "overlaps": jnp.abs(seg.overlaps), "seg_ratio": seg.sandwich.ratio}

    def sandwich(keys, sizes, dtype):
        dt = jnp.dtype(dtype)
        depth = 2 * sizes.segment_depth
        boundaries = tuple(int(b) for b in np.linspace(0, depth, sizes.segments + 1))
        out = {}
        for name, program in stack_programs.items():
            w, m = program(keys[name], sizes, dt)
            m = jnp.ones(w.shape[:3], dt) if m is None else m
            out[name] = measure_segments(w, m, sizes.segment_depth, boundaries, min(4, sizes.width))
        return out

    return SimpleNamespace(scaling=scaling, separation=separation, alignment=alignment, sandwich=sandwich)


def scaling_data(sizes: InitSizes, seed: int, dtype: str) -> dict:
    """Figure (a): prefix ``log s_i`` (exact) and per-layer ``log|R_ii|``, masked model and ReLU MLPs."""
    import jaxspec

    s = sizes.seeds
    (masked_qr, masked_sv), (relu_qr, relu_sv) = _programs().scaling(
        _seed_keys(seed, "a-masked", s), _seed_keys(seed, "a-relu", s), _seed_keys(seed, "a-frames", s),
        sizes=sizes, dtype=dtype)
    return {"masked_qr": np.asarray(masked_qr), "masked_sv": np.asarray(masked_sv),
            "relu_qr": np.asarray(relu_qr), "relu_sv": np.asarray(relu_sv),
            "ensemble": jaxspec.masked(width=sizes.width, depth=sizes.depth, p=0.5, sigma2=2.0)}


def separation_data(sizes: InitSizes, seed: int, dtype: str) -> dict:
    """Figure (b): ``log s_1, log s_2`` of ReLU-MLP Jacobians for every prefix, ``{width: (S, L, 2)}``."""
    out = {}
    for n in sizes.separation_widths:
        depth = int(round(sizes.separation_depth_over_width * n))
        out[n] = np.asarray(_programs().separation(_seed_keys(seed, f"b-{n}", sizes.seeds), n=n, depth=depth,
                                                   dtype=dtype))
    return out


def alignment_data(sizes: InitSizes, seed: int, dtype: str) -> dict:
    """Figure (c): prefix (right) and suffix (left) alignment sines for ReLU MLPs and Gaussian products."""
    relu, gauss = _programs().alignment(_seed_keys(seed, "c-relu", sizes.alignment_seeds),
                                        _seed_keys(seed, "c-gauss", sizes.alignment_seeds), sizes=sizes,
                                        dtype=dtype)
    return {"relu_prefix": np.asarray(relu[0]), "relu_suffix": np.asarray(relu[1]),
            "gaussian_prefix": np.asarray(gauss[0]), "gaussian_suffix": np.asarray(gauss[1])}


def sandwich_data(sizes: InitSizes, seed: int, dtype: str) -> dict:
    """Figure (d) and the overlaps: split sandwiches and adjacent-segment overlaps per construction."""
    s = sizes.seeds
    keys = {name: _seed_keys(seed, f"d-{name}", s) for name in ("gaussian", "relu", "aligned")}
    out = _programs().sandwich(keys, sizes, dtype)
    return {name: {key: np.asarray(v) for key, v in entry.items()} for name, entry in out.items()}


# ----------------------------------------------------------------------------------------------------------
# Summaries and figures.


def _mean_se(values, axis=0):
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    count = finite.sum(axis)
    safe = np.where(finite, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = safe.sum(axis) / count
        var = np.where(finite, (values - np.expand_dims(mean, axis)) ** 2, 0.0).sum(axis) / (count - 1)
        return mean, np.sqrt(var / count)


def _window_slope(l, y, lo, hi):
    sel = (l >= lo) & (l <= hi) & np.isfinite(y)
    slope, intercept = np.polyfit(l[sel], y[sel], 1)
    return float(slope), float(intercept)


def _fig_scaling(path, sizes, data, lam, offsets):
    import matplotlib.pyplot as plt

    from jaxspec.networks._jacobian import prefix_growth_rates

    depth = sizes.depth
    l = np.arange(1, depth + 1)
    colors = plt.cm.viridis(np.linspace(0, 0.85, sizes.k))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    summary = {}
    for ax, (name, title) in zip(axes, [("masked", "masked model, p = 1/2, sigma2 = 2"),
                                        ("relu", "ReLU MLP (He, zero bias), jvp tangents")], strict=True):
        sv = data[f"{name}_sv"] / l[None, :, None]
        qr = np.asarray(prefix_growth_rates(data[f"{name}_qr"], np.ones(depth)))
        sv_m, sv_se = _mean_se(sv)
        qr_m, qr_se = _mean_se(qr)
        for i in range(sizes.k):
            c = colors[i]
            ax.plot(l, sv_m[:, i], color=c, lw=1.6, label=f"(1/L) log s_{i + 1}" if i == 0 else None)
            ax.fill_between(l, sv_m[:, i] - sv_se[:, i], sv_m[:, i] + sv_se[:, i], color=c, alpha=0.25)
            ax.plot(l, qr_m[:, i], color=c, lw=1.2, ls="--", label="(1/L) sum log|R_ii|" if i == 0 else None)
            ax.fill_between(l, qr_m[:, i] - qr_se[:, i], qr_m[:, i] + qr_se[:, i], color=c, alpha=0.12)
            ax.axhline(lam[i], color=c, lw=1.0, ls=":", label="theory lambda_i" if i == 0 else None)
            ax.plot(l, lam[i] + offsets[i] / l, color="k", lw=0.7, ls="-.", alpha=0.6,
                    label="lambda_i + c_i / L" if i == 0 else None)
            ax.text(depth * 1.01, lam[i], f"i={i + 1}", color=c, va="center", fontsize=8)
        alive = np.isfinite(data[f"{name}_sv"][:, -1]).mean(0)  # seeds with rank >= i at depth L
        ax.text(0.02, 0.02, "seeds with s_i(J_L) > 0 (no rank collapse): "
                + ", ".join(f"i={i + 1}: {100 * a:.0f}%" for i, a in enumerate(alive))
                + "\nexact curves average those seeds; QR curves condition on K_l >= i",
                transform=ax.transAxes, fontsize=7.5, va="bottom")
        ax.set_title(title)
        ax.set_xlabel("depth L")
        ax.set_xlim(0, depth * 1.08)
        summary[name] = {"fraction_full_rank_at_L": alive.tolist(),
                         "sv_at_L": sv_m[-1].tolist(), "sv_se_at_L": sv_se[-1].tolist(),
                         "qr_at_L": qr_m[-1].tolist(), "qr_se_at_L": qr_se[-1].tolist()}
    axes[0].set_ylabel("per-layer log singular value")
    lo = min(lam[: sizes.k].min() - 0.15, -0.4)
    axes[0].set_ylim(lo, max(0.25, (lam[0] + offsets[0] / 8)))
    axes[0].legend(loc="upper right", fontsize=8)
    fig.suptitle(f"(a) depth-induced scaling of ordered singular values, N = {sizes.width}, "
                 f"{sizes.seeds} seeds (bands: +-1 s.e.)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return summary


def _fig_separation(path, sizes, data, theories):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8))
    colors = plt.cm.plasma(np.linspace(0, 0.8, len(data)))
    summary = {}
    for c, (n, sv) in zip(colors, data.items(), strict=True):
        depth = sv.shape[1]
        l = np.arange(1, depth + 1)
        ratio = sv[:, :, 0] - sv[:, :, 1]
        m, se = _mean_se(ratio)
        x = l / n
        ax.plot(x, m, color=c, lw=1.6, label=f"N = {n}")
        ax.fill_between(x, m - se, m + se, color=c, alpha=0.25)
        lam, off = theories[n]
        ax.plot(x, l * (lam[0] - lam[1]) + off[0] - off[1], color=c, ls="--", lw=1.0)
        slope, _ = _window_slope(l, m, depth // 4, depth)
        summary[int(n)] = {"fitted_slope_per_layer": slope, "theory_gap": float(lam[0] - lam[1]),
                           "mean_at_L": float(m[-1]), "se_at_L": float(se[-1]),
                           "theory_at_L": float(depth * (lam[0] - lam[1]) + off[0] - off[1])}
    ax.plot([], [], color="gray", ls="--", label="theory L(lambda_1 - lambda_2) + c_1 - c_2")
    x = np.linspace(0, sizes.separation_depth_over_width, 50)
    ax.plot(x, x, color="k", lw=0.8, ls=":", label="N -> infinity limit: slope 1/(2p) = 1 per unit L/N")
    ax.set_xlabel("L / N")
    ax.set_ylabel("log(s_1 / s_2)")
    ax.set_title("(b) spectral separation of ReLU-MLP Jacobians (He, p = 1/2)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return summary


def _fig_alignment(path, sizes, data, gaps):
    import matplotlib.pyplot as plt

    depth = sizes.depth
    l = np.arange(1, depth + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharey=True)
    summary = {}
    styles = {"relu": ("tab:red", f"ReLU MLP, N = {sizes.width}"),
              "gaussian": ("tab:blue", f"Gaussian product, N = {sizes.gaussian_alignment_width}")}
    for ax, side in zip(axes, ["prefix", "suffix"], strict=True):
        for name, (color, label) in styles.items():
            sines = data[f"{name}_{side}"]
            if side == "prefix":
                x, y = l[:-1], np.log(sines[:, :-1])  # J_L against itself is 0
            else:
                x, y = depth - np.arange(1, depth), np.log(sines[:, 1:])  # layers left in the suffix
            m, se = _mean_se(y)
            order = np.argsort(x)
            x, m, se = x[order], m[order], se[order]
            ax.plot(x, m, color=color, lw=1.6, label=f"{label}: mean log sin")
            ax.fill_between(x, m - se, m + se, color=color, alpha=0.25)
            gap = gaps[name]
            # The rate is asymptotic: fit where l * gap >~ 1, and away from the far end (l -> L).
            lo, hi = max(4, int(np.ceil(1 / gap))), depth - max(int(np.ceil(1 / gap)), depth // 4)
            slope, intercept = _window_slope(x, m, lo, hi)
            ref = (x >= 1) & (x <= depth - 1)
            anchor = np.mean(m[(x >= lo) & (x <= hi)] + gap * x[(x >= lo) & (x <= hi)])
            ax.plot(x[ref], anchor - gap * x[ref], color=color, ls="--", lw=1.0,
                    label=f"predicted slope -(lambda_1 - lambda_2) = {-gap:.4f}")
            summary[f"{name}_{side}"] = {"fitted_slope": slope, "predicted_slope": -gap,
                                         "relative_error": abs(-slope - gap) / gap, "fit_window": [lo, hi]}
        ax.set_xlabel("l (prefix depth)" if side == "prefix" else "L - l (layers in the suffix)")
        ax.set_title("right vectors: sin angle(v_1(J_l), v_1(J_L))" if side == "prefix"
                     else "left vectors: sin angle(u_1(A_L...A_{l+1}), u_1(J_L))")
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("log sin angle")
    fig.suptitle(f"(c) singular-vector alignment along depth, L = {depth}, "
                 f"{sizes.alignment_seeds} seeds (bands: +-1 s.e.)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return summary


def _fig_sandwich(path, sizes, data):
    import matplotlib.pyplot as plt

    titles = {"gaussian": "independent Gaussian segments", "relu": "ReLU MLP split (independent at init)",
              "aligned": f"aligned: shared bases + noise {sizes.aligned_noise}"}
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4), sharey=True)
    d = np.arange(1, sizes.segment_depth + 1)
    summary = {}
    for ax, (name, title) in zip(axes, titles.items(), strict=True):
        entry = data[name]
        for key, color, label in [("upper", "tab:gray", "upper bound c + r_A + r_B"),
                                  ("ratio", "tab:green", "s_1(AB) / (s_1(A) s_1(B))"),
                                  ("lower", "tab:purple", "lower bound c = |<v_1(A), u_1(B)>|")]:
            m, se = _mean_se(entry[key])
            ax.plot(d, m, color=color, lw=1.6 if key == "ratio" else 1.1, label=label)
            ax.fill_between(d, m - se, m + se, color=color, alpha=0.25)
        ax.axhline(np.sqrt(2 / (np.pi * sizes.width)), color="k", ls=":", lw=0.8,
                   label="Haar overlap E|c| ~ sqrt(2/(pi N))")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("segment depth d (A and B each d layers)")
        ax.set_xscale("log")
        slack = 1 + 1e-9  # rounding of the three computed quantities
        held = np.mean((entry["lower"] <= entry["ratio"] * slack)
                       & (entry["ratio"] <= entry["upper"] * slack))
        summary[name] = {"ratio_at_max_depth": float(np.mean(entry["ratio"][:, -1])),
                         "overlap_at_max_depth": float(np.mean(entry["lower"][:, -1])),
                         "upper_minus_lower_at_max_depth": float(np.mean(entry["upper"][:, -1]
                                                                         - entry["lower"][:, -1])),
                         "fraction_bounds_hold": float(held)}
    axes[0].set_ylabel("sandwich quantity")
    axes[0].set_ylim(0, 1.6)
    axes[-1].legend(fontsize=7.5, loc="lower right")
    fig.suptitle(f"(d) sandwich s_1(AB)/(s_1(A)s_1(B)) and its bounds, N = {sizes.width}, "
                 f"{sizes.seeds} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return summary


def _fig_overlaps(path, sizes, data):
    import matplotlib.pyplot as plt

    names = ["gaussian", "relu", "aligned"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9))
    for index, (ax, name) in enumerate(zip(axes, names, strict=True)):
        mean = data[name]["overlaps"].mean(axis=(0, 1))  # over seeds and adjacent pairs
        im = ax.imshow(mean, vmin=0, vmax=1, cmap="magma")
        k = mean.shape[0]
        ax.set_xticks(range(k), [f"u_{j + 1}" for j in range(k)])
        ax.set_yticks(range(k), [f"v_{i + 1}" for i in range(k)])
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{mean[i, j]:.2f}", ha="center", va="center",
                        color="w" if mean[i, j] < 0.6 else "k", fontsize=8)
        ax.set_title(name)
        ax.set_xlabel("earlier segment: left basis U_j")
        if index == 0:
            ax.set_ylabel("later segment: right basis V_{j+1}")
    fig.colorbar(im, ax=axes, shrink=0.8, label="mean |<v_i(P_{j+1}), u_j(P_j)>|")
    seg = 2 * sizes.segment_depth // sizes.segments
    fig.suptitle(f"overlaps between adjacent segments: {sizes.segments} segments of ~{seg} layers, "
                 f"N = {sizes.width}, "
                 f"mean over seeds and pairs (Haar level E|c| ~ {np.sqrt(2 / (np.pi * sizes.width)):.2f})",
                 fontsize=10)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def _dataset(sizes, a, b, c, d, lam, offsets, gaps, theories):
    import xarray as xr

    depth = sizes.depth
    coords = {"seed": np.arange(sizes.seeds), "alignment_seed": np.arange(sizes.alignment_seeds),
              "depth": np.arange(1, depth + 1), "suffix_start": np.arange(depth),
              "index": np.arange(1, sizes.k + 1),
              "segment_depth": np.arange(1, sizes.segment_depth + 1)}
    dv = {
        "masked_log_svals": (("seed", "depth", "index"), a["masked_sv"]),
        "masked_qr_log_r": (("seed", "depth", "index"), a["masked_qr"]),
        "relu_log_svals": (("seed", "depth", "index"), a["relu_sv"]),
        "relu_qr_log_r": (("seed", "depth", "index"), a["relu_qr"]),
        "theory_exponents": (("index",), lam[: sizes.k]),
        "theory_offsets": (("index",), offsets[: sizes.k]),
        "relu_prefix_sin": (("alignment_seed", "depth"), c["relu_prefix"]),
        "relu_suffix_sin": (("alignment_seed", "suffix_start"), c["relu_suffix"]),
        "gaussian_prefix_sin": (("alignment_seed", "depth"), c["gaussian_prefix"]),
        "gaussian_suffix_sin": (("alignment_seed", "suffix_start"), c["gaussian_suffix"]),
    }
    for name in ("gaussian", "relu", "aligned"):
        for key in ("ratio", "lower", "upper", "r_a", "r_b"):
            dv[f"sandwich_{name}_{key}"] = (("seed", "segment_depth"), d[name][key])
        dv[f"overlaps_{name}"] = (("seed", "pair", "later_right", "earlier_left"), d[name]["overlaps"])
    for n, sv in b.items():
        dv[f"separation_log_s1_over_s2_N{n}"] = (("seed", f"depth_N{n}"), sv[:, :, 0] - sv[:, :, 1])
        coords[f"depth_N{n}"] = np.arange(1, sv.shape[1] + 1)
        dv[f"separation_theory_gap_N{n}"] = ((), float(theories[n][0][0] - theories[n][0][1]))
    ds = xr.Dataset(dv, coords=coords)
    ds.attrs.update({"description": "jaxspec figures init: scaling, separation, alignment, sandwich at init",
                     "reference": "Haas, Gatine, Cosse, Bouraoui, arXiv:2602.12384",
                     "sizes": json.dumps(asdict(sizes)),
                     "gaps": json.dumps({k: float(v) for k, v in gaps.items()}),
                     "conventions": "log = natural log; depth index l = 1..L; "
                                    "sines from projection residuals; "
                                    "qr_log_r is per-layer log|R_ii| (NaN where K_l < i)"})
    return ds


def run(out_dir, full: bool = False, *, sizes: InitSizes | None = None, seed: int = 0, progress: bool = True,
        dtype: str = "float64") -> dict:
    """Compute and write figures (a)-(d), the overlaps figure, ``init.nc`` and ``init_summary.json``.

    Args:
        out_dir: output directory (created).
        full: paper-scale sizes (for a GPU); ignored if ``sizes`` is given.
        sizes: explicit :class:`InitSizes`.
        seed: base seed.
        progress: show a progress bar over the four parts.
        dtype: compute dtype (``"float64"`` default: small alignment sines need it).

    Returns:
        The summary dictionary (also written as JSON).
    """
    import jax

    from jaxspec._checks import InputError

    if dtype not in ("float32", "float64"):
        raise InputError(f"dtype must be float32 or float64, got {dtype!r}")
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    from tqdm.auto import tqdm

    from jaxspec import theory
    from jaxspec.analysis._diagnostics import network_theory, singular_value_offsets

    sizes = sizes or default_sizes(full)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    bar = tqdm(total=4, desc="init figures", disable=not progress)

    t0 = time.perf_counter()
    a = scaling_data(sizes, seed, dtype)
    timings["a_scaling"] = time.perf_counter() - t0
    bar.update()
    t0 = time.perf_counter()
    b = separation_data(sizes, seed, dtype)
    timings["b_separation"] = time.perf_counter() - t0
    bar.update()
    t0 = time.perf_counter()
    c = alignment_data(sizes, seed, dtype)
    timings["c_alignment"] = time.perf_counter() - t0
    bar.update()
    t0 = time.perf_counter()
    d = sandwich_data(sizes, seed, dtype)
    timings["d_sandwich"] = time.perf_counter() - t0
    bar.update()
    bar.close()

    n = sizes.width
    lam = theory.lyapunov_exponents(a["ensemble"], n)
    offsets = singular_value_offsets(n)
    gaps = {"relu": float(lam[0] - lam[1]),
            "gaussian": float(-np.diff(theory.gaussian_exponents(sizes.gaussian_alignment_width, k=2))[0])}
    theories = {}
    for w in sizes.separation_widths:
        th = network_theory((w,) * 3, k=2, final_activation=True)
        theories[w] = (th.exponents, singular_value_offsets(w, 2))

    summary = {"sizes": asdict(sizes), "seconds": timings, "theory_exponents": lam[: sizes.k].tolist(),
               "theory_offsets": offsets[: sizes.k].tolist()}
    summary["a_scaling"] = _fig_scaling(out / "init_a_scaling.png", sizes, a, lam, offsets)
    summary["b_separation"] = _fig_separation(out / "init_b_separation.png", sizes, b, theories)
    summary["c_alignment"] = _fig_alignment(out / "init_c_alignment.png", sizes, c, gaps)
    summary["d_sandwich"] = _fig_sandwich(out / "init_d_sandwich.png", sizes, d)
    _fig_overlaps(out / "init_overlaps.png", sizes, d)
    summary["overlaps_mean"] = {name: d[name]["overlaps"].mean(axis=(0, 1)).tolist()
                                for name in ("gaussian", "relu", "aligned")}
    _dataset(sizes, a, b, c, d, lam, offsets, gaps, theories).to_netcdf(out / "init.nc", engine="scipy")
    summary["files"] = sorted(p.name for p in out.glob("init*"))
    (out / "init_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def register(figures_app: typer.Typer) -> None:
    @figures_app.command("init")
    def init_command(
        out: Path = typer.Option(Path("figures/init"), "--out", help="output directory"),  # noqa: B008
        full: bool = typer.Option(False, "--full", help="paper-scale sizes (meant for a GPU)"),
        seed: int = typer.Option(0, "--seed", help="base random seed"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    ) -> None:
        """Scaling, separation, alignment and the sandwich at initialisation (paper figures a-d)."""
        summary = run(out, full=full, seed=seed, progress=not quiet)
        print_summary(summary)
        print(f"wrote {', '.join(summary['files'])} to {out}")


def print_summary(summary: dict) -> None:
    """Print the headline numbers of a :func:`run` summary: rates vs theory, separation, slopes, sandwich."""
    lam = summary["theory_exponents"]
    for name in ("masked", "relu"):
        s = summary["a_scaling"][name]
        print(f"(a) {name}: QR rates at L {np.round(s['qr_at_L'], 4).tolist()} +- "
              f"{np.round(s['qr_se_at_L'], 4).tolist()}; theory {np.round(lam, 4).tolist()}")
    for n, s in summary["b_separation"].items():
        print(f"(b) N={n}: log(s1/s2) at L={summary['sizes']['separation_depth_over_width']}N: "
              f"{s['mean_at_L']:.2f} +- {s['se_at_L']:.2f} (theory {s['theory_at_L']:.2f})")
    for name, s in summary["c_alignment"].items():
        print(f"(c) {name}: slope {s['fitted_slope']:.4f} vs predicted {s['predicted_slope']:.4f} "
              f"({100 * s['relative_error']:.1f}%)")
    for name, s in summary["d_sandwich"].items():
        print(f"(d) {name}: ratio {s['ratio_at_max_depth']:.3f}, c {s['overlap_at_max_depth']:.3f}, "
              f"bounds hold in {100 * s['fraction_bounds_hold']:.1f}% of cases")
    print("seconds:", {k: round(v, 1) for k, v in summary["seconds"].items()})
