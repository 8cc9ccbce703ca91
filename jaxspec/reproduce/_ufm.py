"""Reproduce the low-dimensional spectra of deep unconstrained feature models and of a small MLP on digits.

``jaxspec figures ufm [--out DIR] [--full]`` (or ``python scripts/reproduce_ufm.py``) trains a deep **linear**
and a deep **ReLU** UFM by full-batch gradient descent from a random initialisation, tracking per layer the
top eigenvalues of the data Hessian (Lanczos on Hessian-vector products), the alignment ``f_cc'`` of the
class-mean directions, the gradient-outlier overlap and NC1, then trains a small ReLU MLP on scikit-learn's
digits (bundled, no download) for several numbers of classes. It writes

* ``ufm_spectrum.png``: every eigenvalue of each layer's Hessian (weight decay included) after training,
  beside
  the predicted bulk ``lam_W`` and ``K^2`` outliers at ``lam_W / (1 - gamma)``, and the SLQ density of the
  full Hessian (all parameters, features included);
* ``ufm_outliers_training.png``: the top eigenvalues of one layer during training: the ``K^2`` outliers
  separate
  from the bulk and, for the linear UFM, equalise at the prediction; for the ReLU UFM they separate but do not
  equalise (measured, not predicted);
* ``ufm_alignment.png``: ``f_cc'`` rising to 1 and the gradient-outlier overlaps;
* ``ufm_nc1.png``: NC1 per layer falling;
* ``digits_spectrum.png``: the SLQ density of the full Hessian of a ReLU MLP trained on digits, the head's top
  eigenvalues, and the number of outliers counted against the number of classes ``C`` (reference ``C^2``);
* ``ufm_training.nc`` and ``digits_spectrum.nc`` (labelled xarray datasets), ``ufm_summary.json`` / ``.md``.

References:
    Garrod & Keating, "Unifying low dimensional spectra in deep learning", arXiv:2404.06106; Papyan,
    arXiv:1901.08244; Gur-Ari, Roberts, Dyer, arXiv:1812.04754; Ghorbani, Krishnan, Xiao, arXiv:1901.10159.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import typer

__all__ = ["UFMSizes", "count_outliers", "default_sizes", "print_summary", "register", "run"]


@dataclass(frozen=True)
class UFMSizes:
    """Problem sizes of one reproduction run.

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


def default_sizes(full: bool = False) -> UFMSizes:
    """CPU sizes (a few minutes), or ``full`` sizes for a GPU."""
    if not full:
        return UFMSizes()
    return UFMSizes(num_classes=4, per_class=20, depth=5, width=10, lam=2e-3, steps=20000, learning_rate=0.2,
                    init_scale=0.8, records=100, slq_steps=100, slq_probes=16,
                    digits_classes=(2, 3, 4, 5, 6, 7, 8, 9, 10), digits_hidden=64, digits_steps=10000)


def count_outliers(eigenvalues: np.ndarray, max_count: int, min_count: int = 1,
                   floor: float = 1e-9) -> tuple[int, float]:
    """Outliers: the eigenvalues before the largest ratio ``lambda_i / lambda_{i+1}`` with ``i >= min_count``.

    ``min_count`` skips gaps inside what is known to be in the outlier cluster: the class part of the
    Gauss-Newton matrix alone has rank ``C``, and with ``min_count = C + 1`` a strongly separated sub-cluster
    of ``C`` (for example the head's ``C`` copies of the global-feature-mean direction) is not mistaken for
    the whole cluster. Values below ``floor * lambda_1`` are clipped, so an exact null space does not make an
    infinite gap.

    Args:
        eigenvalues: descending eigenvalues.
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
    index = min_count - 1 + int(np.argmax(ratios[min_count - 1:]))
    return index + 1, float(ratios[index])


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


# --- deep UFM -----------------------------------------------------------------------------------------------


def _train_ufms(sizes: UFMSizes, seed: int, progress: bool) -> dict:
    import jax

    from jaxspec import hessian, ufm

    runs = {}
    for activation in ("linear", "relu"):
        model = ufm.make_ufm(sizes.num_classes, sizes.per_class, sizes.depth, sizes.lam, width=sizes.width,
                             activation=activation)
        start = time.perf_counter()
        result = ufm.train_ufm(model, key=jax.random.key(seed), init_scale=sizes.init_scale,
                               num_steps=sizes.steps, learning_rate=sizes.learning_rate,
                               log_every=max(1, sizes.steps // sizes.records), progress=progress)
        params = result.params

        def layer_spectrum(layer, _key, params=params, model=model):
            weight, restricted = ufm.layer_block(model, params, layer, regularised=True)
            return jax.numpy.linalg.eigvalsh(hessian.dense_hessian(restricted, weight))[::-1]

        # Every eigenvalue of each layer's regularised Hessian (hidden layers d^2, head K d: padded with NaN).
        hidden = jax.jit(lambda p, model=model: jax.vmap(lambda l: layer_spectrum(l, None, p))(
            jax.numpy.arange(model.depth - 1)))(params) if model.depth > 1 else np.zeros((0, sizes.width**2))
        head = jax.jit(lambda p, model=model: layer_spectrum(model.depth - 1, None, p))(params)
        spectra = np.full((model.depth, sizes.width**2), np.nan)
        spectra[:-1] = np.asarray(hidden)
        spectra[-1, : head.shape[0]] = np.asarray(head)
        quad = jax.jit(lambda p, key, model=model: hessian.slq(hessian.hessian_matvec(
            lambda q: ufm.loss(model, q), p), p, num_steps=sizes.slq_steps, num_probes=sizes.slq_probes,
            key=key))(params, jax.random.key(seed + 1))
        runs[activation] = {"model": model, "result": result, "spectra": spectra, "slq": quad,
                            "seconds": time.perf_counter() - start}
    return runs


def _plot_spectrum(runs: dict, theory, sizes: UFMSizes, path: Path) -> None:
    plt = _pyplot()

    from jaxspec import hessian

    K2 = sizes.num_classes**2
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    for ax, activation in zip(axes[:2], ("linear", "relu"), strict=True):
        spectra = runs[activation]["spectra"]
        for layer, row in enumerate(spectra):
            row = row[np.isfinite(row)]
            ax.semilogy(np.arange(1, row.size + 1), row, "o-", ms=3, lw=0.8, label=f"layer {layer + 1}")
        ax.axhline(sizes.lam / theory.one_minus_gamma, color="k", ls="--", lw=1,
                   label=r"outliers $\lambda_W/(1-\gamma)$ (linear theory)")
        ax.axhline(sizes.lam, color="grey", ls=":", lw=1, label=r"bulk $\lambda_W$")
        ax.axvline(K2 + 0.5, color="tab:red", ls=":", lw=1, label=f"$K^2$ = {K2}")
        ax.set_xscale("log")
        ax.set_xlabel("eigenvalue index")
        ax.set_ylabel("eigenvalue of the layer-wise Hessian")
        ax.set_title(f"{activation} UFM after {sizes.steps} GD steps")
        ax.legend(fontsize=7)
    ax = axes[2]
    for activation, color in (("linear", "tab:blue"), ("relu", "tab:orange")):
        quad = runs[activation]["slq"]
        nodes = np.asarray(quad.nodes)
        lo, hi = float(nodes.min()), float(nodes.max())
        grid = np.linspace(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo), 2000)
        density = np.asarray(hessian.spectral_density(quad, grid, 0.01 * (hi - lo)))
        ax.semilogy(grid, np.maximum(density, 1e-8), color=color, label=f"{activation} UFM (SLQ)")
    ax.axvline(sizes.lam / theory.one_minus_gamma, color="k", ls="--", lw=1,
               label="layer-wise outlier (theory)")
    ax.set_ylim(1e-6, None)
    ax.set_xlabel("eigenvalue of the full Hessian (all parameters)")
    ax.set_ylabel("spectral density")
    ax.set_title("full Hessian: bulk plus outliers")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _plot_outliers(runs: dict, theory, sizes: UFMSizes, layer: int, path: Path) -> None:
    plt = _pyplot()

    K2 = sizes.num_classes**2
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, activation in zip(axes, ("linear", "relu"), strict=True):
        res = runs[activation]["result"]
        steps = np.asarray(res.steps)
        eigs = np.asarray(res.tracked.top_eigenvalues)[:, layer]
        for i in range(eigs.shape[1]):
            ax.plot(steps, np.maximum(eigs[:, i], 1e-9), color="tab:blue" if i < K2 else "tab:grey",
                    lw=1.2 if i < K2 else 0.8, label=(f"top {K2} (outliers)" if i == 0 else
                                                      ("next (bulk)" if i == K2 else None)))
        ax.axhline(theory.outlier, color="k", ls="--", lw=1, label=r"theory $\lambda_W\gamma/(1-\gamma)$")
        ax.set_yscale("log")
        ax.set_ylim(1e-7, None)
        ax.set_xlabel("GD step")
        ax.set_title(f"{activation} UFM, layer {layer + 1}: data Hessian")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("top eigenvalues (Lanczos)")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _plot_alignment(runs: dict, sizes: UFMSizes, path: Path) -> None:
    plt = _pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.cm.viridis(np.linspace(0, 0.9, sizes.depth))
    for activation, ls in (("linear", "-"), ("relu", "--")):
        res = runs[activation]["result"]
        steps = np.asarray(res.steps)
        align = np.asarray(res.tracked.alignment)  # (T, L, K, K)
        for layer in range(sizes.depth):
            axes[0].plot(steps, align[:, layer].mean(axis=(1, 2)), ls, color=colors[layer],
                         label=f"{activation}, layer {layer + 1}")
        axes[1].plot(steps, np.asarray(res.tracked.overlap_data).mean(axis=1), ls, color="tab:blue",
                     label=f"{activation}: data gradient")
        axes[1].plot(steps, np.asarray(res.tracked.overlap_total).mean(axis=1), ls, color="tab:orange",
                     label=f"{activation}: full gradient (-> 0 at the optimum)")
    axes[0].axhline(1.0, color="k", ls=":", lw=1, label="theory (collapse): 1")
    axes[0].set_xlabel("GD step")
    axes[0].set_ylabel(r"mean over $c, c'$ of $f_{cc'}$")
    axes[0].set_title(r"$f_{cc'} = |v^T H v|^2 / (\|v\|^2 \|Hv\|^2)$, $v$ = class-mean gradients")
    axes[0].legend(fontsize=6, ncol=2)
    axes[1].axhline(1.0, color="k", ls=":", lw=1, label="theory (data gradient at collapse): 1")
    axes[1].set_xlabel("GD step")
    axes[1].set_ylabel(r"$\|P_{top} g\|^2 / \|g\|^2$ (mean over layers)")
    axes[1].set_title(f"gradient in the top-{sizes.num_classes ** 2} Hessian subspace")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _plot_nc1(runs: dict, sizes: UFMSizes, path: Path) -> None:
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colors = plt.cm.viridis(np.linspace(0, 0.9, sizes.depth))
    for activation, ls in (("linear", "-"), ("relu", "--")):
        res = runs[activation]["result"]
        nc1 = np.asarray(res.tracked.collapse.nc1)
        for layer in range(sizes.depth):
            ax.semilogy(np.asarray(res.steps), np.maximum(nc1[:, layer], 1e-15), ls, color=colors[layer],
                        label=f"{activation}, " + ("H (input)" if layer == 0 else f"h after layer {layer}"))
    ax.set_xlabel("GD step")
    ax.set_ylabel(r"NC1 = Tr$(\Sigma_W \Sigma_B^+)/K$")
    ax.set_title("within-class variability collapses at every layer (theory: 0)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _ufm_dataset(runs: dict, theory, sizes: UFMSizes):
    import xarray as xr

    data, coords = {}, {}
    for activation, run_ in runs.items():
        res, tr = run_["result"], run_["result"].tracked
        coords[f"{activation}_step"] = np.asarray(res.steps)
        step = f"{activation}_step"
        data[f"{activation}_loss"] = ((step,), np.asarray(res.loss))
        data[f"{activation}_top_eigenvalues"] = ((step, "layer", "rank"), np.asarray(tr.top_eigenvalues))
        data[f"{activation}_alignment"] = ((step, "layer", "class", "output"), np.asarray(tr.alignment))
        data[f"{activation}_gradient_weights"] = ((step, "layer", "class", "output"),
                                                  np.asarray(tr.gradient_weights))
        data[f"{activation}_overlap_data"] = ((step, "layer"), np.asarray(tr.overlap_data))
        data[f"{activation}_overlap_total"] = ((step, "layer"), np.asarray(tr.overlap_total))
        for name in ("nc1", "nc2_equinorm", "nc2_angle", "nc3", "nc4"):
            data[f"{activation}_{name}"] = ((step, "layer"), np.asarray(getattr(tr.collapse, name)))
        data[f"{activation}_gram"] = ((step, "layer", "gram_rank"), np.asarray(tr.gram))
        data[f"{activation}_final_spectrum"] = (("layer", "index"), run_["spectra"])
        data[f"{activation}_slq_nodes"] = (("probe", "node"), np.asarray(run_["slq"].nodes))
        data[f"{activation}_slq_weights"] = (("probe", "node"), np.asarray(run_["slq"].weights))
    attrs = {f"theory_{k}": float(v) for k, v in theory._asdict().items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)}
    attrs.update({f"size_{k}": (list(v) if isinstance(v, tuple) else v) for k, v in asdict(sizes).items()})
    attrs = {k: (np.asarray(v) if isinstance(v, list) else v) for k, v in attrs.items()}
    return xr.Dataset(data, coords=coords, attrs=attrs)


# --- digits MLP ---------------------------------------------------------------------------------------------


def _digits_runs(sizes: UFMSizes, seed: int, progress: bool) -> dict:
    import jax
    import jax.numpy as jnp
    import optax
    from sklearn.datasets import load_digits

    from jaxspec import hessian
    from jaxspec.training import train

    images, targets = load_digits(return_X_y=True)
    images = images / 16.0
    images = (images - images.mean(axis=0)).astype(np.float32)
    hidden = sizes.digits_hidden
    out = {key: [] for key in ("classes", "accuracy", "loss")}
    for name in ("head", "hidden", "full"):
        out.update({f"{name}_{what}": [] for what in ("eigs", "count", "gap", "count_any", "gap_any")})
    max_c = max(sizes.digits_classes)
    k = 2 * max_c**2 + 10
    for num_classes in sizes.digits_classes:
        mask = targets < num_classes
        x = jnp.asarray(images[mask])
        y = jax.nn.one_hot(targets[mask], num_classes)
        widths = (64, hidden, hidden, num_classes)
        keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), num_classes), 3)
        params = [{"w": jax.random.normal(keys[i], (widths[i], widths[i + 1])) * np.sqrt(2.0 / widths[i]),
                   "b": jnp.zeros(widths[i + 1])} for i in range(3)]

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

        res = train(loss, params, optax.adam(1e-3), num_steps=sizes.digits_steps,
                    log_every=max(1, sizes.digits_steps // 10), progress=progress)
        p = res.params
        accuracy = float(jnp.mean(jnp.argmax(predict(p), axis=1) == targets[mask]))
        blocks = {"head": hessian.block_loss(data_loss, p, hessian.path_mask(p, 2, "w")),
                  "hidden": hessian.block_loss(data_loss, p, hessian.path_mask(p, 1, "w")),
                  "full": (p, data_loss)}
        for name, (block, block_fn) in blocks.items():
            size = hessian.num_parameters(block)
            kk = min(k, size)
            top = jax.jit(lambda b, f=block_fn, kk=kk, size=size: hessian.lanczos_eigh(
                hessian.hessian_matvec(f, b), b, kk, num_steps=min(size, 2 * kk + 20)).eigenvalues)(block)
            eigs = np.full(k, np.nan)
            eigs[:kk] = np.asarray(top)
            limit = min(2 * num_classes**2 + 10, kk - 1)
            # Beyond the first C (the class sub-cluster, often split off by the global feature mean), and
            # anywhere (which may stop right after that sub-cluster).
            count, gap = count_outliers(eigs, limit, min_count=num_classes + 1)
            count_any, gap_any = count_outliers(eigs, limit)
            out[f"{name}_eigs"].append(eigs)
            out[f"{name}_count"].append(count)
            out[f"{name}_gap"].append(gap)
            out[f"{name}_count_any"].append(count_any)
            out[f"{name}_gap_any"].append(gap_any)
        out["classes"].append(num_classes)
        out["accuracy"].append(accuracy)
        out["loss"].append(float(res.loss[-1]))
        if num_classes == max_c:
            density = jax.jit(lambda q, key: hessian.slq(hessian.hessian_matvec(data_loss, q), q,
                                                         num_steps=2 * sizes.slq_steps,
                                                         num_probes=sizes.slq_probes, key=key))
            quad = density(p, jax.random.key(seed + 2))
            out["slq"] = quad
            out["num_params"] = hessian.num_parameters(p)
    return out


def _plot_digits(digits: dict, path: Path) -> None:
    plt = _pyplot()

    from jaxspec import hessian

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    quad = digits["slq"]
    nodes = np.asarray(quad.nodes)
    lo, hi = float(nodes.min()), float(nodes.max())
    grid = np.linspace(lo - 0.02 * (hi - lo), hi + 0.05 * (hi - lo), 3000)
    density = np.asarray(hessian.spectral_density(quad, grid, 0.005 * (hi - lo)))
    c_max = digits["classes"][-1]
    ax = axes[0]
    ax.semilogy(grid, np.maximum(density, 1e-10), color="tab:blue", label="SLQ density")
    full_top = digits["full_eigs"][-1][: digits["full_count"][-1]]
    ax.plot(full_top, np.full(full_top.size, 2e-6), "|", color="tab:red", ms=12,
            label=f"{full_top.size} outliers counted (Lanczos)")
    ax.set_ylim(1e-7, None)
    ax.set_xlabel("eigenvalue of the full Hessian (data term)")
    ax.set_ylabel("spectral density")
    ax.set_title(f"ReLU MLP on digits, {c_max} classes ({digits['num_params']} parameters)")
    ax.legend(fontsize=8)
    ax = axes[1]
    colors = plt.cm.plasma(np.linspace(0, 0.85, len(digits["classes"])))
    for c, eigs, color in zip(digits["classes"], digits["head_eigs"], colors, strict=True):
        valid = eigs[np.isfinite(eigs)][: 2 * c**2 + 10]
        ax.semilogy(np.arange(1, valid.size + 1), np.maximum(valid, 1e-9), ".-", color=color, lw=0.8, ms=3,
                    label=f"C = {c}")
        ax.axvline(c**2 + 0.5, color=color, ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("eigenvalue index (dotted: $C^2$)")
    ax.set_ylabel("head-layer Hessian eigenvalue")
    ax.set_title("head layer: outliers then bulk")
    ax.legend(fontsize=7)
    ax = axes[2]
    c = np.asarray(digits["classes"])
    fine = np.linspace(c.min(), c.max(), 100)
    ax.plot(fine, fine**2, "k--", lw=1, label="$C^2$ (UFM layer-wise prediction)")
    ax.plot(fine, fine, "k:", lw=1, label="$C$")
    ax.plot(c, digits["head_count_any"], "x", color="tab:red", ms=8,
            label="head layer, largest gap anywhere")
    for name, marker, color, label in (("head", "o", "tab:red", "head layer"),
                                       ("hidden", "s", "tab:green", "last hidden layer"),
                                       ("full", "^", "tab:blue", "full Hessian")):
        counts, gaps = np.asarray(digits[f"{name}_count"]), np.asarray(digits[f"{name}_gap"])
        ax.plot(c, counts, "-", color=color, lw=1)
        clear = gaps >= 2.0
        ax.plot(c[clear], counts[clear], marker, color=color, label=f"{label} (gap >= 2)")
        ax.plot(c[~clear], counts[~clear], marker, color=color, mfc="none",
                label=f"{label} (gap < 2: no clear edge)")
    ax.set_xlabel("number of classes C")
    ax.set_ylabel(r"outliers counted (largest gap $\lambda_i/\lambda_{i+1}$, $i > C$)")
    ax.set_title("outlier count against the number of classes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _digits_dataset(digits: dict):
    import xarray as xr

    return xr.Dataset(
        {**{f"{name}_eigenvalues": (("classes", "rank"), np.stack(digits[f"{name}_eigs"]))
            for name in ("head", "hidden", "full")},
         **{f"{name}_outlier_count": (("classes",), np.asarray(digits[f"{name}_count"]))
            for name in ("head", "hidden", "full")},
         **{f"{name}_gap_ratio": (("classes",), np.asarray(digits[f"{name}_gap"]))
            for name in ("head", "hidden", "full")},
         **{f"{name}_outlier_count_any_gap": (("classes",), np.asarray(digits[f"{name}_count_any"]))
            for name in ("head", "hidden", "full")},
         "train_accuracy": (("classes",), np.asarray(digits["accuracy"])),
         "final_loss": (("classes",), np.asarray(digits["loss"])),
         "slq_nodes": (("probe", "node"), np.asarray(digits["slq"].nodes)),
         "slq_weights": (("probe", "node"), np.asarray(digits["slq"].weights))},
        coords={"classes": np.asarray(digits["classes"])},
        attrs={"num_params_full_hessian": int(digits["num_params"])})


# --- driver -------------------------------------------------------------------------------------------------


def _summary(runs: dict, theory, digits: dict, sizes: UFMSizes, seconds: float) -> dict:
    K2 = sizes.num_classes**2
    summary = {"sizes": asdict(sizes), "theory": {k: v for k, v in theory._asdict().items()},
               "seconds": seconds, "ufm": {}, "digits": {}}
    for activation, run_ in runs.items():
        res, tr = run_["result"], run_["result"].tracked
        top = np.asarray(tr.top_eigenvalues)[-1]
        summary["ufm"][activation] = {
            "final_loss": float(res.loss[-1]),
            "outliers_per_layer": top[:, :K2].tolist(),
            "outlier_rel_spread": ((top[:, :K2].max(axis=1) - top[:, :K2].min(axis=1)) / top[:, 0]).tolist(),
            "first_bulk_eigenvalue": top[:, K2].tolist() if top.shape[1] > K2 else None,
            "nc1_final": np.asarray(tr.collapse.nc1)[-1].tolist(),
            "f_cc_final_mean": np.asarray(tr.alignment)[-1].mean(axis=(1, 2)).tolist(),
            "overlap_data_final": np.asarray(tr.overlap_data)[-1].tolist(),
            "overlap_total_final": np.asarray(tr.overlap_total)[-1].tolist(),
            "gram_final": np.asarray(tr.gram)[-1].tolist(),
            "seconds": run_["seconds"],
        }
    summary["digits"] = {"classes": digits["classes"], "train_accuracy": digits["accuracy"],
                         "predicted_count": [c * c for c in digits["classes"]]}
    for name in ("head", "hidden", "full"):
        summary["digits"][f"{name}_outlier_count"] = digits[f"{name}_count"]
        summary["digits"][f"{name}_gap_ratio"] = digits[f"{name}_gap"]
        summary["digits"][f"{name}_outlier_count_any_gap"] = digits[f"{name}_count_any"]
    return summary


def _markdown(summary: dict) -> str:
    th = summary["theory"]
    lines = ["# Deep UFM and digits: spectra beside predictions", "",
             f"Linear theory: gamma = {th['gamma']:.6f}, loss = {th['loss']:.6f}, "
             f"outlier = {th['outlier']:.6f} x {th['outlier_multiplicity']}, "
             f"Gram = {th['weight_gram']:.6f} x {th['gram_multiplicity']}.", "",
             "| model | final loss | layer | outliers (min..max) | first bulk | NC1 | mean f_cc' "
             "| overlap (data) |",
             "|---|---|---|---|---|---|---|---|"]
    for activation, row in summary["ufm"].items():
        for layer, outs in enumerate(row["outliers_per_layer"]):
            bulk = row["first_bulk_eigenvalue"]
            bulk_cell = "-" if bulk is None else format(bulk[layer], ".2e")
            lines.append(f"| {activation} | {row['final_loss']:.6f} | {layer + 1} "
                         f"| {min(outs):.6f}..{max(outs):.6f} | {bulk_cell} | {row['nc1_final'][layer]:.2e} "
                         f"| {row['f_cc_final_mean'][layer]:.4f} | {row['overlap_data_final'][layer]:.4f} |")
    dg = summary["digits"]
    lines += ["", "Outliers = eigenvalues before the largest gap lambda_i / lambda_(i+1), i > C (gap ratio "
              "in brackets; in square brackets the count with the largest gap anywhere).", "",
              "| digits classes C | C^2 | head outliers | last-hidden outliers "
              "| full-Hessian outliers | train accuracy |", "|---|---|---|---|---|---|"]
    for i, c in enumerate(dg["classes"]):
        cells = " | ".join(f"{dg[f'{n}_outlier_count'][i]} ({dg[f'{n}_gap_ratio'][i]:.2f}) "
                           f"[{dg[f'{n}_outlier_count_any_gap'][i]}]"
                           for n in ("head", "hidden", "full"))
        lines.append(f"| {c} | {c * c} | {cells} | {dg['train_accuracy'][i]:.3f} |")
    return "\n".join(lines) + "\n"


def run(out_dir: str | Path, full: bool = False, *, seed: int = 0, progress: bool = True,
        sizes: UFMSizes | None = None) -> dict:
    """Run the deep-UFM and digits reproduction and write the figures, datasets and summary.

    Args:
        out_dir: output directory (created).
        full: larger GPU sizes (ignored when ``sizes`` is given).
        seed: base random seed.
        progress: show progress bars.
        sizes: explicit :class:`UFMSizes`.

    Returns:
        The summary dictionary (also written to ``ufm_summary.json``).

    Example:
        >>> summary = run("figures/ufm", progress=False)  # doctest: +SKIP

    References:
        Garrod & Keating, arXiv:2404.06106.
    """
    import jax

    from jaxspec import ufm

    sizes = default_sizes(full) if sizes is None else sizes
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with jax.default_matmul_precision("highest"):
        runs = _train_ufms(sizes, seed, progress)
        model = runs["linear"]["model"]
        theory = ufm.collapsed_optimum(model)
        _plot_spectrum(runs, theory, sizes, out / "ufm_spectrum.png")
        _plot_outliers(runs, theory, sizes, min(1, sizes.depth - 1), out / "ufm_outliers_training.png")
        _plot_alignment(runs, sizes, out / "ufm_alignment.png")
        _plot_nc1(runs, sizes, out / "ufm_nc1.png")
        _ufm_dataset(runs, theory, sizes).to_netcdf(out / "ufm_training.nc", engine="scipy")
        digits = _digits_runs(sizes, seed, progress)
        _plot_digits(digits, out / "digits_spectrum.png")
        _digits_dataset(digits).to_netcdf(out / "digits_spectrum.nc", engine="scipy")
    summary = _summary(runs, theory, digits, sizes, time.perf_counter() - start)
    (out / "ufm_summary.json").write_text(json.dumps(summary, indent=2))
    (out / "ufm_summary.md").write_text(_markdown(summary))
    return summary


def print_summary(summary: dict) -> None:
    """Print the Markdown summary table."""
    print(_markdown(summary), end="")


def register(figures_app: typer.Typer) -> None:
    @figures_app.command("ufm")
    def ufm_command(
        out: Path = typer.Option(Path("figures/ufm"), "--out", help="output directory"),
        full: bool = typer.Option(False, "--full", help="GPU sizes: more classes, deeper, longer training"),
        seed: int = typer.Option(0, "--seed", help="base random seed"),
        quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
    ) -> None:
        """Deep UFM Hessian outliers, f_cc', NC1 in training; outliers of a ReLU MLP on digits vs classes."""
        summary = run(out, full=full, seed=seed, progress=not quiet)
        print_summary(summary)
        print(f"wrote ufm_spectrum.png, ufm_outliers_training.png, ufm_alignment.png, ufm_nc1.png, "
              f"digits_spectrum.png, ufm_training.nc, digits_spectrum.nc and ufm_summary.json/.md to {out}")
