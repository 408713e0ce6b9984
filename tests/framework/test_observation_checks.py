"""Issue 13 framework pieces that need no simulation: decode inverts encode, the generated
checked toplevel passes both simulators' front ends, encode bugs are planted by name, plugin
strategies enter suites, the generic tests are listed, and coverage does not import env."""
import ast
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mxdv import REPO_ROOT
from mxdv.bugs import ENCODE_BUG_VAR, install_encode_bug
from mxdv.env.checked_top import checks_of, sources_of, toplevel_of
from mxdv.sim import verilator_executable
from mxdv.suites import get_suite
from mxdv.unit import get_unit

VARIANTS = ["quantizer", "quantizer:BLOCK=8", "systolic_array", "systolic_array:R=8,C=8,BLOCK=8",
            "attention", "attention:D=64,KB=4"]


@pytest.mark.parametrize("spec", VARIANTS)
def test_decode_inverts_encode(spec):
    unit = get_unit(spec)
    rng = np.random.default_rng(3)
    for _ in range(20):
        txn = unit.schema.random(rng)
        assert unit.decode(unit.encode(txn)) == txn


def test_decode_rejects_beats_no_transaction_encodes_to():
    unit = get_unit("systolic_array:BLOCK=8")
    beats = unit.encode(unit.schema.random(np.random.default_rng(1)))["in_"]
    with pytest.raises(ValueError, match="whole number"):
        unit.decode({"in_": beats[:-1]})
    beats[0] = {**beats[0], "a_scale": beats[0]["a_scale"] ^ 0xFF}  # now equal to the sampled scale
    with pytest.raises(ValueError, match="inverted"):
        unit.decode({"in_": beats})


@pytest.mark.parametrize("spec", ["quantizer", "systolic_array", "attention"])
def test_checked_toplevel_lints_clean_on_both_simulators(spec, tmp_path):
    unit = get_unit(spec)
    srcs = [str(p) for p in sources_of(unit, tmp_path)]
    env = {k: v for k, v in os.environ.items() if k != "VERILATOR_ROOT"}
    out = subprocess.run([str(verilator_executable()), "--lint-only", "-Wall", "--top-module", toplevel_of(unit), *srcs],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "%Warning" not in out.stdout + out.stderr, out.stdout + out.stderr
    out = subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "a.vvp"), "-s", toplevel_of(unit), *srcs],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    text = Path(srcs[-1]).read_text()
    for port in (*unit.input_ports, unit.output_port):  # every valid/ready port gets a checker
        assert f"chk_{port.prefix}vr (" in text
    assert all(f"mxdv_{c.name}_fails" in text for c in checks_of(unit))


def test_encode_bug_planted_by_name(monkeypatch):
    unit = get_unit("quantizer:BLOCK=8")
    txn = unit.schema.random(np.random.default_rng(5))
    good = unit.encode(txn)
    monkeypatch.setenv(ENCODE_BUG_VAR, "encode_lanes_reversed")
    assert install_encode_bug(unit).name == "encode_lanes_reversed"
    bad = unit.encode(txn)
    assert bad != good and unit.decode(bad)["values"] == txn["values"][::-1]
    monkeypatch.setenv(ENCODE_BUG_VAR, "no_such_bug")
    with pytest.raises(ValueError, match=f"{ENCODE_BUG_VAR}='no_such_bug'"):
        install_encode_bug(get_unit("quantizer"))


def test_plugin_strategies_enter_suites_with_the_default_budget():
    jobs = get_suite("quick").jobs(units=["quantizer"], strategies=["edge_lanes", "constrained"])
    unit = get_unit("quantizer")
    by = {j.strategy: j.budget for j in jobs}
    assert by["edge_lanes"] == max(1, int(unit.default_budget * 0.05))
    assert by["constrained"] == max(1, int(unit.budgets["constrained"] * 0.05))


def test_budgets_dicts_take_new_keys(monkeypatch):
    from mxdv.env.quantizer.unit import QuantizerUnit

    monkeypatch.setattr(QuantizerUnit, "budgets", {**QuantizerUnit.budgets, "corner_random": 3000})
    assert get_unit("quantizer").budget_for("corner_random") == 3000
    jobs = get_suite("smoke").jobs(units=["quantizer"], strategies=["corner_random"])
    assert {j.budget for j in jobs} == {3000}


def test_generic_tests_are_listed_for_every_unit():
    from mxdv.cli import _tests_of

    for name in ("quantizer", "systolic_array", "attention"):
        assert _tests_of(name) == ["StrategyRun", "HeavyBackpressure", "ResetInTraffic", "SteadyState"]


def test_coverage_does_not_import_env():
    bad = []
    for path in (REPO_ROOT / "coverage").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad += [f"{path.name}: {n}" for n in names if n.startswith("mxdv.env")]
    assert not bad, bad
