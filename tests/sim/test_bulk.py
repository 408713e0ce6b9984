"""Bulk mode (mxdv.env.bulk): both modes agree cycle for cycle, bulk runs check and catch
planted bugs, hangs end in a named error, oversize batches are split; the columnar path gives
the same run as the per-transaction path and catches the same bugs."""
import json

import numpy as np
import pytest

from mxdv.bugs import bug_env, bugs_of
from mxdv.env.run_config import RunConfig
from mxdv.runs import run_one
from mxdv.unit import get_unit

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
    r = run_bulk("systolic_array", 40, reset_prob=0.0)
    assert r["columnar_batches"] == 1, r  # the columnar path caught it
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


def _columnar_traffic(tmp_path, unit_name, n, seed=11):
    from mxdv.columns import random_columns
    from mxdv.sequences.replay import save_columns

    unit = get_unit(unit_name)
    cols = random_columns(unit.schema, np.random.default_rng(seed), n)
    return str(save_columns(tmp_path / f"{unit_name}.npz", cols))


@pytest.mark.parametrize("unit,budget,batch", [("quantizer", 900, 150), ("systolic_array", 80, 16), ("attention", 40, 8)])
def test_columnar_and_per_transaction_paths_give_the_same_run(tmp_path, monkeypatch, unit, budget, batch):
    """The same traffic and seed (resets, gaps and backpressure included) through the
    columnar path and through the per-transaction bulk path: the same checks, the same
    coverage database, the same closure curve, stream statistics and golden-error figures
    (the systolic array and attention: transactions of different lengths in one batch)."""
    from mxdv.coverage.collector import load_hits
    from mxdv.env.bulk.context import COLUMNAR_VAR

    traffic = _columnar_traffic(tmp_path, unit, budget)
    runs = {}
    for flag in ("0", "1"):
        monkeypatch.setenv(COLUMNAR_VAR, flag)
        cfg = RunConfig(unit=unit, strategy="replay", strategy_options={"file": traffic}, seed=2, budget=budget,
                        mode="bulk", batch_size=batch, stop_at_closure=False, run_dir=str(tmp_path / f"col{flag}"))
        r = run_one(cfg, test="StrategyRun")
        assert r["error"] is None and r["mismatches"] == 0, r["error"]
        runs[flag] = (r, load_hits(tmp_path / f"col{flag}" / "StrategyRun" / "coverage.yml", unit))
    (per_txn, hits0), (columnar, hits1) = runs["0"], runs["1"]
    assert per_txn["columnar_batches"] == 0 and columnar["columnar_batches"] >= 3
    assert columnar["dropped"] > 0  # a batch with a reset in it ran too (per transaction)
    if unit == "systolic_array":  # a reset lands early: only a head of its batch ran around it
        assert columnar["bulk_batches"] > -(-budget // batch), columnar["bulk_batches"]
        assert columnar["bulk_batches"] - columnar["columnar_batches"] < columnar["bulk_batches"] // 2
    for key in ("transactions", "checked", "passed", "dropped", "coverage_percent", "holes", "closure_txns",
                "streams", "busy_cycles", "work", "golden_error"):
        assert columnar[key] == per_txn[key], key
    assert hits1 == hits0
    strip = lambda r: [p[:2] for p in r["coverage_curve"]["points"]]  # noqa: E731  (txns, coverage)
    assert strip(columnar) == strip(per_txn)


@pytest.mark.parametrize("bug", ["round_half_up", "encode_lanes_reversed"])
def test_planted_quantizer_bugs_caught_on_the_columnar_path(tmp_path, monkeypatch, bug):
    (b,) = [x for x in bugs_of("quantizer") if x.name == bug]
    for key, value in bug_env("quantizer", b, tmp_path / "rtl").items():
        monkeypatch.setenv(key, value)
    cfg = RunConfig(unit="quantizer", strategy="random", seed=1, budget=600, mode="bulk", batch_size=200,
                    stop_at_closure=False, reset_prob=0.0, run_dir=str(tmp_path / "run"))
    r = run_one(cfg, test="StrategyRun")
    assert r["columnar_batches"] == 3, r
    assert r["mismatches"] > 0, r
    report = (tmp_path / "run" / "StrategyRun" / "mismatches.jsonl").read_text()
    assert "replay:" in report and "--mode bulk" in report
    if b.name == "encode_lanes_reversed":
        assert r["stimulus_mismatches"] > 0 and "MISMATCH (stimulus)" in report
    else:
        assert "MISMATCH (output differs from the reference model)" in report


def test_small_bulk_batches_still_meet_output_backpressure(run_bulk):
    """A batch of one or two sequences is shorter than the attention unit's latency: its outputs
    come after the schedule's end, where the output's ready pattern repeats (it used to be
    always ready there, so a strategy feeding tiny batches, as hypothesis and llm do, never
    saw an output stall in bulk mode)."""
    r = run_bulk("attention", 40, batch_size=2, reset_prob=0.0, backpressure_prob=0.3)
    assert r["error"] is None and r["mismatches"] == 0, r["error"]
    assert r["streams"]["out_"]["refused_cycles"] > 0, r["streams"]
