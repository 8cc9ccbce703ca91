"""One training experiment end to end: data, model, tracked training, predictions, labelled dataset, figure.

This is what ``jaxspec train`` and ``jaxspec figures dynamics`` run. A :class:`TrainConfig` (flags or a
YAML/JSON file) describes the run; :func:`run_experiment` returns the :class:`jaxspec.training.TrainResult`,
the :class:`jaxspec.training.DynamicsComparison` and an ``xarray.Dataset`` with labelled dimensions
(``step, mode, layer, pair, ...``); :func:`save_experiment` writes the dataset (zarr or netCDF) and
:func:`plot_dynamics` the figure (measured against predicted ``sigma_r(t)`` per mode, errors, alignment).

References:
    Saxe et al., arXiv:1312.6120; Arora et al., arXiv:1802.06509; Haas et al., arXiv:2602.12384.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import ArrayLike, Float, Int

from jaxspec._checks import DTYPES, InputError, check_choice, check_int, check_real
from jaxspec._extras import optional_import
from jaxspec.data import Dataset, digits, input_output_statistics, load_mnist, teacher
from jaxspec.training._divergence import TrainingDivergedError
from jaxspec.training._loop import TrainResult, train
from jaxspec.training._mode_dynamics import DynamicsComparison, compare_dynamics, target_svd
from jaxspec.training._models import (
    LOSSES,
    MODEL_KINDS,
    aligned_init,
    balanced_factors,
    deep_linear_init,
    make_loss,
    make_model,
)
from jaxspec.training._tracking import make_tracker

if TYPE_CHECKING:  # xarray is an optional extra, imported where a dataset is made
    import xarray as xr

DATASETS = ("teacher", "digits", "mnist")
INITS = ("random", "aligned")
OPTIMIZERS = ("sgd", "momentum", "adam")
PREDICTION_STYLE = {
    "mode_ode": ("--", "shared-basis mode ODE"),
    "mode_ode_kernel": ("-.", "mode ODE, measured kernel ratio"),
    "balanced": (":", "balanced L-layer ODE (Saxe/Arora)"),
    "saxe": ((0, (1, 3)), "Saxe closed form"),
    "arora": ((0, (5, 2, 1, 2)), "Arora end-to-end matrix ODE"),
}


# Upper bounds of the integer fields (None: unbounded), and of the weights a network may hold: beyond 1e9
# float32 weights (4 GB, twice that with the optimizer state) a CPU run cannot start.
_MAX_SIZE = 1_000_000
_INT_FIELDS = {
    "depth": 100_000,
    "width": _MAX_SIZE,
    "steps": 10**12,
    "log_every": 10**12,
    "top_k": _MAX_SIZE,
    "input_dim": _MAX_SIZE,
    "output_dim": _MAX_SIZE,
    "num_samples": 10**9,
}
MAX_PARAMETERS = 10**9


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training experiment.

    Attributes:
        model: ``"linear"``, ``"fixed_gates"`` or ``"relu"``.
        data: ``"teacher"``, ``"digits"`` or ``"mnist"``.
        mnist_path: folder of IDX files or ``.npz`` (``data="mnist"``).
        depth: number of weight matrices ``L``.
        width: hidden width.
        init: ``"random"`` (Gaussian, std ``init_scale / sqrt(fan_in)``) or ``"aligned"`` (shared basis with
            the target's modes, linear only).
        init_scale: scale of the random initialisation.
        sigma0: aligned init: initial end-to-end singular value of the top mode (mode ``r`` starts at
            ``sigma0 s_r / s_1``, proportional to its target strength).
        imbalance: aligned init: factor ratio between consecutive layers (1 = balanced).
        teacher_sv: teacher's singular values.
        input_dim, output_dim, num_samples: teacher data sizes.
        whiten_dim: PCA whitening dimension of digits/MNIST (0 = raw pixels).
        limit: keep the first ``limit`` samples of digits/MNIST.
        steps: optimizer steps.
        learning_rate: step size (the ODE time is ``steps * learning_rate``).
        optimizer: ``"sgd"`` (full-batch GD), ``"momentum"`` or ``"adam"``.
        log_every: steps between records.
        top_k: modes tracked and predicted.
        loss: ``"mse"`` or ``"cross_entropy"``.
        predict_from: record index where predictions start, or -1: for each mode, the first record where it
            aligns with the target's mode (:func:`alignment_start_index`).
        seed: random seed.
        dtype: ``"float32"`` or ``"float64"``.
    """

    model: str = "linear"
    data: str = "teacher"
    mnist_path: str | None = None
    depth: int = 3
    width: int = 16
    init: str = "random"
    init_scale: float = 0.1
    sigma0: float = 1e-3
    imbalance: float = 1.0
    teacher_sv: tuple[float, ...] = (3.0, 2.0, 1.0)
    input_dim: int = 8
    output_dim: int = 4
    num_samples: int = 64
    whiten_dim: int = 16
    limit: int | None = None
    steps: int = 4000
    learning_rate: float = 5e-3
    optimizer: str = "sgd"
    log_every: int = 20
    top_k: int = 3
    loss: str = "mse"
    predict_from: int = 0
    seed: int = 0
    dtype: str = "float32"

    def validate(self) -> TrainConfig:
        """Check every field and return the config with its values normalised (``4.0`` steps become ``4``).

        Raises :class:`jaxspec.InputError` naming the field and the accepted range, before any work: choices,
        positive integers (no booleans, fractions or strings), finite positive numbers, a teacher spectrum of
        finite positive values, and a network small enough to hold (at most ``MAX_PARAMETERS`` weights).

        Example:
            >>> TrainConfig(steps=4.0).validate().steps
            4
        """
        for name, options in (
            ("model", MODEL_KINDS),
            ("data", DATASETS),
            ("init", INITS),
            ("optimizer", OPTIMIZERS),
            ("loss", LOSSES),
            ("dtype", DTYPES),
        ):
            check_choice(name, getattr(self, name), options)
        fixed: dict[str, Any] = {}
        for name, maximum in _INT_FIELDS.items():
            fixed[name] = check_int(name, getattr(self, name), minimum=1, maximum=maximum)
        fixed["whiten_dim"] = check_int("whiten_dim", self.whiten_dim, minimum=0, maximum=_MAX_SIZE)
        fixed["predict_from"] = check_int("predict_from", self.predict_from, minimum=-1)
        fixed["seed"] = check_int("seed", self.seed, minimum=0, maximum=2**32 - 1)
        if self.limit is not None:
            fixed["limit"] = check_int("limit", self.limit, minimum=1)
        for name in ("init_scale", "sigma0", "imbalance", "learning_rate"):
            fixed[name] = check_real(name, getattr(self, name), low=0.0, low_open=True)
        if self.mnist_path is not None and not isinstance(self.mnist_path, (str, Path)):
            raise InputError(f"mnist_path must be a path (a string), got {self.mnist_path!r}")
        sv = self.teacher_sv
        if isinstance(sv, (str, bytes)) or not isinstance(sv, (tuple, list)) or not sv:
            raise InputError(f"teacher_sv must be a non-empty list of positive numbers, got {sv!r}")
        fixed["teacher_sv"] = tuple(
            check_real(f"teacher_sv[{i}]", v, low=0.0, low_open=True) for i, v in enumerate(sv)
        )
        if self.data == "teacher" and len(sv) > min(fixed["input_dim"], fixed["output_dim"]):
            raise InputError(
                f"teacher_sv has {len(sv)} values, more than min(input_dim, output_dim) = "
                f"{min(fixed['input_dim'], fixed['output_dim'])}"
            )
        widest = max(("width", "input_dim", "output_dim"), key=lambda name: fixed[name])
        weights = fixed["depth"] * fixed[widest] ** 2
        if weights > MAX_PARAMETERS:
            raise InputError(
                f"depth {fixed['depth']} x {widest} {fixed[widest]} makes about {weights:.3g} weights, more "
                f"than {MAX_PARAMETERS:.0e}: lower {widest} or depth"
            )
        if self.init == "aligned" and self.model != "linear":
            raise InputError("init 'aligned' is for deep linear networks (model 'linear')")
        if self.data == "mnist" and not self.mnist_path:
            raise InputError("data 'mnist' needs mnist_path (a folder of IDX files or an .npz)")
        if self.model == "linear" and self.loss != "mse" and self.init == "aligned":
            raise InputError("the aligned deep-linear predictions assume the mse loss")
        return dataclasses.replace(self, **fixed)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def load_config(path: str | Path | None = None, **overrides) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML or JSON file, then ``overrides`` (``None`` values ignored).

    Example:
        >>> load_config(steps=100, depth=2).depth
        2
    """
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise InputError(f"no such config file: {path}")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"cannot read {path}: {' '.join(str(err).split())[:150]}") from None
        yaml = None if path.suffix == ".json" else optional_import("yaml", "train")
        try:
            values = json.loads(text) if yaml is None else (yaml.safe_load(text) or {})
        except Exception as err:
            raise InputError(f"cannot parse {path}: {' '.join(str(err).split())[:150]}") from err
        if not isinstance(values, dict):
            raise InputError(f"{path} must hold a mapping of option names to values")
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"unknown config keys: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if isinstance(values.get("teacher_sv"), list):  # YAML and JSON give lists
        values["teacher_sv"] = tuple(values["teacher_sv"])
    for name in ("learning_rate", "init_scale", "sigma0", "imbalance"):
        if isinstance(values.get(name), str):
            try:
                values[name] = float(values[name])
            except ValueError:
                raise InputError(f"{name} must be a number, got {values[name]!r}") from None
    return TrainConfig(**values).validate()


def _make_data(cfg: TrainConfig, dtype) -> Dataset:
    if cfg.data == "teacher":
        ds, _ = teacher(
            jax.random.fold_in(jax.random.key(cfg.seed), 1),
            cfg.input_dim,
            cfg.output_dim,
            cfg.num_samples,
            cfg.teacher_sv,
            dtype=dtype,
        )
        return ds
    whiten_dim = cfg.whiten_dim if cfg.whiten_dim else None
    if cfg.data == "digits":
        ds = digits(whiten_dim=whiten_dim, limit=cfg.limit, dtype=dtype)
    else:
        ds = load_mnist(cfg.mnist_path, limit=cfg.limit, whiten_dim=whiten_dim, dtype=dtype)
    return ds


def _target_modes(ds: Dataset):
    """Singular vectors and values of the least-squares target map ``Sigma_yx Sigma_xx^{-1}``."""
    u, s, vt = target_svd(*input_output_statistics(ds))
    return (u, vt.T), s


def alignment_start_index(
    result: TrainResult,
    target_basis: tuple[Float[ArrayLike, "d_out R"], Float[ArrayLike, "d_in R"]],
    threshold: float = 0.9,
    *,
    target_strengths: Float[ArrayLike, " R"] | None = None,
    cluster_rtol: float = 0.1,
) -> Int[np.ndarray, " k"]:
    """Per mode, the first record where the end-to-end mode is aligned with the target's mode.

    Alignment of mode ``r``: ``||P_U u_r|| ||P_V v_r|| >= threshold`` with ``P_U``, ``P_V`` the projections on
    the target's singular vectors of the modes whose strengths are within ``cluster_rtol`` of ``s_r`` (chained
    along the sorted strengths): ``|<u_r, u*_r>| |<v_r, v*_r>|`` for well-separated targets, and the subspace
    overlap for nearly degenerate ones (class-balanced labels), whose individual singular vectors are not
    defined. Modes are predicted independently, so each prediction can start once its own mode has aligned.

    Args:
        result: a run tracked with ``u`` and ``v``.
        target_basis: ``(U* (d_out, >= k), V* (d_in, >= k))``.
        threshold: alignment needed.
        target_strengths: ``(>= k,)`` the target's singular values (default: all modes distinct).
        cluster_rtol: relative gap below which neighbouring target modes form one cluster.

    Returns:
        ``(R,)`` ints; 0 for a mode that starts aligned, the last record but one for a mode that never aligns.
    """
    u, v = np.asarray(result.tracked["u"]), np.asarray(result.tracked["v"])
    k = u.shape[-1]
    tu, tv = (np.asarray(b) for b in target_basis)
    cluster = np.arange(tu.shape[1])
    if target_strengths is not None:
        strengths = np.asarray(target_strengths, dtype=float)
        for r in range(1, strengths.size):
            close = abs(strengths[r - 1] - strengths[r]) <= cluster_rtol * abs(strengths[r - 1])
            cluster[r] = cluster[r - 1] if close else r
    last = u.shape[0] - 2
    starts = []
    for r in range(k):
        members = np.nonzero(cluster == cluster[r])[0]
        overlap = np.linalg.norm(np.einsum("ti,im->tm", u[:, :, r], tu[:, members]), axis=1) * np.linalg.norm(
            np.einsum("ti,im->tm", v[:, :, r], tv[:, members]), axis=1
        )
        ok = np.nonzero(overlap >= threshold)[0]
        starts.append(min(int(ok[0]), last) if ok.size else last)
    return np.asarray(starts, dtype=int)


# Fields that do not change the trajectory: how long it runs, where predictions start, where the data file
# lies (the data itself is compared by its checksum).
_FREE_ON_RESUME = ("steps", "predict_from", "mnist_path")


def run_signature(cfg: TrainConfig, data: Dataset) -> dict[str, Any]:
    """The settings that fix a run's trajectory: every config field but ``steps``, ``predict_from`` and
    ``mnist_path``, plus ``data_sha256``, a checksum of the training inputs and targets.

    A resumed run must have the same signature (:func:`jaxspec.training.check_signature`).

    Example:
        >>> sorted(run_signature(TrainConfig(), data))[:3]  # doctest: +SKIP
        ['data', 'data_sha256', 'depth']
    """
    signature = {k: v for k, v in cfg.to_dict().items() if k not in _FREE_ON_RESUME}
    digest = hashlib.sha256()
    for array in (data.x, data.y):
        array = np.ascontiguousarray(np.asarray(array))
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    signature["data_sha256"] = digest.hexdigest()
    return signature


def _optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    if cfg.optimizer == "sgd":
        return optax.sgd(cfg.learning_rate)
    if cfg.optimizer == "momentum":
        return optax.sgd(cfg.learning_rate, momentum=0.9)
    return optax.adam(cfg.learning_rate)


def run_experiment(
    cfg: TrainConfig,
    *,
    progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
) -> tuple[TrainResult, DynamicsComparison, xr.Dataset]:
    """Train as ``cfg`` says, track the spectral quantities, and run the predictions beside the measurement.

    Args:
        cfg: the experiment.
        progress: tqdm progress bar.
        checkpoint_dir, checkpoint_every, resume: as in :func:`jaxspec.training.train`; the checkpoints carry
            :func:`run_signature`, so resuming with any setting changed but ``steps`` is refused.

    Returns:
        ``(result, comparison, dataset)``: :class:`TrainResult`, :class:`jaxspec.training.DynamicsComparison`,
        ``xarray.Dataset``.

    Raises:
        TrainingDivergedError: the loss became non-finite; besides its ``result`` it carries ``dataset``,
            the records up to the last finite one as an ``xarray.Dataset`` without predictions.

    Example:
        >>> result, comparison, ds = run_experiment(TrainConfig(steps=500), progress=False)  # doctest: +SKIP

    References:
        Saxe et al., arXiv:1312.6120; Arora et al., arXiv:1802.06509; Haas et al., arXiv:2602.12384.
    """
    cfg = cfg.validate()
    if cfg.dtype == "float64" and not jax.config.jax_enable_x64:
        raise InputError("dtype float64 needs 64-bit JAX (jax.config.update('jax_enable_x64', True))")
    dtype = jnp.dtype(cfg.dtype)
    ds = _make_data(cfg, dtype)
    # For the teacher, Sigma_yx is the teacher's map: these are its modes (up to signs), completed to a basis.
    basis, strengths = _target_modes(ds)
    widths = (ds.input_dim,) + (cfg.width,) * (cfg.depth - 1) + (ds.output_dim,)
    key = jax.random.fold_in(jax.random.key(cfg.seed), 2)
    if cfg.init == "aligned":
        rank = min(cfg.top_k, *widths)
        ratios = cfg.imbalance ** (np.arange(cfg.depth) - (cfg.depth - 1) / 2)
        # sigma_r(0) = sigma0 s_r / s_1: distinct modes, so the singular vectors are defined from the start.
        factors = balanced_factors(cfg.sigma0 * strengths[:rank] / strengths[0], cfg.depth) * ratios[:, None]
        params = aligned_init(
            widths,
            np.asarray(basis[0])[:, :rank],
            np.asarray(basis[1])[:, :rank],
            factors,
            key=key,
            dtype=dtype,
        )
    else:
        params = deep_linear_init(key, widths, scale=cfg.init_scale, dtype=dtype)
    model = make_model(cfg.model, params, ds)
    loss_fn = make_loss(model, ds, cfg.loss)
    tracker = make_tracker(
        model,
        top_k=cfg.top_k,
        target_basis=(
            jnp.asarray(basis[0][:, : cfg.top_k], dtype),
            jnp.asarray(basis[1][:, : cfg.top_k], dtype),
        ),
    )
    try:
        result = train(
            loss_fn,
            params,
            _optimizer(cfg),
            num_steps=cfg.steps,
            log_every=cfg.log_every,
            track_fn=tracker,
            progress=progress,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every,
            resume=resume,
            signature=run_signature(cfg, ds),
        )
    except TrainingDivergedError as err:
        err.dataset = None if err.result is None else to_dataset(cfg, err.result, None, ds.name)
        raise
    if cfg.predict_from == -1:
        start = alignment_start_index(result, basis, target_strengths=strengths)
    elif cfg.predict_from > len(result.steps) - 2:
        raise InputError(
            f"predict_from={cfg.predict_from} is past the last record but one ({len(result.steps) - 2})"
        )
    else:
        start = cfg.predict_from
    sxx, syx = input_output_statistics(ds)
    comparison = compare_dynamics(
        result,
        sigma_xx=sxx,
        sigma_yx=syx,
        depth=cfg.depth,
        learning_rate=cfg.learning_rate,
        start_index=start,
        basis="target",
        target_basis=basis,
    )
    return result, comparison, to_dataset(cfg, result, comparison, ds.name)


def to_dataset(
    cfg: TrainConfig,
    result: TrainResult,
    comparison: DynamicsComparison | None,
    data_name: str = "",
) -> xr.Dataset:
    """The trajectories and predictions as an ``xarray.Dataset`` with labelled dimensions (an extra).

    Args:
        cfg: the experiment.
        result: its :class:`TrainResult` (tracked by :func:`jaxspec.training.make_tracker`).
        comparison: its :class:`DynamicsComparison`, or ``None`` for the records alone (a diverged run).
        data_name: the data set's name, stored as an attribute.

    Returns:
        ``xarray.Dataset`` over ``step, mode, layer, pair, ...``.

    Example:
        >>> ds = to_dataset(cfg, result, comparison, "teacher")  # doctest: +SKIP
    """
    xr = optional_import("xarray", "train")

    tr = {k: np.asarray(v) for k, v in result.tracked.items()}
    steps = np.asarray(result.steps)
    dims = {
        "sigma": ("step", "mode"),
        "u": ("step", "out_dim", "mode"),
        "v": ("step", "in_dim", "mode"),
        "factors": ("step", "layer", "mode"),
        "mode_kernel": ("step", "mode"),
        "layer_sv": ("step", "layer", "layer_mode"),
        "alignment": ("step", "pair", "align_mode"),
        "balancedness": ("step", "pair"),
        "end_to_end": ("step", "out_dim", "in_dim"),
        "target_projection": ("step", "mode"),
    }
    variables = {k: (dims[k], v) for k, v in tr.items() if k in dims}
    variables["loss"] = ("step", np.asarray(result.loss))
    if comparison is not None:
        variables["target_strength"] = ("mode", comparison.target)
        variables["prediction_start"] = ("mode", np.asarray(comparison.start_index))
        for name, pred in comparison.predicted.items():
            variables[f"predicted_{name}"] = (("step", "mode"), pred)
            variables[f"relative_error_{name}"] = (("step", "mode"), comparison.relative_error[name])
            variables[f"max_relative_error_{name}"] = ("mode", comparison.max_relative_error[name])
            variables[f"half_time_{name}"] = ("mode", comparison.half_time[name])
            variables[f"half_time_error_{name}"] = ("mode", comparison.half_time_error[name])
        variables["half_time_measured"] = ("mode", comparison.half_time["measured"])
    time = steps * cfg.learning_rate if comparison is None else comparison.time
    coords = {
        "step": steps,
        "time": ("step", time),
        "mode": np.arange(1, tr["sigma"].shape[1] + 1),
        "layer": np.arange(1, tr["factors"].shape[1] + 1),
        "pair": np.arange(1, tr["balancedness"].shape[1] + 1),
    }
    descriptions = {
        "sigma": "end-to-end singular values",
        "factors": "per-mode factors a_{l,r} (prod_l = sigma_r)",
        "mode_kernel": "sum_l ||d sigma_r / d W_l||^2",
        "layer_sv": "singular values of each layer (NaN-padded)",
        "alignment": "|<v_r(W_{l+1}), u_r(W_l)>|",
        "balancedness": "||W_{l+1}^T W_{l+1} - W_l W_l^T||_F",
        "target_projection": "u*_r^T E v*_r on the target's modes",
        "loss": "training loss",
        "target_strength": "s_r / c_r, the fixed point of the decoupled mode ODE",
        "prediction_start": "record index where the predictions of each mode start",
    }
    ds = xr.Dataset(variables, coords=coords)
    for name, text in descriptions.items():
        if name in ds:
            ds[name].attrs["description"] = text
    ds.attrs.update(
        {
            "config": json.dumps(cfg.to_dict()),
            "data": data_name,
            "time": "gradient-flow time t = step * learning_rate",
        }
    )
    return ds


def _replace_atomically(tmp: Path, path: Path) -> None:
    """Move the finished ``tmp`` (a file or a folder) to ``path``, replacing what is there.

    A file is replaced in one ``os.replace``; a folder (a zarr store) is swapped in by two renames, so that
    ``path`` is at every moment either the old complete store or the new one (or, between the renames, absent
    with the old one kept beside it).
    """
    if tmp.is_dir() and path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        path.rename(old)
        tmp.rename(path)
        if old.is_dir():
            shutil.rmtree(old)
        else:
            old.unlink()
    else:
        os.replace(tmp, path)


def save_experiment(ds: xr.Dataset, out_dir: str | Path, fmt: str = "zarr") -> Path:
    """Write the dataset to ``out_dir/trajectories.zarr`` (or ``.nc``) atomically and return its path.

    The dataset is written to a temporary name beside the target and renamed into place when complete, so an
    interrupted write never leaves a half-written store under the final name.

    Example:
        >>> save_experiment(ds, "run", "nc")  # doctest: +SKIP
        PosixPath('run/trajectories.nc')
    """
    if fmt not in ("zarr", "nc"):
        raise InputError(f"format must be zarr or nc, got {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"trajectories.{fmt}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=out_dir))
    try:
        if fmt == "zarr":
            ds.to_zarr(tmp, mode="w", consolidated=False)
        else:
            tmp.rmdir()
            ds.to_netcdf(tmp)
        _replace_atomically(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return path


def plot_dynamics(
    ds: xr.Dataset, path: str | Path, title: str | None = None, predictions: Sequence[str] | None = None
) -> Path:
    """Measured against predicted ``sigma_r(t)`` per mode, the relative errors, and alignment over time.

    The first panel draws, for every tracked mode, the measured ``sigma_r(t)`` (thick) beside each
    prediction (thin), the target strength (dotted), and the end values measured and predicted in words; a
    mode not learned by the end (:func:`unlearned_modes`) is named in red.

    Example:
        >>> plot_dynamics(ds, "run/dynamics.png", title="deep linear")  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    time = ds["time"].values
    sigma = ds["sigma"].values
    names = [
        n for n in PREDICTION_STYLE if f"predicted_{n}" in ds and (predictions is None or n in predictions)
    ]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.8))
    ax = axes[0]
    for r in range(sigma.shape[1]):
        color = colors[r % len(colors)]
        ax.plot(time, sigma[:, r], color=color, lw=2.2, alpha=0.55, label=f"measured sigma_{r + 1}")
        for n in names:
            ax.plot(
                time,
                ds[f"predicted_{n}"].values[:, r],
                color=color,
                ls=PREDICTION_STYLE[n][0],
                lw=1.3,
                label=PREDICTION_STYLE[n][1] if r == 0 else None,
            )
        ax.axhline(ds["target_strength"].values[r], color=color, lw=0.6, ls=(0, (1, 4)))
        if names:  # the end values, measured beside the first prediction, for every mode
            predicted_end = float(ds[f"predicted_{names[0]}"].values[-1, r])
            ax.annotate(
                f"sigma_{r + 1}: {float(sigma[-1, r]):.4g} measured, {predicted_end:.4g} predicted",
                (time[-1], float(sigma[-1, r])),
                xytext=(-4, 3),
                textcoords="offset points",
                ha="right",
                va="bottom",
                fontsize=7,
                color=color,
            )
    labelled = False
    for r, start in enumerate(np.asarray(ds["prediction_start"].values, dtype=int)):
        if start:
            ax.plot(
                time[start],
                sigma[start, r],
                "o",
                ms=6,
                mfc="none",
                color=colors[r % len(colors)],
                label=None if labelled else "prediction start (mode aligned)",
            )
            labelled = True
    ax.set_xlabel("gradient-flow time t = step x learning rate")
    ax.set_ylabel("end-to-end singular value sigma_r(t)")
    ax.set_title("measured (thick) vs predicted (thin), every mode")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)  # below: no curve hidden
    ax = axes[1]
    for r in range(sigma.shape[1]):
        color = colors[r % len(colors)]
        for n in names:
            err = np.abs(ds[f"relative_error_{n}"].values[:, r])
            ax.semilogy(
                time,
                np.where(err > 0, err, np.nan),
                color=color,
                ls=PREDICTION_STYLE[n][0],
                lw=1.2,
                label=f"mode {r + 1}: {n}" if len(names) <= 2 or r == 0 else None,
            )
    ax.set_xlabel("gradient-flow time t")
    ax.set_ylabel("|measured / predicted - 1|")
    ax.set_title("relative error per mode (colour = mode)")
    ax.legend(fontsize=7)
    ax = axes[2]
    align = ds["alignment"].values
    for p in range(align.shape[1]):
        for r in range(align.shape[2]):
            ax.plot(
                time,
                align[:, p, r],
                color=colors[r % len(colors)],
                ls=["-", "--", ":", "-."][p % 4],
                lw=1.2,
                label=f"|<v_{r + 1}(W_{p + 2}), u_{r + 1}(W_{p + 1})>|",
            )
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("gradient-flow time t")
    ax.set_ylabel("adjacent-layer alignment")
    ax.set_title("alignment of adjacent layers' singular bases")
    ax.legend(fontsize=6, ncol=2, loc="lower right")
    unlearned = unlearned_modes(ds)
    if unlearned:
        axes[0].text(
            0.02,
            0.97,
            "not learned by the end: " + ", ".join(f"mode {r}" for r in unlearned),
            transform=axes[0].transAxes,
            va="top",
            fontsize=8,
            color="crimson",
        )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if tmp.exists():
            tmp.unlink()
    return path


def unlearned_modes(ds: xr.Dataset, rtol: float = 0.1) -> list[int]:
    """The modes (numbered from 1) whose final ``sigma_r`` is not within ``rtol`` of its target strength.

    Args:
        ds: a dataset of :func:`to_dataset` (with ``sigma`` and ``target_strength``).
        rtol: relative distance to the target below which a mode counts as learned.

    Returns:
        The mode numbers, ascending (empty when every tracked mode is learned).

    Example:
        >>> unlearned_modes(ds)  # doctest: +SKIP
        [3]
    """
    final = np.asarray(ds["sigma"].values[-1], dtype=float)
    target = np.asarray(ds["target_strength"].values, dtype=float)
    return [r + 1 for r in range(final.size) if not abs(final[r] - target[r]) <= rtol * abs(target[r])]
