"""The closure table and JUnit writer, on hand-made results (no simulator)."""
import xml.etree.ElementTree as ET

from mxdv.regress import _write_junit, closure_table


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


def test_junit_counts_failures(tmp_path):
    rs = [result("constrained", 1, 100), result("constrained", 2, 90, mismatches=3)]
    _write_junit(tmp_path / "j.xml", "smoke", rs)
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert root.get("tests") == "2" and root.get("failures") == "1"
    assert len(root.findall("testcase/failure")) == 1
