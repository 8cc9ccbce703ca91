"""Spectra of any differentiable map: iterated maps ``x_{t+1} = step(x_t)`` and ODE flows, on the engine.

The layer of the product is the tangent map ``A_t = D step(x_t)``, never formed: a frame of ``k`` tangent
vectors is pushed through ``jax.jvp`` of one step, vmapped over the frame's columns, inside
:func:`benettin_scan` (its scan, QR and bookkeeping), while the orbit ``x_t`` rides along as the scan's state.
``burn_in`` steps first carry the orbit onto its attractor and the frame towards the Oseledets directions
without accumulating; exponents are per unit time (the sums divided by ``steps * dt``)
([math §1.8](https://jaxspec.github.io/jaxspec/math/#s1)). A flow is the same estimator on one solver step
of size ``dt`` per engine step, with tangents by ``jvp`` through the solver (diffrax, the ``train`` extra).

Initial conditions ``x0 (B, n)`` are independent orbits (vmapped): ``.mean`` and ``.stderr`` are taken across
them. Everything inside is differentiable, so ``jax.grad`` of the exponents with respect to parameters the
step closes over works (the QR's gradient; stable where the spectrum is simple): what Lyapunov regularisation
of recurrent networks ("gradient flossing") needs.

References:
    Benettin, Galgani, Giorgilli, Strelcyn, Meccanica 15 (1980); Shimada, Nagashima, Prog. Theor. Phys. 61
    (1979); Sprott, "Chaos and Time-Series Analysis" (2003) (the Henon and Lorenz-63 values); Engelken,
    "Gradient flossing", NeurIPS 2023, arXiv:2312.17306.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Float, Int

from jaxspec._checks import InputError, check_dtype, is_traced
from jaxspec._extras import optional_import
from jaxspec.engine._config import EngineConfig, make_config
from jaxspec.engine._keys import frame_key, initial_frame, seed_keys
from jaxspec.engine._qr import make_qr
from jaxspec.engine._scan import FrameSums, benettin_scan, exponents_from_sums

# An orbit's step as the engine sees it: ``advance(step_index, x) -> x'`` (the index gives flows their time).
Advance = Callable[[Int[Array, ""], Float[Array, " n"]], Float[Array, " n"]]

# flow_spectrum: a step count ``t / dt`` must be an integer to this relative precision.
_STEP_COUNT_RTOL = 1e-6


@struct.dataclass
class MapSpectrum:
    """Lyapunov exponents of an iterated map or a flow over a batch of orbits (a frozen pytree).

    Attributes:
        exponents: ``(B, k)`` per-orbit exponents per unit time, ``sum_t log|R_ii| / (steps * dt)``.
        mean: ``(k,)`` mean over the orbits.
        stderr: ``(k,)`` standard error of the mean across orbits (``std(ddof=1) / sqrt(B)``; NaN for one
            orbit).
        sums: the engine's :class:`FrameSums`, with a leading ``(B,)`` axis (``frame``: the final frame).
        dt: time per step (static).
        steps: accumulated steps per orbit (static).
        burn_in: steps run first without accumulating (static).
        config: the :class:`EngineConfig` (static).
    """

    exponents: Float[Array, "B k"]
    mean: Float[Array, " k"]
    stderr: Float[Array, " k"]
    sums: FrameSums
    dt: float = struct.field(pytree_node=False)
    steps: int = struct.field(pytree_node=False)
    burn_in: int = struct.field(pytree_node=False)
    config: EngineConfig = struct.field(pytree_node=False)


def tangent_step(
    advance: Advance, index: Int[Array, ""], x: Float[Array, " n"], frame: Float[Array, "n k"]
) -> tuple[Float[Array, " n"], Float[Array, "n k"]]:
    """One step of an orbit and of its tangent frame: ``(x', D advance(x) @ frame)``.

    ``jax.jvp`` of the step, vmapped over the frame's columns; the primal does not depend on the tangent, so
    it is computed once.

    Args:
        advance: ``(index, x) -> x'``.
        index: the step's index (traced).
        x: ``(n,)`` the current point.
        frame: ``(n, k)`` tangent vectors.

    Returns:
        ``(x' (n,), image (n, k))``.

    Example:
        >>> a = jnp.array([[2.0, 0.0], [0.0, 0.5]])
        >>> x, image = tangent_step(lambda i, x: a @ x, 0, jnp.ones(2), jnp.eye(2))
        >>> image.tolist()
        [[2.0, 0.0], [0.0, 0.5]]

    References:
        Benettin et al., Meccanica 15 (1980).
    """
    step = lambda y: advance(index, y).astype(y.dtype)  # noqa: E731
    return jax.vmap(lambda t: jax.jvp(step, (x,), (t,)), in_axes=-1, out_axes=(None, -1))(frame)


def orbit_frame_sums(
    advance: Advance,
    x: Float[Array, " n"],
    frame: Float[Array, "n k"],
    *,
    steps: int,
    burn_in: int = 0,
    reortho_every: int = 1,
    qr: Callable | None = None,
) -> FrameSums:
    """The engine's :class:`FrameSums` along one orbit (the prepared form of :func:`map_spectrum`). Pure;
    vmap it over orbits.

    ``burn_in`` steps first move the orbit and re-orthonormalise the frame every step without accumulating;
    then :func:`benettin_scan` runs ``steps`` steps (step indices ``burn_in, ..., burn_in + steps - 1``) with
    the tangent map as its layer (every layer counted: a map has no gates).

    Args:
        advance: ``(index, x) -> x'``, one step of the orbit (index 0 is the first burn-in step).
        x: ``(n,)`` initial condition.
        frame: ``(n, k)`` initial orthonormal frame.
        steps: accumulated steps (static).
        burn_in: steps run first without accumulating (static).
        reortho_every: steps between QRs of the accumulated part (static).
        qr: QR routine ``frame -> (Q, R)`` (default Householder; :func:`make_qr`).

    Returns:
        :class:`FrameSums` (``log_r_sum / steps`` are the exponents per step).

    Example:
        >>> a = jnp.array([[2.0, 0.0], [0.0, 0.5]])
        >>> sums = orbit_frame_sums(lambda i, x: a @ x, jnp.ones(2), jnp.eye(2), steps=10)
        >>> [round(float(s), 6) for s in sums.log_r_sum / 10]
        [0.693147, -0.693147]

    References:
        Benettin et al., Meccanica 15 (1980); [math §1.8](https://jaxspec.github.io/jaxspec/math/#s1).
    """
    qr = jnp.linalg.qr if qr is None else qr
    width = x.shape[-1]

    def burn(carry, index):
        x, frame = carry
        x, image = tangent_step(advance, index, x, frame)
        return (x, qr(image)[0].astype(frame.dtype)), None

    (x, frame), _ = jax.lax.scan(burn, (x, frame), jnp.arange(int(burn_in)))

    def apply_layer(x, frame, key, index):
        del key
        x, image = tangent_step(advance, index + burn_in, x, frame)
        return x, image, width

    return benettin_scan(
        apply_layer, x, frame, jax.random.key(0), int(steps), reortho_every=reortho_every, qr=qr
    )


@dataclasses.dataclass(frozen=True)
class _MapStep:
    """``(index, x) -> step(x)`` for an autonomous map; hashable, so that a repeated call reuses the compiled
    program."""

    step: Callable

    def __call__(self, index, x):
        del index
        return self.step(x)


@dataclasses.dataclass(frozen=True)
class _SolverStep:
    """One fixed step of a diffrax solver from ``t0 + index * dt`` (solver state re-initialised each step)."""

    term: Any
    solver: Any
    t0: float
    dt: float

    def __call__(self, index, x):
        t = self.t0 + index * self.dt
        state = self.solver.init(self.term, t, t + self.dt, x, None)
        return self.solver.step(self.term, t, t + self.dt, x, None, state, made_jump=False)[0]


@dataclasses.dataclass(frozen=True)
class _AutonomousField:
    """diffrax's ``(t, y, args)`` signature for an autonomous field ``f(x)``."""

    field: Callable

    def __call__(self, t, y, args):
        return self.field(y)


def _mean_and_stderr(exponents: Float[Array, "B k"]) -> tuple[Float[Array, " k"], Float[Array, " k"]]:
    count = exponents.shape[0]
    std = jnp.std(exponents, axis=0, ddof=1) if count > 1 else jnp.full(exponents.shape[1:], jnp.nan)
    return jnp.mean(exponents, axis=0), std / math.sqrt(count)


@functools.partial(jax.jit, static_argnames=("advance", "steps", "burn_in", "dt", "config"))
def _run(
    advance: Advance, x0, frames, steps: int, burn_in: int, dt: float, config: EngineConfig
) -> MapSpectrum:
    qr = make_qr(config.qr, precision=config.lax_precision)
    sums = jax.vmap(
        lambda x, frame: orbit_frame_sums(
            advance, x, frame, steps=steps, burn_in=burn_in, reortho_every=config.reortho_every, qr=qr
        )
    )(x0, frames)
    exponents = exponents_from_sums(sums, config.condition) / dt
    mean, stderr = _mean_and_stderr(exponents)
    return MapSpectrum(
        exponents=exponents,
        mean=mean,
        stderr=stderr,
        sums=sums,
        dt=dt,
        steps=steps,
        burn_in=burn_in,
        config=config,
    )


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _real(name: str, value: Any) -> float:
    if (
        is_traced(value)
        or isinstance(value, bool)
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(value)
    ):
        raise InputError(f"{name} must be a finite Python number, got {value!r}")
    return float(value)


def _check_time(name: str, value: Any, *, positive: bool) -> float:
    value = _real(name, value)
    if value < 0 or (positive and value == 0):
        raise InputError(f"{name} must be {'positive' if positive else 'non-negative'}, got {value}")
    return value


def _initial_conditions(x0: Any, dtype: str) -> Float[Array, "B n"]:
    x0 = jnp.asarray(x0)
    if x0.ndim not in (1, 2) or x0.shape[-1] < 1 or x0.shape[0] < 1:
        raise InputError(f"x0 must have shape (n,) or (batch, n), got {tuple(x0.shape)}")
    if not (jnp.issubdtype(x0.dtype, jnp.floating) or jnp.issubdtype(x0.dtype, jnp.integer)):
        raise InputError(f"x0 must hold real numbers, got dtype {x0.dtype}")
    return jnp.atleast_2d(x0).astype(dtype)


def _check_step(advance: Advance, width: int, dtype: str, name: str) -> None:
    """The step must map an ``(n,)`` array to an ``(n,)`` array (checked abstractly, before any work)."""
    point = jax.ShapeDtypeStruct((width,), jnp.dtype(dtype))
    try:
        out = jax.eval_shape(advance, jax.ShapeDtypeStruct((), jnp.int32), point)
    except Exception as error:  # the user's function: report its failure as one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"{name} fails on an ({width},) array: {first}") from error
    if not hasattr(out, "shape") or tuple(out.shape) != (width,):
        shape = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
        raise InputError(f"{name} must map an ({width},) array to an ({width},) array, got {shape}")


def _orbit_spectrum(
    advance: Advance,
    x0,
    *,
    name: str,
    steps: int,
    k,
    burn_in: int,
    dt: float,
    reortho_every,
    dtype: str,
    seed: int,
) -> MapSpectrum:
    """Validate the engine options, draw one Haar frame per orbit, run (jitted, precision highest)."""
    x0 = _initial_conditions(x0, check_dtype(dtype))
    seed = _check_count("seed", seed, 0)
    batch, width = x0.shape
    config = make_config(width if k is None else k, max_k=width, reortho_every=reortho_every, dtype=dtype)
    _check_step(advance, width, dtype, name)
    keys = seed_keys(seed, batch)
    frames = jax.vmap(lambda key: initial_frame(frame_key(key), width, width, config.k, config.jnp_dtype))(
        keys
    )
    with jax.default_matmul_precision(config.precision):
        return _run(advance, x0, frames, steps, burn_in, dt, config)


def map_spectrum(
    step: Callable[[Float[Array, " n"]], Float[Array, " n"]],
    x0: Float[Array, "B n"] | Float[Array, " n"],
    *,
    steps: int,
    k: int | None = None,
    burn_in: int = 0,
    dt: float = 1.0,
    reortho_every: int = 1,
    dtype: str = "float32",
    seed: int = 0,
) -> MapSpectrum:
    """Lyapunov exponents of the map ``x_{t+1} = step(x_t)``, tangents by ``jax.jvp`` inside the engine.

    Args:
        step: a pure JAX function of an ``(n,)`` array returning an ``(n,)`` array. It may close over
            parameters: ``jax.grad`` of the exponents with respect to them works. Pass the same function
            object to repeated calls to reuse the compiled program.
        x0: ``(n,)`` one initial condition, or ``(B, n)`` a batch of independent orbits (vmapped).
        steps: accumulated steps per orbit.
        k: number of exponents (default ``n``, the full spectrum).
        burn_in: steps run first without accumulating (the orbit reaches its attractor, the frame its
            Oseledets directions).
        dt: time per step: exponents are per unit time (``sum log|R_ii| / (steps * dt)``).
        reortho_every: steps between QRs ([math §4](https://jaxspec.github.io/jaxspec/math/#s4): keep
            ``m dt (lambda_1 - lambda_k)`` well below 16 in float32, 36 in float64).
        dtype: ``"float32"`` or ``"float64"`` (needs ``jax_enable_x64``); the sums are float64 whenever
            x64 is on.
        seed: seeds the Haar initial frames (orbit ``b`` uses ``fold_in(key(seed), b)``).

    Returns:
        :class:`MapSpectrum`: ``.exponents (B, k)``, ``.mean (k,)``, ``.stderr (k,)``.

    Raises:
        InputError: a bad argument, before any work.

    Example:
        >>> henon = lambda x: jnp.array([1.0 - 1.4 * x[0] ** 2 + x[1], 0.3 * x[0]])
        >>> x0 = jax.random.uniform(jax.random.key(0), (4, 2), minval=-0.1, maxval=0.1)  # four orbits
        >>> res = map_spectrum(henon, x0, steps=2000, burn_in=100)
        >>> res.exponents.shape, round(float(res.exponents.sum(-1).mean()), 4)  # sum = ln 0.3
        ((4, 2), -1.204)

    References:
        Benettin et al., Meccanica 15 (1980); [math §1.8](https://jaxspec.github.io/jaxspec/math/#s1).
    """
    if not callable(step):
        raise InputError(f"step must be a function of an (n,) array, got {type(step).__name__}")
    steps = _check_count("steps", steps, 1)
    burn_in = _check_count("burn_in", burn_in, 0)
    dt = _check_time("dt", dt, positive=True)
    return _orbit_spectrum(
        _MapStep(step),
        x0,
        name="step",
        steps=steps,
        k=k,
        burn_in=burn_in,
        dt=dt,
        reortho_every=reortho_every,
        dtype=dtype,
        seed=seed,
    )


def _diffrax_field(vector_field: Callable) -> Callable:
    """diffrax's ``(t, y, args)`` form of ``vector_field`` (one required positional parameter: ``f(x)``)."""
    try:
        parameters = inspect.signature(vector_field).parameters.values()
    except (TypeError, ValueError):  # a builtin or C function: take diffrax's convention
        return vector_field
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    variadic = any(p.kind == p.VAR_POSITIONAL for p in parameters)
    if len(required) == 1 and not variadic:
        return _AutonomousField(vector_field)
    if variadic or len(required) <= 3 <= len(positional):
        return vector_field
    raise InputError(
        "vector_field must take (x) or diffrax's (t, x, args), "
        f"got {len(required)} required positional parameters"
    )


def _step_count(name: str, time: float, dt: float) -> int:
    count = round(time / dt)
    if abs(count * dt - time) > _STEP_COUNT_RTOL * max(time, dt):
        raise InputError(f"{name}={time} must be a whole number of steps dt={dt}")
    return int(count)


def flow_spectrum(
    vector_field: Callable,
    x0: Float[Array, "B n"] | Float[Array, " n"],
    *,
    t1: float,
    dt: float,
    burn_in_time: float = 0.0,
    k: int | None = None,
    solver: Any = None,
    t0: float = 0.0,
    reortho_every: int = 1,
    dtype: str = "float32",
    seed: int = 0,
) -> MapSpectrum:
    """Lyapunov exponents of the flow of ``dx/dt = vector_field(x)``, one diffrax solver step per engine step.

    Each step of the orbit is one fixed step of size ``dt`` of ``solver``; tangents are ``jax.jvp`` through
    that step, so the exponents are those of the discrete flow map, per unit time. Needs diffrax (the
    ``train`` extra, imported here).

    Args:
        vector_field: ``f(x) -> dx/dt`` of an autonomous system, or diffrax's ``f(t, x, args)`` (called with
            ``args=None``; close over parameters instead).
        x0: ``(n,)`` one initial condition, or ``(B, n)`` independent orbits.
        t1: accumulated time per orbit (a whole number of steps ``dt``).
        dt: the fixed step.
        burn_in_time: time integrated first without accumulating (a whole number of steps).
        k: number of exponents (default ``n``).
        solver: a diffrax solver (default ``diffrax.Tsit5()``), used with fixed steps (a Runge-Kutta solver
            runs its stages in a ``lax`` loop, ``scan_kind="lax"``, so that ``jvp`` can enter it).
        t0: start time (the accumulated part starts at ``t0 + burn_in_time``).
        reortho_every, dtype, seed: as in :func:`map_spectrum`.

    Returns:
        :class:`MapSpectrum` with ``dt`` and ``steps = t1 / dt``.

    Raises:
        InputError: a bad argument, before any work.
        ImportError: diffrax is missing (``pip install 'jaxspec[train]'``).

    Example:
        >>> lorenz = lambda x: jnp.array([10 * (x[1] - x[0]), x[0] * (28 - x[2]) - x[1],
        ...                               x[0] * x[1] - 8 / 3 * x[2]])
        >>> x0 = jnp.array([[1.0, 1.0, 20.0], [2.0, 1.0, 25.0]])
        >>> res = flow_spectrum(lorenz, x0, t1=20.0, dt=0.01, burn_in_time=5.0)
        >>> res.exponents.shape, round(float(res.exponents.sum(-1).mean()), 3)  # sum = -(sigma + 1 + beta)
        ((2, 3), -13.667)

    References:
        Benettin et al., Meccanica 15 (1980); Kidger, "On neural differential equations" (2021) (diffrax);
        [math §1.8](https://jaxspec.github.io/jaxspec/math/#s1).
    """
    diffrax = optional_import("diffrax", "maps")
    if not callable(vector_field):
        raise InputError(f"vector_field must be a function, got {type(vector_field).__name__}")
    dt = _check_time("dt", dt, positive=True)
    t1 = _check_time("t1", t1, positive=True)
    burn_in_time = _check_time("burn_in_time", burn_in_time, positive=False)
    t0 = _real("t0", t0)
    steps = _step_count("t1", t1, dt)
    burn_in = _step_count("burn_in_time", burn_in_time, dt)
    solver = diffrax.Tsit5() if solver is None else solver
    if not isinstance(solver, diffrax.AbstractSolver):
        raise InputError(
            f"solver must be a diffrax solver (e.g. diffrax.Tsit5()), got {type(solver).__name__}"
        )
    if isinstance(solver, diffrax.AbstractRungeKutta) and solver.scan_kind != "lax":
        # diffrax's default stage loop is checkpointed for reverse mode (a custom_vjp), which forward-mode jvp
        # cannot enter; the plain lax loop computes the same step.
        solver = dataclasses.replace(solver, scan_kind="lax")
    advance = _SolverStep(diffrax.ODETerm(_diffrax_field(vector_field)), solver, t0, dt)
    return _orbit_spectrum(
        advance,
        x0,
        name="vector_field",
        steps=steps,
        k=k,
        burn_in=burn_in,
        dt=dt,
        reortho_every=reortho_every,
        dtype=dtype,
        seed=seed,
    )
