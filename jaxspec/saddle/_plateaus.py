"""Plateaus of a loss curve (saddle-to-saddle dynamics) and the direction at the end of the first plateau.

:func:`detect_plateaus` reads off the plateaus of the loss of a :func:`train_from_small_init` run;
:func:`first_plateau_direction` returns the tracked parameters at the end of the first plateau (the saddle at
the origin), to be compared with the optimal escape direction.

References:
    Bantzis, Simon, Jacot, "Saddle-to-Saddle Dynamics in Deep ReLU Networks: Low-Rank Bias in the First
    Saddle Escape", ICLR 2026, arXiv:2505.21722.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jaxtyping import ArrayLike, Float

from jaxspec._checks import InputError, check_positive_int
from jaxspec.saddle._validation import Params
from jaxspec.training import TrainResult


class Plateaus(NamedTuple):
    """Plateaus of a loss curve, as record indices (inclusive).

    Attributes:
        start: ``(P,)`` int, first record of each plateau.
        end: ``(P,)`` int, last record of each plateau.
        rate: ``(T,)``, relative loss drop per record ``(l_{t-1} - l_t) / l_{t-1}`` (0 at ``t = 0``).
    """

    start: np.ndarray
    end: np.ndarray
    rate: np.ndarray


def detect_plateaus(loss: Float[ArrayLike, " T"], *, rate_tol: float = 0.05, min_length: int = 3) -> Plateaus:
    """Plateaus of a loss curve: maximal runs of records whose relative drop is small.

    The relative drop of record ``t`` is ``r_t = (l_{t-1} - l_t) / l_{t-1}``; a record is *flat* when
    ``r_t <= rate_tol * max_t r_t`` (record 0 is flat). A plateau is a maximal run of flat records of length
    ``>= min_length``; the run starting at record 0 (the saddle at the origin) is always kept.

    Args:
        loss: ``(T,)`` positive losses at equally spaced records.
        rate_tol: flatness threshold relative to the fastest drop.
        min_length: shortest plateau (records).

    Returns:
        :class:`Plateaus` (``start (P,)``, ``end (P,)`` record indices, inclusive; ``rate (T,)``).

    Example:
        >>> p = detect_plateaus([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1], min_length=2)
        >>> p.start.tolist(), p.end.tolist()  # the records right after a drop (3 and 7) are not flat
        ([0, 4, 8], [2, 6, 9])

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722 (saddle-to-saddle dynamics).
    """
    ell = np.asarray(loss, dtype=np.float64).ravel()
    if ell.size < 2 or not np.all(np.isfinite(ell)) or np.any(ell <= 0):
        raise InputError("loss must hold at least two positive finite values")
    if not (0 < rate_tol < 1):
        raise InputError(f"rate_tol must be in (0, 1), got {rate_tol}")
    min_length = check_positive_int("min_length", min_length)
    rate = np.zeros_like(ell)
    rate[1:] = (ell[:-1] - ell[1:]) / ell[:-1]
    top = rate.max()
    flat = rate <= rate_tol * top if top > 0 else np.ones_like(rate, dtype=bool)
    flat[0] = True
    starts, ends = [], []
    t = 0
    while t < ell.size:
        if flat[t]:
            u = t
            while u + 1 < ell.size and flat[u + 1]:
                u += 1
            if u - t + 1 >= min_length or t == 0:
                starts.append(t)
                ends.append(u)
            t = u + 1
        else:
            t += 1
    return Plateaus(np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64), rate)


def first_plateau_direction(
    result: TrainResult, *, rate_tol: float = 0.05, min_length: int = 3
) -> tuple[Params, int]:
    """The parameters at the end of the first plateau of a :func:`train_from_small_init` run.

    Args:
        result: the :class:`jaxspec.training.TrainResult` of :func:`train_from_small_init` with
            ``track_params=True`` (``result.loss`` of shape ``(T,)``).
        rate_tol, min_length: as in :func:`detect_plateaus`.

    Returns:
        ``(params, record)``: the tracked parameters at the last record of the first plateau (the saddle at
        the origin) and that record's index (``result.steps[record]`` is the step).

    Example:
        >>> x, g = unit_circle_example()
        >>> p0 = [{"w": 1e-3 * q["w"]} for q in init_mlp(jax.random.key(0), (2, 8, 8, 1))]
        >>> res = train_from_small_init(p0, x, -8.0 * g, step_scale=1.5, num_steps=600, progress=False)
        >>> params, record = first_plateau_direction(res)
        >>> len(params), 0 <= record < res.steps.shape[0]
        (3, True)

    References:
        Bantzis, Simon, Jacot, arXiv:2505.21722.
    """
    tracked = getattr(result, "tracked", None)
    if not isinstance(tracked, dict) or "params" not in tracked:
        raise InputError("the run must come from train_from_small_init(..., track_params=True)")
    end = int(detect_plateaus(result.loss, rate_tol=rate_tol, min_length=min_length).end[0])
    return [jax.tree.map(lambda a: a[end], p) for p in tracked["params"]], end
