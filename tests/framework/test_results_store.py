"""The results store, history, flakes, buckets and code-coverage parsing, on hand-made
results (no simulator)."""
import json
import subprocess
import sys

import pytest

from mxdv.buckets import bucketize, signature
from mxdv.codecov import merge, summarize, write_dat
from mxdv.history import history_text, trend
from mxdv.regress import failed
from mxdv.results_db import ResultsDB, ResultsDBError
from mxdv.unit import get_unit

BINS = list(get_unit("quantizer").plan.bin_names)


def result(seed, status="pass", run_dir="", mismatches=0, error=None, cov=50.0):
    return {"job": {"unit": "quantizer", "strategy": "constrained", "seed": seed, "budget": 100, "sim": "icarus",
                    "test": "StrategyRun", "options": {}},
            "transactions": 100, "coverage_percent": cov, "closure_txns": None, "mismatches": mismatches,
            "protocol_violations": [], "error": error, "status": status, "run_dir": run_dir, "test": "StrategyRun",
            "job_wall_s": 1.5}


def test_coverage_accumulates_over_nights_and_flakes_are_flagged(tmp_path):
    db = ResultsDB(tmp_path / "r.db")
    r1 = db.start_run("quick", 100, "/x", {})
    db.add_job(r1, result(100), "pass", "h1", {BINS[0]: 3, BINS[1]: 0})
    db.add_job(r1, result(101), "pass", "h1", {BINS[1]: 0, BINS[2]: 1})
    db.finish_run(r1)
    r2 = db.start_run("quick", 200, "/x", {})
    db.add_job(r2, result(200), "pass", "h1", {BINS[1]: 2})
    # seed 100 again on the same RTL, now failing: a flake; on other RTL it would not be one
    db.add_job(r2, result(100, "fail", mismatches=1), "fail", "h1", {},
               {"signature": "quantizer | mismatch | elems | value", "replay": "mxdv replay /x"})
    db.add_job(r2, result(101, "fail", mismatches=1), "fail", "h2", {},
               {"signature": "quantizer | mismatch | elems | value", "replay": "mxdv replay /y"})
    db.finish_run(r2)
    assert db.accumulated_hits("quantizer", r1) == {BINS[0]: 3, BINS[1]: 0, BINS[2]: 1}
    assert db.accumulated_hits("quantizer") == {BINS[0]: 3, BINS[1]: 2, BINS[2]: 1}
    rows = trend(db, "quantizer")
    n = len(BINS)
    assert [r["run"] for r in rows] == [r1, r2]
    assert rows[0]["night_percent"] == pytest.approx(200 / n) and rows[0]["accumulated_percent"] == pytest.approx(200 / n)
    assert rows[1]["night_percent"] == pytest.approx(100 / n) and rows[1]["accumulated_percent"] == pytest.approx(300 / n)
    flakes = db.flakes("quantizer")
    assert [(f["seed"], f["passes"], f["fails"]) for f in flakes] == [(100, 1, 1)]
    text = history_text(db, "quantizer")
    assert "| 100 | 1 | 1 |" in text and "quantizer / mismatch / elems / value | 2 |" in text
    assert db.run_by_date(rows[0]["started"][:10])["id"] == r2 and db.run_by_date(str(r1))["seed_base"] == 100


def test_corrupt_database_gets_a_clear_message_and_is_left_alone(tmp_path):
    bad = tmp_path / "results.db"
    bad.write_bytes(b"this is not sqlite " * 100)
    with pytest.raises(ResultsDBError, match="--db .*results.db: not a usable results database"):
        ResultsDB(bad)
    r = subprocess.run([sys.executable, "-m", "mxdv.cli", "regress", "--suite", "quick", "--units", "quantizer",
                        "--db", str(bad), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 2 and "not a usable results database" in r.stderr
    h = subprocess.run([sys.executable, "-m", "mxdv.cli", "history", "--db", str(bad)], capture_output=True, text=True)
    assert h.returncode == 2 and "move the file away" in h.stderr
    assert bad.read_bytes() == b"this is not sqlite " * 100


def test_signatures_bucket_the_same_failure_across_seeds(tmp_path):
    results = []
    for seed, field in [(1, "elems"), (2, "elems"), (3, "scale")]:
        d = tmp_path / f"s{seed}" / "StrategyRun"
        d.mkdir(parents=True)
        exp = {"scale": 1, "elems": 5}
        act = {"scale": 1 if field == "elems" else 2, "elems": 6 if field == "elems" else 5}
        (d / "mismatches.jsonl").write_text(json.dumps({"txn_id": seed, "expected": exp, "actual": act}) + "\n")
        results.append(result(seed, "fail", str(tmp_path / f"s{seed}"), mismatches=2))
    results.append(result(4, "error", error="DrainTimeout: 3 transaction(s) of quantizer never completed within 8400 cycles (ids [1, 2])"))
    results.append(result(5, "error", error="DrainTimeout: 7 transaction(s) of quantizer never completed within 900 cycles (ids [4])"))
    results.append(result(6))
    buckets = bucketize(results, failed)
    sigs = [(b.signature, b.seeds) for b in buckets]
    assert sigs == [("quantizer | error:DrainTimeout | - | N transaction(s) of quantizer never completed within N cycles", [4, 5]),
                    ("quantizer | mismatch | elems | value", [1, 2]),
                    ("quantizer | mismatch | scale | value", [3])]
    assert signature(result(7, "timeout", error="Timeout: ...")) == "quantizer | timeout | - | wall-clock limit"


def test_code_coverage_merge_sums_points_and_lists_uncovered_lines(tmp_path):
    def key(line, kind, inst, comment=""):
        return f"\x01f\x02/rtl/q/a.sv\x01l\x02{line}\x01t\x02{kind}\x01page\x02v_{kind}/a\x01o\x02{comment}\x01h\x02top.{inst}"
    a = write_dat({key(10, "line", "u0"): 1, key(11, "line", "u0"): 0, key(12, "branch", "u0", "if"): 0,
                   key(12, "branch", "u1", "if"): 0, key(13, "toggle", "u0", "x:0->1"): 0}, tmp_path / "a.dat")
    b = write_dat({key(10, "line", "u0"): 2, key(11, "line", "u0"): 4, key(12, "branch", "u0", "if"): 0,
                   key(12, "branch", "u1", "if"): 0, key(13, "toggle", "u0", "x:0->1"): 1}, tmp_path / "b.dat")
    s = summarize(merge([a, b]))
    assert s["types"]["line"] == {"hit": 2, "total": 2, "percent": 100.0}
    assert s["types"]["branch"]["hit"] == 0 and s["types"]["toggle"]["hit"] == 1
    assert s["uncovered"] == [("a.sv", 12, "branch", "if")]
    assert s["percent"] == pytest.approx(300 / 5)
    (tmp_path / "bad.dat").write_text("# SystemC::Coverage-3\nnonsense\n")
    with pytest.raises(ValueError, match="bad.dat:2: not a Verilator coverage line"):
        merge([tmp_path / "bad.dat"])


@pytest.mark.parametrize("args, needle", [
    (["--job-timeout", "-1"], "--job-timeout must be > 0"),
    (["--fixed-budget", "0"], "--fixed-budget must be > 0"),
    (["--seed-base", "5", "--seeds-from", "2026-01-01"], "--seed-base and --seeds-from: give one of them"),
    (["--seeds-from", "1999-01-01"], "--seeds-from 1999-01-01: no run on that date"),
    (["--executor", "slurm"], "--executor 'slurm': known executors are 'local'"),
    (["--code-coverage", "--sim", "icarus"], "--code-coverage needs Verilator"),
])
def test_bad_regress_arguments_name_the_parameter(tmp_path, args, needle):
    r = subprocess.run([sys.executable, "-m", "mxdv.cli", "regress", "--suite", "quick", "--units", "quantizer",
                        "--db", str(tmp_path / "r.db"), "--out", str(tmp_path / "o"), *args], capture_output=True, text=True)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]


def test_replay_of_a_directory_without_a_job_spec_says_so(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mxdv.cli", "replay", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and "no job_spec.json there" in r.stderr
