"""The bottleneck structure of L2-regularised deep networks at several depths.

:func:`run_bottleneck` trains bias-free networks with weight decay, through :func:`jaxspec.training.train`
(Adam, cosine-decayed step), at several depths on three targets:

* ``relu_synthetic``: ReLU nets on ``f = h o g`` through a ``k = 2``-dimensional middle (bottleneck rank 2);
* ``linear_synthetic``: linear nets on a rank-2 matrix ``A`` with whitened inputs, where the regularised
  optimum is known exactly (:func:`jaxspec.bottleneck.deep_linear_weight_decay_optimum`);
* ``relu_digits``: ReLU nets on scikit-learn's digits (PCA-whitened, centred one-hot targets);

and measures the singular values of every weight matrix (a plateau of ``R0`` values near 1), the ranks of the
representations, ``||theta||^2`` against ``L`` with the fitted line ``R0 L + R1``, and both sides of the
per-network inequality ``sum_l e_l <= ||theta||^2 - L k - 2 log|Jf(x)|_+``
([math §6](https://jaxspec.github.io/jaxspec/math/#s6)).

References:
    Jacot, "Bottleneck Structure in Learned Features: Low-Dimension vs Regularity Tradeoff", NeurIPS 2023,
    arXiv:2305.19008.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Float, Int

from jaxspec._extras import optional_import
from jaxspec.bottleneck import (
    bottleneck_report,
    bottleneck_target,
    deep_linear_weight_decay_optimum,
    fit_rank_terms,
    train_weight_decay,
)
from jaxspec.data import digits
from jaxspec.networks import init_mlp
from jaxspec.reproduce._jobs import check_names, progress_bar, resolve_sizes

#: The targets, in the order run.
TARGETS = ("relu_synthetic", "linear_synthetic", "relu_digits")


@dataclass(frozen=True)
class BottleneckSizes:
    """Problem sizes of one run (the defaults are the quick CPU preset, a few minutes).

    Attributes:
        depths: network depths ``L``.
        width: hidden width.
        num_points: training points of the synthetic targets.
        digits_limit: digits samples used.
        digits_dim: PCA-whitened input dimension of digits.
        steps: Adam steps per network.
        learning_rate: initial Adam step (cosine-decayed to 1% of it).
        weight_decay: ``lambda`` of ``(1/N) sum ||f(x) - y||^2 + lambda ||theta||^2`` (synthetic targets).
        digits_weight_decay: ``lambda`` for digits (ten centred one-hot outputs: a smaller ``lambda`` keeps
            the deep nets from dropping classes, since each unit of rank costs about ``lambda L``).
        input_dim: input (and output) dimension of the synthetic targets.
        bottleneck_dim: ``k`` of the synthetic targets.
    """

    depths: tuple[int, ...] = (3, 6, 9, 12)
    width: int = 16
    num_points: int = 192
    digits_limit: int = 400
    digits_dim: int = 16
    steps: int = 8000
    learning_rate: float = 3e-3
    weight_decay: float = 1e-2
    digits_weight_decay: float = 2e-3
    input_dim: int = 8
    bottleneck_dim: int = 2


#: GPU sizes of ``run_bottleneck(full=True)``.
FULL_BOTTLENECK_SIZES = BottleneckSizes(
    depths=(4, 8, 12, 16, 20, 24),
    width=128,
    num_points=1024,
    digits_limit=1797,
    digits_dim=32,
    steps=60000,
    learning_rate=2e-3,
)


@dataclass(frozen=True)
class BottleneckNetwork:
    """One trained network and its bottleneck report.

    Attributes:
        depth: ``L``.
        steps: ``(record,)`` Adam step of each record.
        loss: ``(record,)`` regularised loss.
        data_loss: ``(record,)`` its data term.
        norm_sq: ``||theta||^2`` at the end.
        weight_sv: ``(layer, index)`` singular values of every weight matrix (NaN-padded).
        rep_sv: ``(representation, rep_index)`` singular values of the representations ``H_0..H_L``.
        rep_rank: ``(representation,)`` numerical rank ``#{s_i > 1e-2 s_1}``.
        rep_stable_rank: ``(representation,)`` stable rank ``||H||_F^2 / ||H||_2^2``.
        jac_rank: ``(input,)`` rank (at ``1e-3``) of the input-output Jacobian.
        jac_logdet: ``(input,)`` its ``log|Jf(x)|_+``.
        ineq_lhs: ``(input,)`` ``sum_l e_l``.
        ineq_rhs: ``(input,)`` ``||theta||^2 - L k - 2 log|Jf(x)|_+``.
        ineq_margin: ``(input,)`` ``ineq_rhs - ineq_lhs`` (``>= 0``).
        layer_excess: ``(input, layer)``, the ``e_l``.
        plateau_count: median over the middle half of the layers of ``#{s_i(W_l) > 0.5}`` (the plateau).
        seconds: wall time.
    """

    depth: int
    steps: Int[np.ndarray, " record"]
    loss: Float[np.ndarray, " record"]
    data_loss: Float[np.ndarray, " record"]
    norm_sq: float
    weight_sv: Float[np.ndarray, "layer index"]
    rep_sv: Float[np.ndarray, "representation rep_index"]
    rep_rank: Float[np.ndarray, " representation"]
    rep_stable_rank: Float[np.ndarray, " representation"]
    jac_rank: Float[np.ndarray, " input"]
    jac_logdet: Float[np.ndarray, " input"]
    ineq_lhs: Float[np.ndarray, " input"]
    ineq_rhs: Float[np.ndarray, " input"]
    ineq_margin: Float[np.ndarray, " input"]
    layer_excess: Float[np.ndarray, "input layer"]
    plateau_count: int
    seconds: float


@dataclass(frozen=True)
class BottleneckTarget:
    """One target at every depth, the fit ``||theta||^2 = R0 L + R1`` and, for the linear target, the optimum.

    Attributes:
        name: one of :data:`TARGETS`.
        activation: ``"relu"`` or ``"linear"``.
        weight_decay: ``lambda``.
        bottleneck_rank: ``k`` of a synthetic target (``None`` for digits).
        networks: one per depth, in the order of ``sizes.depths``.
        fit: ``r0``, ``r1``, their standard errors and the residuals (``(depth,)``).
        matrix: ``A`` of the linear target (``(out, in)``), else ``None``.
        exact_rank: ``rank A``, the limit of ``R0`` (linear target only).
        exact_r1: ``2 log|A|_+``, the limit of ``R1`` (linear target only).
        optimum_depths: ``(grid,)`` depths ``L = 2..1.05 max L`` (linear target only; empty otherwise).
        optimum_norm_sq: ``(grid,)`` ``||theta||^2 = L sum_i s_i^(2/L)`` of the exact optimum at this
            ``lambda`` and those depths.
    """

    name: str
    activation: str
    weight_decay: float
    bottleneck_rank: int | None
    networks: tuple[BottleneckNetwork, ...]
    fit: dict[str, Any]
    matrix: Float[np.ndarray, "out in"] | None
    exact_rank: int | None
    exact_r1: float | None
    optimum_depths: Int[np.ndarray, " grid"]
    optimum_norm_sq: Float[np.ndarray, " grid"]

    def to_dataset(self, sizes: BottleneckSizes):
        """All depths as one labelled ``xarray.Dataset`` (``bottleneck_<target>.nc``; needs xarray)."""
        xr = optional_import("xarray", "figures")

        nets = self.networks
        max_l = max(r.depth for r in nets)
        n_sv = max(r.weight_sv.shape[1] for r in nets)
        n_rep = max(r.rep_sv.shape[1] for r in nets)
        n_in = nets[0].jac_rank.shape[0]

        def pad(key, shape):
            out = np.full((len(nets),) + shape, np.nan)
            for i, r in enumerate(nets):
                v = getattr(r, key)
                out[(i,) + tuple(slice(0, s) for s in v.shape)] = v
            return out

        return xr.Dataset(
            {
                "weight_singular_values": (("depth", "layer", "index"), pad("weight_sv", (max_l, n_sv))),
                "representation_singular_values": (
                    ("depth", "representation", "rep_index"),
                    pad("rep_sv", (max_l + 1, n_rep)),
                ),
                "representation_rank": (("depth", "representation"), pad("rep_rank", (max_l + 1,))),
                "representation_stable_rank": (
                    ("depth", "representation"),
                    pad("rep_stable_rank", (max_l + 1,)),
                ),
                "jacobian_rank": (("depth", "input"), pad("jac_rank", (n_in,))),
                "jacobian_logdet": (("depth", "input"), pad("jac_logdet", (n_in,))),
                "inequality_lhs": (("depth", "input"), pad("ineq_lhs", (n_in,))),
                "inequality_rhs": (("depth", "input"), pad("ineq_rhs", (n_in,))),
                "inequality_margin": (("depth", "input"), pad("ineq_margin", (n_in,))),
                "layer_excess": (("depth", "input", "layer"), pad("layer_excess", (n_in, max_l))),
                "norm_sq": (("depth",), np.array([r.norm_sq for r in nets])),
                "final_data_loss": (("depth",), np.array([r.data_loss[-1] for r in nets])),
                "loss": (("depth", "record"), np.stack([r.loss for r in nets])),
            },
            coords={
                "depth": [r.depth for r in nets],
                "layer": np.arange(1, max_l + 1),
                "index": np.arange(1, n_sv + 1),
                "representation": np.arange(max_l + 1),
                "rep_index": np.arange(1, n_rep + 1),
                "input": np.arange(n_in),
                "record": nets[0].steps,
            },
            attrs={
                "target": self.name,
                "weight_decay": self.weight_decay,
                "width": sizes.width,
                "steps": sizes.steps,
                "jacobian_rtol": 1e-3,
                "representation_rtol": 1e-2,
                "activation": self.activation,
                "bottleneck_rank": -1 if self.bottleneck_rank is None else self.bottleneck_rank,
            },
        )


@dataclass(frozen=True)
class BottleneckResult:
    """Everything :func:`run_bottleneck` measured.

    Attributes:
        sizes: the sizes of the run.
        targets: target name -> :class:`BottleneckTarget`, in the order run.
        summary: per target the fit ``(R0, R1)`` and per depth the plateau count, the Jacobian ranks, the
            smallest inequality margin, ``||theta||^2``, the final data loss and the seconds taken
            (``bottleneck_summary.json``).
    """

    sizes: BottleneckSizes
    targets: dict[str, BottleneckTarget]
    summary: dict[str, Any]


def _task(target: str, sizes: BottleneckSizes, seed: int):
    if target == "relu_digits":
        data = digits(whiten_dim=sizes.digits_dim, limit=sizes.digits_limit, centre_targets=True)
        return data.x, data.y, "relu", None
    kind = "linear" if target == "linear_synthetic" else "relu"
    task = bottleneck_target(
        jax.random.key(seed),
        sizes.num_points,
        input_dim=sizes.input_dim,
        bottleneck_dim=sizes.bottleneck_dim,
        output_dim=sizes.input_dim,
        kind=kind,
    )
    if kind == "relu":
        return task.x, task.y, "relu", None
    # Whiten the inputs exactly (X^T X / N = I) so that the loss is ||W - A||_F^2 + lambda ||theta||^2.
    x = np.asarray(task.x, dtype=np.float64)
    evals, evecs = np.linalg.eigh(x.T @ x / x.shape[0])
    x = x @ evecs @ np.diag(evals**-0.5) @ evecs.T
    a = np.asarray(task.teacher[0]["w"], dtype=np.float64)
    return jnp.asarray(x, jnp.float32), jnp.asarray(x @ a.T, jnp.float32), "linear", a


def _plateau_count(weight_sv: np.ndarray, threshold: float = 0.5) -> int:
    """Median over the middle half of the layers of ``#{s_i > threshold}`` (the bottleneck plateau)."""
    depth = weight_sv.shape[0]
    lo, hi = depth // 4, max(depth - depth // 4, depth // 4 + 1)
    return int(np.median(np.sum(weight_sv[lo:hi] > threshold, axis=1)))


def _train_one(
    x, y, activation: str, depth: int, sizes: BottleneckSizes, seed: int, weight_decay: float
) -> BottleneckNetwork:
    widths = (x.shape[1],) + (sizes.width,) * (depth - 1) + (y.shape[1],)
    params = init_mlp(jax.random.key(1000 * seed + depth), widths, activation=activation)
    schedule = optax.cosine_decay_schedule(sizes.learning_rate, sizes.steps, alpha=0.01)
    start = time.perf_counter()
    res = train_weight_decay(
        params,
        x,
        y,
        activation=activation,
        weight_decay=weight_decay,
        num_steps=sizes.steps,
        optimizer=optax.adam(schedule),
        log_every=sizes.steps // 20,
        progress=False,
    )
    rep = jax.device_get(bottleneck_report(res.params, x, activation=activation))
    weight_sv = np.asarray(rep.weight_singular_values)
    return BottleneckNetwork(
        depth=depth,
        steps=np.asarray(res.steps),
        loss=np.asarray(res.loss),
        data_loss=np.asarray(res.tracked["data_loss"]),
        norm_sq=float(rep.norm_sq),
        weight_sv=weight_sv,
        rep_sv=np.asarray(rep.representations.singular_values),
        rep_rank=np.asarray(rep.representations.numerical_rank),
        rep_stable_rank=np.asarray(rep.representations.stable_rank),
        jac_rank=np.asarray(rep.jacobian.rank),
        jac_logdet=np.asarray(rep.jacobian.logdet),
        ineq_lhs=np.asarray(rep.inequality.lhs),
        ineq_rhs=np.asarray(rep.inequality.rhs),
        ineq_margin=np.asarray(rep.inequality.margin),
        layer_excess=np.asarray(rep.inequality.layer_excess),
        plateau_count=_plateau_count(weight_sv),
        seconds=time.perf_counter() - start,
    )


def _run_target(target: str, sizes: BottleneckSizes, seed: int, bar) -> BottleneckTarget:
    x, y, activation, matrix = _task(target, sizes, seed)
    weight_decay = sizes.digits_weight_decay if target == "relu_digits" else sizes.weight_decay
    networks = []
    for depth in sizes.depths:
        networks.append(_train_one(x, y, activation, depth, sizes, seed, weight_decay))
        bar.update(1)
    fit = fit_rank_terms([r.depth for r in networks], [r.norm_sq for r in networks])
    exact_rank = exact_r1 = None
    optimum_depths, optimum_norm_sq = np.zeros(0, int), np.zeros(0)
    if matrix is not None:
        s = np.linalg.svd(matrix, compute_uv=False)
        s = s[s > 1e-5 * s[0]]  # A is a float32 product of rank-k factors
        exact_rank, exact_r1 = int(s.size), float(2 * np.sum(np.log(s)))
        optimum_depths = np.arange(2, int(max(sizes.depths) * 1.05) + 1)
        optimum_norm_sq = np.array(
            [
                d * np.sum(deep_linear_weight_decay_optimum(s, int(d), weight_decay) ** (2.0 / d))
                for d in optimum_depths
            ]
        )
    return BottleneckTarget(
        name=target,
        activation=activation,
        weight_decay=weight_decay,
        bottleneck_rank=None if target == "relu_digits" else sizes.bottleneck_dim,
        networks=tuple(networks),
        fit=fit._asdict(),
        matrix=matrix,
        exact_rank=exact_rank,
        exact_r1=exact_r1,
        optimum_depths=optimum_depths,
        optimum_norm_sq=optimum_norm_sq,
    )


def _target_summary(t: BottleneckTarget) -> dict:
    per_depth = []
    for r in t.networks:
        ranks = np.bincount(r.jac_rank.astype(int))
        per_depth.append(
            {
                "depth": r.depth,
                "plateau_count": r.plateau_count,
                "middle_representation_rank": int(r.rep_rank[r.depth // 2]),
                "jacobian_rank_mode": int(np.argmax(ranks)),
                "jacobian_rank_counts": ranks.tolist(),
                "min_inequality_margin": float(r.ineq_margin.min()),
                "mean_sum_e_l": float(r.ineq_lhs.mean()),
                "mean_bound": float(r.ineq_rhs.mean()),
                "norm_sq": r.norm_sq,
                "final_data_loss": float(r.data_loss[-1]),
                "seconds": r.seconds,
            }
        )
    record = {
        "activation": t.activation,
        "bottleneck_rank": t.bottleneck_rank,
        "weight_decay": t.weight_decay,
        "fit": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in t.fit.items()},
        "depths": per_depth,
    }
    if t.exact_rank is not None:
        record["exact_R0"] = t.exact_rank
        record["exact_R1"] = t.exact_r1
    return record


def run_bottleneck(
    *,
    full: bool = False,
    seed: int = 0,
    targets: Sequence[str] | None = None,
    progress: bool = True,
    **overrides: Any,
) -> BottleneckResult:
    """Train at every depth and target with weight decay, measure the bottleneck, fit ``R0 L + R1``.

    Args:
        full: GPU sizes (:data:`FULL_BOTTLENECK_SIZES`: deeper, wider, longer) instead of the quick
            :class:`BottleneckSizes` defaults.
        seed: base random seed.
        targets: names from :data:`TARGETS` (default: all).
        progress: a progress bar over the networks.
        **overrides: fields of :class:`BottleneckSizes` replacing those of the preset.

    Returns:
        A :class:`BottleneckResult`.

    Example:
        >>> res = run_bottleneck(targets=["linear_synthetic"], depths=(2, 3), steps=200,
        ...                      progress=False)  # doctest: +SKIP
        >>> res.targets["linear_synthetic"].exact_rank  # doctest: +SKIP
        2
    """
    sizes = resolve_sizes(BottleneckSizes(), FULL_BOTTLENECK_SIZES, full, overrides)
    names = check_names("targets", targets, TARGETS)
    bar = progress_bar(len(names) * len(sizes.depths), "bottleneck", progress, unit="net")
    results = {target: _run_target(target, sizes, seed, bar) for target in names}
    bar.close()
    summary = {"sizes": asdict(sizes), "targets": {name: _target_summary(t) for name, t in results.items()}}
    return BottleneckResult(sizes=sizes, targets=results, summary=summary)
