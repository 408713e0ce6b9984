"""``mxdv eval`` end to end on the quantizer (Icarus, tiny budgets): closure curves in
result.json, png/md/json outputs, the stand-in's label in eval.md and in regress closure.md."""
import json
import subprocess
import sys

import pytest

from mxdv.labels import STANDIN_LABEL


def mxdv(*args):
    return subprocess.run([sys.executable, "-m", "mxdv.cli", *args], capture_output=True, text=True)


def table_rows(md: str) -> list[list[str]]:
    """The data rows of each markdown table of ``md``, table by table (header and rule left out)."""
    tables, current = [], None
    for line in md.splitlines():
        if line.startswith("| strategy |"):
            current = []
            tables.append(current)
        elif current is not None and line.startswith("| "):
            current.append(line)
        elif not line.startswith("|"):
            current = None
    return tables


@pytest.mark.xdist_group("quantizer")
def test_eval_end_to_end_writes_curves_tables_and_labels(tmp_path):
    out = tmp_path / "eval"
    r = mxdv("eval", "--unit", "quantizer", "--strategies", "corner_random,llm", "--seeds", "2", "--budget", "40",
             "--sim", "icarus", "--jobs", "2", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[  4/4]" in r.stdout and "scripted stand-in (not an LLM)" in r.stdout

    png = (out / "closure.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    md = (out / "eval.md").read_text()
    assert md.startswith("# mxdv eval: quantizer\n\nProduced by: `mxdv eval --unit quantizer --strategies corner_random,llm")
    header = next(line for line in md.splitlines() if line.startswith("| strategy |"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "strategy", "seeds closed", "txns to 50 %", "txns to 90 %", "txns to 100 %", "final coverage (median)",
        "LLM calls to closure", "LLM tokens to closure", "tokens per newly covered bin", "wall s (median)",
        "wall s to 100 % (median)", "failures"]
    tables = table_rows(md)
    rows = tables[0]
    assert len(rows) == 2 and rows[0].startswith("| corner_random | ")
    assert rows[1].startswith(f"| llm: {STANDIN_LABEL} | ")
    equal = tables[1]
    assert len(equal) == 2 and equal[0].startswith("| corner_random | ")
    assert equal[1].startswith(f"| llm: {STANDIN_LABEL} | ")
    assert len(equal[0].strip("|").split("|")) == 1 + 5, "one cell per budget checkpoint (1/16 .. all of 40)"
    assert "Fastest to 100 %: `llm`" not in md

    report = json.loads((out / "eval.json").read_text())
    assert [s["strategy"] for s in report["strategies"]] == ["corner_random", "llm"]
    llm = report["strategies"][1]
    assert llm["standin"] and llm["llm"] and llm["llm_calls_median"] >= 1 and llm["llm_tokens_median"] > 0
    assert report["fastest"] != "llm"
    assert len((out / "runs.jsonl").read_text().splitlines()) == 4

    for strategy in ("corner_random", "llm"):
        for seed in (1, 2):
            res = json.loads((out / "jobs" / f"{strategy}-s{seed}" / "StrategyRun" / "result.json").read_text())
            curve = res["coverage_curve"]
            assert curve["fields"] == ["txns", "coverage", "wall_s", "llm_tokens", "llm_calls"]
            pts = curve["points"]
            covs = [p[1] for p in pts]
            assert covs == sorted(covs) and len(set(covs)) >= len(covs) - 1, "kept only where coverage changed"
            assert pts[-1][0] == res["checked"] + res["dropped"] and pts[-1][1] == pytest.approx(res["coverage_percent"])
            if strategy == "llm":
                assert pts[-1][3] == res["strategy_stats"]["prompt_tokens"] + res["strategy_stats"]["completion_tokens"]
            else:
                assert all(p[3] is None and p[4] is None for p in pts)


@pytest.mark.xdist_group("quantizer")
def test_regress_closure_md_labels_the_standin(tmp_path):
    out = tmp_path / "regress"
    r = mxdv("regress", "--suite", "quick", "--units", "quantizer", "--strategies", "llm", "--seeds", "1",
             "--sim", "icarus", "--jobs", "1", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    closure = (out / "closure.md").read_text()
    assert f"| quantizer | llm: {STANDIN_LABEL} | 1 |" in closure
    assert "best `llm`" not in closure
