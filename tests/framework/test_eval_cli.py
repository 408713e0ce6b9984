"""``mxdv eval``'s bad-argument paths: exit 2, a message naming the parameter, no traceback."""
import subprocess
import sys

import pytest

BASE = ["eval", "--unit", "quantizer", "--strategies", "random", "--budget", "10"]


@pytest.mark.parametrize("args, needle", [
    (["eval", "--unit", "nosuch", "--strategies", "random", "--budget", "10"], "--unit 'nosuch': unknown unit"),
    (["eval", "--unit", "quantizer", "--strategies", "random,nope", "--budget", "10"],
     "--strategies: unknown strategy 'nope'"),
    (BASE[:-1] + ["0"], "--budget must be >= 1, got 0"),
    (BASE + ["--seeds", "0"], "--seeds must be >= 1, got 0"),
    (BASE + ["--jobs", "0"], "--jobs must be >= 1, got 0"),
    (BASE + ["--sim", "questa"], "--sim questa"),
    (BASE + ["--option", "novalue"], "--option 'novalue'"),
])
def test_bad_eval_arguments_exit_2_naming_the_parameter(args, needle):
    r = subprocess.run([sys.executable, "-m", "mxdv.cli", *args], capture_output=True, text=True)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr
    assert "Traceback" not in r.stderr


def test_strategies_lists_corner_random():
    r = subprocess.run([sys.executable, "-m", "mxdv.cli", "strategies"], capture_output=True, text=True)
    assert r.returncode == 0
    line = next(x for x in r.stdout.splitlines() if x.startswith("corner_random "))
    assert "never reads the plan" in line
