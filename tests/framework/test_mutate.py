"""`mxdv mutate`: the mutant generator (no simulation), the Yosys equivalence check on tiny
modules whose answer is known, bad input, and a small campaign on the quantizer (Icarus)."""
from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from mxdv import REPO_ROOT
from mxdv.cli import main
from mxdv.mutate import equivalence
from mxdv.mutate.generate import CLASSES, Mutant, apply, generate, sample

TINY = """\
`timescale 1ns/1ps
// a comment with a + b and x[3] that must not be mutated
module tiny #(
    parameter int W = 8
) (
    input  logic         clk,
    input  logic         rst,
    input  logic [W-1:0] a,
    input  logic [W-1:0] b,
    output logic [W-1:0] y,
    output logic         flag
);
  localparam int LIMIT = 10;
  logic [W-1:0] sum;
  assign sum = a + b;  /* block comment: a - b */
  assign y = (sum > 8'd200) ? 8'd200 : sum;
  always_ff @(posedge clk) begin
    if (rst) begin
      flag <= 1'b0;
    end else if (a[0] && b[7:4] != 4'h0) begin
      flag <= ~flag;
    end
  end
endmodule
"""


@pytest.fixture()
def tiny_dir(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "tiny.sv").write_text(TINY)
    return tmp_path


def _by(mutants, cls):
    return [m for m in mutants if m.cls == cls]


def test_generator_finds_every_class_and_skips_comments_declarations_and_assignments(tiny_dir):
    ms = generate(tiny_dir / "tiny", ["tiny.sv"])
    assert {m.cls for m in ms} == set(CLASSES)
    lines = {m.line for m in ms}
    assert 2 not in lines                     # the comment line
    assert not lines & {3, 4, 6, 7, 8, 9, 10, 11, 14}  # parameter and declarations
    ops = {(m.line, m.original, m.replacement) for m in _by(ms, "operator")}
    assert (15, "+", "-") in ops
    assert (16, ">", ">=") in ops
    assert (20, "&&", "||") in ops and (20, "!=", "==") in ops
    assert not any(o == "<=" for _, o, _ in ops)  # non-blocking assignments are not comparisons
    assert not any(m.line == 15 and m.original == "-" for m in ms)  # inside the block comment
    consts = {(m.line, m.original, m.replacement) for m in _by(ms, "constant")}
    assert {(13, "10", "11"), (13, "10", "9"), (16, "8'd200", "8'd201"), (16, "8'd200", "8'd199")} <= consts
    assert {(m.line, m.replacement) for m in _by(ms, "reset")} == {(19, "1'b1")}
    sels = {(m.original, m.replacement) for m in _by(ms, "bitselect")}
    assert {("[0]", "[1]"), ("[7:4]", "[6:3]"), ("[7:4]", "[8:5]")} <= sels
    conds = {m.mutated_line for m in _by(ms, "condition")}
    assert "if (!(rst)) begin" in conds
    assert "assign y = !(sum > 8'd200) ? 8'd200 : sum;" in conds
    # every mutant is one edit of one line, and ids are unique
    assert len({m.id for m in ms}) == len(ms)
    for m in ms:
        assert m.mutated_line != m.source_line


def test_sampling_is_deterministic_and_covers_the_classes(tiny_dir):
    ms = generate(tiny_dir / "tiny", ["tiny.sv"])
    a, b, c = sample(ms, 6, seed=1), sample(ms, 6, seed=1), sample(ms, 6, seed=2)
    assert a == b and a != c
    assert len(a) == 6 and len(set(a)) == 6
    assert {m.cls for m in sample(ms, 5, seed=3)} == set(CLASSES)  # round-robin over the classes
    assert sample(ms, None, seed=1) == ms and sample(ms, 10 ** 6, seed=1) == ms


def test_apply_edits_a_copy_only(tiny_dir, tmp_path):
    ms = generate(tiny_dir / "tiny", ["tiny.sv"])
    m = next(x for x in ms if x.cls == "operator" and x.original == "+")
    root = apply(m, tiny_dir, "tiny", tmp_path / "copy")
    new = (root / "tiny" / "tiny.sv").read_text().splitlines()
    old = TINY.splitlines()
    assert [i for i, (x, y) in enumerate(zip(old, new)) if x != y] == [m.line - 1]
    assert new[m.line - 1].strip() == m.mutated_line
    assert (tiny_dir / "tiny" / "tiny.sv").read_text() == TINY


def test_unknown_class_is_named(tiny_dir):
    with pytest.raises(ValueError, match="'bogus'"):
        generate(tiny_dir / "tiny", ["tiny.sv"], classes=("bogus",))


# -- Yosys equivalence on tiny modules ------------------------------------------------------
MAX2 = """module max2 (input logic [7:0] a, input logic [7:0] b, output logic [7:0] y);
  assign y = (a {op} b) ? a : b;
endmodule
"""
REG = """module reg1 (input logic clk, input logic rst, input logic d, output logic q);
  always_ff @(posedge clk) begin
    if (rst) q <= 1'b{r};
    else q <= d;
  end
endmodule
"""


@pytest.fixture()
def ywork():
    d = REPO_ROOT / "build" / "test-mutate" / uuid.uuid4().hex[:8]
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _pair(work: Path, gold: str, gate: str, name: str) -> tuple[list[Path], list[Path]]:
    (work / "g").mkdir(parents=True, exist_ok=True)
    (work / "m").mkdir(parents=True, exist_ok=True)
    (work / "g" / f"{name}.sv").write_text(gold)
    (work / "m" / f"{name}.sv").write_text(gate)
    return [work / "g" / f"{name}.sv"], [work / "m" / f"{name}.sv"]


def test_yosys_proves_a_true_equivalence(ywork):
    # max(a, b) picks the same value whether ties go to a or to b
    gold, gate = _pair(ywork, MAX2.format(op=">="), MAX2.format(op=">"), "max2")
    v = equivalence.check(gold, gate, "max2", {}, ["max2"], ywork / "eq")
    assert v.status == equivalence.EQUIVALENT, v


def test_yosys_finds_a_difference(ywork):
    gold, gate = _pair(ywork, MAX2.format(op=">="), MAX2.format(op="<"), "max2")
    v = equivalence.check(gold, gate, "max2", {}, ["max2"], ywork / "eq")
    assert v.status == equivalence.DIFFERENT, v


def test_yosys_sequential_reset_value_is_not_equivalent(ywork):
    gold, gate = _pair(ywork, REG.format(r=0), REG.format(r=1), "reg1")
    v = equivalence.check(gold, gate, "reg1", {}, ["reg1"], ywork / "eq")
    assert v.status == equivalence.DIFFERENT, v
    same_gold, same_gate = _pair(ywork / "same", REG.format(r=0), REG.format(r=0), "reg1")
    assert equivalence.check(same_gold, same_gate, "reg1", {}, ["reg1"], ywork / "eq2").status == equivalence.EQUIVALENT


def test_yosys_failure_and_timeout_are_unknown(ywork):
    gold, gate = _pair(ywork, MAX2.format(op=">="), "module max2 (input logic a; endmodule\n", "max2")
    v = equivalence.check(gold, gate, "max2", {}, ["max2"], ywork / "eq")
    assert v.status == equivalence.UNKNOWN and "Yosys failed" in v.detail, v
    gold, gate = _pair(ywork / "t", MAX2.format(op=">="), MAX2.format(op=">"), "max2")
    v = equivalence.check(gold, gate, "max2", {}, ["max2"], ywork / "eq_t", timeout_s=0.05)
    assert v.status == equivalence.UNKNOWN and "timeout" in v.detail, v


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("argv,named", [
    (["mutate", "--unit", "nosuch"], "'nosuch'"),
    (["mutate", "--unit", "quantizer", "--strategies", "random,bogus"], "'bogus'"),
    (["mutate", "--unit", "quantizer", "--classes", "operator,nope"], "'nope'"),
    (["mutate", "--unit", "quantizer", "--budget-scale", "0"], "--budget-scale"),
])
def test_bad_input_exits_2_naming_it(argv, named, capsys):
    assert main(argv) == 2
    assert named in capsys.readouterr().err


def test_unknown_mutant_id_exits_2_before_simulating(tmp_path, capsys):
    assert main(["mutate", "--unit", "quantizer", "--mutant", "no-such-mutant", "--out", str(tmp_path / "m")]) == 2
    assert "'no-such-mutant'" in capsys.readouterr().err
    assert not (tmp_path / "m" / "baseline").exists()


# -- a small campaign on the quantizer, Icarus --------------------------------------------
def _hand_made(cls: str, file: str, find: str, replacement: str) -> Mutant:
    """A mutant the generator does not make (a syntax error, a combinational loop)."""
    lines = (REPO_ROOT / "rtl" / "quantizer" / file).read_text().splitlines()
    idx = next(i for i, ln in enumerate(lines) if find in ln)
    col = lines[idx].index(find)
    raw = lines[idx]
    return Mutant(cls, file, idx + 1, col, find, replacement, raw.strip(),
                  (raw[:col] + replacement + raw[col + len(find):]).strip())


def test_quantizer_campaign_stillborn_equivalent_killed_and_hang(tmp_path):
    """Four mutants, one of each fate: a syntax error (stillborn), SHIFT_CAP 10 -> 11
    (equivalent: any shift >= 9 rounds to 0), the element sign dropped (killed by a mismatch)
    and a zero-delay loop in in_ready that hangs Icarus at the first stall (killed by the job
    time limit, recorded as a timeout)."""
    from mxdv.mutate import report
    from mxdv.mutate.campaign import Settings, run_campaign
    from mxdv.unit import get_unit

    unit = get_unit("quantizer")
    every = {m.id: m for m in generate(unit.rtl_dir, unit.sources)}
    cap = next(m for m in every.values() if m.original == "10" and m.replacement == "11")
    sign = next(m for m in every.values() if m.cls == "operator" and m.mutated_line.startswith("else if (sign)")
                and m.replacement == "+")
    broken = _hand_made("operator", "mx_int_lane.sv", "bf16[15];", "bf16[15] +;")
    loop = _hand_made("operator", "mx_quantizer.sv", "!s1_valid || s2_ready", "!s1_ready || s2_ready")
    out = tmp_path / "mutate"
    s = Settings(unit="quantizer", strategies=["constrained"], sim="icarus", budget_scale=0.01, seed=1, jobs=2,
                 out=out, job_timeout_s=90.0, equiv_timeout_s=60.0)
    campaign = run_campaign(s, log=lambda m: None, mutants=[broken, cap, sign, loop])
    status = {r["mutant"]["id"]: r for r in campaign["records"]}
    assert status[broken.id]["status"] == "stillborn"
    assert status[cap.id]["status"] == "equivalent", status[cap.id]
    assert status[sign.id]["status"] == "killed"
    assert status[sign.id]["jobs"]["constrained"]["outcome"] == "mismatch"
    assert status[sign.id]["jobs"]["constrained"]["txns_to_kill"] >= 1
    hang = status[loop.id]["jobs"]["constrained"]
    assert status[loop.id]["status"] == "killed" and hang["outcome"] == "timeout", hang
    summary = report.write(campaign, out)
    assert (summary["stillborn"], summary["equivalent"], summary["killed"], summary["survived"]) == (1, 1, 2, 0)
    assert summary["per_strategy"]["constrained"]["killed"] == 2
    assert json.loads((out / "report.json").read_text())["summary"]["killed"] == 2
    assert len((out / "mutants.jsonl").read_text().splitlines()) == 4
    assert "| 4 | 1 | 1 | 2 |" in (out / "report.md").read_text()
    from mxdv.mutate.store import publish
    from mxdv.results_db import ResultsDB
    assert "mutation campaign 1" in publish(summary, campaign, tmp_path / "results.db")
    db = ResultsDB(tmp_path / "results.db")
    (row,) = db.mutation_campaigns("quantizer")
    assert (row["stillborn"], row["equivalent"], row["killed"], row["survived"]) == (1, 1, 2, 0)
    assert {m["mutant"]: m["status"] for m in db.mutants(row["id"])} == {
        broken.id: "stillborn", cap.id: "equivalent", sign.id: "killed", loop.id: "killed"}


def test_job_outcomes_and_transactions_to_first_kill(tmp_path):
    from mxdv.mutate.jobs import classify

    (tmp_path / "StrategyRun").mkdir()
    mm = tmp_path / "StrategyRun" / "mismatches.jsonl"
    mm.write_text(json.dumps({"txn_id": 6}) + "\n" + json.dumps({"txn_id": 2}) + "\n")
    r = classify({"transactions": 16, "mismatches": 2, "test": "StrategyRun"}, tmp_path)
    assert (r["outcome"], r["txns_to_kill"]) == ("mismatch", 7)  # the first one found, not the lowest id
    mm.write_text(json.dumps({"txn_id": -1}) + "\n")  # a stale beat: no transaction of its own
    r = classify({"transactions": 3, "mismatches": 1, "test": "StrategyRun"}, tmp_path)
    assert (r["outcome"], r["txns_to_kill"]) == ("mismatch", 3)
    assert classify({"transactions": 9, "mismatches": 0, "error": "DrainTimeout: x"}, tmp_path)["outcome"] == "drain_timeout"
    assert classify({"transactions": 9, "mismatches": 0, "protocol_violations": ["v"]}, tmp_path)["outcome"] == "protocol"
    assert classify({"transactions": 9, "mismatches": 0, "protocol_violations": []}, tmp_path)["outcome"] == "survived"
    assert classify({"run_failed": "boom"}, tmp_path)["outcome"] == "crash"


def _record(mid, status, jobs=None, equiv="different"):
    rec = {"mutant": {"id": mid, "file": "x.sv", "line": 3, "cls": "operator", "source_line": "a",
                      "mutated_line": "b"}, "status": status}
    if status not in ("stillborn",):
        rec["equivalence"] = {"status": "equivalent" if status == "equivalent" else equiv}
    if jobs is not None:
        rec["jobs"] = {k: {"outcome": v, "txns_to_kill": 4 if v != "survived" else None, "wall_s": 1.0}
                       for k, v in jobs.items()}
    return rec


def test_campaigns_go_to_the_results_store_with_scores_and_every_mutant(tmp_path):
    """A hand-made campaign (no simulator) recorded twice: the store keeps both campaigns, the
    per-strategy scores, every mutant's fate and which strategies killed it; a file that is
    not a database is named."""
    from mxdv.mutate import report
    from mxdv.mutate.store import publish
    from mxdv.results_db import ResultsDB, ResultsDBError

    campaign = {"settings": {"unit": "systolic_array", "strategies": ["random", "constrained"], "sim": "icarus",
                             "seed": 1, "budget_scale": 0.05, "out": str(tmp_path / "c")},
                "baseline": {"random": {"budget": 500}, "constrained": {"budget": 100}},
                "generated": 280, "sampled": 5, "records": [
                    _record("m-still", "stillborn"),
                    _record("m-eq", "equivalent"),
                    _record("m-k1", "killed", {"random": "survived", "constrained": "mismatch"}),
                    _record("m-k2", "killed", {"random": "timeout", "constrained": "mismatch"}, equiv="unknown"),
                    _record("m-s", "survived", {"random": "survived", "constrained": "survived"}),
                ]}
    summary = report.summarize(campaign)
    db_path = tmp_path / "runs" / "results.db"
    assert publish(summary, campaign, db_path).endswith("mutation campaign 1")
    assert publish(summary, campaign, db_path).endswith("mutation campaign 2")
    db = ResultsDB(db_path)
    rows = db.mutation_campaigns("systolic_array")
    assert [r["id"] for r in rows] == [1, 2] and db.mutation_campaigns("quantizer") == []
    c = rows[0]
    assert (c["sampled"], c["stillborn"], c["equivalent"], c["unknown"], c["simulated"], c["killed"],
            c["survived"]) == (5, 1, 1, 1, 3, 2, 1)
    assert c["kill_percent"] == pytest.approx(66.7)
    assert {k: (v["killed"], v["simulated"]) for k, v in c["scores"].items()} == {"random": (1, 3), "constrained": (2, 3)}
    assert [m["mutant"] for m in db.mutants(1, "survived")] == ["m-s"]
    k2 = next(m for m in db.mutants(1) if m["mutant"] == "m-k2")
    assert json.loads(k2["killed_by"]) == {"random": "timeout", "constrained": "mismatch"}
    assert k2["equivalence"] == "unknown"
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite " * 200)
    with pytest.raises(ResultsDBError, match="bad.db"):
        publish(summary, campaign, bad)
