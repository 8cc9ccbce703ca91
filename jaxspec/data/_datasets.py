"""Data sets for training experiments: a synthetic linear teacher, scikit-learn's digits, local MNIST files.

Every loader returns a :class:`Dataset` with inputs ``x`` of shape ``(N, d_in)`` (rows are samples, as
:func:`jaxspec.networks.mlp_apply` takes them) and regression targets ``y`` of shape ``(N, d_out)``.

Deep-linear learning theory ([math §5](https://jaxspec.github.io/jaxspec/math/#s5)) is stated for whitened
inputs, ``Sigma_xx = X^T X / N = I``: the loss ``(1/2N) ||W X - Y||^2`` then depends on ``W`` only through
``||W - Sigma_yx||^2`` and the modes of the input-output correlation ``Sigma_yx = Y^T X / N`` are the targets
the singular values of ``W`` learn.
:func:`teacher` whitens exactly by construction; :func:`whiten` (PCA whitening) does it for real data.

Nothing here downloads anything: :func:`digits` uses the copy bundled with scikit-learn and
:func:`load_mnist` reads IDX or ``.npz`` files that you already have.

References:
    Saxe, McClelland, Ganguli, arXiv:1312.6120 (whitened inputs, teacher modes).
    LeCun, Cortes, Burges, "The MNIST database" (IDX format), http://yann.lecun.com/exdb/mnist/.
    Alpaydin, Kaynak, "Optical recognition of handwritten digits" (UCI; scikit-learn's ``load_digits``).
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from jaxspec._checks import HIGHEST, InputError, check_positive_int
from jaxspec._extras import optional_import


@struct.dataclass
class Dataset:
    """A full-batch regression data set.

    Attributes:
        x: ``(N, d_in)`` inputs.
        y: ``(N, d_out)`` targets.
        labels: ``(N,)`` integer class labels for classification data, else ``None``.
        name: a short description (static).
    """

    x: Float[Array, "N d_in"]
    y: Float[Array, "N d_out"]
    labels: Int[Array, " N"] | None = None
    name: str = struct.field(pytree_node=False, default="data")

    @property
    def num_samples(self) -> int:
        return int(self.x.shape[0])

    @property
    def input_dim(self) -> int:
        return int(self.x.shape[1])

    @property
    def output_dim(self) -> int:
        return int(self.y.shape[1])


class Teacher(NamedTuple):
    """The linear teacher ``T = U diag(s) V^T`` behind :func:`teacher` data.

    Attributes:
        matrix: ``(d_out, d_in)`` the map ``T``.
        u: ``(d_out, r)`` orthonormal output modes.
        s: ``(r,)`` prescribed singular values (descending).
        v: ``(d_in, r)`` orthonormal input modes.
    """

    matrix: Float[Array, "d_out d_in"]
    u: Float[Array, "d_out r"]
    s: Float[Array, " r"]
    v: Float[Array, "d_in r"]


def _random_orthonormal(key: PRNGKeyArray, n: int, k: int, dtype) -> Float[Array, "n k"]:
    q, r = jnp.linalg.qr(jax.random.normal(key, (n, k), jnp.float32).astype(dtype))
    # Sign fix so Q is Haar distributed and reproducible across LAPACK builds.
    return q * jnp.sign(jnp.diagonal(r))[None, :]


def teacher(
    key: PRNGKeyArray,
    input_dim: int,
    output_dim: int,
    num_samples: int,
    singular_values: Float[ArrayLike, " r"],
    *,
    noise: float = 0.0,
    dtype=jnp.float32,
) -> tuple[Dataset, Teacher]:
    """Whitened inputs and targets from a linear (or low-rank) teacher with prescribed singular values.

    The inputs satisfy ``X^T X / N = I`` exactly (a scaled orthonormal frame), so ``Sigma_yx = T`` up to the
    noise, and a deep linear network learns the modes ``(u_r, s_r, v_r)`` of ``T`` as in Saxe et al.

    Args:
        key: PRNG key.
        input_dim: ``d_in``.
        output_dim: ``d_out``.
        num_samples: ``N >= d_in`` (needed for exact whitening).
        singular_values: ``(r,)`` positive target strengths, ``r <= min(d_in, d_out)`` (sorted descending).
        noise: standard deviation of iid Gaussian noise added to the targets.
        dtype: array dtype.

    Returns:
        ``(Dataset(x (N, d_in), y (N, d_out)), Teacher)``.

    Example:
        >>> data, t = teacher(jax.random.key(0), 8, 4, 64, [3.0, 1.0])
        >>> bool(jnp.allclose(data.x.T @ data.x / 64, jnp.eye(8), atol=1e-5))
        True

    References:
        Saxe, McClelland, Ganguli, arXiv:1312.6120.
    """
    for name, value in (("input_dim", input_dim), ("output_dim", output_dim), ("num_samples", num_samples)):
        check_positive_int(name, value)
    if num_samples < input_dim:
        raise InputError(
            f"num_samples={num_samples} must be at least input_dim={input_dim} to whiten the inputs"
        )
    s = np.asarray(singular_values, dtype=float).ravel()
    rank = s.size
    if rank < 1 or rank > min(input_dim, output_dim):
        raise InputError(
            f"need 1 to min(input_dim, output_dim)={min(input_dim, output_dim)} singular values, got {rank}"
        )
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise InputError(f"singular_values must be positive and finite, got {s.tolist()}")
    if np.any(np.diff(s) > 0):
        raise InputError(f"singular_values must be sorted in descending order, got {s.tolist()}")
    if noise < 0:
        raise InputError(f"noise must be non-negative, got {noise}")
    x, y, matrix, u, s_arr, v = _teacher_arrays(
        key, input_dim, output_dim, num_samples, jnp.asarray(s, dtype), float(noise), jnp.dtype(dtype)
    )
    name = f"teacher(d_in={input_dim}, d_out={output_dim}, N={num_samples}, s={s.tolist()})"
    return Dataset(x=x, y=y, labels=None, name=name), Teacher(matrix, u, s_arr, v)


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 5, 6))
def _teacher_arrays(key, input_dim, output_dim, num_samples, s, noise, dtype):
    rank = s.shape[0]
    kx, ku, kv, kn = jax.random.split(key, 4)
    x = _random_orthonormal(kx, num_samples, input_dim, dtype) * jnp.sqrt(jnp.asarray(num_samples, dtype))
    u = _random_orthonormal(ku, output_dim, rank, dtype)
    v = _random_orthonormal(kv, input_dim, rank, dtype)
    matrix = jnp.matmul(u * s[None, :], v.T, precision=HIGHEST)
    y = jnp.matmul(x, matrix.T, precision=HIGHEST)
    if noise:
        y = y + noise * jax.random.normal(kn, y.shape, jnp.float32).astype(dtype)
    return x, y, matrix, u, s, v


def input_output_statistics(data: Dataset) -> tuple[Float[Array, "d_in d_in"], Float[Array, "d_out d_in"]]:
    """``Sigma_xx = X^T X / N`` ``(d_in, d_in)`` and ``Sigma_yx = Y^T X / N`` ``(d_out, d_in)``.

    The gradient of ``(1/2N) ||X W^T - Y||^2`` with respect to ``W`` is ``W Sigma_xx - Sigma_yx``.

    Example:
        >>> data, t = teacher(jax.random.key(0), 4, 2, 16, [2.0, 1.0])
        >>> sxx, syx = input_output_statistics(data)
        >>> bool(jnp.allclose(syx, t.matrix, atol=1e-5))
        True

    References:
        Saxe, McClelland, Ganguli, arXiv:1312.6120; [math §5](https://jaxspec.github.io/jaxspec/math/#s5).
    """
    n = data.num_samples
    return (
        jnp.matmul(data.x.T, data.x, precision=HIGHEST) / n,
        jnp.matmul(data.y.T, data.x, precision=HIGHEST) / n,
    )


def whiten(
    x: Float[ArrayLike, "N d"], dim: int | None = None, *, rtol: float = 1e-6
) -> Float[np.ndarray, "N dim"]:
    """PCA whitening: centre, project on the top ``dim`` principal directions, scale to unit variance.

    Directions with variance below ``rtol`` times the largest are dropped (digits has constant pixels).

    Args:
        x: ``(N, d)`` data.
        dim: number of components to keep (default: all with non-negligible variance).
        rtol: relative variance threshold.

    Returns:
        ``(N, dim)`` float64 numpy array with ``X^T X / N = I`` (to rounding).

    Example:
        >>> z = whiten(np.random.default_rng(0).normal(size=(50, 4)), 3)
        >>> np.allclose(z.T @ z / 50, np.eye(3))
        True
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"whiten expects a 2-d array (N, d), got shape {x.shape}")
    n = x.shape[0]
    centred = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s**2 / n
    usable = int(np.sum(var > rtol * var[0])) if var.size and var[0] > 0 else 0
    if dim is None:
        dim = usable
    if isinstance(dim, bool) or int(dim) != dim or not 1 <= dim <= usable:
        raise InputError(
            f"whitening dim must be an integer in [1, {usable}] (directions with variance), got {dim}"
        )
    return centred @ vt[:dim].T / np.sqrt(var[:dim])[None, :]


def _targets(labels: np.ndarray, num_classes: int, centred: bool) -> np.ndarray:
    y = np.eye(num_classes)[labels]
    return y - y.mean(axis=0, keepdims=True) if centred else y


def _finish(
    x: np.ndarray, labels: np.ndarray, num_classes: int, whiten_dim, centre_targets: bool, dtype, name: str
) -> Dataset:
    if whiten_dim is not None:
        x = whiten(x, None if whiten_dim == "all" else whiten_dim)
    y = _targets(labels, num_classes, centre_targets)
    return Dataset(
        x=jnp.asarray(x, dtype), y=jnp.asarray(y, dtype), labels=jnp.asarray(labels, jnp.int32), name=name
    )


def _check_limit(limit):
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 1):
        raise InputError(f"limit must be a positive integer or None, got {limit!r}")


def digits(
    *,
    whiten_dim: int | str | None = 32,
    limit: int | None = None,
    centre_targets: bool = True,
    dtype=jnp.float32,
) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes), no download.

    Args:
        whiten_dim: PCA-whiten the 64 pixels to this many components (``"all"``: every direction with
            variance, ``None``: raw pixels scaled to [0, 1]).
        limit: keep the first ``limit`` samples.
        centre_targets: subtract the class frequencies from the one-hot targets (a bias-free network can then
            fit their mean).
        dtype: array dtype.

    Returns:
        :class:`Dataset` with ``x (N, whiten_dim or 64)``, ``y (N, 10)``, ``labels (N,)``.

    Example:
        >>> data = digits(whiten_dim=16, limit=500)
        >>> data.x.shape, data.y.shape
        ((500, 16), (500, 10))

    References:
        Alpaydin, Kaynak (1998), UCI optical recognition of handwritten digits.
    """
    _check_limit(limit)
    sklearn_datasets = optional_import("sklearn.datasets", "train")  # the digits ship with scikit-learn

    bunch = sklearn_datasets.load_digits()
    x = np.asarray(bunch.data, dtype=np.float64) / 16.0
    labels = np.asarray(bunch.target, dtype=np.int64)
    if limit is not None:
        x, labels = x[:limit], labels[:limit]
    return _finish(
        x, labels, 10, whiten_dim, centre_targets, dtype, f"digits(N={x.shape[0]}, whiten_dim={whiten_dim})"
    )


# IDX type codes (LeCun's MNIST format): code -> numpy big-endian dtype.
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed): the format of the MNIST distribution.

    Layout: two zero bytes, a type code, the number of dimensions ``k``, ``k`` big-endian int32 sizes, then
    the data in C order.

    Args:
        path: the file (``.gz`` is decompressed).

    Returns:
        A numpy array with the stored shape and dtype (native byte order).

    Example:
        >>> images = read_idx("train-images-idx3-ubyte.gz")  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"no such IDX file: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise InputError(f"{path} is not a valid gzip file: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise InputError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if ndim < 1 or len(raw) < header:
        raise InputError(f"{path}: truncated IDX header ({ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise InputError(
            f"{path}: IDX header says shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw) - header} data bytes"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    raise InputError(f"{folder} has no {stem}[.gz] (expected the MNIST IDX files)")


def load_mnist(
    path: str | Path,
    *,
    split: str = "train",
    limit: int | None = None,
    whiten_dim: int | str | None = None,
    centre_targets: bool = True,
    dtype=jnp.float32,
) -> Dataset:
    """MNIST (or any IDX/npz data set in MNIST's layout) from local files; never downloads.

    ``path`` is either a folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each possibly ``.gz``), or an ``.npz`` file with
    arrays ``x_train, y_train, x_test, y_test`` (the Keras ``mnist.npz`` layout). Images are flattened and
    scaled to [0, 1]; targets are one-hot over ``max(label) + 1`` classes (at least 10).

    Args:
        path: folder of IDX files or an ``.npz`` file.
        split: ``"train"`` or ``"test"``.
        limit: keep the first ``limit`` samples.
        whiten_dim: PCA-whiten to this many components (``"all"``, or ``None`` for raw pixels).
        centre_targets: subtract the class frequencies from the one-hot targets.
        dtype: array dtype.

    Returns:
        :class:`Dataset` with ``x (N, H*W or whiten_dim)``, ``y (N, classes)``, ``labels (N,)``.

    Example:
        >>> data = load_mnist("~/data/mnist", split="train", limit=2000, whiten_dim=50)  # doctest: +SKIP
    """
    if split not in _MNIST_FILES:
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    _check_limit(limit)
    path = Path(path).expanduser()
    if path.is_dir():
        images_name, labels_name = _MNIST_FILES[split]
        images = read_idx(_find_idx(path, images_name))
        labels = read_idx(_find_idx(path, labels_name))
    elif path.is_file() and path.suffix == ".npz":
        with np.load(path) as archive:
            keys = (f"x_{split}", f"y_{split}")
            missing = [k for k in keys if k not in archive]
            if missing:
                raise InputError(
                    f"{path} lacks arrays {', '.join(missing)} (expected x_train, y_train, x_test, y_test)"
                )
            images, labels = archive[keys[0]], archive[keys[1]]
    elif path.exists():
        raise InputError(f"{path} is neither a folder of IDX files nor an .npz file")
    else:
        raise InputError(f"no such MNIST path: {path}")
    if images.ndim != 3:
        raise InputError(f"MNIST images must have shape (N, H, W), got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise InputError(
            f"MNIST labels must have shape ({images.shape[0]},) to match the images, got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer) or labels.size and labels.min() < 0:
        raise InputError("MNIST labels must be non-negative integers")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if images.shape[0] == 0:
        raise InputError(f"{path} holds no {split} samples")
    scale = 255.0 if np.issubdtype(images.dtype, np.integer) else 1.0
    x = images.reshape(images.shape[0], -1).astype(np.float64) / scale
    num_classes = max(10, int(labels.max()) + 1)
    return _finish(
        x,
        labels.astype(np.int64),
        num_classes,
        whiten_dim,
        centre_targets,
        dtype,
        f"mnist({split}, N={x.shape[0]}, whiten_dim={whiten_dim})",
    )
