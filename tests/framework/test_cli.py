"""The CLI's bad-argument paths: a clear message naming the problem, exit code 2, no traceback."""
import subprocess
import sys

import pytest


def mxdv(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mxdv.cli", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("args, needle", [
    (["run", "--unit", "nosuchunit"], "unknown unit 'nosuchunit'"),
    (["run", "--unit", "quantizer", "--strategy", "nosuch"], "unknown strategy 'nosuch'"),
    (["run", "--unit", "quantizer", "--budget", "-5"], "--budget must be >= 0"),
    (["run", "--unit", "quantizer", "--sim", "questa"], "unknown simulator 'questa'"),
    (["run", "--unit", "quantizer:BLOCK=12"], "BLOCK must be 8, 16 or 32"),
    (["run", "--unit", "quantizer:FOO=1"], "unknown parameter"),
    (["run", "--unit", "quantizer", "--test", "Nope"], "--test 'Nope'"),
    (["run", "--unit", "quantizer", "--plugin", "/nonexistent/x.py"], "does not exist"),
    (["regress", "--suite", "nosuch"], "unknown suite 'nosuch'"),
    (["run", "--unit", "quantizer", "--sim", "icarus", "--mode", "bulk"], "--mode bulk needs --sim verilator"),
    (["regress", "--suite", "quick", "--sim", "icarus", "--mode", "bulk"], "--mode bulk needs --sim verilator"),
])
def test_bad_arguments_get_a_clear_message(args, needle):
    r = mxdv(*args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_icarus_is_reported(tmp_path):
    import os
    env = dict(os.environ, PATH=str(tmp_path))  # no iverilog on PATH
    r = mxdv("run", "--unit", "quantizer", "--sim", "icarus", env=env)
    assert r.returncode == 2
    assert "icarus: iverilog/vvp not found" in r.stderr and "apt-get install iverilog" in r.stderr


def test_listing_commands():
    r = mxdv("strategies")
    assert r.returncode == 0
    for name in ("random", "constrained", "hypothesis", "replay"):
        assert name in r.stdout
    assert "quantizer" in mxdv("units").stdout
