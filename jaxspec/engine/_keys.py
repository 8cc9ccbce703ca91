"""Random keys of a run and the initial frame: seed ``s`` never depends on how many seeds run beside it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from jaxspec._checks import check_positive_int, check_seed, is_traced


def seed_keys(seed: int, num_seeds: int) -> PRNGKeyArray:
    """Keys of seeds ``0..num_seeds-1``: ``fold_in(key(seed), s)``, so seed ``s`` never depends on
    ``num_seeds``.

    Example:
        >>> seed_keys(0, 4).shape
        (4,)

    Raises:
        InputError: for a seed outside ``[0, 2^32 - 1]`` or a count below 1 (a traced seed is taken as is).
    """
    if not is_traced(seed):
        seed = check_seed(seed)
    num_seeds = check_positive_int("num_seeds", num_seeds)
    base = jax.random.key(seed)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.arange(num_seeds))


def realisation_key(seed_key: PRNGKeyArray) -> PRNGKeyArray:
    """The key the engine hands the ensemble for one seed: ``ensemble.sample(realisation_key(k))`` is the
    stack that the engine propagated."""
    return jax.random.split(seed_key)[1]


def frame_key(seed_key: PRNGKeyArray) -> PRNGKeyArray:
    """The key of one seed's initial frame (see :func:`initial_frame`)."""
    return jax.random.split(seed_key)[0]


def initial_frame(
    key: PRNGKeyArray, input_width: int, padded_width: int, k: int, dtype
) -> Float[Array, "N k"]:
    """A Haar-random ``(padded_width, k)`` orthonormal frame supported on the first ``input_width`` rows."""
    # Drawn in float32 and cast: float32 and float64 runs start from the same frame.
    g = jax.random.normal(key, (padded_width, k), dtype=jnp.float32).astype(dtype)
    g = g * (jnp.arange(padded_width) < input_width)[:, None].astype(dtype)
    q, r = jnp.linalg.qr(g)
    return q * jnp.sign(jnp.diagonal(r))[None, :]
