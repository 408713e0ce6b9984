"""Plan hints are for `constrained` only: with HINT_POLICY.allowed False (what the test bench
sets for a strategy whose reads_hints is False) every hint of every unit's plan raises
HintNotAllowed naming the strategy and the bin; with it True the hints work."""
from types import SimpleNamespace

import numpy as np
import pytest

from mxdv.coverage.plan import HINT_POLICY, Bin, HintNotAllowed
from mxdv.sequences.registry import get_strategy, strategy_names
from mxdv.unit import get_unit

UNITS = ("quantizer", "systolic_array", "attention")


@pytest.fixture(autouse=True)
def _restore_hint_policy():
    saved = (HINT_POLICY.allowed, HINT_POLICY.strategy)
    yield
    HINT_POLICY.allowed, HINT_POLICY.strategy = saved


def hinted_bins(unit):
    return [b for b in unit.plan.bins if b.hint is not None]


@pytest.mark.parametrize("unit_name", UNITS)
def test_every_hint_refuses_a_strategy_that_does_not_read_hints(unit_name):
    unit = get_unit(unit_name)
    bins = hinted_bins(unit)
    assert bins, f"the {unit_name} plan has hints (for constrained)"
    HINT_POLICY.allowed, HINT_POLICY.strategy = False, "llm"
    for b in bins:
        with pytest.raises(HintNotAllowed) as err:
            b.hint(np.random.default_rng(0))
        assert str(err.value) == (f"strategy 'llm' called the plan hint of bin {b.name!r}; "
                                  "only strategies with reads_hints = True may")


@pytest.mark.parametrize("unit_name", UNITS)
def test_hints_work_when_allowed(unit_name):
    unit = get_unit(unit_name)
    HINT_POLICY.allowed, HINT_POLICY.strategy = True, "constrained"
    rng = np.random.default_rng(1)
    for b in hinted_bins(unit):
        txn = unit.schema.normalize(b.hint(rng))
        assert isinstance(txn, dict) and set(txn) == {f.name for f in unit.schema.fields}


def test_a_new_bins_hint_is_guarded_too():
    calls = []
    b = Bin("mine.x", "meaning", "why", hint=lambda rng: calls.append(1) or {"v": 1})
    assert b.hint.__wrapped__ is not None and b == Bin("mine.x", "meaning", "why")
    HINT_POLICY.allowed, HINT_POLICY.strategy = False, "hypothesis"
    with pytest.raises(HintNotAllowed, match="strategy 'hypothesis' called the plan hint of bin 'mine.x'"):
        b.hint(None)
    assert calls == [], "the recipe itself never ran"
    HINT_POLICY.allowed = True
    assert b.hint(None) == {"v": 1} and calls == [1]


def test_only_constrained_reads_hints():
    names = strategy_names()
    assert get_strategy("constrained").reads_hints is True
    for name in ("llm", "hypothesis", "random", "replay", "corner_random"):
        if name == "corner_random" and name not in names:
            continue  # not registered (yet) in this tree
        assert get_strategy(name).reads_hints is False, name
    assert [n for n in names if get_strategy(n).reads_hints] == ["constrained"]


def _fake_ctx(unit):
    return SimpleNamespace(unit=unit, rng=np.random.default_rng(3), uncovered=lambda: unit.plan.bins)


def test_the_policy_the_test_bench_sets_lets_constrained_work_and_stops_misuse():
    """env/base_test.py sets HINT_POLICY.allowed from the strategy's reads_hints."""
    unit = get_unit("quantizer")
    constrained = get_strategy("constrained")({"explore": 0.0})
    HINT_POLICY.allowed, HINT_POLICY.strategy = constrained.reads_hints, "constrained"
    txns = constrained.propose(_fake_ctx(unit), 16)
    assert len(txns) == 16 and all(unit.schema.normalize(t) for t in txns)
    # the same code under a policy for a strategy that does not read hints is refused
    HINT_POLICY.allowed, HINT_POLICY.strategy = False, "random"
    with pytest.raises(HintNotAllowed, match="strategy 'random' called the plan hint"):
        constrained.propose(_fake_ctx(unit), 4)
    # and `random` itself runs under that policy
    random = get_strategy("random")({})
    HINT_POLICY.allowed = random.reads_hints
    assert len(random.propose(_fake_ctx(unit), 8)) == 8


@pytest.mark.parametrize("unit_name", UNITS)
def test_constrained_columns_mix_hints_and_corner_biased_draws(unit_name):
    """The columnar form of `constrained` (bulk mode): valid columns, the hinted transactions
    are the hints' own (every hinted bin of a plan reached by its hint), the rest corner-biased."""
    from mxdv.columns import check
    from mxdv.sequences.corner_random import corner_biased_columns

    unit = get_unit(unit_name)
    HINT_POLICY.allowed, HINT_POLICY.strategy = True, "constrained"
    for explore in (0.0, 1.0):
        cols = get_strategy("constrained")({"explore": explore}).propose_columns(_fake_ctx(unit), 64)
        assert len(check(cols)) == 64
    explored = corner_biased_columns(unit.schema, np.random.default_rng(5), 2000)
    assert len(check(explored)) == 2000
    for f in unit.schema.fields:  # each corner-bearing field takes its corners about half the time or more
        if f.corners and f.kind != "choice":
            a = explored[f.name]
            share = np.isin(a, f.corners).mean() if not f.shape else None
            assert share is None or share > 0.4, (f.name, share)
    # hints only: coverage of the hinted bins matches what the hints give as dicts
    rows = get_strategy("constrained")({"explore": 0.0}).propose_columns(_fake_ctx(unit), 400).rows()
    hit = set()
    for t in rows:
        hit |= set(unit.sample(t))
    dict_hit = set()
    for t in get_strategy("constrained")({"explore": 0.0}).propose(_fake_ctx(unit), 400):
        dict_hit |= set(unit.sample(unit.schema.normalize(t)))
    assert len(hit) >= 0.9 * len(dict_hit)
