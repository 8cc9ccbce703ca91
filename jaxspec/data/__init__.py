"""Datasets: the digits shipped with scikit-learn, MNIST from local IDX files, teachers and whitening.

* :mod:`~jaxspec.data._datasets`: :class:`Dataset`, the linear teacher, digits, MNIST, IDX files, whitening.
"""

from jaxspec.data._datasets import (
    Dataset,
    Teacher,
    digits,
    input_output_statistics,
    load_mnist,
    read_idx,
    teacher,
    whiten,
)

__all__ = [
    "Dataset",
    "Teacher",
    "digits",
    "input_output_statistics",
    "load_mnist",
    "read_idx",
    "teacher",
    "whiten",
]
