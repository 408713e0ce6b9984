"""Every unit's RTL: Verilator -Wall lint clean, Icarus -g2012 elaborates, Yosys synthesizes
with no latch (default parameters and regression variants)."""
import importlib.util
import sys
from pathlib import Path

import pytest

from mxdv.unit import get_unit, unit_names

_spec = importlib.util.spec_from_file_location("rtl_checks", Path(__file__).resolve().parents[2] / "scripts" / "rtl_checks.py")
rtl_checks = importlib.util.module_from_spec(_spec)
sys.modules["rtl_checks"] = rtl_checks
_spec.loader.exec_module(rtl_checks)

VARIANTS = [v.variant for name in unit_names() for v in rtl_checks._variants([name])]


@pytest.mark.parametrize("variant", VARIANTS)
def test_verilator_lint_wall_clean(variant):
    ok, text = rtl_checks.lint(get_unit(variant))
    assert ok, text


@pytest.mark.parametrize("variant", VARIANTS)
def test_icarus_elaborates(variant):
    ok, text = rtl_checks.icarus(get_unit(variant))
    assert ok, text


@pytest.mark.parametrize("name", unit_names())
def test_yosys_synthesizes_without_latches(name):
    ok, text, cells = rtl_checks.synth(get_unit(name))
    assert ok, text
    assert cells and cells > 0
