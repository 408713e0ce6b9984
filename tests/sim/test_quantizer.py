"""The MX quantizer end to end on both simulators: closure, stress, reset, strategies,
user plugins, and a planted bug caught and shrunk by Hypothesis."""
import json
from pathlib import Path

import pytest

from mxdv.bugs import Bug, apply_bug

SIMS = ["verilator", "icarus"]
PLUGIN = str(Path(__file__).resolve().parent.parent / "plugins" / "edge_lanes.py")


@pytest.mark.xdist_group("quantizer")
@pytest.mark.parametrize("sim", SIMS)
def test_constrained_closes_the_plan(assert_clean, run_sim, sim):
    r = run_sim("quantizer", "constrained", sim=sim, budget=1500)
    assert_clean(r)
    assert r["coverage_percent"] == 100.0, r["holes"]
    assert r["closure_txns"] is not None and r["closure_txns"] <= r["transactions"]


@pytest.mark.parametrize("sim", SIMS)
def test_random_runs_clean(assert_clean, run_sim, sim):
    r = run_sim("quantizer", "random", sim=sim, budget=300)
    assert_clean(r)
    assert r["transactions"] == 300
    assert 0 < r["coverage_percent"] < 100.0  # uniform bit patterns cannot reach the clamp bins


@pytest.mark.parametrize("test", ["HeavyBackpressure", "ResetInTraffic"])
def test_stress(assert_clean, run_sim, test):
    r = run_sim("quantizer", "constrained", budget=300, test=test, stop_at_closure=False)
    assert_clean(r)
    if test == "ResetInTraffic":
        assert r["dropped"] > 0 and "protocol.reset_in_traffic" not in r["holes"]
    else:
        assert not [h for h in r["holes"] if h.startswith("protocol.stall")]


@pytest.mark.parametrize("block", [8, 16])
def test_other_block_sizes(assert_clean, run_sim, block):
    r = run_sim(f"quantizer:BLOCK={block}", "constrained", budget=1500)
    assert_clean(r)
    assert r["coverage_percent"] == 100.0, r["holes"]


def test_hypothesis_strategy_runs_clean(assert_clean, run_sim):
    r = run_sim("quantizer", "hypothesis", budget=150)
    assert_clean(r)
    assert r["transactions"] >= 150 or r["closure_txns"]


def test_user_plugin_strategy(assert_clean, run_sim):
    r = run_sim("quantizer", "edge_lanes", budget=100, plugins=[PLUGIN])
    assert_clean(r)
    assert {"maxlane.first", "maxlane.last", "width.int8", "width.int4"}.isdisjoint(r["holes"])


def test_same_seed_same_run(run_sim):
    a = run_sim("quantizer", "constrained", budget=200, seed=11)
    b = run_sim("quantizer", "constrained", budget=200, seed=11)
    assert a["history"] == b["history"] and a["closure_txns"] == b["closure_txns"]


def test_planted_bug_is_caught_and_shrunk(run_sim, tmp_path, monkeypatch):
    """Round-half-to-even broken into round-half-up: Hypothesis must find it and shrink it."""
    from mxdv.env.quantizer.bugs import BUGS

    bug = next(b for b in BUGS if b.name == "round_half_up")
    rtl = apply_bug("quantizer", bug, tmp_path / "rtl")
    monkeypatch.setenv("MXDV_RTL_ROOT", str(rtl))
    r = run_sim("quantizer", "hypothesis", budget=3000, stop_on_mismatch=False,
                strategy_options={"db": str(tmp_path / "hdb")})
    assert r["mismatches"] > 0
    repro = r["strategy_stats"]["shrunk_reproducer"]
    assert repro is not None
    assert len(repro) == 1, "a datapath bug shrinks to a one-transaction sequence"
    saved = json.loads((Path(r["run_dir"]) / "hypothesis_reproducer.json").read_text())
    assert saved["txns"] == repro
    lines = (Path(r["run_dir"]) / "hypothesis_reproducer.jsonl").read_text().splitlines()
    assert [json.loads(x)["txn"] for x in lines] == repro, "replayable with --strategy replay"
    assert any(Path(tmp_path / "hdb").rglob("*")), "the failure is saved in the example database"


def test_hypothesis_sequences_reach_pipeline_bugs(run_sim, tmp_path, monkeypatch):
    """A width select echoed from the wrong pipeline stage only shows with two blocks of different
    widths in flight: Hypothesis examples are sequences, so it is found, and the reproducer
    keeps more than one transaction."""
    from mxdv.env.quantizer.bugs import BUGS

    bug = next(b for b in BUGS if b.name == "out_w4_wrong_stage")
    monkeypatch.setenv("MXDV_RTL_ROOT", str(apply_bug("quantizer", bug, tmp_path / "rtl")))
    r = run_sim("quantizer", "hypothesis", sim="icarus", budget=2000, strategy_options={"db": str(tmp_path / "hdb")})
    assert r["mismatches"] > 0
    repro = r["strategy_stats"]["shrunk_reproducer"]
    assert repro is not None and len(repro) >= 2


def test_llm_strategy_in_simulation_with_the_scripted_standin(assert_clean, run_sim):
    from mxdv.llm_stimuli.standin import StandinServer

    with StandinServer() as server:
        r = run_sim("quantizer", "llm", sim="icarus", budget=400,
                    strategy_options={"base_url": server.base_url, "model": "scripted-standin", "api_key": "sk-x"})
    assert_clean(r)
    assert r["coverage_percent"] == 100.0
    st = r["strategy_stats"]
    assert st["response_format"] == "json_object_schema" and st["requests"] > 0
    assert "sk-x" not in (Path(r["run_dir"]) / "run_config.json").read_text()
