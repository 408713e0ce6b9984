"""Coverage goals (``Bin.at_least``), environment crosses, sampling from monitored passing
transactions, and the refmodel rounding traces the internal-corner bins read (no simulator)."""
from types import SimpleNamespace

import numpy as np
import pytest

from mxdv.coverage.collector import CoverageCollector
from mxdv.coverage.plan import Bin, BinGroup, CoveragePlan, EnvCross, env_cross_group, percent, uncovered
from mxdv.refmodel.attention import (ROUND_ABOVE_HALF as A_ABOVE, ROUND_BELOW_HALF as A_BELOW, ROUND_EXACT as A_EXACT,
                                     ROUND_TIE_EVEN as A_TIE_EVEN, ROUND_TIE_ODD as A_TIE_ODD, bf16_ratio_rounding)
from mxdv.refmodel.gemm import (ROUND_ABOVE_HALF, ROUND_BELOW_HALF, ROUND_EXACT, ROUND_TIE_EVEN, ROUND_TIE_ODD,
                                fp32_sum_rounding)
from mxdv.unit import get_unit, unit_names


def _plan(unit: str) -> CoveragePlan:
    content = BinGroup("c", "content", (
        Bin("c.once", "hit once is enough here", "a plain bin"),
        Bin("c.thrice", "needs three hits to count", "one tie proves little", at_least=3),
    ))
    env = env_cross_group("x", "crosses", [("k", "a thrice transaction", ("c.thrice",), None)])
    return CoveragePlan(unit, "test plan", (content, env))


def test_goal_counts_toward_closure_in_plan_collector_and_markdown():
    plan = _plan("goals_test_a")
    assert plan.goal("c.thrice") == 3 and plan.goal("c.once") == 1
    assert percent(plan, {"c.once": 1, "c.thrice": 2}) == pytest.approx(100 / 4)
    assert [b.name for b in uncovered(plan, {"c.once": 1, "c.thrice": 3})] == ["xenv.k.stalled", "xenv.k.after_reset"]
    col = CoverageCollector(plan)
    assert col.sample({"c.thrice", "c.once"}) == ["c.once"]  # c.thrice at 1 of 3: not new yet
    assert col.sample({"c.thrice"}) == []
    assert col.sample({"c.thrice"}) == ["c.thrice"]       # the third hit reaches the goal
    assert col.sample({"c.thrice"}) == []                 # and only that one is "new"
    assert col.hits()["c.thrice"] == 4
    assert col.uncovered() == ["xenv.k.stalled", "xenv.k.after_reset"]
    assert col.percent() == pytest.approx(50.0)
    md = plan.to_markdown()
    assert "| `c.thrice` | needs three hits to count | one tie proves little | 3 |" in md
    assert "except 1 bins whose goal" in md


def test_bad_goal_and_bad_cross_are_named():
    with pytest.raises(ValueError, match="'b.x': at_least must be an integer >= 1"):
        Bin("b.x", "some meaning", "some reason", at_least=0)
    with pytest.raises(ValueError, match="unknown condition 'sunny'"):
        EnvCross("k", ("c.once",), "sunny")
    bad = env_cross_group("x", "crosses", [("k", "words", ("c.nowhere",), None)])
    with pytest.raises(ValueError, match=r"crosses unknown bins \['c.nowhere'\]"):
        CoveragePlan("goals_test_b", "", (bad,))


def test_env_cross_hits_need_the_class_and_the_condition():
    plan = _plan("goals_test_c")
    assert plan.env_cross_hits({"c.thrice"}, {"stalled"}) == {"xenv.k.stalled"}
    assert plan.env_cross_hits({"c.thrice"}, {"stalled", "after_reset"}) == {"xenv.k.stalled", "xenv.k.after_reset"}
    assert plan.env_cross_hits({"c.once"}, {"stalled", "after_reset"}) == set()
    assert plan.env_cross_hits({"c.thrice"}, set()) == set()


def _context(unit_name: str):
    """A RunContext on fake environment objects: enough for _on_done and the stream hooks."""
    from mxdv.env.run_context import RunContext, TxnResult

    plan = _plan(unit_name)
    unit = SimpleNamespace(plan=plan, sample=lambda t: set(t["bins"]), output_port=SimpleNamespace(prefix="out_"),
                           input_ports=(SimpleNamespace(prefix="in_"),))
    scoreboard = SimpleNamespace(on_done=None, oldest_pending=None, stats=SimpleNamespace(mismatches=[]))
    env = SimpleNamespace(state=SimpleNamespace(on_stream_event=None), scoreboard=scoreboard)
    cfg = SimpleNamespace(seed=1, run_dir="/nonexistent", budget=10, stop_on_mismatch=False, stop_at_closure=True)
    ctx = RunContext(unit, cfg, env, CoverageCollector(plan))
    for tid in range(6):
        ctx.results[tid] = TxnResult(tid, {"bins": ["c.once"]}, "pending")  # what was *meant*
    ctx._waiting = set(range(6))
    return ctx, scoreboard


def test_coverage_is_sampled_from_the_observed_passing_transaction_with_its_environment():
    ctx, scoreboard = _context("goals_test_d")
    seen = {"bins": ["c.thrice"]}
    ctx._on_done(0, False, seen)                   # a failing transaction is no coverage
    assert ctx.collector.hits()["c.thrice"] == 0 and ctx.results[0].status == "fail"
    scoreboard.oldest_pending = 1                  # txn 1's output beat is stalled, then accepted
    ctx._on_stream_event("out_", "stall", 2)
    ctx._on_done(1, True, seen)                    # the observed content counts, not the meant one
    hits = ctx.collector.hits()
    assert hits["c.thrice"] == 1 and hits["c.once"] == 0
    assert hits["xenv.k.stalled"] == 1
    assert hits["xenv.k.after_reset"] == 0
    ctx.submitted = 2
    ctx.on_reset([])                               # a reset: the next 4 transactions are "after reset"
    ctx._on_done(2, True, seen)
    assert ctx.collector.hits()["xenv.k.after_reset"] == 1
    assert ctx.collector.hits()["xenv.k.stalled"] == 1  # txn 2 was not stalled
    assert ctx.environment_of(5) == {"after_reset"} and ctx.environment_of(6) == set()


@pytest.mark.parametrize("name", unit_names())
def test_env_cross_hints_make_a_transaction_of_their_class(name):
    unit = get_unit(name)
    rng = np.random.default_rng(11)
    crosses = [b for b in unit.plan.bins if b.env_cross is not None]
    assert crosses, f"{name}: no environment crosses in the plan"
    missing = []
    for b in crosses:
        assert b.hint is not None, b.name
        if not any(set(unit.sample(unit.schema.normalize(b.hint(rng)))) & set(b.env_cross.members)
                   for _ in range(30)):
            missing.append(b.name)
    assert not missing, f"cross hints that never made their class in 30 draws: {missing}"


def test_fp32_sum_rounding_classifies_exact_sums():
    prev = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0], dtype=np.float32)
    sums = np.array([1, 3, -1, 1, 1, 5, 1, 0, 0])
    exps = np.array([-24, -24, -60, -60, -150, -152, -152, 0, 0])
    got = fp32_sum_rounding(prev, sums, exps).tolist()
    assert got == [ROUND_TIE_EVEN,     # 1 + 2^-24: half an ulp above an even significand
                   ROUND_TIE_ODD,      # 1 + 2^-23 + 2^-24: half an ulp above an odd one
                   ROUND_ABOVE_HALF,   # 1 - 2^-60: a far opposite-sign operand, all sticky
                   ROUND_BELOW_HALF,   # 1 + 2^-60
                   ROUND_TIE_EVEN,     # 2^-150: half the subnormal ulp 2^-149
                   ROUND_ABOVE_HALF,   # 5 * 2^-152: guard 1, sticky 1
                   ROUND_BELOW_HALF,   # 2^-152: guard 0, sticky 1
                   ROUND_EXACT, ROUND_EXACT]


def test_bf16_ratio_rounding_classifies_divisions():
    num = np.array([257, 259, 256, 0, 3 * 1000, 1025])
    den = np.array([2, 2, 2, 5, 7, 8])
    got = bf16_ratio_rounding(num, den).tolist()
    # 128.5 tie (128 even), 129.5 tie (129 odd), 128 exact, 0, 428.57.. -> 214.28 at 8 bits, 128.125
    assert got == [A_TIE_EVEN, A_TIE_ODD, A_EXACT, A_EXACT, A_BELOW, A_BELOW]
    assert bf16_ratio_rounding(np.array([-387]), np.array([3])).tolist() == [A_EXACT]   # 129: exact
    assert bf16_ratio_rounding(np.array([2 * 129 + 1 + 0]), np.array([2])).tolist() == [A_TIE_ODD]
    assert bf16_ratio_rounding(np.array([1031]), np.array([8])).tolist() == [A_ABOVE]  # 128.875
