"""Optional dependency groups (``pip install 'jaxspec[extra]'``) and the error that names a missing one.

The core install (jax, optax, flax, numpy, chex, scipy, typer, matplotlib, tqdm) runs every spectrum, theory
and training computation. Stores, checkpoints and datasets beyond the core live in extras; code that needs one
calls :func:`require` before doing any work, so a missing extra stops it at once with a message naming it.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from jaxspec._errors import MissingExtraError

# extra -> the import names it provides (the ones jaxspec imports). Keep in step with pyproject.toml and the
# README's table of commands and extras.
EXTRAS: dict[str, tuple[str, ...]] = {
    "sweep": ("xarray", "zarr", "pyarrow", "pandas", "yaml"),
    "train": ("xarray", "orbax.checkpoint", "sklearn", "yaml"),
    "figures": ("xarray", "sklearn"),
    "maps": ("diffrax",),
    "hessian": ("matfree",),
    "bench": ("lyapax",),
}


def missing_modules(extra: str) -> list[str]:
    """The import names of ``extra`` that this environment lacks (empty when the extra is installed).

    Example:
        >>> missing_modules("sweep") in ([], ["xarray", "zarr", "pyarrow", "pandas", "yaml"]) or True
        True
    """
    absent = []
    for name in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # a dotted name whose parent package is absent
            found = False
        if not found:
            absent.append(name)
    return absent


def require(extra: str, purpose: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` is importable.

    Args:
        extra: a key of :data:`EXTRAS`.
        purpose: what needs it, for the message (``"jaxspec sweep"``, ``"jaxspec.sweeps.load_sweep"``).

    Example:
        >>> require("sweep", "a sweep store")  # doctest: +SKIP
    """
    absent = missing_modules(extra)
    if absent:
        raise MissingExtraError(
            f"{purpose} needs pip install 'jaxspec[{extra}]' (missing: {', '.join(absent)})"
        )


def optional_import(module: str, extra: str) -> ModuleType:
    """``import module``, or :class:`MissingExtraError` naming the extra that provides it.

    Example:
        >>> optional_import("json", "sweep").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise MissingExtraError(
            f"{module} is not installed: pip install 'jaxspec[{extra}]' ({err.name} is missing)"
        ) from None
