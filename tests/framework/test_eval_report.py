"""``mxdv eval``'s measurements and labels, on hand-made results (no simulator), and the
stand-in label in ``mxdv regress``'s closure table."""
import pytest

from mxdv.eval import fastest, make_spec, markdown, run_summary, split_options, strategy_rows
from mxdv.labels import STANDIN_LABEL, row_label
from mxdv.regress import closure_table

FIELDS = ["txns", "coverage", "wall_s", "llm_tokens", "llm_calls"]


def result(strategy, seed, points, closure=None, stats=None, budget=100, bins=40, options=None):
    cov = points[-1][1]
    return {"job": {"unit": "quantizer", "strategy": strategy, "seed": seed, "budget": budget, "sim": "icarus",
                    "test": "StrategyRun", "options": options or {}},
            "closure_txns": closure, "coverage_percent": cov, "bins_total": bins, "transactions": points[-1][0],
            "mismatches": 0, "protocol_violations": [], "error": None, "txn_per_s": 100.0, "wall_s": 2.0,
            "job_wall_s": 3.0, "strategy_stats": stats or {},
            "coverage_curve": {"fields": FIELDS, "points": [list(p) + [None] * (5 - len(p)) for p in points]}}


def spec(strategies, seeds=3, budget=100):
    return make_spec("quantizer", ",".join(strategies), seeds, budget, sim="icarus", command="mxdv eval ...")


def test_milestones_medians_and_misses():
    rs = [result("corner_random", 1, [(5, 50.0, 0.1), (20, 90.0, 0.3), (40, 100.0, 0.5)], closure=40),
          result("corner_random", 2, [(7, 52.5, 0.1), (30, 92.5, 0.3), (60, 100.0, 0.6)], closure=60),
          result("corner_random", 3, [(9, 55.0, 0.1), (50, 95.0, 0.4), (100, 97.5, 0.9)])]
    rs += [result("random", s, [(10 + s, 60.0, 0.1), (100, 70.0, 1.0)]) for s in (1, 2, 3)]
    rows = strategy_rows(spec(["random", "corner_random"]), rs)
    cr = rows[1]
    assert cr["milestones"]["50"] == {"median": 7, "reached": 3, "min": 5, "max": 9, "per_seed": [5, 7, 9]}
    assert cr["milestones"]["100"]["median"] == 60 and cr["milestones"]["100"]["reached"] == 2
    assert cr["closed"] == 2 and cr["coverage_median"] == 100.0
    assert rows[0]["milestones"]["90"]["median"] is None
    md = markdown(spec(["random", "corner_random"]), rows, "quantizer")
    assert md.startswith("# mxdv eval: quantizer\n\nProduced by: `mxdv eval ...`")
    assert ("| strategy | seeds closed | txns to 50 % | txns to 90 % | txns to 100 % | final coverage (median) "
            "| LLM calls to closure | LLM tokens to closure | tokens per newly covered bin |") in md
    assert "| corner_random | 2/3 | 7 (5..9) | 30 (20..50) | 60 (40..>100, 2/3) | 100 % | - | - | - |" in md
    assert "| random | 0/3 | 12 (11..13) | not reached within 100 | not reached within 100 | 70 % |" in md
    assert "Fastest to 100 %: `corner_random`, 60 transactions" in md


def test_llm_accounting_from_calls_log_and_tokens_per_bin():
    stats = {"endpoint": "http://gpu:8011/v1", "model": "qwen2.5-coder-0.5b", "replies": 4, "prompt_tokens": 3000,
             "completion_tokens": 1000,
             "calls_log": [{"txns": 0, "prompt_tokens": 700, "completion_tokens": 300},
                           {"txns": 8, "prompt_tokens": 700, "completion_tokens": 200},
                           {"txns": 16, "prompt_tokens": 800, "completion_tokens": 250},
                           {"txns": 24, "prompt_tokens": 800, "completion_tokens": 250}]}
    r = result("llm", 1, [(8, 50.0, 1.0, 1000, 1), (20, 100.0, 3.0, 2950, 3), (24, 100.0, 3.1, 2950, 3)],
               closure=20, stats=stats)
    s = run_summary(r)
    assert s["llm_calls_to_closure"] == 3 and s["llm_tokens_to_closure"] == 2950  # calls before txn 20
    assert s["new_bins"] == 40 and s["tokens_per_new_bin"] == 100.0  # 4000 tokens / 40 bins
    no_log = dict(stats)
    del no_log["calls_log"]
    s2 = run_summary(result("llm", 2, [(8, 50.0, 1.0, 1000, 1), (20, 100.0, 3.0, 3333, 3)], closure=20, stats=no_log))
    assert s2["llm_calls_to_closure"] == 3 and s2["llm_tokens_to_closure"] == 3333  # from the curve
    row = strategy_rows(spec(["llm"], seeds=1), [r])[0]
    assert row["label"] == "llm: qwen2.5-coder-0.5b @ http://gpu:8011/v1"
    assert not run_summary(result("random", 1, [(5, 50.0, 0.1)]))["llm"]


def test_standin_rows_are_labelled_and_never_fastest():
    standin = {"endpoint": "http://127.0.0.1:1/v1", "model": "scripted-standin", "replies": 2,
               "prompt_tokens": 10, "completion_tokens": 10}
    rs = [result("llm", s, [(5, 100.0, 0.1, 20, 2)], closure=5, stats=standin) for s in (1, 2)]
    rs += [result("constrained", s, [(50, 100.0, 0.4)], closure=50) for s in (1, 2)]
    sp = spec(["llm", "constrained"], seeds=2)
    rows = strategy_rows(sp, rs)
    assert rows[0]["label"] == f"llm: {STANDIN_LABEL}" and STANDIN_LABEL == "scripted stand-in (not an LLM)"
    assert fastest(rows)["strategy"] == "constrained"
    md = markdown(sp, rows, "quantizer")
    assert f"| llm: {STANDIN_LABEL} | 2/2 |" in md and "Fastest to 100 %: `constrained`" in md
    assert fastest(rows[:1]) is None


def test_regress_closure_table_labels_the_standin_and_excludes_it_from_best():
    opts = {"base_url": "http://127.0.0.1:9/v1", "model": "scripted-standin", "api_key": "standin"}
    rs = [result("llm", s, [(10, 100.0, 0.1)], closure=10, options=opts) for s in (1, 2)]  # no stats: crashed early
    rs += [result("constrained", s, [(90, 100.0, 0.1)], closure=90) for s in (1, 2)]
    rs += [result("random", s, [(1000, 80.0, 0.1)], budget=1000) for s in (1, 2)]
    table = closure_table(rs)
    assert f"| quantizer | llm: {STANDIN_LABEL} | 2 | 2/2 | 10 |" in table
    assert "best `constrained` closes in 90 txns" in table and "best `llm`" not in table
    assert row_label("random", rs[-2:]) == "random"


def test_options_split_per_strategy():
    assert split_options({"explore": 0.5, "llm.timeout_s": 300, "a.b": 1}, ["llm", "constrained"]) == {
        "*": {"explore": 0.5, "a.b": 1}, "llm": {"timeout_s": 300}}


@pytest.mark.parametrize("kw, needle", [
    (dict(unit="nosuch"), "--unit 'nosuch'"),
    (dict(strategies="random,nope"), "--strategies: unknown strategy 'nope'"),
    (dict(strategies=" , "), "--strategies: name at least one"),
    (dict(budget=0), "--budget must be >= 1"),
    (dict(seeds=0), "--seeds must be >= 1"),
    (dict(mode="fast"), "--mode 'fast': choose one of"),
    (dict(mode="bulk", sim="icarus"), "--mode bulk needs --sim verilator"),
])
def test_bad_arguments_name_the_parameter(kw, needle):
    args = dict(unit="quantizer", strategies="random", seeds=2, budget=10, **{})
    args.update(kw)
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        make_spec(args.pop("unit"), args.pop("strategies"), args.pop("seeds"), args.pop("budget"), **args)


def test_mode_auto_is_bulk_on_verilator_and_cycle_on_icarus():
    assert make_spec("quantizer", "random", 1, 10).mode == "bulk"
    assert make_spec("quantizer", "random", 1, 10, sim="icarus").mode == "cycle"
    assert make_spec("quantizer", "random", 1, 10, mode="cycle").mode == "cycle"


def test_coverage_at_equal_transactions_table_and_merge(tmp_path):
    """Every strategy's median coverage after the same numbers of transactions (1/16..1 of the
    budget); a run that stopped earlier keeps its final coverage; two evals merge into one table."""
    import json

    from mxdv.eval import coverage_at, curve_points, merged_equal_txns

    rs = [result("llm", s, [(5, 40.0 + s), (30, 80.0 + s), (50, 90.0)]) for s in (1, 2, 3)]  # stopped at 50
    rs += [result("random", s, [(6, 30.0), (25, 45.0 + s), (100, 60.0 + s)]) for s in (1, 2, 3)]
    pts = curve_points(rs[0])
    assert coverage_at(pts, 4) == 0.0 and coverage_at(pts, 5) == 41.0 and coverage_at(pts, 29) == 41.0
    assert coverage_at(pts, 100) == 90.0  # ended at 50 transactions: its final coverage
    rows = strategy_rows(spec(["llm", "random"]), rs)
    assert sorted(map(int, rows[0]["coverage_at"])) == [6, 12, 25, 50, 100]
    assert rows[0]["coverage_at"]["25"] == 42.0 and rows[1]["coverage_at"]["25"] == 47.0
    assert rows[1]["coverage_at"]["100"] == 62.0
    md = markdown(spec(["llm", "random"]), rows, "quantizer")
    assert "| strategy | 6 txns | 12 txns | 25 txns | 50 txns | 100 txns |" in md
    assert "| random | 30.0 | 30.0 | 47.0 | 47.0 | 62.0 |" in md
    dirs = []
    for i, row in enumerate(rows):
        d = tmp_path / f"e{i}"
        d.mkdir()
        (d / "eval.json").write_text(json.dumps({"unit": "mx_quantizer", "spec": {"budget": 100}, "strategies": [row]}))
        dirs.append(str(d))
    merged = merged_equal_txns(dirs)
    assert "| llm | 42.0 | 42.0 | 42.0 | 90.0 | 90.0 |" in merged and "| random |" in merged
    (tmp_path / "e1" / "eval.json").write_text(json.dumps({"unit": "mx_quantizer", "spec": {"budget": 200},
                                                           "strategies": [rows[1]]}))
    with pytest.raises(SystemExit, match="different budgets"):
        merged_equal_txns(dirs)


def test_merge_recomputes_coverage_at_for_an_older_eval_json(tmp_path):
    """An eval.json written before the equal-transactions table (rows without coverage_at) is
    measured from its stored curves."""
    import json

    from mxdv.eval import merged_equal_txns

    rs = [result("random", s, [(6, 30.0), (25, 45.0 + s), (100, 60.0 + s)]) for s in (1, 2, 3)]
    row = strategy_rows(spec(["random"]), rs)[0]
    del row["coverage_at"]
    curves = {f"random-s{r['job']['seed']}": r["coverage_curve"] for r in rs}
    (tmp_path / "eval.json").write_text(json.dumps({"unit": "mx_quantizer", "spec": {"budget": 100},
                                                    "strategies": [row], "curves": curves}))
    assert "| random | 30.0 | 30.0 | 47.0 | 47.0 | 62.0 |" in merged_equal_txns([str(tmp_path)])
