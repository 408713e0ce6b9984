"""Bin distances (``Bin.distance``): 0 exactly when the bin is hit, positive otherwise, on
varied transactions of every unit; and the local nudge that walks a near miss closer."""
import numpy as np
import pytest

from mxdv.sequences.corner_random import draw_transaction
from mxdv.sequences.programs.language import ProgramError, validate_program
from mxdv.sequences.programs.sample import NumpyChooser, sample_txn
from mxdv.sequences.programs.swarm import nudge_program, random_program
from mxdv.unit import get_unit

UNITS = ["quantizer", "systolic_array", "attention"]


def _txns(unit, n, seed):
    rng = np.random.default_rng(seed)
    ch = NumpyChooser(rng)
    for i in range(n):
        if i % 2:
            yield unit.schema.normalize(draw_transaction(unit.schema, rng))
        else:
            yield sample_txn(unit.schema, validate_program(unit.schema, random_program(unit.schema, ch)), ch)


@pytest.mark.parametrize("name", UNITS)
def test_distance_is_zero_exactly_when_the_bin_is_hit(name):
    unit = get_unit(name)
    measured = [b for b in unit.plan.bins if b.distance is not None]
    assert measured, f"{name} declares distances for its slow bins"
    zero, positive = set(), set()
    for txn in _txns(unit, 600, 7):
        hits = unit.sample(txn)
        for b in measured:
            d = b.distance(txn)
            assert d >= 0, (b.name, d)
            assert (d == 0) == (b.name in hits), (b.name, d, unit.format_txn(txn))
            (zero if d == 0 else positive).add(b.name)
    # the check above must have seen both outcomes for most bins, or it proves little
    assert len(zero) >= len(measured) // 2 and len(positive) == len(measured)


def test_quantizer_exponent_distance_counts_binades():
    unit = get_unit("quantizer")
    d = unit.plan.get("exp.m96_m65").distance
    block = lambda e: {"elem_width": 8, "values": [((e + 127) << 7)] + [0] * 31}  # noqa: E731
    assert d(block(-65)) == 0 and d(block(-96)) == 0
    assert d(block(-60)) == 5 and d(block(-100)) == 4
    assert unit.plan.get("special.zero").distance({"elem_width": 8, "values": [0x3F80, 0x8000] + [0x0001] * 30}) == 31


def test_nudge_moves_literals_and_keeps_the_rest():
    ch = NumpyChooser(np.random.default_rng(3))
    prog = {"count": 8, "fields": {"elem_width": 8, "values": {"max_exp": -70, "signs": "neg", "all_equal": True}}}
    moved = set()
    for _ in range(200):
        out = nudge_program(prog, ch)
        assert out["fields"]["values"]["signs"] == "neg" and out["fields"]["values"]["all_equal"] is True
        assert prog["fields"]["values"]["max_exp"] == -70, "the elite itself is not changed"
        moved.add(out["fields"]["values"]["max_exp"])
        moved.add(out["fields"]["elem_width"])
    assert {-71, -69} <= moved and len(moved) > 10
    unit = get_unit("quantizer")
    outside = [nudge_program(prog, ch) for _ in range(200)]
    with pytest.raises(ProgramError):  # e.g. elem_width 9: the caller validates and falls back
        for p in outside:
            validate_program(unit.schema, p)


def test_attention_exp2_distance_orders_its_approach_levels():
    """Equal scores everywhere (gaps 0) are farther than spread scores that read other entries,
    which are farther than a read of the entry; every entry's distance follows the same trace."""
    unit = get_unit("attention")
    rng = np.random.default_rng(11)
    lut = unit.plan.get("exp2.hi_0").hint  # reachability proof only: the generators never call it
    spread = unit.schema.normalize(lut(rng))
    hits = unit.sample(spread)
    read = [b for b in unit.plan.bins if b.name.startswith("exp2.") and b.name in hits]
    unread = [b for b in unit.plan.bins if b.name.startswith("exp2.") and b.name not in hits]
    assert read and unread, "the longest spread sequence reads some entries and not others"
    assert all(b.distance(spread) == 0 for b in read)
    assert all(1 <= b.distance(spread) < 2 for b in unread)
    flat = dict(spread, q_codes=[[0] * len(row) for row in spread["q_codes"]])  # every score 0
    for b in unread:
        assert 3 <= b.distance(flat) < 4, (b.name, b.distance(flat))


@pytest.mark.parametrize("parity", ["even", "odd"])
def test_attention_div_tie_distance_is_zero_on_a_tie_of_its_parity(parity):
    unit = get_unit("attention")
    rng = np.random.default_rng(5)
    own, other = unit.plan.get(f"div.tie_{parity}"), unit.plan.get("div.tie_" + ("odd" if parity == "even" else "even"))
    for _ in range(5):
        tie = unit.schema.normalize(own.hint(rng))  # reachability proof only
        assert own.name in unit.sample(tie) and own.distance(tie) == 0
        if other.name not in unit.sample(tie):
            assert 0 < other.distance(tie) <= 2, "a tie of the other parity is 2 away (x mod 4 = 1 against 3)"
        near = dict(tie, v_codes=[[c + 1 if c < 7 else c - 1 for c in row] for row in tie["v_codes"]])
        if own.name not in unit.sample(near):
            assert 0 < own.distance(near) < 4


def test_trace_cache_computes_once_per_transaction_object():
    from mxdv.coverage.trace_cache import TraceCache
    calls = []
    cache = TraceCache(lambda txn: calls.append(txn["x"]) or txn["x"] * 2, size=2)
    a, b, c = {"x": 1}, {"x": 2}, {"x": 3}
    assert [cache(a), cache(a), cache(b), cache(a)] == [2, 2, 4, 2]
    assert calls == [1, 2]
    assert cache({"x": 1}) == 2 and calls == [1, 2, 1]   # equal content, another object: computed again
    cache(c)                                               # evicts the oldest entries beyond size 2
    cache(a)
    assert calls == [1, 2, 1, 3, 1]
    with pytest.raises(ValueError, match="size"):
        TraceCache(lambda t: t, size=0)
