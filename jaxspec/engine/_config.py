"""Static configuration of one engine run: :class:`EngineConfig` and its validated constructor."""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxspec._checks import PRECISIONS, ComputeOptions, InputError, check_choice, check_dtype
from jaxspec.engine._qr import QR_BACKENDS
from jaxspec.engine._reortho import parse_reortho_every

#: Rank-collapse conventions ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)).
CONDITIONS = ("K>=i", "K>=k", "none")
#: How a realisation is propagated: the direct product, or an exact fast sampler (rotation-invariant gated
#: Gaussian ensembles, exponents only). ``"auto"`` (resolved by the driver) picks ``"chi"`` where it is exact.
METHODS = ("direct", "gaussian_frame", "chi")


@dataclasses.dataclass(frozen=True)
class EngineConfig(ComputeOptions):
    """Static configuration of one engine run (hashable, so it can be a ``jit`` static argument).

    Attributes:
        k: number of frame columns (top-``k`` exponents).
        reortho_every: layers between QR re-orthonormalisations
            ([math §4](https://jaxspec.github.io/jaxspec/math/#s4) bounds it).
        dtype: compute dtype, ``"float32"`` or ``"float64"``.
        precision: matmul precision, ``"highest"`` (default; GPUs/TPUs otherwise use TF32/bf16), ``"high"``
            or ``"default"``.
        condition: rank-collapse convention, one of :data:`CONDITIONS`.
        rates_every: if set, also return local growth rates averaged over windows of this many layers (a
            multiple of ``reortho_every``); memory then grows with depth.
        qr: QR backend (``"householder"``, ``"cholesky2"``, ``"shifted_cholesky3"``; see :func:`make_qr`).
        method: ``"direct"`` (the product itself) or an exact fast sampler (``"gaussian_frame"``, ``"chi"``;
            exponents only, gated Gaussian ensembles).
    """

    k: int
    reortho_every: int = 1
    dtype: str = "float32"
    precision: str = "highest"
    condition: str = "K>=i"
    rates_every: int | None = None
    qr: str = "householder"
    method: str = "direct"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def make_config(
    k: int,
    *,
    max_k: int,
    reortho_every: int = 1,
    dtype: str = "float32",
    precision: str = "highest",
    condition: str = "K>=i",
    rates_every: int | None = None,
    qr: str = "householder",
    method: str = "direct",
) -> EngineConfig:
    """Validate engine options and build an :class:`EngineConfig` (raises :class:`~jaxspec.InputError`).

    Args:
        k: number of frame columns, in ``[1, max_k]``.
        max_k: the largest admissible ``k`` (the smallest width).
        reortho_every, dtype, precision, condition, rates_every, qr, method: as :class:`EngineConfig`
            (``reortho_every`` must be an integer here: ``"auto"`` is resolved by the driver).

    Returns:
        :class:`EngineConfig`.

    Example:
        >>> make_config(4, max_k=16, reortho_every=8).reortho_every
        8
    """
    if isinstance(k, bool) or int(k) != k or not 1 <= int(k) <= max_k:
        raise InputError(f"k must be an integer in [1, {max_k}] (the smallest width), got {k}")
    reortho_every, _ = parse_reortho_every(reortho_every, allow_auto=False)
    check_dtype(dtype)
    check_choice("precision", precision, PRECISIONS)
    check_choice("condition", condition, CONDITIONS)
    if rates_every is not None and (
        int(rates_every) != rates_every or rates_every < 1 or rates_every % reortho_every
    ):
        raise InputError(
            f"rates_every must be a positive multiple of reortho_every={reortho_every}, got {rates_every}"
        )
    check_choice("qr", qr, QR_BACKENDS)
    check_choice("method", method, METHODS)
    return EngineConfig(
        int(k),
        reortho_every,
        dtype,
        precision,
        condition,
        None if rates_every is None else int(rates_every),
        qr,
        method,
    )
