"""``jaxspec train``: train a deep linear, fixed-gates or ReLU network while tracking its spectral dynamics.

Writes ``trajectories.zarr`` (or ``.nc``), a labelled xarray dataset of every tracked quantity and prediction,
and ``dynamics.png`` (measured against predicted ``sigma_r(t)`` per mode, errors, alignment over time).

Every output path (``--out``, ``--checkpoint-dir``) is checked, created and probed for writing before training
starts; each file is written under a temporary name and renamed into place. A run whose loss becomes
non-finite stops with one line naming the step and the value, and keeps the records computed before it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import jax
import typer

from jaxspec._checks import InputError
from jaxspec.training import (
    CheckpointFallbackWarning,
    TrainingDivergedError,
    load_config,
    plot_dynamics,
    run_experiment,
    save_experiment,
    unlearned_modes,
)

OUTPUTS = ("dynamics.png", "summary.json")


def writable_directory(path: Path, flag: str) -> Path:
    """Create ``path`` (and its parents) if needed and prove it writable, or raise a one-line InputError."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"{flag} {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{flag} {path}: cannot create the directory ({err.strerror or err})") from None
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".jaxspec-write-probe-"):
            pass
    except OSError as err:
        raise InputError(f"{flag} {path} is not writable ({err.strerror or err})") from None
    return path


def _check_outputs(out: Path, fmt: str) -> None:
    """Refuse outputs that exist as the wrong kind (a folder where a file goes, or the reverse)."""
    store = out / f"trajectories.{fmt}"
    if fmt == "zarr" and store.exists() and not store.is_dir():
        raise InputError(
            f"{store} exists and is not a zarr store (a folder): move it or choose another --out"
        )
    for path in ([store] if fmt == "nc" else []) + [out / name for name in OUTPUTS]:
        if path.is_dir():
            raise InputError(
                f"{path} is a folder where jaxspec train writes a file: move it or choose another --out"
            )


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _notes_as_lines(default):
    """A ``warnings.showwarning`` that prints checkpoint fallbacks as one ``jaxspec: note:`` line each."""

    def show(message, category, *args, **kwargs) -> None:
        if issubclass(category, CheckpointFallbackWarning):
            print(f"jaxspec: note: {' '.join(str(message).split())}", file=sys.stderr)
        else:
            default(message, category, *args, **kwargs)

    return show


def run_train_command(
    config: Path | None,
    out: Path,
    fmt: str,
    quiet: bool,
    checkpoint_dir: Path | None,
    checkpoint_every: int | None,
    resume: bool,
    **options,
) -> dict:
    """Load the config (file, then flags), check the output paths, run, write the dataset, the figure and the
    summary; returns the summary.

    A damaged latest checkpoint met on ``--resume`` is reported on stderr as one ``jaxspec: note:`` line. A
    diverged run writes the records it kept, then raises one :class:`InputError` line naming the step, the
    value and where the records are.
    """
    if fmt not in ("zarr", "nc"):
        raise InputError(f"--format must be zarr or nc, got {fmt!r}")
    if checkpoint_dir is None and (resume or checkpoint_every is not None):
        raise InputError(f"{'--resume' if resume else '--checkpoint-every'} needs --checkpoint-dir")
    dtype = options.get("dtype")
    cfg = load_config(config, **options)
    out = writable_directory(out, "--out")
    _check_outputs(out, fmt)
    if checkpoint_dir is not None:
        checkpoint_dir = writable_directory(checkpoint_dir, "--checkpoint-dir")
    if (dtype or cfg.dtype) == "float64":
        jax.config.update("jax_enable_x64", True)
    with warnings.catch_warnings():
        warnings.showwarning = _notes_as_lines(warnings.showwarning)
        try:
            result, comparison, ds = run_experiment(
                cfg,
                progress=not quiet,
                checkpoint_dir=checkpoint_dir,
                checkpoint_every=checkpoint_every,
                resume=resume,
            )
        except TrainingDivergedError as err:
            if err.dataset is None:
                raise
            kept = save_experiment(err.dataset, out, fmt)
            summary = {
                "diverged": {"step": err.step, "loss": str(err.value), "records_to_step": err.last_good_step}
            }
            _write_text(out / "summary.json", json.dumps({**summary, "config": cfg.to_dict()}, indent=2))
            if (out / "dynamics.png").exists():
                (out / "dynamics.png").unlink()  # a figure of an earlier run would misdescribe these records
            raise InputError(f"{err}; records up to step {err.last_good_step} kept in {kept}") from None
    data_path = save_experiment(ds, out, fmt)
    title = (
        f"{cfg.model} network, depth {cfg.depth}, width {cfg.width}, {ds.attrs['data']}, "
        f"{cfg.optimizer} lr {cfg.learning_rate:g}, {cfg.init} init"
    )
    figure = plot_dynamics(ds, Path(out) / "dynamics.png", title=title)
    summary = {
        "dataset": str(data_path),
        "figure": str(figure),
        "final_loss": float(result.loss[-1]),
        "final_sigma": [float(s) for s in comparison.measured[-1]],
        "target_strength": [float(s) for s in comparison.target],
        "prediction_start_index": [int(i) for i in comparison.start_index],
        "max_relative_error": {k: [float(x) for x in v] for k, v in comparison.max_relative_error.items()},
        "unlearned_modes": unlearned_modes(ds),
        "config": cfg.to_dict(),
    }
    _write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        config: Path = typer.Option(
            None, "--config", help="YAML or JSON file of options (flags override it)"
        ),
        out: Path = typer.Option(Path("jaxspec_train"), "--out", help="output directory"),
        model: str = typer.Option(None, help="linear, fixed_gates or relu [linear]"),
        data: str = typer.Option(None, help="teacher, digits or mnist [teacher]"),
        mnist_path: str = typer.Option(None, help="folder of MNIST IDX files or an .npz (data mnist)"),
        depth: int = typer.Option(None, help="number of weight matrices L [3]"),
        width: int = typer.Option(None, help="hidden width [16]"),
        init: str = typer.Option(None, help="random or aligned (linear only) [random]"),
        init_scale: float = typer.Option(None, help="std x sqrt(fan_in) of the random init [0.1]"),
        sigma0: float = typer.Option(None, help="aligned init: initial singular value of each mode [1e-3]"),
        imbalance: float = typer.Option(
            None, help="aligned init: factor ratio between layers, 1 = balanced [1]"
        ),
        teacher_sv: str = typer.Option(None, help="teacher singular values, comma-separated [3,2,1]"),
        input_dim: int = typer.Option(None, help="teacher input dimension [8]"),
        output_dim: int = typer.Option(None, help="teacher output dimension [4]"),
        num_samples: int = typer.Option(None, help="teacher sample count [64]"),
        whiten_dim: int = typer.Option(None, help="PCA whitening dimension of digits/MNIST, 0 = raw [16]"),
        limit: int = typer.Option(None, help="keep the first LIMIT samples of digits/MNIST"),
        steps: int = typer.Option(None, help="optimizer steps [4000]"),
        learning_rate: float = typer.Option(None, "--lr", help="step size [5e-3]"),
        optimizer: str = typer.Option(None, help="sgd (full-batch GD), momentum or adam [sgd]"),
        log_every: int = typer.Option(None, help="steps between records [20]"),
        top_k: int = typer.Option(None, help="modes tracked and predicted [3]"),
        loss: str = typer.Option(None, help="mse or cross_entropy [mse]"),
        predict_from: int = typer.Option(None, help="record where predictions start; -1: once aligned [0]"),
        seed: int = typer.Option(None, help="random seed [0]"),
        dtype: str = typer.Option(None, help="float32 or float64 [float32]"),
        fmt: str = typer.Option("zarr", "--format", help="dataset format: zarr or nc"),
        checkpoint_dir: Path = typer.Option(None, help="orbax checkpoints of the run"),
        checkpoint_every: int = typer.Option(None, help="steps between checkpoints"),
        resume: bool = typer.Option(
            False,
            "--resume",
            help="continue from the latest good checkpoint (every setting but --steps must be unchanged)",
        ),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
        json_out: bool = typer.Option(False, "--json", help="print the summary as one JSON object"),
    ) -> None:
        """Train while tracking singular-value dynamics, with the deep-linear predictions beside them."""
        sv = None
        if teacher_sv is not None:
            try:
                sv = tuple(float(s) for s in teacher_sv.split(","))
            except ValueError:
                raise InputError(
                    f"--teacher-sv must be comma-separated numbers, got {teacher_sv!r}"
                ) from None
        summary = run_train_command(
            config,
            out,
            fmt,
            quiet,
            checkpoint_dir,
            checkpoint_every,
            resume,
            model=model,
            data=data,
            mnist_path=mnist_path,
            depth=depth,
            width=width,
            init=init,
            init_scale=init_scale,
            sigma0=sigma0,
            imbalance=imbalance,
            teacher_sv=sv,
            input_dim=input_dim,
            output_dim=output_dim,
            num_samples=num_samples,
            whiten_dim=whiten_dim,
            limit=limit,
            steps=steps,
            learning_rate=learning_rate,
            optimizer=optimizer,
            log_every=log_every,
            top_k=top_k,
            loss=loss,
            predict_from=predict_from,
            seed=seed,
            dtype=dtype,
        )
        if json_out:
            print(json.dumps(summary))
            return
        print(
            f"final loss {summary['final_loss']:.4g}; sigma {[round(s, 4) for s in summary['final_sigma']]} "
            f"(targets {[round(s, 4) for s in summary['target_strength']]})"
        )
        for name, errs in summary["max_relative_error"].items():
            print(
                f"  max |measured/predicted - 1| from records {summary['prediction_start_index']}, {name}: "
                + ", ".join(f"{e:.3g}" for e in errs)
            )
        if summary["unlearned_modes"]:
            print(
                "note: not learned by the end (sigma beyond 10% of its target): "
                + ", ".join(f"mode {r}" for r in summary["unlearned_modes"])
                + "; run longer (--steps) or faster (--lr)"
            )
        print(f"wrote {summary['dataset']} and {summary['figure']}")
