"""The pyuvm tests of bulk mode, one per cycle-mode test of ``mxdv.env.tests`` with the same
names and stress settings (cocotb loads this module instead of that one for ``--mode bulk``)."""
import pyuvm

from mxdv.env.bulk.base_test import BulkStrategyTest
from mxdv.env.tests import OVERRIDES, TIMEOUT_MS


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class StrategyRun(BulkStrategyTest):
    """The run the CLI asks for."""


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class HeavyBackpressure(BulkStrategyTest):
    overrides = OVERRIDES["HeavyBackpressure"]


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class ResetInTraffic(BulkStrategyTest):
    overrides = OVERRIDES["ResetInTraffic"]


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class SteadyState(BulkStrategyTest):
    overrides = OVERRIDES["SteadyState"]
