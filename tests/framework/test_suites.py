"""Suite definitions: what each suite runs, derived from the units' declarations."""
from __future__ import annotations

from mxdv.suites import get_suite


def test_smoke100_is_the_smoke_suites_random_and_constrained_jobs_at_100x():
    smoke = {(j.unit, j.strategy, j.seed): j.budget for j in get_suite("smoke").jobs()
             if j.strategy in ("random", "constrained")}
    big = get_suite("smoke100")
    jobs = {(j.unit, j.strategy, j.seed): j.budget for j in big.jobs()}
    assert set(jobs) == set(smoke) and len(jobs) >= 10
    assert all(jobs[k] == 100 * smoke[k] for k in jobs)
    assert big.stop_at_closure is False and big.mode == "bulk"


def test_sim_time_limit_scales_with_the_budget():
    from mxdv.unit import get_unit

    unit = get_unit("attention")
    largest = max(unit.budgets.values())
    assert unit.sim_timeout_for(1) == unit.sim_timeout_for(largest) == unit.sim_timeout_ms
    assert unit.sim_timeout_for(100 * largest) == 100 * unit.sim_timeout_ms
