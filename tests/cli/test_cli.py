"""The ``jaxspec`` CLI contract: JSON keys and values, readable output, one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from jaxspec import theory
from tests.conftest import Z_MAX, assert_close, assert_demo_wrote_its_figure_and_tables, run_cli, zscores


def test_lyapunov_json_contract(capsys):
    code, out, _ = run_cli(
        capsys,
        "lyapunov",
        "--ensemble",
        "masked",
        "--width",
        "6",
        "--depth",
        "300",
        "--k",
        "3",
        "--seeds",
        "4",
        "--p",
        "0.7",
        "--dtype",
        "float64",
        "--json",
    )
    assert code == 0
    payload = json.loads(out)
    for key in ("exponents", "stderr", "theory", "config", "wall_seconds"):
        assert key in payload
    assert len(payload["exponents"]) == len(payload["stderr"]) == len(payload["theory"]) == 3
    assert_close(np.array(payload["theory"]), theory.masked_exponents(6, 0.7, k=3), scale=0.3)
    assert payload["config"] == {
        "ensemble": "masked",
        "width": 6,
        "depth": 300,
        "k": 3,
        "seeds": 4,
        "p": 0.7,
        "sigma2": 1.0,
        "reortho": 1,
        "dtype": "float64",
        "seed": 0,
        "condition": "K>=i",
        "precision": "highest",
        "method": "auto",
        "method_resolved": "chi",
        "reortho_resolved": 1,
        "qr": "householder",
        "qr_resolved": "householder",
    }
    assert payload["wall_seconds"] > 0
    # Exponents come out in descending order of index, as the closed form does.
    z = zscores(payload["exponents"], payload["theory"], payload["theory_stderr"])
    assert np.all(np.abs(z) < Z_MAX)


def test_lyapunov_json_has_null_theory_only_where_no_closed_form(capsys):
    code, out, _ = run_cli(
        capsys,
        "lyapunov",
        "--ensemble",
        "orthogonal",
        "--width",
        "4",
        "--depth",
        "20",
        "--seeds",
        "2",
        "--sigma2",
        "2.0",
        "--json",
    )
    payload = json.loads(out)
    assert_close(np.array(payload["exponents"]), 0.5 * np.log(2.0), "float32")  # the default dtype
    assert_close(np.array(payload["theory"]), 0.5 * np.log(2.0))


def test_lyapunov_table_has_theory_and_z_columns(capsys):
    code, out, _ = run_cli(
        capsys, "lyapunov", "--ensemble", "gaussian", "--width", "4", "--depth", "50", "--seeds", "2"
    )
    assert code == 0
    header = [line for line in out.splitlines() if line.strip().startswith("i ")][0]
    assert header.split() == ["i", "simulated", "stderr", "theory", "z"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ensemble", "gaussian", "--width", "4", "--depth", "10", "--k", "5"], "--k must lie in [1, 4]"),
        (["--ensemble", "masked", "--width", "4", "--depth", "10", "--p", "0"], "p must lie"),
        (["--ensemble", "masked", "--width", "4", "--depth", "10", "--p", "1.5"], "p must lie"),
        (["--ensemble", "gaussian", "--width", "4", "--depth", "0"], "depth must be"),
        (["--ensemble", "gaussian", "--width", "4", "--depth", "-3"], "depth must be"),
        (["--ensemble", "levy", "--width", "4", "--depth", "10"], "unknown ensemble"),
        (["--ensemble", "gaussian", "--width", "four", "--depth", "10"], "--width"),
        (["--ensemble", "gaussian", "--width", "4", "--depth", "10", "--dtype", "int8"], "dtype"),
        (["--ensemble", "gaussian", "--width", "4", "--depth", "10", "--qr", "lu"], "--qr must be one of"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(capsys, args, message):
    code, out, err = run_cli(capsys, "lyapunov", *args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jaxspec: error:") and message in lines[0]


def test_qr_option_reaches_the_engine_and_its_range_check(capsys):
    # The same realisation through two QR backends: equal to float64 rounding (the exponents are the QR's
    # log|R_ii|, unique up to sign); the API with the same options is the oracle for the resolved backend.
    import jaxspec

    common = ("--ensemble", "gaussian", "--width", "12", "--depth", "200", "--k", "3", "--seeds", "2")
    runs = {}
    for qr in ("householder", "cholesky2", "auto"):
        code, out, err = run_cli(
            capsys, "lyapunov", *common, "--method", "direct", "--dtype", "float64", "--qr", qr, "--json"
        )
        assert code == 0, err
        runs[qr] = json.loads(out)
    assert runs["auto"]["config"]["qr_resolved"] == "cholesky2"  # full rank and n >= 4 k
    assert runs["householder"]["config"]["qr_resolved"] == "householder"
    assert_close(
        np.array(runs["cholesky2"]["exponents"]), np.array(runs["householder"]["exponents"]), scale=10
    )
    api = jaxspec.lyapunov_spectrum(
        jaxspec.gaussian(width=12, depth=200), k=3, seeds=2, method="direct", dtype="float64", qr="cholesky2"
    )
    assert_close(np.array(runs["cholesky2"]["exponents"]), np.asarray(api.mean))
    # A Gram-based QR squares the block's lengths: sigma2 = 1e10 over blocks of 6 layers fits float32 with
    # Householder (3 |ln sigma2| = 69 < 79.9) but not with CholeskyQR2 (6 |ln sigma2| = 138).
    scale = ("--sigma2", "1e10", "--reortho", "6", "--method", "direct", "--seeds", "1", "--k", "1")
    code, _, err = run_cli(capsys, "lyapunov", *common[:6], *scale)
    assert code == 0, err
    code, out, err = run_cli(capsys, "lyapunov", *common[:6], *scale, "--qr", "cholesky2")
    assert code == 2 and out == "" and "Gram matrix" in err and len(err.splitlines()) == 1


def test_real_process_error_has_no_traceback():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxspec.cli",
            "lyapunov",
            "--ensemble",
            "gaussian",
            "--width",
            "3",
            "--depth",
            "5",
            "--k",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # the default demo runs in tests/docs/test_readme.py, which checks its figure and columns
def test_demo_options_write_a_figure_and_print_theory(capsys, tmp_path):
    out_png = tmp_path / "demo.png"
    code, out, _ = run_cli(capsys, "demo", "--out", out_png, "--width", "4", "--depth", "60", "--seeds", "2")
    assert code == 0
    assert_demo_wrote_its_figure_and_tables(out, out_png)


def test_a_command_missing_its_extra_stops_in_one_line_but_the_sweep_template_needs_none(
    capsys, monkeypatch, tmp_path
):
    # As on the core install: the sweep extra's modules are absent.
    import jaxspec.cli._main as cli_main
    from jaxspec.sweeps import spec_template

    monkeypatch.setattr(cli_main, "missing_modules", lambda extra: ["xarray", "zarr"] if extra else [])
    code, out, err = run_cli(capsys, "sweep", "--template")
    assert code == 0 and out == spec_template() and err == ""
    spec = tmp_path / "s.toml"
    spec.write_text(out)
    code, out, err = run_cli(capsys, "sweep", spec, "--out", tmp_path / "s")
    assert code == 2 and out == ""
    assert err == "jaxspec: error: jaxspec sweep needs pip install 'jaxspec[sweep]' (missing: xarray, zarr)\n"
    assert not (tmp_path / "s").exists()
