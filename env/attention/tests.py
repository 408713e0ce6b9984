"""pyuvm tests of the attention unit (run through `mxdv run` / the pytest runner).

Every test runs the configured strategy on the generic environment; they differ in how the
environment stresses the DUT. Each has a timeout and ends only when every driven
transaction has been checked (or dropped by a reset).
"""
import pyuvm

from mxdv.env.base_test import StrategyTest

TIMEOUT_MS = 500  # simulated time (50M cycles); far above any budget we run (a hang fails fast)


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class StrategyRun(StrategyTest):
    """The run the CLI asks for: strategy, budget, seed and stress from the run config."""


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class HeavyBackpressure(StrategyTest):
    """Output stalls most of the time; the input side never idles (rows and keys back to back)."""

    overrides = {"backpressure_prob": 0.6, "idle_prob": 0.0, "reset_prob": 0.0}


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class ResetInTraffic(StrategyTest):
    """A reset lands in the middle of most batches; nothing stale may come out after it."""

    overrides = {"reset_prob": 0.7, "backpressure_prob": 0.3}
