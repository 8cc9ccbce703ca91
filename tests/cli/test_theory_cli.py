"""``jaxspec theory`` and ``jaxspec svals``: JSON contracts against the library, one-line errors (exit 2)."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

import jaxspec
from jaxspec import theory
from jaxspec.analysis import ensemble_log_svals, product_log_svals
from tests.conftest import PRINTED_6_DECIMALS, assert_close, run_cli


def test_theory_json_masked(capsys):
    code, out, _ = run_cli(
        capsys,
        "theory",
        "--ensemble",
        "masked",
        "--width",
        "16",
        "--p",
        "0.5",
        "--k",
        "4",
        "--depth",
        "500",
        "--seeds",
        "4",
        "--json",
    )
    assert code == 0
    payload = json.loads(out)
    np.testing.assert_allclose(
        payload["exponents"], [-0.434772, -0.521208, -0.627332, -0.757833], atol=PRINTED_6_DECIMALS
    )
    ens = jaxspec.masked(width=16, depth=500, p=0.5)
    expected = {
        "per_layer_sd": np.sqrt(theory.per_layer_variance(ens, 4)),
        "prob_active_at_least": theory.prob_active_at_least(ens, 4),
        "predicted_stderr": theory.predicted_stderr(ens, 4, seeds=4),
    }
    assert_close({key: np.array(payload[key]) for key in expected}, expected, scale=0.3)
    assert_close(np.array(payload["offsets"]), theory.singular_value_offsets(16, 4), scale=0.3)
    assert_close(payload["separation_rate"], payload["exponents"][0] - payload["exponents"][1])
    assert payload["config"]["p"] == 0.5 and payload["config"]["condition"] == "K>=i"


def test_theory_json_strict_convention_and_large_n(capsys):
    _, out, _ = run_cli(
        capsys,
        "theory",
        "--ensemble",
        "masked",
        "--width",
        "6",
        "--fixed-count",
        "4",
        "--condition",
        "none",
        "--json",
    )
    payload = json.loads(out)
    assert payload["exponents"][4:] == [None, None]  # -inf beyond K: JSON null
    assert_close(np.array(payload["exponents"][:4]), theory.masked_exponents(6, fixed_count=4)[:4])
    _, out, _ = run_cli(
        capsys, "theory", "--ensemble", "relu-net", "--width", "64", "--k", "3", "--large-n", "--json"
    )
    payload = json.loads(out)
    assert_close(np.array(payload["exponents"]), theory.large_n_exponents(64, 0.5, 2.0, 3), scale=3e-3)
    assert_close(payload["relu_log_norm"]["mean"], -2.5 * 1000 / 64)
    _, out, _ = run_cli(capsys, "theory", "--ensemble", "complex-gaussian", "--width", "5", "--json")
    assert_close(np.array(json.loads(out)["exponents"]), theory.complex_gaussian_exponents(5), scale=3e-3)


def test_theory_table(capsys):
    code, out, _ = run_cli(capsys, "theory", "--ensemble", "gaussian", "--width", "8")
    assert code == 0
    header = [line for line in out.splitlines() if line.strip().startswith("i ")][0]
    assert header.split() == ["i", "lambda_i", "sd/layer", "P(K>=i)", "stderr(L)", "c_i"]
    assert "-0.065088" in out and "1.60981" in out


def test_svals_npz_stack_and_rectangular_layers(capsys, tmp_path):
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(30, 5, 5)) / np.sqrt(5)
    masks = (rng.random((30, 5)) < 0.9).astype(float)
    path = tmp_path / "net.npz"
    np.savez(path, weights=weights, masks=masks)
    code, out, _ = run_cli(capsys, "svals", "--npz", str(path), "--prefixes", "--json")
    assert code == 0
    payload = json.loads(out)
    expected = product_log_svals(jnp.asarray(weights), jnp.asarray(masks), prefixes=True).log_svals
    got = np.array([np.nan if v is None else v for v in payload["log_svals"]])
    finite = np.isfinite(np.asarray(expected[-1]))
    assert_close(got[finite], np.asarray(expected[-1])[finite])
    assert payload["rank"] == int(finite.sum()) and len(payload["prefix_log_svals"]) == 30
    rect = tmp_path / "rect.npz"
    layers = [rng.normal(size=(4, 3)), rng.normal(size=(6, 4))]
    np.savez(rect, weights_0=layers[0], weights_1=layers[1])
    _, out, _ = run_cli(capsys, "svals", "--npz", str(rect), "--json")
    dense = layers[1] @ layers[0]
    assert_close(np.array(json.loads(out)["log_svals"]), np.log(np.linalg.svd(dense, compute_uv=False)))


def test_svals_ensemble_matches_library_and_theory_column(capsys):
    code, out, _ = run_cli(
        capsys, "svals", "--ensemble", "gaussian", "--width", "5", "--depth", "30", "--seed", "2", "--json"
    )
    assert code == 0
    payload = json.loads(out)
    ens = jaxspec.gaussian(width=5, depth=30)
    expected = ensemble_log_svals(ens, jaxspec.engine.seed_keys(2, 1)[0], dtype=jnp.float64).log_svals
    assert_close(np.array(payload["log_svals"]), np.asarray(expected))
    assert_close(
        np.array(payload["theory"]),
        30 * theory.gaussian_exponents(5) + theory.singular_value_offsets(5),
        scale=0.3,
    )
    code, out, _ = run_cli(capsys, "svals", "--ensemble", "gaussian", "--width", "5", "--depth", "30")
    assert code == 0 and "L lam_i + c_i" in out


@pytest.mark.parametrize(
    "content, message",
    [
        ("text", "not an .npz archive"),
        ("object", "cannot read"),
        ("nokey", "expected an array 'weights'"),
        ("shape", "must be a (L, N, N) array"),
        ("masks", "masks must have shape"),
        ("complex", "'weights_0' must hold real numbers"),
        ("complex_stack", "'weights' must hold real numbers"),
    ],
)
def test_svals_malformed_npz_gives_one_line_error(capsys, tmp_path, content, message):
    path = tmp_path / "bad.npz"
    if content == "text":
        path.write_text("not a zip")
    elif content == "object":
        np.savez(path, weights=np.array([np.ones((2, 2)), "x"], dtype=object))
    elif content == "nokey":
        np.savez(path, w=np.ones((2, 3, 3)))
    elif content == "shape":
        np.savez(path, weights=np.ones((3, 3)))
    elif content == "complex":
        np.savez(path, weights_0=np.eye(3) * (1 + 1j))  # would lose its imaginary part in a cast
    elif content == "complex_stack":
        np.savez(path, weights=np.ones((2, 3, 3)) * 1j)
    else:
        np.savez(path, weights=np.ones((2, 3, 3)), masks=np.ones((2, 4)))
    code, out, err = run_cli(capsys, "svals", "--npz", str(path))
    assert code == 2 and out == ""
    assert err.startswith("jaxspec: error:") and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (("theory", "--ensemble", "tanh", "--width", "4"), "unknown ensemble"),
        (("theory", "--ensemble", "gaussian", "--width", "4", "--k", "9"), "--k must lie"),
        (("theory", "--ensemble", "gaussian", "--width", "4", "--condition", "K>i"), "--condition"),
        (("theory", "--ensemble", "gaussian", "--width", "4", "--p", "0.5"), "--p only applies"),
        (("svals", "--width", "4"), "give --ensemble"),
        (("svals", "--npz", "/nonexistent/file.npz"), "no such file"),
    ],
)
def test_bad_arguments_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1
