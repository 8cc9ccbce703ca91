"""Shared test set-up: 64-bit JAX for float64 oracles, four fake CPU devices for sharding tests, keys, and the
shared helpers: the dtype tolerance table (``TOLERANCES``, through ``assert_close``), ``zscores`` and
``run_cli``.

Tests that want float32 pass ``dtype="float32"`` explicitly; enabling x64 only makes float64 *available*.

Tolerances. ``assert_close`` is for "the same number up to rounding in this dtype" (two implementations, an
exact identity, a dense oracle). A tolerance that encodes a known error bound (a truncation order, a Monte
Carlo z-threshold, an O(1/n) expansion, a step size, the printed precision of a published table) is not a
dtype tolerance: tests keep it as a named constant that says where the bound comes from. Monte Carlo
comparisons use ``zscores`` with the predicted standard error.
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

# The suite runs thousands of small programs, most of them once: compiling them dominates its time, and XLA's
# backend optimisation passes are most of the compiling (they speed up long runs, not these). The flag reaches
# the CLI and README subprocesses through the environment too; numbers change at most in the last bits, which
# the tolerance table covers. (Not bit-for-bit across programs, though: a float32 random draw fused into one
# program may round an ulp away from the same draw in another, so an oracle takes a run's frames from the
# run.)
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = " ".join(
        filter(None, [os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"])
    )

# Likewise XLA's own CPU thread pool: two workers on two cores, each compiling and running one program at a
# time, lose ~7% of the suite to the pool's hand-offs (measured); one thread per worker.
if "xla_cpu_multi_thread_eigen" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"

# OpenBLAS (numpy's LAPACK and JAX's CPU QR) spin-waits its threads between the suite's many small
# factorisations; with pytest-xdist already using every core, one thread per worker is several times faster.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_enable_x64", True)

import chex  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Rounding tolerances by dtype (as neural-tangents / jax-md keep them): (rtol, atol), used as
# |actual - expected| <= atol + rtol |expected| elementwise. rtol is ~4500 ulp in float64 and ~80 ulp in
# float32: the rounding of a long chain of operations on O(1) values (a depth-L scan, a QR, a dense oracle);
# atol, 1/100 of rtol, only absorbs rounding around exact zeros. A comparison that accumulates more rounding
# says so with ``scale > 1``; one that must hold tighter than the table (an identity between two evaluations
# of one closed form) with ``scale < 1``.
TOLERANCES = {"float64": (1e-12, 1e-14), "float32": (1e-5, 1e-7)}


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def assert_close(actual, expected, dtype="float64", *, scale=1.0):
    """Assert two pytrees of arrays are equal up to rounding in ``dtype`` (``TOLERANCES`` times ``scale``).

    Both trees must have the same structure; leaves broadcast against each other (a scalar expected value
    against an array). NaNs compare equal to NaNs, infinities to infinities of the same sign.
    """
    rtol, atol = TOLERANCES[str(np.dtype(dtype))]
    chex.assert_trees_all_close(actual, expected, rtol=rtol * scale, atol=atol * scale)


# The public check values (math §7) are printed to 6 or 5 decimals: a computed value matches one to half a
# unit in the last printed place.
PRINTED_6_DECIMALS = 5e-7
PRINTED_5_DECIMALS = 5e-6

# The Monte Carlo threshold on |z|: a normal z exceeds 4 in absolute value with probability 6e-5. Every random
# test is seeded, so a pass is reproducible and a failure is a finding, not noise.
Z_MAX = 4.0

# In-process command-line tests must not turn on JAX's persistent compilation cache for the whole worker (it
# would write into the user's ~/.cache); tests/cli/test_compile_cache.py checks the cache in subprocesses.
os.environ["JAXSPEC_COMPILE_CACHE"] = "0"


def zscores(estimate, expected, stderr):
    """z = (estimate - expected) / stderr, elementwise: an estimate against its predicted standard error."""
    return (np.asarray(estimate) - np.asarray(expected)) / np.asarray(stderr)


def run_cli(capsys, *argv):
    """Run ``jaxspec *argv`` in-process; return ``(exit status, stdout, stderr)``, status 0 when main returns.

    ``capsys`` is the calling test's fixture; arguments may be numbers or paths (they are passed as strings).
    """
    # Imported here, not at the top: the CLI imports every layer of jaxspec, and the conftest of the whole
    # suite must not make the tests of the lower layers (theory, engine, ...) depend on the upper ones.
    from jaxspec.cli import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
        raise SystemExit(0)
    out = capsys.readouterr()
    return info.value.code or 0, out.out, out.err


def assert_demo_wrote_its_figure_and_tables(out: str, figure) -> None:
    """A ``jaxspec demo`` run wrote a real figure and printed three tables, each with theory and z."""
    assert figure.stat().st_size > 10_000
    headers = [line.split() for line in out.splitlines() if line.split()[:1] == ["i"]]
    assert len(headers) == 3 and all("theory" in h and "z" in h for h in headers)


# Building the documentation site and executing the notebooks need the docs extra and minutes of compiling;
# they run as their own step of .ci/run (`pip install -e ".[docs]" && pytest -n 2 -m docs`), so a test run
# that does not select them by marker expression skips them.
DOCS_STEP = 'the docs step: pip install -e ".[docs]" && pytest -n 2 -m docs'


# A chex variant test runs twice: jitted and eagerly (op by op, several times slower to run). The jitted twin
# stays in the default run; the eager twin joins the heavy step (-m slow), which CI runs on every submission.
EAGER_VARIANT_SUFFIX = "__without_jit"


@pytest.hookimpl(tryfirst=True)  # before -m deselects: the eager twins must carry their marker by then
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.name.endswith(EAGER_VARIANT_SUFFIX):
            item.add_marker(pytest.mark.slow)
    if "docs" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason=f"documentation build and notebooks run in {DOCS_STEP}")
    for item in items:
        if item.get_closest_marker("docs") is not None:
            item.add_marker(skip)
