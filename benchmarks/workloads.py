"""The benchmark workloads W1-W3 (issue 10) and W4 (issue 17): sizes, jaxspec variants, peers and float64
references."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from _common import Timing, max_abs_diff, time_it
from peers import (
    lyapax_ensemble,
    lyapax_fixed,
    numpy_ensemble,
    numpy_ensemble_loop,
    numpy_fixed,
    numpy_fixed_loop,
)

import jaxspec
from jaxspec import theory
from jaxspec.engine import (
    ensemble_frame_sums,
    exponents_from_sums,
    frame_key,
    initial_frame,
    make_config,
    realisation_key,
    seed_keys,
    shared_weights_spectrum,
)
from jaxspec.ensembles import FixedStack
from jaxspec.networks import jacobian_spectrum, mlp_segments, network_spectrum

HIGHEST = jax.lax.Precision.HIGHEST

SIZES = {
    # name: (full, quick)
    "W1": (dict(width=512, depth=64, inputs=32, k=32), dict(width=256, depth=32, inputs=16, k=16)),
    "W2": (dict(width=128, depth=1000, seeds=32, k=128), dict(width=64, depth=250, seeds=8, k=64)),
    "W3": (dict(width=1024, depth=100, seeds=4, k=16), dict(width=512, depth=50, seeds=2, k=16)),
    "W4": (
        dict(width=512, depth=64, inputs=32, k=32, sv_width=64, sv_depth=32),
        dict(width=256, depth=32, inputs=16, k=16, sv_width=32, sv_depth=16),
    ),
}


@dataclass
class Row:
    """One line of the results table."""

    workload: str
    impl: str
    timing: Timing | None
    flops: float
    accuracy: float | None = (
        None  # max |float32 - float64 reference| (same realisation), never-collapsed indices
    )
    # Rank-collapse-conditioned indices (some layer had K_l < i): max |mean32 - mean64| over seeds, in
    # standard errors of the float64 mean (float32 cannot resolve R_ii of a nearly rank-deficient layer to
    # 1e-3).
    accuracy_conditioned_se: float | None = None
    law_z: float | None = (
        None  # fast paths: max |z| against the direct path's float64 mean (another realisation)
    )
    note: str = ""
    role: str = "jaxspec"  # jaxspec | numpy (the plain loop) | numpy_batched | lyapax | rng
    seconds: float | None = None  # for rows without a timing (roofline)
    default: bool = False  # the row a user gets without options

    @property
    def time(self) -> float:
        return self.timing.median if self.timing is not None else self.seconds


def _flops(width: int, depth: int, batch: int, k: int) -> float:
    """``2 n^2 k`` per layer, input and seed (the frame product alone)."""
    return 2.0 * width**2 * k * depth * batch


# ------------------------------------------------------------------------------------------------------------
# W1: one fixed ReLU MLP, many inputs.


def w1_network(width: int, depth: int, inputs: int, seed: int = 0):
    """He-initialised zero-bias ReLU MLP, its inputs and gates (float32 forward, as lyapax recomputes it)."""
    key_w, key_x = jax.random.split(jax.random.key(seed))
    weights = jax.random.normal(key_w, (depth, width, width), jnp.float32) * jnp.float32(np.sqrt(2.0 / width))
    x = jax.random.normal(key_x, (inputs, width), jnp.float32)

    @jax.jit
    def gates(x):
        def body(h, w):
            pre = jnp.matmul(h, w.T, precision=HIGHEST)
            return jnp.maximum(pre, 0.0), (pre > 0).astype(jnp.float32)

        _, masks = jax.lax.scan(body, x, weights)
        return jnp.swapaxes(masks, 0, 1)  # (inputs, depth, width)

    return weights, x, gates(x)


def run_w1(spec: dict, repeats: int, peers: bool, log=print) -> list[Row]:
    width, depth, inputs, k = spec["width"], spec["depth"], spec["inputs"], spec["k"]
    weights, x, masks = w1_network(width, depth, inputs)
    flops = _flops(width, depth, inputs, k)
    frame = initial_frame(frame_key(seed_keys(0, 1)[0]), width, width, k, jnp.float32)
    ref = np.asarray(
        shared_weights_spectrum(
            weights, masks, k=k, dtype="float64", reortho_every=1, qr="householder"
        ).exponents
    )
    rows = []

    def add(impl, fn, note="", role="jaxspec", sort=False):
        log(f"  W1 {impl} ...")
        timing = time_it(fn, repeats)
        got = np.asarray(timing.result)
        acc = max_abs_diff(np.sort(got, -1), np.sort(ref, -1)) if sort else max_abs_diff(got, ref)
        rows.append(Row("W1", impl, timing, flops, acc, note=note, role=role))

    # Straightforward engine: vmap the per-realisation engine over per-input FixedStacks (batched weights).
    cfg = make_config(k, max_k=width)
    keys = jnp.broadcast_to(seed_keys(0, 1)[0], (inputs,))

    @jax.jit
    def per_input(masks):
        stacks = FixedStack(
            weights=jnp.broadcast_to(weights, (inputs,) + weights.shape),
            masks=masks,
            widths=(width,) * (depth + 1),
        )
        sums = jax.vmap(lambda s, key: ensemble_frame_sums(s, key, cfg))(stacks, keys)
        return exponents_from_sums(sums)

    add(
        "engine, per-input vmap (weights batched), Householder, m=1",
        lambda: per_input(masks),
        "the straightforward form",
    )
    for qr, m, note in [
        ("householder", 1, "stacked frames: one GEMM per layer"),
        ("cholesky2", 1, "stacked + CholeskyQR2"),
        ("blocked_householder", 1, "stacked + the batched Householder in JAX"),
        ("auto", "auto", "default of shared_weights_spectrum"),
    ]:
        add(
            f"stacked, qr={qr}, reortho={m}",
            lambda qr=qr, m=m: shared_weights_spectrum(weights, masks, k=k, qr=qr, reortho_every=m).exponents,
            note,
        )
    auto = shared_weights_spectrum(weights, masks, k=k)
    rows[-1].note += f" (resolved: qr={auto.config.qr}, m={auto.config.reortho_every})"
    rows[-1].default = True
    # The user-facing API for a network: jvp tangents, vmapped over inputs (own random frame per input, so its
    # float64 reference is its own float64 run).
    params = [{"w": w} for w in weights]
    base = dict(k=k, final_activation=True, singular_values=False, prefixes=False)
    for label, options in (
        ("reortho_every=1, qr='householder'", dict(reortho_every=1, qr="householder")),  # the old default
        ("defaults", {}),  # growth rates only: reortho_every='auto', qr='auto'
    ):
        jac = {**base, **options}
        config = jacobian_spectrum(params, x, **jac).config
        # float64 reference: the same frames, the same resolved interval and backend.
        resolved = dict(reortho_every=config.reortho_every, qr=config.qr)
        jac64 = np.asarray(jacobian_spectrum(params, x, dtype="float64", **{**base, **resolved}).growth_rates)
        log(f"  W1 jaxspec.jacobian_spectrum {label} ...")
        timing = time_it(lambda jac=jac: jacobian_spectrum(params, x, **jac).growth_rates, repeats)
        rows.append(
            Row(
                "W1",
                f"jaxspec.jacobian_spectrum(params, xs, k, singular_values=False, prefixes=False), {label}",
                timing,
                flops,
                max_abs_diff(np.asarray(timing.result), jac64),
                note="forward pass for every D_l(x), then the stacked engine (per-input random frames); "
                f"resolved m={config.reortho_every}, qr={config.qr}",
            )
        )

    if peers:
        w_np, m_np, f_np = np.asarray(weights), np.asarray(masks), np.asarray(frame)
        add(
            "numpy, plain loop (input by input, one QR per layer)",
            lambda: numpy_fixed_loop(w_np, m_np, f_np),
            role="numpy",
        )
        add(
            "numpy, batched (stacked GEMM + batched QR)",
            lambda: numpy_fixed(w_np, m_np, f_np),
            role="numpy_batched",
        )
        add(
            "lyapax.lyapunov_spectrum (jvp map, vmap inputs)",
            lyapax_fixed(weights, x, frame),
            role="lyapax",
            sort=True,
        )
    return rows


# ------------------------------------------------------------------------------------------------------------
# W2 / W3: random ensembles.


def split_accuracy(got, ref64, counted, depth: int) -> tuple[float, float | None]:
    """Accuracy of ``(seeds, k)`` float32 exponents against the float64 run of the same realisation.

    Returns ``max |got - ref64|`` over the (seed, index) pairs whose index no layer collapsed
    (``counted == depth``), and, where some index was collapse-conditioned (``K >= i``: averaged over the
    layers with ``K_l >= i`` only), ``max_i |mean got_i - mean ref64_i| / se_i`` over those indices, with
    ``se_i`` the standard error of the float64 seed mean (None when no index collapsed).
    """
    got, ref64 = np.asarray(got, float), np.asarray(ref64, float)
    full = np.asarray(counted) == depth
    acc = max_abs_diff(np.where(full, got, np.nan), np.where(full, ref64, np.nan))
    conditioned = ~np.all(full, axis=0)
    if not conditioned.any():
        return acc, None
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        finite = np.isfinite(ref64[:, conditioned]).sum(0)
        se = np.nanstd(ref64[:, conditioned], axis=0, ddof=1) / np.sqrt(finite)
        z = np.abs(np.nanmean(got[:, conditioned], 0) - np.nanmean(ref64[:, conditioned], 0)) / se
    z = z[np.isfinite(z)]
    return acc, (float(z.max()) if z.size else None)


def _ensemble_rows(
    name: str,
    ens,
    seeds: int,
    k: int,
    variants,
    repeats: int,
    peers: bool,
    log=print,
    rng_share: bool = False,
) -> list[Row]:
    width, depth = ens.max_width, ens.depth
    flops = _flops(width, depth, seeds, k)
    ref = jaxspec.lyapunov_spectrum(ens, k=k, seeds=seeds, dtype="float64", method="direct")
    ref_exps = np.asarray(ref.exponents)
    full_rows = np.all(np.asarray(ref.counted_layers) == depth, axis=0)  # indices never rank-collapsed
    se = theory.predicted_stderr(ens, k, seeds=seeds)
    rows = []
    references = {(ref.config.method, ref.config.reortho_every, ref.config.qr): ref}
    for label, kw in variants:
        resolved = jaxspec.lyapunov_spectrum(ens, k=k, seeds=1, **kw).config
        key = (resolved.method, resolved.reortho_every, resolved.qr)
        note = f"resolved: method={resolved.method}, m={resolved.reortho_every}, qr={resolved.qr}"
        same = next((r for r in rows if r.note == note), None)
        if same is not None:  # e.g. reortho="auto" resolving to m=1 under rank collapse: do not time it twice
            same.impl += f"; = {label}"
            continue
        log(f"  {name} {label} ...")
        timing = time_it(
            lambda kw=kw: jaxspec.lyapunov_spectrum(ens, k=k, seeds=seeds, **kw).exponents, repeats
        )
        got = np.asarray(timing.result)
        # The float64 reference: the same realisation and the same resolved estimator (method, m, QR backend).
        if key not in references:
            references[key] = jaxspec.lyapunov_spectrum(
                ens, k=k, seeds=seeds, dtype="float64", method=key[0], reortho_every=key[1], qr=key[2]
            )
        res64 = references[key]
        acc, cond = split_accuracy(got, res64.exponents, res64.counted_layers, depth)
        law = None
        if resolved.method != "direct":
            with np.errstate(invalid="ignore"):
                z = (np.asarray(res64.mean) - np.asarray(ref.mean)) / (np.sqrt(2.0) * se)
            law = float(np.nanmax(np.abs(z)))
        rows.append(
            Row(
                name,
                label,
                timing,
                flops,
                acc,
                accuracy_conditioned_se=cond,
                law_z=law,
                note=note,
                default=not kw,
            )
        )
    if rng_share:
        log(f"  {name} RNG alone ...")
        keys = seed_keys(0, seeds)

        @jax.jit
        def draw(keys):
            def one(seed_key):
                _, key_layers = jax.random.split(realisation_key(seed_key))

                def body(total, index):
                    _, w, mask = ens.layer(
                        None, jaxspec.ensembles.layer_key(key_layers, index), index, jnp.float32
                    )
                    return total + jnp.sum(w) + jnp.sum(mask), None

                return jax.lax.scan(body, jnp.float32(0), jnp.arange(depth))[0]

            return jax.vmap(one)(keys)

        timing = time_it(lambda: draw(keys), repeats)
        rows.append(Row(name, "RNG alone: every W_l and gate of the direct path", timing, flops, role="rng"))
    if peers:
        p = float(getattr(ens, "p", 1.0))
        sigma2 = float(ens.sigma2)
        for fn, label, role in [
            (numpy_ensemble_loop, "numpy, plain loop (seed by seed, one QR per layer)", "numpy"),
            (numpy_ensemble, "numpy, batched (seeds batched, one QR per layer)", "numpy_batched"),
        ]:
            log(f"  {name} {label} ...")
            timing = time_it(
                lambda fn=fn: fn(width, depth, seeds, k, p=p, sigma2=sigma2), repeats, warmup=False
            )
            np64, counted = fn(
                width, depth, seeds, k, p=p, sigma2=sigma2, dtype=np.float64, return_counts=True
            )
            acc, cond = split_accuracy(timing.result, np64, counted, depth)
            rows.append(Row(name, label, timing, flops, acc, accuracy_conditioned_se=cond, role=role))
        log(f"  {name} lyapax ...")
        timing = time_it(lyapax_ensemble(ens, seed_keys(0, seeds), k), repeats)
        lx = np.sort(np.asarray(timing.result), -1)[:, ::-1]
        # lyapax has no rank-collapse convention: compare on the indices no layer collapsed.
        count = int(full_rows.sum())
        acc = max_abs_diff(lx[:, :count], np.sort(ref_exps[:, full_rows], -1)[:, ::-1])
        rows.append(
            Row(
                name,
                "lyapax.lyapunov_spectrum (jvp map, vmap seeds)",
                timing,
                flops,
                acc,
                role="lyapax",
                note=f"accuracy on the {count} never-collapsed indices",
            )
        )
    return rows


ENSEMBLE_VARIANTS = [
    ("default: lyapunov_spectrum(ens, k, seeds) (method='auto')", {}),
    ("direct: the product (Householder, m=1)", dict(method="direct")),
    ("direct, reortho=auto, qr=auto", dict(method="direct", reortho_every="auto", qr="auto")),
    ("direct, qr=blocked_householder", dict(method="direct", qr="blocked_householder")),
    ("fast: fresh Gaussian frame (n x k numbers/layer)", dict(method="gaussian_frame")),
    ("fast: chi-law R factors", dict(method="chi")),
]


def run_w2(spec: dict, repeats: int, peers: bool, log=print) -> list[Row]:
    ens = jaxspec.masked(width=spec["width"], depth=spec["depth"], p=0.5, sigma2=2.0)
    # With k = n a fresh n x k Gaussian costs the same QR as the product: the Gaussian-frame row is measured
    # in the quick sizes and on W3 only, to keep the full run within the hour.
    variants = [v for v in ENSEMBLE_VARIANTS if spec["k"] < 128 or v[1].get("method") != "gaussian_frame"]
    return _ensemble_rows("W2", ens, spec["seeds"], spec["k"], variants, repeats, peers, log, rng_share=True)


def run_w3(spec: dict, repeats: int, peers: bool, log=print) -> list[Row]:
    ens = jaxspec.gaussian(width=spec["width"], depth=spec["depth"])
    variants = ENSEMBLE_VARIANTS
    return _ensemble_rows("W3", ens, spec["seeds"], spec["k"], variants, repeats, peers, log, rng_share=True)


# ------------------------------------------------------------------------------------------------------------
# W4: any network of blocks (issue 17): network_spectrum on the project's MLP format beside jacobian_spectrum.


def run_w4(spec: dict, repeats: int, peers: bool, log=print) -> list[Row]:
    """``network_spectrum(mlp_segments(params), xs)`` against ``jacobian_spectrum(params, xs)`` on W1's
    network (growth rates), and on a narrower one with the exact prefix singular values; each pair in this
    process."""
    del peers  # the reference is jacobian_spectrum itself
    width, depth, inputs, k = spec["width"], spec["depth"], spec["inputs"], spec["k"]
    rows = []

    def pair(params, x, k, options, label, flops):
        segments = mlp_segments(params, final_activation=True)
        calls = {
            # prefixes: the exact singular values of every depth prefix, as network_spectrum returns them.
            "jaxspec.jacobian_spectrum": lambda **kw: jacobian_spectrum(
                params,
                x,
                k=k,
                final_activation=True,
                prefixes=options["singular_values"],
                **{**options, **kw},
            ),
            "jaxspec.network_spectrum(mlp_segments(params))": lambda **kw: network_spectrum(
                segments, x, k=k, **{**options, **kw}
            ),
        }
        times = {}
        for name, call in calls.items():
            resolved = call().config.reortho_every
            # float64 reference: the same frames and the same resolved interval.
            ref = call(dtype="float64", reortho_every=resolved)
            log(f"  W4 {name} {label} ...")
            timing = time_it(lambda call=call: call(), repeats)
            got = timing.result
            acc = max_abs_diff(np.asarray(got.growth_rates), np.asarray(ref.growth_rates))
            if got.log_svals is not None:
                acc = max(acc, max_abs_diff(np.asarray(got.log_svals), np.asarray(ref.log_svals)))
            times[name] = timing.median
            ratio = ""
            if not name.startswith("jaxspec.jacobian"):
                speed = times["jaxspec.jacobian_spectrum"] / timing.median
                ratio = f"; {speed:.2f}x the speed of jacobian_spectrum"
            rows.append(
                Row(
                    "W4",
                    f"{name}, {label}",
                    timing,
                    flops,
                    acc,
                    note=f"resolved m={resolved}{ratio}",
                    default=name.startswith("jaxspec.network"),
                )
            )

    weights, x, _ = w1_network(width, depth, inputs)
    params = [{"w": w} for w in weights]
    flops = _flops(width, depth, inputs, k)
    for m in (1, "auto"):
        pair(
            params,
            x,
            k,
            dict(singular_values=False, reortho_every=m),
            f"growth rates, reortho_every={m!r}",
            flops,
        )
    sv_width, sv_depth = spec["sv_width"], spec["sv_depth"]
    weights, x, _ = w1_network(sv_width, sv_depth, inputs, seed=1)
    pair(
        [{"w": w} for w in weights],
        x,
        min(k, sv_width),
        dict(singular_values=True, reortho_every="auto"),
        f"with exact prefix singular values (width {sv_width}, depth {sv_depth})",
        _flops(sv_width, sv_depth, inputs, sv_width),
    )
    return rows


RUNNERS: dict[str, Callable] = {"W1": run_w1, "W2": run_w2, "W3": run_w3, "W4": run_w4}
