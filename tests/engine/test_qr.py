"""QR backends against a float64 LAPACK oracle: factorisation, orthogonality, |R_ii|, fallback behaviour."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspec import InputError
from jaxspec.engine import (
    QR_BACKENDS,
    cholesky_qr2_with_status,
    make_qr,
    orthogonality_loss,
    shifted_cholesky_qr3_with_status,
)
from tests.conftest import assert_close

# max|Q^T Q - I| of a float32 frame that is orthonormal up to rounding: ~100 u (u = 6e-8), the O(u) loss of
# orthogonality of Householder and of CholeskyQR2 while cond^2 u < 1 (Yamamoto et al. 2015).
ORTHONORMAL_F32 = 1e-5
# Backward stability in float32: |R_ii| carries a relative error <= 50 u cond (u = 6e-8), as Householder does.
BACKWARD_STABLE_F32 = 50 * 6e-8


def _graded(cond: float, n: int = 64, k: int = 8, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """A frame with singular values logspaced from 1 to 1/cond (the shape Benettin blocks produce)."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((n, k)))
    v, _ = np.linalg.qr(rng.standard_normal((k, k)))
    return ((u * np.logspace(0, -np.log10(cond), k)) @ v.T).astype(dtype)


def _oracle_log_diag(a: np.ndarray) -> np.ndarray:
    return np.log(np.abs(np.diagonal(np.linalg.qr(a.astype(np.float64))[1], axis1=-2, axis2=-1)))


@pytest.mark.parametrize("name", QR_BACKENDS)
def test_backends_factorise_batched_frames_in_float64(name):
    a = np.random.default_rng(1).standard_normal((3, 40, 6))
    q, r = jax.jit(make_qr(name))(jnp.asarray(a))
    q, r = np.asarray(q), np.asarray(r)
    assert_close(q @ r, a)
    assert_close(np.swapaxes(q, -1, -2) @ q, np.broadcast_to(np.eye(6), (3, 6, 6)))
    assert_close(np.tril(r, -1), 0.0)
    assert_close(np.log(np.abs(np.diagonal(r, axis1=-2, axis2=-1))), _oracle_log_diag(a))


@pytest.mark.parametrize("cond", [1e1, 1e2, 1e3])
def test_cholesky_qr2_matches_householder_accuracy_without_fallback_in_float32(cond):
    a = _graded(cond)
    q, r, fell_back = cholesky_qr2_with_status(jnp.asarray(a))
    assert not bool(fell_back)
    assert float(orthogonality_loss(q)) < ORTHONORMAL_F32
    # Backward stability: |R_ii| carries a relative error of order u * cond, like Householder.
    err = np.abs(np.log(np.abs(np.diagonal(np.asarray(r)))) - _oracle_log_diag(a))
    assert err.max() < BACKWARD_STABLE_F32 * cond


def test_cholesky_qr2_falls_back_on_ill_conditioned_gram_and_shifted_variant_does_not():
    a = _graded(1e5)
    q2, r2, fb2 = cholesky_qr2_with_status(jnp.asarray(a))
    q3, r3, fb3 = shifted_cholesky_qr3_with_status(jnp.asarray(a))
    assert bool(fb2)  # cond^2 u >> 1: the first pass is far from orthonormal
    assert not bool(fb3)  # shifted CholeskyQR3 is stable up to cond ~ 1/u
    for q, r in [(q2, r2), (q3, r3)]:
        assert float(orthogonality_loss(q)) < ORTHONORMAL_F32
        err = np.abs(np.log(np.abs(np.diagonal(np.asarray(r)))) - _oracle_log_diag(a))
        assert err.max() < BACKWARD_STABLE_F32 * 1e5


def test_rank_deficient_frame_falls_back_to_an_orthonormal_completion():
    a = np.zeros((32, 6), np.float32)
    a[:, :3] = np.random.default_rng(2).standard_normal((32, 3))
    for fn in (cholesky_qr2_with_status, shifted_cholesky_qr3_with_status):
        q, r, fell_back = fn(jnp.asarray(a))
        assert bool(fell_back)
        assert float(orthogonality_loss(q)) < ORTHONORMAL_F32
        assert_close(np.asarray(q @ r), a, "float32", scale=0.3)


def test_fallback_decision_is_shared_across_a_named_vmap_axis():
    good = np.random.default_rng(3).standard_normal((32, 6)).astype(np.float32)
    bad = good.copy()
    bad[:, 5] = bad[:, 4]  # rank deficient
    stack = jnp.asarray(np.stack([good, bad]))
    named = jax.vmap(lambda a: cholesky_qr2_with_status(a, batch_axis_name="b"), axis_name="b")
    _, _, fb_named = named(stack)
    _, _, fb_unnamed = jax.vmap(cholesky_qr2_with_status)(stack)
    _, _, fb_batched = cholesky_qr2_with_status(stack)
    assert np.all(np.asarray(fb_named))  # one decision for the whole batch
    assert np.asarray(fb_unnamed).tolist() == [False, True]  # per element (a select)
    assert bool(fb_batched)
    # The good element's factor is exact either way (Householder or Cholesky, up to signs).
    _, r_named, _ = named(stack)
    assert_close(
        np.abs(np.diagonal(np.asarray(r_named[0]))), np.exp(_oracle_log_diag(good)), "float32", scale=0.3
    )


def test_make_qr_rejects_unknown_backend_and_orthogonality_loss_of_identity_is_zero():
    with pytest.raises(InputError):
        make_qr("gram-schmidt")
    assert float(orthogonality_loss(jnp.eye(5)[:, :3])) == 0.0


# ---------------------------------------------------------------------------------------------------------
# The batched blocked Householder (compact WY) against float64 LAPACK (numpy.linalg.qr: geqrf + orgqr).

# float32 against a float64 oracle on well-conditioned frames (cond <= 1e2 here): Q, R and |R_ii| agree to a
# few hundred u (u = 6e-8) relative to ||A||, the backward error of any Householder QR.
BLOCKED_F32 = 300 * 6e-8


def _frames(case: str, dtype) -> np.ndarray:
    """``(4, 40, 19)`` test frames: 19 columns span three panels of 8 (two full, one partial)."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((4, 40, 19))
    if case == "rank_deficient":  # the engine's rank collapse: columns beyond K_min zeroed, K_min per frame
        for frame, kmin in zip(a, (19, 11, 3, 0), strict=True):
            frame[:, kmin:] = 0.0
    elif case == "zero_rows":  # gated units: rows of the frame are zero (and one frame entirely)
        a[:, ::3] = 0.0
        a[3] = 0.0
    return a.astype(dtype)


@pytest.mark.parametrize(
    ("case", "dtype"),
    [
        ("full_rank", "float64"),
        ("rank_deficient", "float64"),
        ("zero_rows", "float64"),
        ("rank_deficient", "float32"),
        pytest.param("full_rank", "float32", marks=pytest.mark.slow),
        pytest.param("zero_rows", "float32", marks=pytest.mark.slow),
    ],
)
def test_blocked_householder_is_lapack_householder(case, dtype):
    a = _frames(case, dtype)
    q, r = jax.jit(make_qr("blocked_householder"))(jnp.asarray(a))
    q, r = np.asarray(q, np.float64), np.asarray(r, np.float64)
    q_ref, r_ref = np.linalg.qr(a.astype(np.float64))  # LAPACK: the same reflectors, signs and completion
    scale = np.max(np.abs(a), axis=(-2, -1), keepdims=True).astype(np.float64)
    scale = np.where(scale > 0, scale, 1.0)
    eye = np.broadcast_to(np.eye(a.shape[-1]), r.shape)
    if dtype == "float64":
        assert_close(q, q_ref, scale=10)
        assert_close(r / scale, r_ref / scale, scale=10)
    else:
        assert np.max(np.abs(q - q_ref)) < BLOCKED_F32
        assert np.max(np.abs(r - r_ref) / scale) < BLOCKED_F32
    tol = 1e-13 if dtype == "float64" else BLOCKED_F32
    assert np.max(np.abs(np.swapaxes(q, -1, -2) @ q - eye)) < tol
    assert np.max(np.abs(q @ r - a) / scale) < tol
    assert np.all(np.tril(r, -1) == 0)
    diag, diag_ref = (
        np.abs(np.diagonal(r, axis1=-2, axis2=-1)),
        np.abs(np.diagonal(r_ref, axis1=-2, axis2=-1)),
    )
    if case == "full_rank":
        assert np.max(np.abs(np.log(diag) - np.log(diag_ref))) < tol
    else:
        assert np.max(np.abs(diag - diag_ref) / scale[..., 0]) < tol
    if case == "rank_deficient":
        assert np.all(diag[1, 11:] == 0) and np.all(diag[3] == 0)  # zero columns: exactly zero R_ii


def test_blocked_householder_scales_tiny_and_huge_frames_exactly():
    a = _frames("full_rank", "float32")
    qr = jax.jit(make_qr("blocked_householder"))
    q0, r0 = qr(jnp.asarray(a))
    for factor in (2.0**-100, 2.0**100):
        q, r = qr(jnp.asarray(a * np.float32(factor)))
        assert np.array_equal(np.asarray(q), np.asarray(q0))
        assert np.array_equal(np.asarray(r), np.asarray(r0) * np.float32(factor))
