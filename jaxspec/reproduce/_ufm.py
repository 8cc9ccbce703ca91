"""Low-dimensional Hessian spectra of deep unconstrained feature models and of a small MLP on digits.

:func:`run_ufm` trains a deep **linear** and a deep **ReLU** UFM by full-batch gradient descent from a random
initialisation, tracking per layer the top eigenvalues of the data Hessian (Lanczos on Hessian-vector
products), the alignment ``f_cc'`` of the class-mean directions, the gradient-outlier overlap and NC1, and
measures every eigenvalue of each layer's regularised Hessian after training beside the predicted bulk
``lam_W`` and ``K^2`` outliers at ``lam_W / (1 - gamma)``
([math §6](https://jaxspec.github.io/jaxspec/math/#s6)), and the SLQ density of the full Hessian. It then
trains a small ReLU MLP on scikit-learn's digits (bundled, no download) for several numbers of classes ``C``
and counts the Hessian outliers of its head, last hidden layer and all parameters against ``C^2``.

References:
    Garrod & Keating, "Unifying low dimensional spectra in deep learning", arXiv:2404.06106; Papyan,
    arXiv:1901.08244; Gur-Ari, Roberts, Dyer, arXiv:1812.04754; Ghorbani, Krishnan, Xiao, arXiv:1901.10159.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Float, Int

from jaxspec import hessian, ufm
from jaxspec._extras import optional_import
from jaxspec.reproduce._jobs import resolve_sizes
from jaxspec.training import train

#: The UFM activations, in the order run.
ACTIVATIONS = ("linear", "relu")
#: The Hessian blocks of the digits MLP whose outliers are counted.
BLOCKS = ("head", "hidden", "full")


@dataclass(frozen=True)
class UFMSizes:
    """Problem sizes of one run (the defaults are the quick CPU preset, a few minutes).

    Attributes:
        num_classes: ``K`` of the UFMs.
        per_class: ``n``.
        depth: ``L``.
        width: ``d``.
        lam: ``lam_W = lam_H``.
        steps: gradient-descent steps.
        learning_rate: GD step size.
        init_scale: scale of the random initialisation.
        records: number of tracked records along training.
        slq_steps: Lanczos steps per SLQ probe.
        slq_probes: SLQ probes.
        digits_classes: numbers of classes of the digits runs.
        digits_hidden: hidden width of the digits MLP (two hidden layers).
        digits_steps: Adam steps per digits run.
        digits_weight_decay: weight decay of the digits MLP.
    """

    num_classes: int = 3
    per_class: int = 10
    depth: int = 4
    width: int = 6
    lam: float = 5e-3
    steps: int = 6000
    learning_rate: float = 0.2
    init_scale: float = 0.8
    records: int = 60
    slq_steps: int = 60
    slq_probes: int = 8
    digits_classes: tuple[int, ...] = (2, 4, 6, 8, 10)
    digits_hidden: int = 32
    digits_steps: int = 3000
    digits_weight_decay: float = 1e-4


#: GPU sizes of ``run_ufm(full=True)``.
FULL_UFM_SIZES = UFMSizes(
    num_classes=4,
    per_class=20,
    depth=5,
    width=10,
    lam=2e-3,
    steps=20000,
    learning_rate=0.2,
    init_scale=0.8,
    records=100,
    slq_steps=100,
    slq_probes=16,
    digits_classes=(2, 3, 4, 5, 6, 7, 8, 9, 10),
    digits_hidden=64,
    digits_steps=10000,
)


def count_outliers(
    eigenvalues: np.ndarray, max_count: int, min_count: int = 1, floor: float = 1e-9
) -> tuple[int, float]:
    """Outliers: the eigenvalues before the largest ratio ``lambda_i / lambda_{i+1}`` with ``i >= min_count``.

    ``min_count`` skips gaps inside what is known to be in the outlier cluster: the class part of the
    Gauss-Newton matrix alone has rank ``C``, and with ``min_count = C + 1`` a strongly separated sub-cluster
    of ``C`` (for example the head's ``C`` copies of the global-feature-mean direction) is not mistaken for
    the whole cluster. Values below ``floor * lambda_1`` are clipped, so an exact null space does not make an
    infinite gap.

    Args:
        eigenvalues: descending eigenvalues (NaN padding is dropped).
        max_count: the largest count considered.
        min_count: the smallest count considered.
        floor: relative floor.

    Returns:
        ``(count, gap)``: the count and the ratio ``lambda_count / lambda_{count+1}`` (how clear the edge is).

    Example:
        >>> count_outliers(np.array([5.0, 4.0, 3.0, 0.01, 0.009, 0.008]), 5)
        (3, 300.0)
        >>> count_outliers(np.array([50.0, 4.0, 3.0, 0.01, 0.009, 0.008]), 5, min_count=2)
        (3, 300.0)
    """
    values = np.asarray(eigenvalues, float)
    values = values[np.isfinite(values)][: max_count + 1]
    values = np.maximum(values, floor * values[0])
    ratios = values[:-1] / values[1:]
    index = min_count - 1 + int(np.argmax(ratios[min_count - 1 :]))
    return index + 1, float(ratios[index])


@dataclass(frozen=True)
class SpectralDensity:
    """An SLQ estimate of a Hessian's spectral density.

    Attributes:
        nodes, weights: ``(probe, node)`` Gauss quadrature of every probe (:func:`jaxspec.hessian.slq`).
        grid: ``(grid,)`` eigenvalues spanning the nodes (plus a margin).
        density: ``(grid,)`` the density, each node broadened by a Gaussian of a fixed fraction of the span.
    """

    nodes: Float[np.ndarray, "probe node"]
    weights: Float[np.ndarray, "probe node"]
    grid: Float[np.ndarray, " grid"]
    density: Float[np.ndarray, " grid"]


def _density(quad, below: float, above: float, width: float, points: int) -> SpectralDensity:
    """The density on ``[lo - below span, hi + above span]``, kernel ``width span`` (span ``hi - lo``)."""
    nodes = np.asarray(quad.nodes)
    lo, hi = float(nodes.min()), float(nodes.max())
    grid = np.linspace(lo - below * (hi - lo), hi + above * (hi - lo), points)
    return SpectralDensity(
        nodes=nodes,
        weights=np.asarray(quad.weights),
        grid=grid,
        density=np.asarray(hessian.spectral_density(quad, grid, width * (hi - lo))),
    )


@dataclass(frozen=True)
class UFMRun:
    """One deep UFM trained by gradient descent.

    Attributes:
        steps: ``(record,)`` GD step of each record.
        loss: ``(record,)`` total loss.
        tracked: :class:`jaxspec.ufm.Diagnostics` with numpy leaves and a leading ``record`` axis:
            ``top_eigenvalues (record, layer, rank)`` of the data Hessian, ``alignment`` and
            ``gradient_weights (record, layer, class, output)``, ``overlap_data`` and
            ``overlap_total (record, layer)``, ``collapse`` (NC1..NC4, ``(record, layer)`` each) and
            ``gram (record, layer, gram_rank)``.
        final_spectrum: ``(layer, index)`` every eigenvalue of each layer's regularised Hessian after
            training, descending (hidden layers ``d^2``; the head ``K d``, NaN-padded).
        slq: the SLQ density of the full Hessian (all parameters, features included).
        seconds: wall time.
    """

    steps: Int[np.ndarray, " record"]
    loss: Float[np.ndarray, " record"]
    tracked: ufm.Diagnostics
    final_spectrum: Float[np.ndarray, "layer index"]
    slq: SpectralDensity
    seconds: float


@dataclass(frozen=True)
class DigitsRuns:
    """A two-hidden-layer ReLU MLP trained on the digits of ``0..C-1`` for every ``C``.

    Attributes:
        classes: ``(C,)`` the numbers of classes.
        accuracy: ``(C,)`` training accuracy.
        loss: ``(C,)`` final loss.
        eigenvalues: block (:data:`BLOCKS`) -> ``(C, rank)`` top Hessian eigenvalues (Lanczos, NaN-padded).
        outlier_count: block -> ``(C,)`` eigenvalues before the largest gap past ``i = C``.
        gap_ratio: block -> ``(C,)`` that gap ``lambda_i / lambda_{i+1}``.
        outlier_count_any_gap: block -> ``(C,)`` eigenvalues before the largest gap anywhere.
        gap_ratio_any: block -> ``(C,)`` that gap.
        slq: the SLQ density of the full Hessian (data term) at the largest ``C``.
        num_params: parameters of that network.
    """

    classes: Int[np.ndarray, " C"]
    accuracy: Float[np.ndarray, " C"]
    loss: Float[np.ndarray, " C"]
    eigenvalues: dict[str, Float[np.ndarray, "C rank"]]
    outlier_count: dict[str, Int[np.ndarray, " C"]]
    gap_ratio: dict[str, Float[np.ndarray, " C"]]
    outlier_count_any_gap: dict[str, Int[np.ndarray, " C"]]
    gap_ratio_any: dict[str, Float[np.ndarray, " C"]]
    slq: SpectralDensity
    num_params: int


@dataclass(frozen=True)
class UFMResult:
    """Everything :func:`run_ufm` measured, with the linear theory beside it.

    Attributes:
        sizes: the sizes of the run.
        theory: :class:`jaxspec.ufm.CollapsedOptimum` of the linear UFM (``outlier``, ``one_minus_gamma``).
        runs: ``"linear"``, ``"relu"`` -> :class:`UFMRun`.
        digits: the digits MLPs.
        summary: outliers, bulk, NC1, ``f_cc'``, overlaps and the digits counts (``ufm_summary.json``).
    """

    sizes: UFMSizes
    theory: ufm.CollapsedOptimum
    runs: dict[str, UFMRun]
    digits: DigitsRuns
    summary: dict[str, Any]

    def training_dataset(self):
        """Both UFM runs as a labelled ``xarray.Dataset`` (``ufm_training.nc``; needs xarray)."""
        xr = optional_import("xarray", "figures")

        data, coords = {}, {}
        for activation, run in self.runs.items():
            tr, step = run.tracked, f"{activation}_step"
            coords[step] = run.steps
            data[f"{activation}_loss"] = ((step,), run.loss)
            data[f"{activation}_top_eigenvalues"] = ((step, "layer", "rank"), tr.top_eigenvalues)
            data[f"{activation}_alignment"] = ((step, "layer", "class", "output"), tr.alignment)
            data[f"{activation}_gradient_weights"] = ((step, "layer", "class", "output"), tr.gradient_weights)
            data[f"{activation}_overlap_data"] = ((step, "layer"), tr.overlap_data)
            data[f"{activation}_overlap_total"] = ((step, "layer"), tr.overlap_total)
            for name in ("nc1", "nc2_equinorm", "nc2_angle", "nc3", "nc4"):
                data[f"{activation}_{name}"] = ((step, "layer"), getattr(tr.collapse, name))
            data[f"{activation}_gram"] = ((step, "layer", "gram_rank"), tr.gram)
            data[f"{activation}_final_spectrum"] = (("layer", "index"), run.final_spectrum)
            data[f"{activation}_slq_nodes"] = (("probe", "node"), run.slq.nodes)
            data[f"{activation}_slq_weights"] = (("probe", "node"), run.slq.weights)
        attrs = {
            f"theory_{k}": float(v)
            for k, v in self.theory._asdict().items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        attrs.update(
            {
                f"size_{k}": (np.asarray(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self.sizes).items()
            }
        )
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def digits_dataset(self):
        """The digits runs as a labelled ``xarray.Dataset`` (``digits_spectrum.nc``; needs xarray)."""
        xr = optional_import("xarray", "figures")

        d = self.digits
        data = {}
        for fields, suffix in (
            (d.eigenvalues, "eigenvalues"),
            (d.outlier_count, "outlier_count"),
            (d.gap_ratio, "gap_ratio"),
            (d.outlier_count_any_gap, "outlier_count_any_gap"),
        ):
            dims = ("classes", "rank") if suffix == "eigenvalues" else ("classes",)
            data.update({f"{name}_{suffix}": (dims, fields[name]) for name in BLOCKS})
        data.update(
            {
                "train_accuracy": (("classes",), d.accuracy),
                "final_loss": (("classes",), d.loss),
                "slq_nodes": (("probe", "node"), d.slq.nodes),
                "slq_weights": (("probe", "node"), d.slq.weights),
            }
        )
        return xr.Dataset(
            data, coords={"classes": d.classes}, attrs={"num_params_full_hessian": int(d.num_params)}
        )


# --- deep UFM -----------------------------------------------------------------------------------------------


def _train_ufm(model: ufm.UFM, sizes: UFMSizes, seed: int, progress: bool) -> UFMRun:
    start = time.perf_counter()
    result = ufm.train_ufm(
        model,
        key=jax.random.key(seed),
        init_scale=sizes.init_scale,
        num_steps=sizes.steps,
        learning_rate=sizes.learning_rate,
        log_every=max(1, sizes.steps // sizes.records),
        progress=progress,
    )
    params = result.params

    def layer_spectrum(layer, p):
        weight, restricted = ufm.layer_block(model, p, layer, regularised=True)
        return jnp.linalg.eigvalsh(hessian.dense_hessian(restricted, weight))[::-1]

    # Every eigenvalue of each layer's regularised Hessian (hidden layers d^2, head K d: padded with NaN).
    hidden = (
        jax.jit(lambda p: jax.vmap(lambda l: layer_spectrum(l, p))(jnp.arange(model.depth - 1)))(params)
        if model.depth > 1
        else np.zeros((0, sizes.width**2))
    )
    head = jax.jit(lambda p: layer_spectrum(model.depth - 1, p))(params)
    spectra = np.full((model.depth, sizes.width**2), np.nan)
    spectra[:-1] = np.asarray(hidden)
    spectra[-1, : head.shape[0]] = np.asarray(head)
    quad = jax.jit(
        lambda p, key: hessian.slq(
            hessian.hessian_matvec(lambda q: ufm.loss(model, q), p),
            p,
            num_steps=sizes.slq_steps,
            num_probes=sizes.slq_probes,
            key=key,
        )
    )(params, jax.random.key(seed + 1))
    return UFMRun(
        steps=np.asarray(result.steps),
        loss=np.asarray(result.loss),
        tracked=jax.tree.map(np.asarray, result.tracked),
        final_spectrum=spectra,
        slq=_density(quad, 0.05, 0.05, 0.01, 2000),
        seconds=time.perf_counter() - start,
    )


def _ufm_summary(run: UFMRun, sizes: UFMSizes) -> dict:
    K2 = sizes.num_classes**2
    tr = run.tracked
    top = tr.top_eigenvalues[-1]
    return {
        "final_loss": float(run.loss[-1]),
        "outliers_per_layer": top[:, :K2].tolist(),
        "outlier_rel_spread": ((top[:, :K2].max(axis=1) - top[:, :K2].min(axis=1)) / top[:, 0]).tolist(),
        "first_bulk_eigenvalue": top[:, K2].tolist() if top.shape[1] > K2 else None,
        "nc1_final": tr.collapse.nc1[-1].tolist(),
        "f_cc_final_mean": tr.alignment[-1].mean(axis=(1, 2)).tolist(),
        "overlap_data_final": tr.overlap_data[-1].tolist(),
        "overlap_total_final": tr.overlap_total[-1].tolist(),
        "gram_final": tr.gram[-1].tolist(),
        "seconds": run.seconds,
    }


# --- digits MLP ---------------------------------------------------------------------------------------------


def _digits_runs(sizes: UFMSizes, seed: int, progress: bool) -> DigitsRuns:
    load_digits = optional_import("sklearn.datasets", "figures").load_digits

    images, targets = load_digits(return_X_y=True)
    images = images / 16.0
    images = (images - images.mean(axis=0)).astype(np.float32)
    hidden = sizes.digits_hidden
    out = {key: [] for key in ("accuracy", "loss")}
    for name in BLOCKS:
        out.update({f"{name}_{what}": [] for what in ("eigs", "count", "gap", "count_any", "gap_any")})
    max_c = max(sizes.digits_classes)
    k = 2 * max_c**2 + 10
    for num_classes in sizes.digits_classes:
        mask = targets < num_classes
        x = jnp.asarray(images[mask])
        y = jax.nn.one_hot(targets[mask], num_classes)
        widths = (64, hidden, hidden, num_classes)
        keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), num_classes), 3)
        params = [
            {
                "w": jax.random.normal(keys[i], (widths[i], widths[i + 1])) * np.sqrt(2.0 / widths[i]),
                "b": jnp.zeros(widths[i + 1]),
            }
            for i in range(3)
        ]

        def predict(p, x=x):
            h = x
            for i, layer in enumerate(p):
                h = jnp.matmul(h, layer["w"], precision=jax.lax.Precision.HIGHEST) + layer["b"]
                h = jax.nn.relu(h) if i < len(p) - 1 else h
            return h

        def data_loss(p, y=y, predict=predict):
            return 0.5 * jnp.mean(jnp.sum((predict(p) - y) ** 2, axis=1))

        def loss(p, data_loss=data_loss):
            decay = sum(jnp.sum(layer["w"] ** 2) for layer in p)
            return data_loss(p) + 0.5 * sizes.digits_weight_decay * decay

        res = train(
            loss,
            params,
            optax.adam(1e-3),
            num_steps=sizes.digits_steps,
            log_every=max(1, sizes.digits_steps // 10),
            progress=progress,
        )
        p = res.params
        out["accuracy"].append(float(jnp.mean(jnp.argmax(predict(p), axis=1) == targets[mask])))
        out["loss"].append(float(res.loss[-1]))
        blocks = {
            "head": hessian.block_loss(data_loss, p, hessian.path_mask(p, 2, "w")),
            "hidden": hessian.block_loss(data_loss, p, hessian.path_mask(p, 1, "w")),
            "full": (p, data_loss),
        }
        for name, (block, block_fn) in blocks.items():
            size = hessian.num_parameters(block)
            kk = min(k, size)
            top = jax.jit(
                lambda b, f=block_fn, kk=kk, size=size: (
                    hessian.lanczos_eigh(
                        hessian.hessian_matvec(f, b), b, kk, num_steps=min(size, 2 * kk + 20)
                    ).eigenvalues
                )
            )(block)
            eigs = np.full(k, np.nan)
            eigs[:kk] = np.asarray(top)
            limit = min(2 * num_classes**2 + 10, kk - 1)
            # Beyond the first C (the class sub-cluster, often split off by the global feature mean), and
            # anywhere (which may stop right after that sub-cluster).
            count, gap = count_outliers(eigs, limit, min_count=num_classes + 1)
            count_any, gap_any = count_outliers(eigs, limit)
            for what, value in (
                ("eigs", eigs),
                ("count", count),
                ("gap", gap),
                ("count_any", count_any),
                ("gap_any", gap_any),
            ):
                out[f"{name}_{what}"].append(value)
        if num_classes == max_c:
            density = jax.jit(
                lambda q, key, data_loss=data_loss: hessian.slq(
                    hessian.hessian_matvec(data_loss, q),
                    q,
                    num_steps=2 * sizes.slq_steps,
                    num_probes=sizes.slq_probes,
                    key=key,
                )
            )
            slq = _density(density(p, jax.random.key(seed + 2)), 0.02, 0.05, 0.005, 3000)
            num_params = hessian.num_parameters(p)
    return DigitsRuns(
        classes=np.asarray(sizes.digits_classes),
        accuracy=np.asarray(out["accuracy"]),
        loss=np.asarray(out["loss"]),
        eigenvalues={n: np.stack(out[f"{n}_eigs"]) for n in BLOCKS},
        outlier_count={n: np.asarray(out[f"{n}_count"]) for n in BLOCKS},
        gap_ratio={n: np.asarray(out[f"{n}_gap"]) for n in BLOCKS},
        outlier_count_any_gap={n: np.asarray(out[f"{n}_count_any"]) for n in BLOCKS},
        gap_ratio_any={n: np.asarray(out[f"{n}_gap_any"]) for n in BLOCKS},
        slq=slq,
        num_params=num_params,
    )


def _digits_summary(d: DigitsRuns) -> dict:
    summary = {
        "classes": d.classes.tolist(),
        "train_accuracy": d.accuracy.tolist(),
        "predicted_count": [int(c * c) for c in d.classes],
    }
    for name in BLOCKS:
        summary[f"{name}_outlier_count"] = d.outlier_count[name].tolist()
        summary[f"{name}_gap_ratio"] = d.gap_ratio[name].tolist()
        summary[f"{name}_outlier_count_any_gap"] = d.outlier_count_any_gap[name].tolist()
    return summary


def run_ufm(*, full: bool = False, seed: int = 0, progress: bool = True, **overrides: Any) -> UFMResult:
    """Train the deep linear and ReLU UFMs and the digits MLPs; measure their Hessian spectra.

    Args:
        full: GPU sizes (:data:`FULL_UFM_SIZES`) instead of the quick :class:`UFMSizes` defaults.
        seed: base random seed.
        progress: progress bars.
        **overrides: fields of :class:`UFMSizes` replacing those of the preset.

    Returns:
        A :class:`UFMResult`.

    Example:
        >>> res = run_ufm(num_classes=2, per_class=3, depth=2, width=3, steps=200, records=10,
        ...               digits_classes=(2, 3), digits_hidden=8, digits_steps=100, progress=False)  #
        doctest: +SKIP
        >>> res.runs["linear"].final_spectrum.shape  # doctest: +SKIP
        (2, 9)

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    sizes = resolve_sizes(UFMSizes(), FULL_UFM_SIZES, full, overrides)
    start = time.perf_counter()
    with jax.default_matmul_precision("highest"):
        models = {
            activation: ufm.make_ufm(
                sizes.num_classes,
                sizes.per_class,
                sizes.depth,
                sizes.lam,
                width=sizes.width,
                activation=activation,
            )
            for activation in ACTIVATIONS
        }
        runs = {activation: _train_ufm(model, sizes, seed, progress) for activation, model in models.items()}
        theory = ufm.collapsed_optimum(models["linear"])
        digits = _digits_runs(sizes, seed, progress)
    summary = {
        "sizes": asdict(sizes),
        "theory": dict(theory._asdict()),
        "seconds": time.perf_counter() - start,
        "ufm": {activation: _ufm_summary(run, sizes) for activation, run in runs.items()},
        "digits": _digits_summary(digits),
    }
    return UFMResult(sizes=sizes, theory=theory, runs=runs, digits=digits, summary=summary)
