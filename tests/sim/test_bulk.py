"""Bulk mode (mxdv.env.bulk): both modes agree cycle for cycle, bulk runs check and catch
planted bugs, hangs end in a named error, oversize batches are split."""
import json

import pytest

from mxdv.bugs import bug_env, bugs_of
from mxdv.env.run_config import RunConfig
from mxdv.runs import run_one

#: Transactions per agreement run (small: the cycle-mode half drives every cycle from Python).
AGREEMENT = {"quantizer": 40, "systolic_array": 6, "attention": 2}


def _captures(tmp_path, unit, mode, n, reset=True):
    module, test = {"cycle": ("mxdv.env.bulk.agreement_cycle", "CycleAgreement"),
                    "bulk": ("mxdv.env.bulk.agreement_bulk", "BulkAgreement")}[mode]
    cfg = RunConfig(unit=unit, seed=3, budget=n, mode=mode, run_dir=str(tmp_path / f"{unit}-{mode}"),
                    reset_prob=0.5 if reset else 0.0, bulk_idle_cycles=300)
    run_one(cfg, test=test, modules=[module], require_result=False)
    path = tmp_path / f"{unit}-{mode}" / "captures.json"
    assert path.exists(), f"{mode} run of {unit} wrote no captures; see {tmp_path / f'{unit}-{mode}' / 'sim.log'}"
    return json.loads(path.read_text())


def _relative(cap):
    """Captures with cycles counted from the first accepted input beat."""
    t0 = min(recs[0][0] for recs in cap["inputs"].values() if recs)
    return {"inputs": {p: [[c - t0, *rest] for c, *rest in recs] for p, recs in cap["inputs"].items()},
            "outputs": [[c - t0, *rest] for c, *rest in cap["outputs"]],
            "resets": [c - t0 for c in cap["resets"] if c >= t0]}


@pytest.mark.parametrize("unit", sorted(AGREEMENT))
def test_bulk_and_cycle_mode_agree_cycle_for_cycle(tmp_path, unit):
    """Same transactions, gaps, backpressure and a reset in the traffic: every accepted input
    and output beat, its cycle and its stall count are the same in both modes."""
    n = AGREEMENT[unit]
    bulk = _captures(tmp_path, unit, "bulk", n)
    cycle = _captures(tmp_path, unit, "cycle", n)
    assert bulk["reason"] == "done"
    assert bulk["outputs"], "no output beat captured"
    assert bulk["resets"], "the schedule's reset was not seen"
    assert _relative(bulk) == _relative(cycle)


@pytest.fixture
def run_bulk(tmp_path):
    def _run(unit, budget, strategy="random", test="StrategyRun", **kw):
        kw.setdefault("batch_size", 64)
        cfg = RunConfig(unit=unit, strategy=strategy, seed=1, budget=budget, mode="bulk",
                        run_dir=str(tmp_path / f"{unit}-{strategy}-{test}"), stop_at_closure=False, **kw)
        return run_one(cfg, test=test)
    return _run


@pytest.mark.parametrize("unit,budget", [("quantizer", 400), ("systolic_array", 40), ("attention", 4)])
def test_bulk_run_is_clean_with_resets_and_backpressure(run_bulk, assert_clean, unit, budget):
    r = run_bulk(unit, budget, test="ResetInTraffic", batch_size=max(2, budget // 4))
    assert_clean(r)
    assert r["mode"] == "bulk"
    assert r["transactions"] == budget
    assert r["checked"] > 0 and r["dropped"] > 0  # resets land in traffic and drop what was in flight
    if r["streams"]["out_"]["accepted"] >= 20:  # enough output beats for backpressure to have hit one
        assert r["streams"]["out_"]["refused_cycles"] > 0


def test_bulk_batch_larger_than_memory_is_split_not_truncated(run_bulk, assert_clean):
    r = run_bulk("quantizer", 300, batch_size=300, bulk_depth=64, reset_prob=0.0)
    assert_clean(r)
    assert r["checked"] == 300


#: One bug of each kind that needs its own build kept few (each RTL bug is a bulk build of its own).
@pytest.mark.parametrize("bug", ["stage2_overwritten_in_stall", "encode_lanes_reversed"])
def test_planted_quantizer_bugs_caught_in_bulk_mode(run_bulk, tmp_path, monkeypatch, bug):
    (b,) = [x for x in bugs_of("quantizer") if x.name == bug]
    for key, value in bug_env("quantizer", b, tmp_path / "rtl").items():
        monkeypatch.setenv(key, value)
    r = run_bulk("quantizer", 400, test="ResetInTraffic")
    assert r["mismatches"] or r["protocol_violations"] or r["error"], r


@pytest.mark.parametrize("bug", ["scale_add_uses_a_twice"])
def test_planted_systolic_bug_caught_in_bulk_mode(run_bulk, tmp_path, monkeypatch, bug):
    (b,) = [x for x in bugs_of("systolic_array") if x.name == bug]
    for key, value in bug_env("systolic_array", b, tmp_path / "rtl").items():
        monkeypatch.setenv(key, value)
    r = run_bulk("systolic_array", 40)
    assert r["mismatches"] or r["protocol_violations"] or r["error"], r


def test_hang_ends_in_named_bulk_timeout(run_bulk, tmp_path, monkeypatch):
    (b,) = [x for x in bugs_of("quantizer") if x.name == "out_valid_stuck_low"]
    monkeypatch.setenv("MXDV_RTL_ROOT", str(bug_env("quantizer", b, tmp_path / "rtl")["MXDV_RTL_ROOT"]))
    r = run_bulk("quantizer", 50, bulk_idle_cycles=200)
    assert r["error"] and r["error"].startswith("BulkHang"), r["error"]
    assert "seed 1" in r["error"] and "batch 1" in r["error"]


def test_simulator_death_mid_batch_reports_batch_and_seed_and_keeps_finished_batches(run_bulk, monkeypatch):
    from mxdv.env.bulk.context import CRASH_VAR
    from mxdv.runs import RunFailed

    monkeypatch.setenv(CRASH_VAR, "3")
    with pytest.raises(RunFailed) as info:
        run_bulk("quantizer", 200, batch_size=50, reset_prob=0.0)
    text = str(info.value)
    assert "died in bulk batch 3 (transactions 100..149), seed 1" in text
    assert "the 2 finished batch(es) checked 100 transaction(s) (100 passed, 0 mismatch(es))" in text
