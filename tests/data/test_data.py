"""Data loaders: exact whitening of the teacher, digits, and MNIST from tiny IDX/npz files written here."""

from __future__ import annotations

import gzip
import struct

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspec import InputError, data
from tests.conftest import assert_close

# A Gram matrix X^T X / n or a column sum of whitened data adds up n samples: 10 x the table's rounding.
GRAM_SCALE = 10


def test_teacher_inputs_are_white_and_the_target_has_the_prescribed_modes():
    ds, t = data.teacher(jax.random.key(0), 7, 5, 40, [4.0, 2.5, 0.5], dtype=jnp.float64)
    sxx, syx = data.input_output_statistics(ds)
    assert_close(sxx, np.eye(7))
    # Oracle: a dense SVD of Sigma_yx recovers the prescribed singular values; the rest are zero.
    s = np.linalg.svd(np.asarray(syx), compute_uv=False)
    assert_close(s, np.array([4.0, 2.5, 0.5, 0.0, 0.0]))
    assert_close(syx, t.matrix)
    assert_close(np.asarray(t.u).T @ np.asarray(t.u), np.eye(3))
    assert_close(np.asarray(t.v).T @ np.asarray(t.v), np.eye(3))
    chex.assert_shape([ds.x, ds.y], [(40, 7), (40, 5)])
    assert ds.labels is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_samples": 5}, "num_samples"),
        ({"singular_values": [1.0, 2.0]}, "descending"),
        ({"singular_values": [1.0, -1.0]}, "positive"),
        ({"singular_values": [3, 2, 1, 1, 1, 1]}, "singular values"),
        ({"input_dim": 0}, "input_dim"),
    ],
)
def test_teacher_rejects_bad_arguments(kwargs, message):
    args = {"input_dim": 6, "output_dim": 4, "num_samples": 20, "singular_values": [2.0, 1.0]} | kwargs
    with pytest.raises(InputError, match=message):
        data.teacher(jax.random.key(0), **args)


def test_whiten_gives_identity_covariance_and_checks_its_input(rng):
    x = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)) + 3.0
    z = data.whiten(x, 4)
    assert_close(z.T @ z / 200, np.eye(4), scale=GRAM_SCALE)
    with pytest.raises(InputError, match="dim"):
        data.whiten(x, 6)
    with pytest.raises(InputError, match="2-d"):
        data.whiten(np.ones(5))


def test_digits_loads_the_bundled_copy_whitened():
    ds = data.digits(whiten_dim=12, limit=300, dtype=jnp.float64)
    chex.assert_shape([ds.x, ds.y, ds.labels], [(300, 12), (300, 10), (300,)])
    assert_close(ds.x.T @ ds.x / 300, np.eye(12), scale=GRAM_SCALE)
    assert_close(np.asarray(ds.y).sum(axis=0), 0.0, scale=GRAM_SCALE)  # centred targets
    np.testing.assert_array_equal(np.argmax(np.asarray(ds.y), axis=1), np.asarray(ds.labels))
    raw = data.digits(whiten_dim=None, limit=10, centre_targets=False)
    chex.assert_shape(raw.x, (10, 64))
    assert float(raw.x.max()) <= 1.0 and float(raw.y.sum()) == 10.0


def _write_idx(path, array: np.ndarray, code: int = 0x08, compress: bool = False) -> None:
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.fixture
def tiny_mnist(tmp_path, rng):
    images = rng.integers(0, 256, size=(6, 4, 3), dtype=np.uint8)
    labels = np.array([0, 3, 1, 9, 3, 2], dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, compress=True)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:2], compress=True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:2])
    return tmp_path, images, labels


def test_read_idx_round_trips_every_type_code(tmp_path, rng):
    for code, dtype in (
        (0x08, np.uint8),
        (0x0B, np.int16),
        (0x0C, np.int32),
        (0x0D, np.float32),
        (0x0E, np.float64),
    ):
        array = (rng.normal(size=(3, 2, 2)) * 50).astype(dtype)
        _write_idx(tmp_path / f"a{code}", array, code)
        np.testing.assert_array_equal(data.read_idx(tmp_path / f"a{code}"), array)


def test_load_mnist_reads_idx_folders_and_npz(tiny_mnist, tmp_path):
    folder, images, labels = tiny_mnist
    ds = data.load_mnist(folder, centre_targets=False, dtype=jnp.float64)
    # A few ulp (the table's absolute floor would hide an error on the small pixel values).
    np.testing.assert_allclose(ds.x, images.reshape(6, 12) / 255.0, rtol=1e-15)
    np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_array_equal(ds.y, np.eye(10)[labels])
    chex.assert_shape(
        [data.load_mnist(folder, split="test").x, data.load_mnist(folder, limit=4).x], [(2, 12), (4, 12)]
    )
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=images, y_train=labels, x_test=images[:2], y_test=labels[:2])
    np.testing.assert_array_equal(data.load_mnist(npz, dtype=jnp.float64).x, ds.x)
    whitened = data.load_mnist(npz, whiten_dim=3, dtype=jnp.float64)
    assert_close(whitened.x.T @ whitened.x / 6, np.eye(3), scale=GRAM_SCALE)


def test_bad_paths_and_files_raise_input_errors(tiny_mnist, tmp_path):
    folder, images, labels = tiny_mnist
    with pytest.raises(InputError, match="no such MNIST path"):
        data.load_mnist(tmp_path / "missing")
    with pytest.raises(InputError, match="no such IDX file"):
        data.read_idx(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(InputError, match="magic"):
        data.read_idx(bad)
    truncated = tmp_path / "truncated"
    truncated.write_bytes((folder / "train-images-idx3-ubyte").read_bytes()[:-5])
    with pytest.raises(InputError, match="header says shape"):
        data.read_idx(truncated)
    other = tmp_path / "other"
    other.mkdir()
    _write_idx(other / "train-images-idx3-ubyte", images)
    _write_idx(other / "train-labels-idx1-ubyte", labels[:5])
    with pytest.raises(InputError, match="labels must have shape"):
        data.load_mnist(other)
    _write_idx(other / "train-images-idx3-ubyte", images.reshape(6, 12))
    with pytest.raises(InputError, match=r"\(N, H, W\)"):
        data.load_mnist(other)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="train-images"):
        data.load_mnist(empty)
    npz = tmp_path / "partial.npz"
    np.savez(npz, x_train=images)
    with pytest.raises(InputError, match="y_train"):
        data.load_mnist(npz)
    with pytest.raises(InputError, match="split"):
        data.load_mnist(folder, split="validation")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(InputError, match="neither"):
        data.load_mnist(text)
