"""The :class:`Ensemble` protocol: what the engine asks of a product of layers ``A_l = D_l W_l``.

An ensemble is a small frozen pytree. Its numerical parameters (``sigma2``, ``p``) are pytree leaves, so a
sweep can ``vmap`` over them; its shapes (``widths``) are static. The engine needs three things of it:

* **What it can sample**, one layer at a time (``init_state``, ``layer``) or all at once (``sample``), with
  exactly the engine's keys, so that a dense oracle sees the same matrices as the scan.
* **Its exact fast sampler, if any.** Ensembles whose layers are Gaussian behind gates drawn independently of
  the weights also satisfy :class:`GatedGaussian`; the engine's exact samplers need nothing more.
* **Its theory hook**: ``layer_theory(k, condition)``, the closed-form per-layer statistics of
  ``log|R_ii|`` where they are known (used to choose ``reortho_every="auto"`` and by :mod:`jaxspec.theory`),
  and ``min_active_count()``, a lower bound on the active counts known before sampling (used to pick a QR
  backend).

Variable widths. ``widths = (n_0, n_1, ..., n_L)``: layer ``l`` (0-based) maps ``n_l -> n_{l+1}``. All layers
are stored zero-padded to ``N = max(widths)``: the block ``weight[:n_{l+1}, :n_l]`` is the real matrix and
``mask[n_{l+1}:] = 0``. Padding rows are masked and padding columns are zero, so the padded product acts on
``R^{n_0}`` exactly as the unpadded one. Active counts ``K_l = mask.sum()`` only ever count real units.

References:
    Haas, Gatine, Cosse, Bouraoui, "Why Deep Jacobian Spectra Separate", ICML 2026, arXiv:2602.12384.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
from jaxtyping import Array, Float, Int, PRNGKeyArray


class LayerStack(NamedTuple):
    """A whole stack of padded layers.

    Attributes:
        weights: ``(L, N, N)`` padded weight matrices, ``weights[l][:n_{l+1}, :n_l]`` is layer ``l``.
        masks: ``(L, N)`` gate values in ``{0, 1}`` (zero on padding rows).
    """

    weights: Float[Array, "L N N"]
    masks: Float[Array, "L N"]


def layer_key(key: PRNGKeyArray, index: Int[Array, ""] | int) -> PRNGKeyArray:
    """The key of layer ``index`` of one realisation: ``fold_in(key, index)``, so it never depends on
    depth."""
    return jax.random.fold_in(key, index)


@runtime_checkable
class Ensemble(Protocol):
    """A product of (masked) linear layers that the engine can propagate a frame through.

    Attributes:
        widths: ``(n_0, ..., n_L)``, static.
        name: a short static label (``"gaussian"``, ``"masked"``, ...), for display only: nothing dispatches
            on it.
    """

    widths: tuple[int, ...]
    name: str

    @property
    def depth(self) -> int:
        """Number of layers ``L``."""

    @property
    def max_width(self) -> int:
        """Padded width ``N = max(widths)``."""

    @property
    def input_width(self) -> int:
        """``n_0``."""

    def init_state(self, key: PRNGKeyArray, dtype: Any = ...) -> Any:
        """Per-realisation state (``None`` for independent layers; the activation of a ReLU network)."""

    def layer(
        self, state: Any, key: PRNGKeyArray, index: Int[Array, ""], dtype: Any = ...
    ) -> tuple[Any, Float[Array, "N N"], Float[Array, " N"]]:
        """Layer ``index``: ``(state, weight (N, N), mask (N,))``. Pure; ``index`` may be traced."""

    def sample(self, key: PRNGKeyArray, dtype: Any = ...) -> LayerStack:
        """The whole stack, drawn with the engine's keys."""

    def min_active_count(self) -> int:
        """A lower bound on every ``K_l`` known before sampling (0 when none is known)."""

    def layer_theory(self, k: int, condition: str) -> Any:
        """Closed-form per-layer statistics (a :class:`jaxspec.theory.LayerTheory`), or ``None``."""


@runtime_checkable
class GatedGaussian(Protocol):
    """Gaussian layers behind gates drawn independently of the weights: the exact fast samplers apply.

    For such an ensemble, ``W_l Q`` is a fresh Gaussian for any orthonormal ``Q`` independent of ``W_l``, so
    the QR factors of the propagated frame depend on the layer only through its active count and its weight
    variance ([math §1](https://jaxspec.github.io/jaxspec/math/#s1)).
    """

    widths: tuple[int, ...]

    def sample_active_count(self, key: PRNGKeyArray, index: Int[Array, ""]) -> Int[Array, ""]:
        """``K_l``, drawn with the law of ``mask.sum()`` of the direct path (independent of the weights)."""

    def log_weight_variance(self, index: Int[Array, ""], dtype: Any) -> Float[Array, ""]:
        """``log(sigma2 / n_l)``, the log variance of layer ``index``'s weight entries."""
