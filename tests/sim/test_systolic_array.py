"""The MX systolic array end to end: closure on both simulators and both sizes, stress,
random and Hypothesis runs, and a planted rounding bug caught by the constrained strategy."""
import pytest

from mxdv.bugs import apply_bug

SIMS = ["verilator", "icarus"]


@pytest.mark.xdist_group("systolic_array")
@pytest.mark.parametrize("sim", SIMS)
def test_constrained_closes_the_plan(assert_clean, run_sim, sim):
    r = run_sim("systolic_array", "constrained", sim=sim, budget=400)
    assert_clean(r)
    assert r["coverage_percent"] == 100.0, r["holes"]
    assert r["closure_txns"] is not None and r["closure_txns"] <= r["transactions"]


def test_8x8_closes_the_plan(assert_clean, run_sim):
    r = run_sim("systolic_array:R=8,C=8", "constrained", budget=400)
    assert_clean(r)
    assert r["coverage_percent"] == 100.0, r["holes"]


def test_random_runs_clean_and_misses_the_corners(assert_clean, run_sim):
    r = run_sim("systolic_array:BLOCK=8", "random", budget=120)
    assert_clean(r)
    assert r["transactions"] == 120
    # uniform codes never build a full-scale block sum, a zero tile or an exact cancellation
    assert {"sum.full_pos", "tile.zero_a", "acc.cancel_exact"} <= set(r["holes"])


@pytest.mark.parametrize("test", ["HeavyBackpressure", "ResetInTraffic"])
def test_stress(assert_clean, run_sim, test):
    r = run_sim("systolic_array:BLOCK=8", "constrained", budget=60, test=test, stop_at_closure=False)
    assert_clean(r)
    if test == "ResetInTraffic":
        assert r["dropped"] > 0 and "protocol.reset_in_traffic" not in r["holes"]
    else:
        assert not [h for h in r["holes"] if h.startswith("protocol.stall")]


def test_hypothesis_strategy_runs_clean(assert_clean, run_sim):
    r = run_sim("systolic_array:BLOCK=8", "hypothesis", budget=40)
    assert_clean(r)
    assert r["transactions"] >= 40


def test_planted_rounding_bug_is_caught(run_sim, tmp_path, monkeypatch):
    """Ties rounded half-up instead of to even: only the plan's tie bins expose it."""
    from mxdv.env.systolic_array.bugs import BUGS

    bug = next(b for b in BUGS if b.name == "round_half_up")
    monkeypatch.setenv("MXDV_RTL_ROOT", str(apply_bug("systolic_array", bug, tmp_path / "rtl")))
    r = run_sim("systolic_array:BLOCK=8", "constrained", sim="icarus", budget=400, stop_on_mismatch=True)
    assert r["mismatches"] > 0
