"""The vectorised paths of bulk mode give what the per-transaction ones give."""
import numpy as np
import pytest

from mxdv.coverage.collector import CoverageCollector
from mxdv.coverage.plan import HINT_POLICY
from mxdv.unit import get_unit


def _traffic(unit, n=400):
    """Random transactions plus the plan's hint transactions (every bin aimed at)."""
    rng = np.random.default_rng(11)
    txns = [unit.schema.random(rng) for _ in range(n)]
    saved = HINT_POLICY.allowed
    HINT_POLICY.allowed = True
    try:
        for b in unit.plan.bins:
            if b.hint is not None:
                for _ in range(5):
                    txns.append(unit.schema.normalize(b.hint(rng)))
    finally:
        HINT_POLICY.allowed = saved
    return txns


@pytest.mark.parametrize("spec", ["quantizer", "quantizer:BLOCK=8"])
def test_quantizer_batch_prediction_and_sampling_match_per_transaction(spec):
    unit = get_unit(spec)
    txns = _traffic(unit)
    assert unit.predict_batch(txns) == [unit.predict(t) for t in txns]
    batch, single = unit.sample_batch(txns), [unit.sample(t) for t in txns]
    assert [set(s) for s in batch] == [set(s) for s in single]
    assert len({n for s in single for n in s}) > 20  # the traffic reaches many bins


def test_collector_batch_sampling_counts_like_single_samples():
    unit = get_unit("quantizer")
    sets = [unit.sample(t) for t in _traffic(unit, 100)]
    c = CoverageCollector(unit.plan)
    news = c.sample_batch(sets)
    hits = c.hits()
    for name in unit.plan.bin_names:
        assert hits[name] == sum(name in s for s in sets)
    first = {}
    for i, s in enumerate(sets):
        for n in s:
            first.setdefault(n, i)
    assert {n: i for i, new in enumerate(news) for n in new} == first


def test_schedule_quiet_from_is_the_cycle_after_the_last_reset():
    """A bulk batch may end (nothing moving) only past this cycle: a reset drawn late in the
    schedule still happens, and a schedule without one can end as soon as the traffic drains."""
    from mxdv.env.agents.valid_ready import Backpressure, Idle
    from mxdv.env.bulk.schedule import Schedule, random_schedule

    rng = np.random.default_rng(0)
    plain = random_schedule([40], Idle(prob=0.2), Backpressure(prob=0.1), rng)
    assert plain.quiet_from == 0 and plain.cycles > 80
    lead = random_schedule([40], Idle(prob=0.0), Backpressure(prob=0.0), rng, lead_reset=5)
    assert lead.quiet_from == 5
    late = random_schedule([40], Idle(prob=0.0), Backpressure(prob=0.0), rng, reset_at=70, reset_len=3, lead_reset=5)
    assert late.quiet_from == 5 + 70 + 3 and late.rst[late.quiet_from - 1] and not late.rst[late.quiet_from:].any()
    assert Schedule.free(1).quiet_from == 0
