"""The pyuvm tests of every unit, defined once (cocotb loads this module for any unit).

Every test runs the configured strategy on the generic environment; they differ only in how
the environment stresses the DUT. Each has a timeout in simulated time (the unit's
``Unit.sim_timeout_ms``, far above any suite budget's run and scaled up for larger budgets, so
a hang fails fast) and ends only when
every driven transaction has been checked or dropped by a reset. A unit may add tests of its
own in ``env/<unit>/tests.py``; ``mxdv run --test`` lists both (``mxdv.cli._tests_of``).
"""
import pyuvm

from mxdv.env.base_test import StrategyTest


def _timeout_ms() -> int:
    """The running unit's simulated-time limit (read from the run configuration at import),
    scaled to the run's budget (``Unit.sim_timeout_for``)."""
    from mxdv.env import run_config
    from mxdv.unit import get_unit

    cfg = run_config.load()
    return get_unit(cfg.unit).sim_timeout_for(cfg.budget)


TIMEOUT_MS = _timeout_ms()

#: How each test stresses the environment (bulk mode, ``mxdv.env.bulk.tests``, runs the same).
OVERRIDES = {
    "StrategyRun": {},
    "HeavyBackpressure": {"backpressure_prob": 0.6, "idle_prob": 0.0, "reset_prob": 0.0},
    "ResetInTraffic": {"reset_prob": 0.7, "backpressure_prob": 0.3},
    "SteadyState": {"idle_prob": 0.0, "backpressure_prob": 0.0, "reset_prob": 0.0},
}


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class StrategyRun(StrategyTest):
    """The run the CLI asks for: strategy, budget, seed and stress from the run config."""


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class HeavyBackpressure(StrategyTest):
    """Output stalls most of the time; the input side never idles (beats back to back)."""

    overrides = OVERRIDES["HeavyBackpressure"]


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class ResetInTraffic(StrategyTest):
    """A reset lands in the middle of most batches; nothing stale may come out after it."""

    overrides = OVERRIDES["ResetInTraffic"]


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class SteadyState(StrategyTest):
    """Throughput: no idle input cycles, no output stalls, no resets. The generic stream
    metrics of every run (``result.json`` ``streams``: accepted beats, refused cycles, span)
    then measure what the unit sustains; a unit that takes a beat every cycle it is offered
    one shows ``refused_cycles == 0``."""

    overrides = OVERRIDES["SteadyState"]
