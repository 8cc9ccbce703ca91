"""What every reproduction job shares: size presets with keyword overrides, name checks, the progress bar.

A job has a frozen dataclass of problem sizes whose defaults are the quick (CPU) preset and a second instance
for ``full=True`` (paper scale, meant for a GPU); :func:`resolve_sizes` picks one and applies the caller's
keyword overrides, so that a test can run any job at a tiny size without a second code path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from tqdm.auto import tqdm

from jaxspec._checks import InputError

S = TypeVar("S")


def resolve_sizes(quick: S, full_sizes: S, full: bool, overrides: dict[str, Any]) -> S:
    """The preset (``full_sizes`` if ``full`` else ``quick``) with the fields in ``overrides`` replaced.

    Args:
        quick: the CPU preset (a frozen dataclass instance).
        full_sizes: the paper-scale preset (same class).
        full: pick ``full_sizes``.
        overrides: field name -> value; any other name is an :class:`~jaxspec.InputError` naming the fields.

    Returns:
        A new instance of the sizes class.
    """
    base = full_sizes if full else quick
    known = [f.name for f in dataclasses.fields(base)]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise InputError(
            f"unknown size overrides {unknown} for {type(base).__name__}; known: {', '.join(known)}"
        )
    return dataclasses.replace(base, **overrides)


def check_names(kind: str, names: Iterable[str] | None, known: Sequence[str]) -> list[str]:
    """``names`` as a list (all of ``known`` when ``None``); :class:`~jaxspec.InputError` if one is not."""
    chosen = list(known) if names is None else list(names)
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise InputError(f"unknown {kind} {unknown}; known: {', '.join(known)}")
    return chosen


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "it") -> tqdm:
    """A tqdm bar over a job's parts (disabled, so silent, when ``enabled`` is false)."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled)
