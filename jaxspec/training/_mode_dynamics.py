"""Predicted singular-value dynamics of deep networks, integrated beside a measured training run.

Gradient flow on the MSE loss ``(1/2N) ||W_L ... W_1 X - Y||^2``
([math §5](https://jaxspec.github.io/jaxspec/math/#s5)), with ``Sigma_xx = X X^T/N``, ``Sigma_yx = Y X^T / N``
and, for a mode ``(u_r, v_r)``, ``g_r = u_r^T (Sigma_yx - W Sigma_xx) v_r``. Under the decoupled
(shared-basis) closure ``g_r = s_r - c_r sigma_r`` with ``s_r = u_r^T Sigma_yx v_r`` and
``c_r = v_r^T Sigma_xx v_r`` (``c_r = 1`` for whitened inputs):

* Saxe, two layers, balanced: ``du/dt = 2u(s - u)``, ``u(t) = s e^{2st} / (e^{2st} - 1 + s/u_0)``
  (:func:`saxe_two_layer`).
* ``L`` layers, balanced (Saxe's L-layer ODE, the mode form of Arora's law):
  ``d sigma/dt = L sigma^{2 - 2/L} (s - c sigma)`` (:func:`balanced_mode_ode`).
* Arora's end-to-end law for a balanced start, no alignment assumed:
  ``dW/dt = -sum_{j=1}^{L} (W W^T)^{(j-1)/L} grad l(W) (W^T W)^{(L-j)/L}``, whose singular values obey
  ``d sigma_r/dt = -L sigma_r^{2-2/L} <grad l(W), u_r v_r^T>`` (:func:`arora_end_to_end`).
* Shared singular bases without balance: ``d a_{l,r}/dt = (prod_{m != l} a_{m,r}) g_r``, so
  ``d sigma_r/dt = sigma_r^2 (sum_l a_{l,r}^{-2}) g_r`` and every ``a_{l,r}^2 - a_{m,r}^2`` is conserved
  (:func:`mode_ode`, started from measured factors).

Gradient descent with step ``eta`` is compared at time ``t = step * eta``. Its exact discrete counterpart for
aligned layers, :func:`mode_gd`, isolates the discretisation error (``O(eta)`` relative, growing with
``s log(s / sigma_0)`` through the sigmoid) from the modelling error. :func:`compare_dynamics` runs every
applicable prediction from a tracked :class:`jaxspec.training.TrainResult` and reports the
measured-vs-predicted error per mode over time.

All integrators are classical RK4 with ``substeps`` steps between consecutive output times, in ``lax.scan``.

References:
    Saxe, McClelland, Ganguli, "Exact solutions to the nonlinear dynamics of learning in deep linear neural
    networks", ICLR 2014, arXiv:1312.6120.
    Arora, Cohen, Hazan, "On the optimization of deep networks: implicit acceleration by
    overparameterization", ICML 2018, arXiv:1802.06509 (end-to-end dynamics).
    Arora, Cohen, Hu, Luo, "Implicit regularization in deep matrix factorization", NeurIPS 2019,
    arXiv:1905.13655 (singular-value dynamics).
    Haas, Gatine, Cosse, Bouraoui, arXiv:2602.12384 (decoupled dynamics without balance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from jaxspec._checks import HIGHEST, InputError, check_positive_int
from jaxspec.training._loop import TrainResult


def rk4_integrate(
    rhs: Callable[[Any], Any], y0: Any, times: Float[ArrayLike, " T"], substeps: int = 8
) -> Any:
    """Integrate the autonomous ODE ``dy/dt = rhs(y)`` and return ``y`` at every entry of ``times``.

    Args:
        rhs: ``pytree -> pytree`` (same structure).
        y0: the state at ``times[0]``.
        times: ``(T,)`` non-decreasing output times.
        substeps: RK4 steps per output interval.

    Returns:
        The pytree with a leading axis ``T`` (entry 0 is ``y0``).

    Example:
        >>> ys = rk4_integrate(lambda y: -y, jnp.ones(()), jnp.linspace(0.0, 1.0, 5))
        >>> round(float(ys[-1]), 5)  # exp(-1)
        0.36788

    References:
        Kutta (1901); Hairer, Norsett, Wanner, Solving Ordinary Differential Equations I, section II.1.
    """
    times = jnp.asarray(times)
    add = lambda a, b, c=1.0: jax.tree.map(lambda x, y: x + c * y, a, b)  # noqa: E731

    def rk4(y, h):
        k1 = rhs(y)
        k2 = rhs(add(y, k1, h / 2))
        k3 = rhs(add(y, k2, h / 2))
        k4 = rhs(add(y, k3, h))
        incr = jax.tree.map(lambda a, b, c, d: (a + 2 * b + 2 * c + d) / 6, k1, k2, k3, k4)
        return add(y, incr, h)

    def interval(y, dt):
        h = dt / substeps
        y = jax.lax.fori_loop(0, substeps, lambda _, y: rk4(y, h), y)
        return y, y

    _, ys = jax.lax.scan(interval, y0, jnp.diff(times))
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), y0, ys)


def saxe_two_layer(
    t: Float[ArrayLike, "*shape"], s: Float[ArrayLike, "*shape"], u0: Float[ArrayLike, "*shape"]
) -> Float[Array, "*shape"]:
    """Saxe's closed form for a balanced two-layer mode with whitened inputs.

    Args:
        t: times ``(T,)`` (broadcasts against ``s``, ``u0``).
        s: target strength(s).
        u0: initial mode strength(s) ``0 < u0``.

    Returns:
        ``u(t) = s e^{2st} / (e^{2st} - 1 + s/u0)``.

    Example:
        >>> [round(float(u), 4) for u in saxe_two_layer(jnp.array([0.0, 10.0]), 2.0, 1e-3)]
        [0.001, 2.0]

    References:
        Saxe, McClelland, Ganguli, arXiv:1312.6120, eq. (7).
    """
    t, s, u0 = jnp.asarray(t), jnp.asarray(s), jnp.asarray(u0)
    # Written with e^{-2st} so large times do not overflow.
    decay = jnp.exp(-2 * s * t)
    return s / (1 - decay + decay * s / u0)


def balanced_mode_ode(
    times: Float[ArrayLike, " T"],
    sigma0: Float[ArrayLike, " R"],
    s: Float[ArrayLike, " R"],
    depth: int,
    c: float | Float[ArrayLike, " R"] = 1.0,
    substeps: int = 8,
) -> Float[Array, "T R"]:
    """``d sigma_r/dt = L sigma_r^{2-2/L} (s_r - c_r sigma_r)``, each mode independently.

    Args:
        times: ``(T,)`` output times, starting at the time of ``sigma0``.
        sigma0: ``(R,)`` initial end-to-end singular values (positive).
        s: ``(R,)`` target projections ``u_r^T Sigma_yx v_r``.
        depth: number of weight matrices ``L``.
        c: ``(R,)`` input variances along the modes ``v_r^T Sigma_xx v_r`` (1 when whitened).
        substeps: RK4 steps per output interval.

    Returns:
        ``(T, R)``.

    References:
        Saxe et al., arXiv:1312.6120; Arora et al., arXiv:1905.13655 (balanced L-layer law).
    """
    check_positive_int("depth", depth)
    sigma0 = jnp.asarray(sigma0)
    s, c = jnp.broadcast_to(jnp.asarray(s, sigma0.dtype), sigma0.shape), jnp.asarray(c, sigma0.dtype)
    power = 2.0 - 2.0 / depth

    def rhs(sigma):
        return depth * jnp.abs(sigma) ** power * (s - c * sigma)

    return rk4_integrate(rhs, sigma0, times, substeps)


class ModeTrajectory(NamedTuple):
    """The shared-basis mode ODE's solution.

    Attributes:
        factors: ``(T, L, R)`` the factors ``a_{l,r}(t)``.
        sigma: ``(T, R)`` ``prod_l a_{l,r}(t)``.
    """

    factors: Float[Array, "T L R"]
    sigma: Float[Array, "T R"]


def _mode_rhs(s, c, kappa=1.0):
    def rhs(a):
        sigma = jnp.prod(a, axis=0)
        # prod_{m != l} a_m computed without dividing (a factor may be 0).
        depth = a.shape[0]
        others = jnp.stack([jnp.prod(jnp.concatenate([a[:l], a[l + 1 :]]), axis=0) for l in range(depth)])
        return others * (kappa * (s - c * sigma))[None, :]

    return rhs


def mode_ode(
    times: Float[ArrayLike, " T"],
    factors0: Float[ArrayLike, "L R"],
    s: Float[ArrayLike, " R"],
    c: float | Float[ArrayLike, " R"] = 1.0,
    substeps: int = 8,
    kappa: float | Float[ArrayLike, " R"] = 1.0,
) -> ModeTrajectory:
    """The unbalanced shared-basis mode ODE ``d a_{l,r}/dt = kappa_r (prod_{m != l} a_{m,r}) g_r``.

    ``g_r = s_r - c_r sigma_r``; ``kappa_r = 1`` is the law of [math §5](https://jaxspec.github.io/jaxspec/math/#s5).
    A measured ``kappa_r`` (the ratio of the true mode kernel to the shared-basis one, see
    :func:`jaxspec.training.mode_factors`) makes the initial rate exact for models whose layers do not share a
    basis exactly, such as fixed-gates networks.

    Args:
        times: ``(T,)`` output times, starting at the time of ``factors0``.
        factors0: ``(L, R)`` measured factors at ``times[0]``.
        s: ``(R,)`` target projections.
        c: ``(R,)`` input variances along the modes (1 when whitened).
        substeps: RK4 steps per output interval.
        kappa: ``(R,)`` kernel ratios (held constant).

    Returns:
        :class:`ModeTrajectory`.

    Example:
        >>> traj = mode_ode(jnp.linspace(0, 5, 50), jnp.array([[0.3], [0.1]]), jnp.array([2.0]))

    References:
        [math §5](https://jaxspec.github.io/jaxspec/math/#s5); Haas et al., arXiv:2602.12384.
    """
    a0 = jnp.asarray(factors0)
    if a0.ndim != 2:
        raise InputError(f"factors0 must have shape (L, R), got {a0.shape}")
    s = jnp.broadcast_to(jnp.asarray(s, a0.dtype), a0.shape[1:])
    c = jnp.broadcast_to(jnp.asarray(c, a0.dtype), a0.shape[1:])
    kappa = jnp.broadcast_to(jnp.asarray(kappa, a0.dtype), a0.shape[1:])
    factors = rk4_integrate(_mode_rhs(s, c, kappa), a0, times, substeps)
    return ModeTrajectory(factors, jnp.prod(factors, axis=1))


def mode_gd(
    factors0: Float[ArrayLike, "L R"],
    s: Float[ArrayLike, " R"],
    learning_rate: float,
    num_steps: int,
    record_every: int = 1,
    c: float | Float[ArrayLike, " R"] = 1.0,
) -> ModeTrajectory:
    """Gradient descent on aligned layers, mode by mode: the exact discrete counterpart of :func:`mode_ode`.

    ``a_{l,r} <- a_{l,r} + eta (prod_{m != l} a_{m,r}) (s_r - c_r prod_m a_{m,r})``. For a deep linear network
    initialised with a shared singular basis aligned with the teacher (whitened inputs), full-batch GD follows
    this recursion exactly, so it separates the discretisation error from the modelling error.

    Args:
        factors0: ``(L, R)``.
        s: ``(R,)``.
        learning_rate: ``eta``.
        num_steps: number of steps (a multiple of ``record_every``).
        record_every: steps between records.
        c: ``(R,)``.

    Returns:
        :class:`ModeTrajectory` at steps ``0, record_every, ..., num_steps``.

    Example:
        >>> mode_gd(jnp.array([[0.1], [0.1]]), jnp.array([1.0]), 0.1, 100, 10).sigma.shape
        (11, 1)

    References:
        Saxe et al., arXiv:1312.6120; [math §5](https://jaxspec.github.io/jaxspec/math/#s5).
    """
    a0 = jnp.asarray(factors0)
    if num_steps % record_every:
        raise InputError("num_steps must be a multiple of record_every")
    s = jnp.broadcast_to(jnp.asarray(s, a0.dtype), a0.shape[1:])
    c = jnp.broadcast_to(jnp.asarray(c, a0.dtype), a0.shape[1:])
    rhs = _mode_rhs(s, c)

    def stretch(a, _):
        a = jax.lax.fori_loop(0, record_every, lambda _, a: a + learning_rate * rhs(a), a)
        return a, a

    _, factors = jax.lax.scan(stretch, a0, None, length=num_steps // record_every)
    factors = jnp.concatenate([a0[None], factors])
    return ModeTrajectory(factors, jnp.prod(factors, axis=1))


def _psd_power(sym: Float[Array, "n n"], power: float) -> Float[Array, "n n"]:
    if power == 0:
        return jnp.eye(sym.shape[0], dtype=sym.dtype)
    lam, q = jnp.linalg.eigh(sym)
    return jnp.matmul(q * jnp.clip(lam, 0, None)[None, :] ** power, q.T, precision=HIGHEST)


def arora_end_to_end(
    times: Float[ArrayLike, " T"],
    w0: Float[ArrayLike, "d_out d_in"],
    sigma_xx: Float[ArrayLike, "d_in d_in"],
    sigma_yx: Float[ArrayLike, "d_out d_in"],
    depth: int,
    substeps: int = 8,
) -> Float[Array, "T d_out d_in"]:
    """Arora's end-to-end dynamics of a balanced deep linear network, integrated from ``W(times[0]) = w0``.

    ``dW/dt = -sum_{j=1}^{L} (W W^T)^{(j-1)/L} (W Sigma_xx - Sigma_yx) (W^T W)^{(L-j)/L}``. Exact for gradient
    flow from a balanced start (``W_{l+1}^T W_{l+1} = W_l W_l^T``) whatever the alignment with the data.

    Args:
        times: ``(T,)``.
        w0: ``(d_out, d_in)`` the end-to-end map at ``times[0]``.
        sigma_xx: ``(d_in, d_in)``.
        sigma_yx: ``(d_out, d_in)``.
        depth: ``L``.
        substeps: RK4 steps per output interval.

    Returns:
        ``(T, d_out, d_in)``.

    Example:
        >>> w = arora_end_to_end(jnp.linspace(0, 3, 10), 1e-3 * jnp.eye(2), jnp.eye(2),
        ...                      jnp.diag(jnp.array([2.0, 1.0])), 3)
        >>> w.shape
        (10, 2, 2)

    References:
        Arora, Cohen, Hazan, arXiv:1802.06509, Theorem 1.
    """
    check_positive_int("depth", depth)
    w0, sigma_xx, sigma_yx = jnp.asarray(w0), jnp.asarray(sigma_xx), jnp.asarray(sigma_yx)
    if sigma_xx.shape != (w0.shape[1],) * 2 or sigma_yx.shape != w0.shape:
        raise InputError(
            f"shapes do not match: W {w0.shape}, Sigma_xx {sigma_xx.shape}, Sigma_yx {sigma_yx.shape}"
        )

    def rhs(w):
        grad = jnp.matmul(w, sigma_xx, precision=HIGHEST) - sigma_yx
        left, right = jnp.matmul(w, w.T, precision=HIGHEST), jnp.matmul(w.T, w, precision=HIGHEST)
        total = jnp.zeros_like(w)
        for j in range(1, depth + 1):
            term = jnp.matmul(_psd_power(left, (j - 1) / depth), grad, precision=HIGHEST)
            total = total + jnp.matmul(term, _psd_power(right, (depth - j) / depth), precision=HIGHEST)
        return -total

    return rk4_integrate(rhs, w0, times, substeps)


def mode_targets(
    sigma_xx: Float[ArrayLike, "d_in d_in"],
    sigma_yx: Float[ArrayLike, "d_out d_in"],
    u: Float[ArrayLike, "d_out R"],
    v: Float[ArrayLike, "d_in R"],
) -> tuple[Float[Array, " R"], Float[Array, " R"]]:
    """``s_r = u_r^T Sigma_yx v_r`` and ``c_r = v_r^T Sigma_xx v_r`` for the columns of ``u`` and ``v``.

    Example:
        >>> s, c = mode_targets(jnp.eye(2), jnp.diag(jnp.array([3.0, 1.0])), jnp.eye(2), jnp.eye(2))
        >>> s.tolist(), c.tolist()
        ([3.0, 1.0], [1.0, 1.0])
    """
    s = jnp.einsum("ir,ij,jr->r", u, sigma_yx, v, precision=HIGHEST)
    c = jnp.einsum("ir,ij,jr->r", v, sigma_xx, v, precision=HIGHEST)
    return s, c


class DynamicsComparison(NamedTuple):
    """Measured against predicted singular values, per mode and over time.

    Attributes:
        time: ``(T,)`` gradient-flow time ``step * learning_rate``.
        measured: ``(T, R)`` measured end-to-end singular values.
        predicted: dict name -> ``(T, R)`` (NaN before each mode's start). Names: ``"mode_ode"``
            (unbalanced shared-basis ODE from the measured factors), ``"mode_ode_kernel"`` (the same with the
            measured kernel ratio ``kappa_r``), ``"balanced"`` (L-layer balanced ODE = Arora's law under the
            decoupled closure), ``"saxe"`` (two layers, closed form), ``"arora"`` (Arora's end-to-end matrix
            ODE, when the end-to-end map was tracked).
        relative_error: dict name -> ``(T, R)``: ``measured / predicted - 1``.
        max_relative_error: dict name -> ``(R,)``: max over times from each mode's start of
            ``|relative_error|``.
        target: ``(R,)`` the fixed points ``s_r / c_r``.
        start_index: ``(R,)`` the record where each mode's predictions start.
        half_time: dict ``"measured"`` or a prediction name -> ``(R,)``: the time when ``sigma_r`` first
            reaches half its target after the start (linear interpolation between records; NaN if never).
        half_time_error: dict name -> ``(R,)``: ``(t_half_measured - t_0) / (t_half_predicted - t_0) - 1``,
            the relative error of the predicted learning time of each mode (``t_0`` its start).
    """

    time: Float[np.ndarray, " T"]
    measured: Float[np.ndarray, "T R"]
    predicted: dict[str, Float[np.ndarray, "T R"]]
    relative_error: dict[str, Float[np.ndarray, "T R"]]
    max_relative_error: dict[str, Float[np.ndarray, " R"]]
    target: Float[np.ndarray, " R"]
    start_index: Int[np.ndarray, " R"]
    half_time: dict[str, Float[np.ndarray, " R"]]
    half_time_error: dict[str, Float[np.ndarray, " R"]]


def _half_times(time, values, starts, target) -> np.ndarray:
    out = np.full(values.shape[1], np.nan)
    for r in range(values.shape[1]):
        t, v = time[starts[r] :], values[starts[r] :, r]
        above = np.nonzero(v >= target[r] / 2)[0]
        if above.size == 0:
            continue
        i = above[0]
        if i == 0:
            out[r] = t[0]
        else:
            frac = (target[r] / 2 - v[i - 1]) / (v[i] - v[i - 1])
            out[r] = t[i - 1] + frac * (t[i] - t[i - 1])
    return out


PREDICTIONS = ("mode_ode", "mode_ode_kernel", "balanced", "saxe", "arora")


def target_svd(
    sigma_xx: Float[ArrayLike, "d_in d_in"], sigma_yx: Float[ArrayLike, "d_out d_in"]
) -> tuple[Float[np.ndarray, "d_out d_out"], Float[np.ndarray, " r"], Float[np.ndarray, "d_in d_in"]]:
    """``(U, s, V^T)`` of the least-squares target map ``Sigma_yx Sigma_xx^{-1}`` (numpy, float64)."""
    sigma_xx = np.asarray(sigma_xx, dtype=np.float64)
    sigma_yx = np.asarray(sigma_yx, dtype=np.float64)
    target_map = np.linalg.lstsq(sigma_xx.T, sigma_yx.T, rcond=None)[0].T
    return np.linalg.svd(target_map)


def _predictions_from(tracked, measured, time, start, u, v, sigma_xx, sigma_yx, depth, substeps, predictions):
    """Every requested prediction started at record ``start``: dict name -> ``(T - start, R)``."""
    rank = measured.shape[1]
    s, c = (np.asarray(a) for a in mode_targets(sigma_xx, sigma_yx, u, v))
    s = np.abs(s)
    t_pred = jnp.asarray(time[start:])
    out: dict[str, np.ndarray] = {}
    a0 = np.asarray(tracked["factors"][start], dtype=np.float64)
    sig0 = measured[start]
    if "mode_ode" in predictions:
        out["mode_ode"] = np.asarray(mode_ode(t_pred, a0, s, c, substeps).sigma)
    if "mode_ode_kernel" in predictions and "mode_kernel" in tracked:
        with np.errstate(divide="ignore", invalid="ignore"):
            shared = sig0**2 * np.sum(a0**-2.0, axis=0)
            kappa = np.where(shared > 0, np.asarray(tracked["mode_kernel"][start], np.float64) / shared, 1.0)
        out["mode_ode_kernel"] = np.asarray(mode_ode(t_pred, a0, s, c, substeps, kappa).sigma)
    if "balanced" in predictions:
        out["balanced"] = np.asarray(balanced_mode_ode(t_pred, sig0, s, depth, c, substeps))
    if "saxe" in predictions and depth == 2 and np.allclose(c, 1.0, rtol=1e-6):
        out["saxe"] = np.asarray(saxe_two_layer(t_pred[:, None] - t_pred[0], s[None, :], sig0[None, :]))
    if "arora" in predictions and "end_to_end" in tracked:
        w0 = np.asarray(tracked["end_to_end"][start], dtype=np.float64)
        w = np.asarray(arora_end_to_end(t_pred, w0, sigma_xx, sigma_yx, depth, substeps))
        out["arora"] = np.linalg.svd(w, compute_uv=False)[:, :rank]
    return out, s / c


def compare_dynamics(
    result: TrainResult,
    *,
    sigma_xx: Float[ArrayLike, "d_in d_in"],
    sigma_yx: Float[ArrayLike, "d_out d_in"],
    depth: int,
    learning_rate: float | None = None,
    time: Float[ArrayLike, " T"] | None = None,
    start_index: int | Int[ArrayLike, " R"] = 0,
    basis: str = "target",
    target_basis: tuple[Float[ArrayLike, "d_out R"], Float[ArrayLike, "d_in R"]] | None = None,
    substeps: int = 8,
    predictions: Sequence[str] = PREDICTIONS,
) -> DynamicsComparison:
    """Run the predictions from a tracked training run and measure their error per mode.

    Args:
        result: a :class:`jaxspec.training.TrainResult` whose ``tracked`` holds ``sigma``, ``u``, ``v``,
            ``factors`` (``mode_kernel`` for the kernel-corrected mode ODE, ``end_to_end`` for the Arora
            prediction), as made by :func:`jaxspec.training.make_tracker`.
        sigma_xx: ``(d_in, d_in)`` (:func:`jaxspec.data.input_output_statistics`).
        sigma_yx: ``(d_out, d_in)``.
        depth: number of weight matrices ``L``.
        learning_rate: GD step; the time is ``steps * learning_rate`` (or give ``time`` directly).
        time: ``(T,)`` gradient-flow times of the records (overrides ``learning_rate``).
        start_index: record from which the predictions start (from the measured state there): one int, or
            ``(R,)`` ints, one per mode (the modes are predicted independently; the matrix-valued Arora
            prediction is then integrated once per distinct start and read off mode by mode).
        basis: where the mode targets ``s_r, c_r`` come from: ``"target"`` (the singular vectors of the
            least-squares target map ``Sigma_yx Sigma_xx^{-1}``, or ``target_basis``) or ``"measured"`` (the
            end-to-end singular vectors at the start).
        target_basis: optional ``(U (d_out, R), V (d_in, R))`` for ``basis="target"``.
        substeps: RK4 steps per record interval.
        predictions: which of :data:`PREDICTIONS` to run.

    Returns:
        :class:`DynamicsComparison`.

    Example:
        >>> cmp = compare_dynamics(res, sigma_xx=sxx, sigma_yx=syx, depth=3,
        ...                        learning_rate=1e-3)  # doctest: +SKIP
        >>> cmp.max_relative_error["mode_ode"]  # doctest: +SKIP

    References:
        Saxe et al., arXiv:1312.6120; Arora et al., arXiv:1802.06509;
        [math §5](https://jaxspec.github.io/jaxspec/math/#s5).
    """
    tracked = result.tracked
    if not isinstance(tracked, dict) or not {"sigma", "u", "v", "factors"} <= set(tracked):
        raise InputError(
            "result.tracked must hold sigma, u, v and factors (use jaxspec.training.make_tracker)"
        )
    unknown = sorted(set(predictions) - set(PREDICTIONS))
    if unknown:
        raise InputError(f"unknown predictions {unknown}; known: {', '.join(PREDICTIONS)}")
    measured = np.asarray(tracked["sigma"], dtype=np.float64)
    num_records, rank = measured.shape
    if time is None:
        if learning_rate is None:
            raise InputError("give learning_rate (time = step * learning_rate) or time")
        time = np.asarray(result.steps, dtype=np.float64) * float(learning_rate)
    time = np.asarray(time, dtype=np.float64)
    if time.shape != (num_records,):
        raise InputError(f"time must have shape ({num_records},), got {time.shape}")
    starts = np.broadcast_to(np.asarray(start_index), (rank,)).astype(int)
    if np.any(starts < 0) or np.any(starts > num_records - 2):
        raise InputError(f"start_index must be in [0, {num_records - 2}], got {start_index}")
    if basis not in ("target", "measured"):
        raise InputError(f"basis must be 'target' or 'measured', got {basis!r}")
    sigma_xx = np.asarray(sigma_xx, dtype=np.float64)
    sigma_yx = np.asarray(sigma_yx, dtype=np.float64)
    if basis == "target":
        if target_basis is not None:
            fixed_u, fixed_v = (np.asarray(b, dtype=np.float64)[:, :rank] for b in target_basis)
        else:
            uu, _, vt = target_svd(sigma_xx, sigma_yx)
            fixed_u, fixed_v = uu[:, :rank], vt[:rank].T
    predicted: dict[str, np.ndarray] = {}
    target = np.zeros(rank)
    # The predictions are cheap: integrate them in float64 whatever the run's dtype.
    with jax.enable_x64(True):
        for start in np.unique(starts):
            if basis == "measured":
                u = np.asarray(tracked["u"][start], dtype=np.float64)
                v = np.asarray(tracked["v"][start], dtype=np.float64)
            else:
                u, v = fixed_u, fixed_v
            preds, fixed_points = _predictions_from(
                tracked, measured, time, int(start), u, v, sigma_xx, sigma_yx, depth, substeps, predictions
            )
            modes = starts == start
            target[modes] = fixed_points[modes]
            for name, values in preds.items():
                full = predicted.setdefault(name, np.full((num_records, rank), np.nan))
                full[start:, modes] = values[:, modes]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = {k: measured / p - 1.0 for k, p in predicted.items()}
    max_rel = {
        k: np.array([np.nanmax(np.abs(e[starts[r] :, r])) for r in range(rank)]) for k, e in rel.items()
    }
    half = {"measured": _half_times(time, measured, starts, target)}
    half.update({k: _half_times(time, p, starts, target) for k, p in predicted.items()})
    t0 = time[starts]
    with np.errstate(divide="ignore", invalid="ignore"):
        half_err = {k: (half["measured"] - t0) / (half[k] - t0) - 1.0 for k in predicted}
    return DynamicsComparison(time, measured, predicted, rel, max_rel, target, starts, half, half_err)
