"""The closure table and JUnit writer, on hand-made results (no simulator)."""
import xml.etree.ElementTree as ET

import numpy as np

from mxdv.env.scoreboard import GoldenError
from mxdv.regress import _write_junit, closure_table, error_table, split_units


def result(strategy, seed, closure, cov=100.0, mismatches=0, budget=1000):
    return {"job": {"unit": "quantizer", "strategy": strategy, "seed": seed, "budget": budget,
                    "sim": "verilator", "test": "StrategyRun", "options": {}},
            "closure_txns": closure, "coverage_percent": cov, "mismatches": mismatches,
            "protocol_violations": [], "error": None, "txn_per_s": 100.0, "job_wall_s": 1.0}


def test_closure_table_medians_and_ratio():
    rs = [result("constrained", s, c) for s, c in [(1, 100), (2, 140), (3, 120)]]
    rs += [result("random", s, None, cov=70.0, budget=20000) for s in (1, 2, 3)]
    table = closure_table(rs)
    assert "| quantizer | constrained | 3 | 3/3 | 120 | 100..140 |" in table
    assert "| quantizer | random | 3 | 0/3 | not closed within 20000 |" in table
    assert "did not close within 20000 txns (167x the best) in 3/3 seeds" in table
    assert "10x target met" in table


def test_closure_target_verdicts():
    best = [result("constrained", s, 100) for s in (1, 2, 3)]
    slow = closure_table(best + [result("random", s, 500) for s in (1, 2, 3)])
    assert "5.0x fewer; 10x target NOT met" in slow
    short = closure_table(best + [result("random", s, None, cov=80.0, budget=500) for s in (1, 2, 3)])
    assert "10x target not settled" in short, "a random budget under 10x the best settles nothing"


def test_golden_error_accumulates_and_counts_bound_violations():
    g = GoldenError()
    assert g.as_dict() is None
    g.add(np.array([0.1, 0.3]), np.array([1.0, 0.2]))
    g.add(np.array([0.2]), np.array([np.inf]))
    d = g.as_dict()
    assert d["elements"] == 3 and d["max_abs"] == 0.3 and abs(d["mean_abs"] - 0.2) < 1e-12
    assert d["over_bound"] == 1 and abs(d["max_bound_ratio"] - 1.5) < 1e-12


def test_error_table_weights_means_by_outputs():
    rs = [dict(result("constrained", 1, 10), golden_error={"label": "abs error", "elements": 10, "max_abs": 0.5,
                                                           "mean_abs": 0.1, "max_bound_ratio": 0.4, "over_bound": 0}),
          dict(result("random", 1, 10), golden_error={"label": "abs error", "elements": 30, "max_abs": 0.2,
                                                      "mean_abs": 0.3, "max_bound_ratio": 0.9, "over_bound": 2}),
          result("llm", 1, 10)]
    assert "| quantizer | abs error | 40 | 0.5 | 0.25 | 0.900 | 2 |" in error_table(rs)
    assert error_table([result("llm", 1, 10)]) == ""


def test_junit_counts_failures(tmp_path):
    rs = [result("constrained", 1, 100), result("constrained", 2, 90, mismatches=3)]
    _write_junit(tmp_path / "j.xml", "smoke", rs)
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.get("tests") == "2" and root.get("failures") == "1"
    assert len(root.findall("testcase/failure")) == 1


def test_split_units_keeps_variant_parameters_together():
    assert split_units("quantizer, systolic_array:R=8,C=8,attention:default") == [
        "quantizer", "systolic_array:R=8,C=8", "attention:default"]


def test_error_table_escapes_pipes_in_labels():
    r = dict(result("random", 1, 10), golden_error={"label": "err / |P|", "elements": 1, "max_abs": 1.0,
                                                    "mean_abs": 1.0, "max_bound_ratio": 0.5, "over_bound": 0})
    row = error_table([r]).splitlines()[-1]
    assert row.count(" | ") == 6 and "err / \\|P\\|" in row


def test_golden_error_mean_does_not_depend_on_grouping():
    """The mean of a run's golden errors is exact: the same values added one transaction at a
    time or in one batch give bit-identical figures (a float sum would differ in its last bits)."""
    from fractions import Fraction

    rng = np.random.default_rng(4)
    err = np.abs(rng.standard_normal(5000)) * 2.0 ** rng.integers(-60, 5, 5000)
    err[:3] = [0.0, 5e-324, 1e300]
    one, many = GoldenError(), GoldenError()
    one.add(err, err * 2)
    for k in range(0, len(err), 7):
        many.add(err[k:k + 7], err[k:k + 7] * 2)
    assert one.as_dict() == many.as_dict()
    assert one.as_dict()["mean_abs"] == float(sum(Fraction(float(v)) for v in err) / len(err))
