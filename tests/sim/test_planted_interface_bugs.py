"""The checks added for issue 13 each catch a planted bug, named by what reports it: the
predictor (an `encode` bug, for every unit), the reset-quiet check (an output during reset),
the X/Z check on Icarus (X on in_ready), the generated SystemVerilog interface checkers
(payload changed while stalled; an output without input after reset) and the named drain
timeout (a DUT that never answers). Clean runs of the same tests are in the unit test files."""
import pytest

from mxdv.bugs import bug_env, bugs_of


@pytest.fixture
def run_bug(run_sim, tmp_path, monkeypatch):
    def _run(unit, bug_name, **kw):
        bug = next(b for b in bugs_of(unit.split(":")[0]) if b.name == bug_name)
        for key, value in bug_env(unit.split(":")[0], bug, tmp_path / "rtl").items():
            monkeypatch.setenv(key, value)
        return run_sim(unit, "constrained", stop_at_closure=False, **kw)
    return _run


@pytest.mark.parametrize("unit,bug,budget", [("quantizer", "encode_lanes_reversed", 30),
                                             ("systolic_array:BLOCK=8", "encode_a_rows_reversed", 8),
                                             ("attention", "encode_k_lanes_reversed", 8)])
def test_encode_bug_is_a_stimulus_mismatch(run_bug, unit, bug, budget):
    r = run_bug(unit, bug, sim="icarus", budget=budget)
    assert r["stimulus_mismatches"] > 0, r
    assert r["mismatches"] >= r["stimulus_mismatches"]


def test_output_during_reset_is_caught(run_bug):
    r = run_bug("quantizer", "out_valid_in_reset", sim="icarus", budget=40, test="ResetInTraffic")
    assert any("out_valid is 1 during reset" in v for v in r["protocol_violations"]), r["protocol_violations"][:3]


def test_x_on_in_ready_is_caught_on_icarus(run_bug):
    r = run_bug("quantizer", "in_ready_x_when_full", sim="icarus", budget=40, test="HeavyBackpressure")
    assert any(v.startswith("in_ready is X") for v in r["protocol_violations"]), r["protocol_violations"][:3]


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_payload_change_while_stalled_is_caught_by_the_sv_checker(run_bug, sim):
    r = run_bug("quantizer", "out_elems_change_in_stall", sim=sim, budget=40, test="HeavyBackpressure")
    assert r["mismatches"] == 0, "the beat is right when accepted: only the interface checks see it"
    first = r["protocol_violations"][0]
    assert first.startswith("interface property 'payload (out_scale, out_elems, out_w4) stable while stalled' "
                            "violated on out_valid") and "first at cycle" in first, first


def test_stale_output_after_reset_is_caught_by_the_sv_checker(run_bug):
    r = run_bug("quantizer", "reset_keeps_stage2", sim="icarus", budget=60, test="ResetInTraffic")
    assert any(v.startswith("interface property 'no output beat without a preceding input transaction'")
               for v in r["protocol_violations"]), r["protocol_violations"][:3]


def test_a_hang_is_a_named_drain_timeout(run_bug):
    r = run_bug("quantizer", "out_valid_stuck_low", sim="icarus", budget=20)
    assert r["error"] and r["error"].startswith("DrainTimeout"), r["error"]


@pytest.mark.parametrize("unit", ["quantizer", "systolic_array:BLOCK=8"])
def test_steady_state_refuses_no_offered_beat(run_sim, assert_clean, unit):
    """No idle, no backpressure, no resets: both units take an input beat every cycle one is
    offered (the generic stream metrics of result.json)."""
    r = run_sim(unit, "constrained", budget=40, test="SteadyState", stop_at_closure=False)
    assert_clean(r)
    s = r["streams"]["in_"]
    assert s["accepted"] > 0 and s["refused_cycles"] == 0, s
