"""The attention unit end to end: constrained closes the plan on Verilator, Icarus runs
clean, stress tests (backpressure, resets), random/hypothesis clean, and planted bugs caught."""
import pytest

from mxdv.bugs import apply_bug


@pytest.mark.xdist_group("attention")
def test_constrained_closes_the_plan(assert_clean, run_sim):
    r = run_sim("attention", "constrained", sim="verilator", budget=200)
    assert_clean(r)
    assert r["coverage_percent"] == 100.0, r["holes"]
    assert r["closure_txns"] is not None and r["closure_txns"] <= r["transactions"]


@pytest.mark.xdist_group("attention")
def test_icarus_runs_clean(assert_clean, run_sim):
    r = run_sim("attention", "constrained", sim="icarus", budget=40, stop_at_closure=False)
    assert_clean(r)
    assert r["transactions"] == 40


@pytest.mark.parametrize("strategy", ["random", "hypothesis"])
def test_generic_strategies_run_clean(assert_clean, run_sim, strategy):
    r = run_sim("attention", strategy, budget=60)
    assert_clean(r)
    assert 0 < r["coverage_percent"] <= 100.0


@pytest.mark.parametrize("test", ["HeavyBackpressure", "ResetInTraffic"])
def test_stress(assert_clean, run_sim, test):
    r = run_sim("attention", "constrained", budget=60, test=test, stop_at_closure=False)
    assert_clean(r)
    if test == "ResetInTraffic":
        assert r["dropped"] > 0 and "protocol.reset_in_traffic" not in r["holes"]
    else:
        assert not [h for h in r["holes"] if h.startswith("protocol.stall")]


@pytest.mark.parametrize("bug_name", ["max_skipped_last_tile"])
def test_planted_bug_is_caught(run_sim, tmp_path, monkeypatch, bug_name):
    """The running max skipped on the last tile: constrained-random must report a mismatch,
    a protocol violation or a hang."""
    from mxdv.env.attention.bugs import BUGS

    bug = next(b for b in BUGS if b.name == bug_name)
    monkeypatch.setenv("MXDV_RTL_ROOT", str(apply_bug("attention", bug, tmp_path / "rtl")))
    r = run_sim("attention", "constrained", budget=120, test="HeavyBackpressure")
    assert r["mismatches"] > 0 or r["protocol_violations"] or r["error"], r
