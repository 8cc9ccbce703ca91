"""Data loaders: exact whitening of the teacher, digits, and MNIST from tiny IDX/npz files written here."""

from __future__ import annotations

import gzip
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspec import data
from jaxspec import InputError


def test_teacher_inputs_are_white_and_the_target_has_the_prescribed_modes():
    ds, t = data.teacher(jax.random.key(0), 7, 5, 40, [4.0, 2.5, 0.5], dtype=jnp.float64)
    sxx, syx = data.input_output_statistics(ds)
    np.testing.assert_allclose(sxx, np.eye(7), atol=1e-12)
    # Oracle: a dense SVD of Sigma_yx recovers the prescribed singular values; the rest are zero.
    s = np.linalg.svd(np.asarray(syx), compute_uv=False)
    np.testing.assert_allclose(s, [4.0, 2.5, 0.5, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(syx, t.matrix, atol=1e-12)
    np.testing.assert_allclose(np.asarray(t.u).T @ np.asarray(t.u), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.asarray(t.v).T @ np.asarray(t.v), np.eye(3), atol=1e-12)
    assert ds.x.shape == (40, 7) and ds.y.shape == (40, 5) and ds.labels is None


@pytest.mark.parametrize("kwargs, message", [
    ({"num_samples": 5}, "num_samples"),
    ({"singular_values": [1.0, 2.0]}, "descending"),
    ({"singular_values": [1.0, -1.0]}, "positive"),
    ({"singular_values": [3, 2, 1, 1, 1, 1]}, "singular values"),
    ({"input_dim": 0}, "input_dim"),
])
def test_teacher_rejects_bad_arguments(kwargs, message):
    args = {"input_dim": 6, "output_dim": 4, "num_samples": 20, "singular_values": [2.0, 1.0]} | kwargs
    with pytest.raises(InputError, match=message):
        data.teacher(jax.random.key(0), **args)


def test_whiten_gives_identity_covariance_and_checks_its_input(rng):
    x = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)) + 3.0
    z = data.whiten(x, 4)
    np.testing.assert_allclose(z.T @ z / 200, np.eye(4), atol=1e-10)
    with pytest.raises(InputError, match="dim"):
        data.whiten(x, 6)
    with pytest.raises(InputError, match="2-d"):
        data.whiten(np.ones(5))


def test_digits_loads_the_bundled_copy_whitened():
    ds = data.digits(whiten_dim=12, limit=300, dtype=jnp.float64)
    assert ds.x.shape == (300, 12) and ds.y.shape == (300, 10) and ds.labels.shape == (300,)
    np.testing.assert_allclose(ds.x.T @ ds.x / 300, np.eye(12), atol=1e-10)
    np.testing.assert_allclose(np.asarray(ds.y).sum(axis=0), 0.0, atol=1e-10)  # centred targets
    np.testing.assert_array_equal(np.argmax(np.asarray(ds.y), axis=1), np.asarray(ds.labels))
    raw = data.digits(whiten_dim=None, limit=10, centre_targets=False)
    assert raw.x.shape == (10, 64) and float(raw.x.max()) <= 1.0 and float(raw.y.sum()) == 10.0


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
    for code, dtype in ((0x08, np.uint8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32),
                        (0x0E, np.float64)):
        array = (rng.normal(size=(3, 2, 2)) * 50).astype(dtype)
        _write_idx(tmp_path / f"a{code}", array, code)
        np.testing.assert_array_equal(data.read_idx(tmp_path / f"a{code}"), array)


def test_load_mnist_reads_idx_folders_and_npz(tiny_mnist, tmp_path):
    folder, images, labels = tiny_mnist
    ds = data.load_mnist(folder, centre_targets=False, dtype=jnp.float64)
    np.testing.assert_allclose(ds.x, images.reshape(6, 12) / 255.0, rtol=1e-15)
    np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_array_equal(ds.y, np.eye(10)[labels])
    assert data.load_mnist(folder, split="test").x.shape == (2, 12)
    assert data.load_mnist(folder, limit=4).x.shape == (4, 12)
    npz = tmp_path / "mnist.npz"
    np.savez(npz, x_train=images, y_train=labels, x_test=images[:2], y_test=labels[:2])
    np.testing.assert_array_equal(data.load_mnist(npz, dtype=jnp.float64).x, ds.x)
    whitened = data.load_mnist(npz, whiten_dim=3, dtype=jnp.float64)
    np.testing.assert_allclose(whitened.x.T @ whitened.x / 6, np.eye(3), atol=1e-10)


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
