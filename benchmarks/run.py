"""Run jaxspec's benchmarks and write ``benchmarks/RESULTS.md`` (one command).

    python benchmarks/run.py            # --quick sizes: a few minutes on a 2-core machine
    python benchmarks/run.py --full     # the sizes of issue 10 (W1 width 512 x 64 layers x 32 inputs, ...)

Every timed row is the median of ``--repeats`` (>= 5) runs after one warm-up run, in this process, beside this
process's measured float32 GEMM rate. Rows report the time, the achieved GFLOP/s counting ``2 n^2 k`` per
layer, input and seed (an *effective* rate for the fast samplers, which skip that product), the fraction of
the GEMM rate, the speed-up over each peer, and the accuracy: ``max |float32 - float64|`` over exponents of
the same realisation (the ensembles draw in float32, so a float64 run is a pure rounding reference), plus, for
the fast samplers, a z-score of their float64 mean against the direct path's (another realisation; predicted
standard errors).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)  # float64 references and float64 accumulators (float32 compute)

import micro  # noqa: E402
import numpy as np  # noqa: E402
import scaling  # noqa: E402
import workloads  # noqa: E402
from _common import gemm_rate, machine_info  # noqa: E402


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", flush=True)


def _fmt_time(t: float) -> str:
    return f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def _fmt(x, spec=".3g", none="-") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return none
    return format(x, spec)


PEERS = ("numpy", "numpy_batched", "lyapax")
PEER_LABELS = {"numpy": "vs numpy loop", "numpy_batched": "vs numpy batched", "lyapax": "vs lyapax"}


def workload_table(rows, gemm: float) -> list[str]:
    """Markdown table of one workload; ratios against the peers of the same workload, same process."""
    peer = {r.role: r.time for r in rows if r.role in PEERS}
    flops = rows[0].flops
    lines = [
        "| implementation | time (median) | [min, max] | GFLOP/s | of GEMM | "
        + " | ".join(PEER_LABELS[p] for p in PEERS)
        + " | accuracy vs f64 | law z | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r.time
        lo, hi = r.timing.spread if r.timing is not None else (t, t)
        gflops = r.flops / t / 1e9  # per row: a workload may hold rows of several sizes (W4)
        ratios = " | ".join(_ratio(peer.get(p, np.nan) / t, ".2f") for p in PEERS)
        rate = "-" if r.role == "rng" else f"{gflops:.2f}"
        frac = "-" if r.role == "rng" else f"{gflops / gemm:.1%}"
        lines.append(
            f"| {r.impl} | {_fmt_time(t)} | [{_fmt_time(lo)}, {_fmt_time(hi)}] | {rate} | {frac} | "
            f"{ratios} | {_accuracy_cell(r)} | {_fmt(r.law_z, '.2f')} | {r.note} |"
        )
    roof = flops / (gemm * 1e9)
    ratios = " | ".join(_ratio(peer.get(p, np.nan) / roof, ".1f") for p in PEERS)
    lines.append(
        f"| GEMM roofline ({flops / 1e9:.1f} GFLOP at {gemm:.1f} GFLOP/s) | {_fmt_time(roof)} | - | "
        f"{gemm:.2f} | 100% | {ratios} | - | - | the bound for the direct path |"
    )
    return lines


def _ratio(x: float, spec: str) -> str:
    """``1.23x``, or ``-`` where the workload has no such peer."""
    cell = _fmt(x, spec)
    return cell if cell == "-" else f"{cell}x"


def _accuracy_cell(row) -> str:
    """Never-collapsed indices in absolute terms; collapse-conditioned ones in standard errors, if any."""
    cell = _fmt(row.accuracy, ".1e")
    conditioned = getattr(row, "accuracy_conditioned_se", None)
    return cell if conditioned is None else f"{cell}; cond. {conditioned:.2f} se"


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def targets(results: dict, section_gemm: dict) -> list[str]:
    """The issue's targets, each with its measurement. "numpy" is the plain loop the issue names; the batched
    numpy ratio is given beside it."""
    out = []
    rows = results.get("W1")
    if rows:
        best = min((r for r in rows if r.role == "jaxspec"), key=lambda r: r.time)
        frac = rows[0].flops / best.time / 1e9 / section_gemm["W1"]
        out.append(
            f"- W1 at least 50% of the GEMM rate: best jaxspec row ({best.impl}) reaches **{frac:.0%}** "
            f"-> {_verdict(frac >= 0.5)}."
        )
    for name, rows in results.items():
        peer = {r.role: r.time for r in rows if r.role in PEERS}
        js = [r for r in rows if r.role == "jaxspec"]
        if not js or not peer:
            continue
        default = next((r for r in js if r.default), js[0])
        best = min(js, key=lambda r: r.time)
        for label, row in (("the default", default), ("the fastest row", best)):
            ratios = ", ".join(f"{p} {t / row.time:.1f}x" for p, t in peer.items())
            ok = all(peer[p] / row.time >= 10 for p in ("numpy", "lyapax") if p in peer)
            out.append(
                f"- {name} at least 10x faster than numpy and lyapax, {label} ({row.impl}): {ratios} -> "
                f"{_verdict(ok)}."
            )
        if name == "W2" and "numpy" in peer:
            direct = next(r for r in js if r.impl.startswith("direct"))
            rng = next((r for r in rows if r.role == "rng"), None)
            share = (
                f"; drawing the W_l and gates alone takes {rng.time / direct.time:.0%} of it" if rng else ""
            )
            ratio = peer["numpy"] / direct.time
            out.append(
                f"- W2 direct path at least 5x faster than numpy: {ratio:.1f}x ({direct.impl}){share} -> "
                f"{_verdict(ratio >= 5)}."
            )
            ratio = peer["numpy"] / default.time
            out.append(
                f"- W2 the default users get ({default.impl}) at least 20x faster than numpy: {ratio:.1f}x "
                f"-> {_verdict(ratio >= 20)}."
            )
    rows = results.get("W1")
    if rows:  # issue 16: the defaults users get, as fractions of the same-process GEMM rate
        gemm = section_gemm["W1"]
        for label, start, target in (
            ("shared_weights_spectrum default", "stacked, qr=auto", 0.7),
            ("jacobian_spectrum default (growth rates)", "jaxspec.jacobian_spectrum", 0.6),
        ):
            row = [r for r in rows if r.impl.startswith(start)][-1]
            frac = row.flops / row.time / 1e9 / gemm
            out.append(
                f"- W1 {label} at least {target:.0%} of the GEMM rate (issue 16): **{frac:.0%}** "
                f"({row.impl}) -> {_verdict(frac >= target)}."
            )
    rows = results.get("W4")
    if rows:
        for jac, net in zip(rows[::2], rows[1::2], strict=True):
            ratio = jac.time / net.time
            out.append(
                f"- W4 network_spectrum at least 0.8x the speed of jacobian_spectrum ({net.impl}): "
                f"{ratio:.2f}x -> {_verdict(ratio >= 0.8)}."
            )
    for name, rows in results.items():
        js = [r for r in rows if r.role == "jaxspec" and r.accuracy is not None]
        if not js:
            continue
        worst = max(r.accuracy for r in js)
        conditioned = [
            r.accuracy_conditioned_se for r in js if getattr(r, "accuracy_conditioned_se", None) is not None
        ]
        extra = (
            ""
            if not conditioned
            else (
                " (indices no layer collapsed); on the collapse-conditioned indices (K_l >= i averages) "
                f"float32 moves the seed mean by at most {max(conditioned):.2f} standard errors"
            )
        )
        out.append(
            f"- {name} float32 within 1e-3 of float64: worst jaxspec row {worst:.1e}{extra} -> "
            f"{_verdict(worst <= 1e-3)}."
        )
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (default)")
    size.add_argument("--full", action="store_true", help="the sizes of issue 10")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row after a warm-up (>= 5)")
    parser.add_argument("--only", default="W1,W2,W3,W4,micro,scaling", help="comma-separated sections")
    parser.add_argument("--no-peers", action="store_true", help="skip numpy and lyapax")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the finished workload sections of an interrupted run (benchmarks/.cache)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats must be at least 5 (issue 10: median of >= 5 runs)")
    mode = "full" if args.full else "quick"
    sections = set(args.only.split(","))
    started = time.time()
    info = machine_info()
    log(f"mode={mode} machine={info}")
    gemm, gemm_timing = gemm_rate()
    log(f"float32 GEMM 1024^3: {gemm:.1f} GFLOP/s")

    results, sizes, section_gemm, reused = {}, {}, {}, {}
    cache_dir = HERE / ".cache"  # finished sections, so that a crash later in the run loses nothing
    cache_dir.mkdir(exist_ok=True)
    for name, runner in workloads.RUNNERS.items():
        if name in sections:
            spec = workloads.SIZES[name][0 if mode == "full" else 1]
            sizes[name] = spec
            cached = cache_dir / f"{mode}_{name}.pkl"
            if args.reuse and cached.exists():
                log(f"{name} {spec}: reusing {cached.name}")
                payload = pickle.loads(cached.read_bytes())
                results[name], section_gemm[name] = payload["rows"], payload["gemm"]
                reused[name] = payload["when"]
                continue
            log(f"{name} {spec}")
            results[name] = runner(spec, args.repeats, not args.no_peers, log)
            for row in results[name]:
                if row.timing is not None:
                    row.timing.result = None  # arrays of this process: not needed to render
            section_gemm[name] = gemm  # fractions of GEMM use the rate of the process that timed the rows
            cached.write_bytes(
                pickle.dumps(
                    dict(
                        rows=results[name],
                        gemm=gemm,
                        when=time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
                    )
                )
            )
    gemm_end, _ = gemm_rate()

    micro_out = {}
    if "micro" in sections:
        log("micro: QR backends")
        shapes = (
            [(32, 512, 32), (32, 128, 128), (4, 1024, 16)]
            if mode == "full"
            else [(16, 256, 16), (8, 64, 64), (2, 512, 16)]
        )
        micro_out["qr"] = micro.qr_backends(shapes, args.repeats, log)
        log("micro: PRNG")
        micro_out["prng"] = micro.prng(2**22 if mode == "full" else 2**20, args.repeats, log)
        log("micro: donation")
        micro_out["donation"] = micro.donation(256, 64, 16, 16, 8, args.repeats, log)
        log("micro: compute dtype")
        micro_out["dtype"] = micro.compute_dtype(256, 100, 4, 16, args.repeats, log)

    scale_out, figure_paths = None, []
    if "scaling" in sections:
        scale_out = scaling.time_scaling(mode, args.repeats, log)
        memory = scaling.memory_scaling([100, 200, 400, 800, 1600, 3200])
        scale_out["memory"] = memory
        figure_paths = scaling.figures(
            {k: v for k, v in scale_out.items() if k != "memory"}, memory, HERE / "figures"
        )

    text = render(
        mode,
        info,
        gemm,
        gemm_end,
        gemm_timing,
        sizes,
        results,
        micro_out,
        scale_out,
        figure_paths,
        time.time() - started,
        args,
        section_gemm,
        reused,
    )
    args.out.write_text(text)
    raw = {
        name: [
            dict(
                impl=r.impl,
                role=r.role,
                time=r.time,
                times=r.timing.times if r.timing else None,
                flops=r.flops,
                accuracy=r.accuracy,
                law_z=r.law_z,
                note=r.note,
            )
            for r in rows
        ]
        for name, rows in results.items()
    }
    raw.update(
        mode=mode,
        machine=info,
        gemm_gflops=[gemm, gemm_end],
        sizes=sizes,
        micro={
            k: [{a: (b.tolist() if isinstance(b, np.ndarray) else b) for a, b in row.items()} for row in v]
            for k, v in micro_out.items()
        },
        scaling=scale_out,
    )
    (args.out.parent / "results.json").write_text(json.dumps(raw, indent=1, default=str))
    log(f"wrote {args.out}")
    return 0


def render(
    mode,
    info,
    gemm,
    gemm_end,
    gemm_timing,
    sizes,
    results,
    micro_out,
    scale_out,
    figure_paths,
    elapsed,
    args,
    section_gemm,
    reused,
) -> str:
    lines = [
        "# jaxspec benchmarks",
        "",
        f"Generated by `python benchmarks/run.py{' --full' if mode == 'full' else ''}` "
        f"({mode} sizes, {args.repeats} timed runs per row after a warm-up, medians) on "
        f"{time.strftime('%Y-%m-%d %H:%M')} in {elapsed / 60:.1f} min.",
        "",
        "## Machine",
        "",
        f"- {info['cpu_count']} CPU cores ({info['processor']}), {info['platform']}; JAX {info['jax']} "
        f"({info['backend']}, {info['devices']}), numpy {info['numpy']}.",
        f"- **No GPU in this session**: every number is CPU-only. {'' if not info['gpu'] else '(GPU seen!)'}",
        f"- OPENBLAS_NUM_THREADS={info.get('openblas_threads', 'default')} (numpy's LAPACK, JAX's CPU QR).",
        f"- Load average (1, 5, 15 min) {tuple(round(x, 1) for x in info['loadavg'])} at the start, "
        f"{tuple(round(x, 1) for x in os.getloadavg())} at the end, on {info['cpu_count']} cores (a load "
        "near the core count is this benchmark itself). Every ratio is measured in this same process, side "
        "by side.",
        f"- float32 GEMM rate (1024^3, precision HIGHEST), measured in this run: **{gemm:.1f} GFLOP/s** at "
        f"the start, {gemm_end:.1f} GFLOP/s after the workloads. Fractions below use the start value.",
    ]
    for name, when in reused.items():
        lines.append(
            f"- {name} was reused (`--reuse`) from the run started {when}, with its peers and its own "
            f"GEMM rate ({section_gemm[name]:.1f} GFLOP/s), which its fractions and roofline use."
        )
    lines.append("")
    descriptions = {
        "W1": "fixed He-initialised zero-bias ReLU MLP, top-k growth rates of the Jacobian at many inputs",
        "W2": "masked Gaussian product (Bernoulli p = 1/2 gates, sigma2 = 2), full spectrum k = width",
        "W3": "wide Gaussian product (sigma2 = 1), top-k",
        "W4": "any network of blocks: network_spectrum on the MLP format beside jacobian_spectrum (issue 17)",
    }
    for name, rows in results.items():
        lines += [f"## {name}: {descriptions[name]}", "", f"Sizes: {sizes[name]}.", ""]
        lines += workload_table(rows, section_gemm[name])
        lines.append("")
    if results:
        lines += ["## Targets (issues 10, 16, 17)", ""] + targets(results, section_gemm) + [""]
    if micro_out:
        lines += [
            "## Micro-benchmarks",
            "",
            "### QR backends (batched frames, float32)",
            "",
            "| shape (batch, n, k) | backend | time | max abs error of log|R_ii| vs float64 |",
            "|---|---|---|---|",
        ]
        for r in micro_out["qr"]:
            lines.append(f"| {r['shape']} | {r['backend']} | {_fmt_time(r['time'])} | {r['accuracy']:.1e} |")
        lines += [
            "",
            "### Random numbers (ns per standard normal)",
            "",
            "| generator | dtype | ns/number |",
            "|---|---|---|",
        ]
        for r in micro_out["prng"]:
            lines.append(f"| {r['impl']} | {r['dtype']} | {r['ns']:.2f} |")
        lines += [
            "",
            "### Buffer donation (chunked driver, carry crosses the jit boundary each chunk)",
            "",
            "| donate carry | time | XLA 'donated buffers not usable' warning |",
            "|---|---|---|",
        ]
        for r in micro_out["donation"]:
            lines.append(f"| {r['donate']} | {_fmt_time(r['time'])} | {r['unusable_warning']} |")
        d = micro_out["dtype"]
        lines += [
            "",
            "### Compute dtype (direct path, Gaussian n=256, L=100, k=16, 4 seeds; float64 accumulator)",
            "",
            "| compute dtype | time |",
            "|---|---|",
        ]
        for r in d:
            lines.append(f"| {r['dtype']} | {_fmt_time(r['time'])} |")
        lines += ["", f"float32 vs float64 mean exponents: max abs difference {d[0]['accuracy']:.1e}.", ""]
    if scale_out:
        lines += [
            "## Scaling",
            "",
            "Gaussian ensemble; each point the median of the timed runs. Slopes are "
            "least-squares fits of log time on log size, leaving out the smallest size (fixed overheads).",
            "",
            "| parameter | method | values | times | slope |",
            "|---|---|---|---|---|",
        ]
        for param, per in scale_out.items():
            if param == "memory":
                continue
            for label, d in per.items():
                times = ", ".join(_fmt_time(t) for t in d["times"])
                lines.append(f"| {param} | {label} | {d['values']} | {times} | {d['slope']:.2f} |")
        mem = scale_out["memory"]
        lines += [
            "",
            f"Compiled memory of the engine against depth (n={mem['width']}, k={mem['k']}, "
            f"seeds={mem['seeds']}; XLA memory analysis):",
            "",
            "| depth | temporaries | output | arguments |",
            "|---|---|---|---|",
        ]
        for r in mem["rows"]:
            lines.append(f"| {r['depth']} | {r['temp']} B | {r['output']} B | {r['argument']} B |")
        lines += [""] + [f"![{p.stem}](figures/{p.name})" for p in figure_paths] + [""]
    lines += ["## Notes", "", NOTES, ""]
    return "\n".join(lines)


NOTES = """\
- *Direct path*: the product itself, one realisation; float32 compute, float64 accumulation of `log|R_ii|`.
  *Fast samplers* (`jaxspec.fast`, `method=` of `lyapunov_spectrum`): exact in distribution for Gaussian and
  independently-gated masked ensembles (validated in `tests/test_fast.py`), a different realisation, no frame;
  they never stand in for the product when vectors, alignment or finite-depth singular values are wanted.
  Their GFLOP/s is an *effective* rate (the `2 n^2 k` product they avoid), which is why it can exceed the GEMM
  rate.
- *Defaults*: `jaxspec.lyapunov_spectrum` defaults to `method='auto'` (the chi sampler where it is exact, the
  product otherwise); `shared_weights_spectrum` to `qr='auto'`, `reortho_every='auto'`. The rows name the
  options and the resolved configuration of each.
- *Peers*: "numpy loop" is the plain implementation issue 10 names (seed by seed or input by input, one
  `W @ Q` and one `linalg.qr` per layer); "numpy batched" is numpy at its best (seeds batched, inputs stacked
  into one GEMM). numpy rows have no warm-up (nothing to compile): all runs are timed.
- *accuracy*: `max |float32 - float64|` over exponents of the same realisation and the same resolved estimator
  (method, `m`, QR backend); the ensembles draw in float32, so the float64 run is a pure rounding reference.
  Under rank collapse (W2) it is taken over the (seed, index) pairs no layer collapsed; the
  collapse-conditioned indices (`K >= i`: `log|R_ii|` averaged over the layers with `K_l >= i`) are reported
  as "cond. z se", the largest float32-float64 difference of the seed mean in standard errors of that mean.
  Their per-layer `R_ii` comes from a nearly rank-deficient layer (`K_l` close to `i`), whose relative
  rounding error is `u ||A|| / |R_ii|`: float32 cannot give them 1e-3 per realisation; the "cond." column
  shows how that rounding compares with their Monte Carlo error.
- *law z*: max over indices of `(mean_fast - mean_direct) / (sqrt(2) se)` with the predicted standard error;
  `|z| < 4` means the fast sampler agrees in distribution on this run.
- lyapax is given the same matrices, gates and initial frame (see `benchmarks/peers.py`); it has no
  rank-collapse convention, so its accuracy is compared on the indices no layer collapsed.
"""


if __name__ == "__main__":
    raise SystemExit(main())
