"""The generic pyuvm test in bulk mode: the same test as cycle mode (``mxdv.env.base_test``)
on the bulk harness, with the batch environment and context (no Python clock: the harness
makes its own)."""
from __future__ import annotations

from mxdv.env.base_test import StrategyTest
from mxdv.env.bulk.context import BulkRunContext
from mxdv.env.bulk.env import BulkEnv
from mxdv.env.state import EnvState


class BulkStrategyTest(StrategyTest):
    def make_state(self, rng) -> EnvState:
        return EnvState(clk=None, rst=None, rng=rng)

    def make_env(self):
        return BulkEnv("env", self).setup(self.unit, self.cfg, self.dut, self.state, self._replay_hint)

    def make_context(self, collector):
        return BulkRunContext(self.unit, self.cfg, self.env, collector, self.dut)

    async def start(self) -> None:
        """The first batch starts with the reset (``context.FIRST_RESET_CYCLES``)."""

    async def settle(self) -> None:
        """Each batch ends with ``bulk_idle_cycles`` of no accepted beat (stale outputs would
        have been captured and reported)."""
