"""``ensemble_log_svals`` follows the enabled precision (issue 20): float64 when ``jax_enable_x64`` is on (as
it is in the test suite), unless a dtype is given."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxspec
from jaxspec._checks import InputError
from jaxspec.analysis import ensemble_log_svals
from jaxspec.analysis._svals import resolve_svals_dtype
from tests.conftest import assert_close


def test_default_dtype_is_the_enabled_precision():
    assert jax.config.jax_enable_x64
    ens = jaxspec.gaussian(width=4, depth=40)
    key = jaxspec.engine.seed_keys(0, 1)[0]
    default = ensemble_log_svals(ens, key).log_svals
    assert default.dtype == np.float64
    assert_close(default, ensemble_log_svals(ens, key, dtype="float64").log_svals)
    single = ensemble_log_svals(ens, key, dtype="float32").log_svals
    # float32 carries ~1e-7 relative rounding per layer: visible against float64, far above its 1e-12.
    assert 1e-9 < float(np.max(np.abs(np.asarray(single, np.float64) - np.asarray(default)))) < 1e-2


def test_resolve_svals_dtype():
    assert resolve_svals_dtype(None) == "float64"
    assert resolve_svals_dtype(np.float32) == "float32"
    with pytest.raises(InputError, match="dtype must be one of float32, float64"):
        resolve_svals_dtype("float16")
