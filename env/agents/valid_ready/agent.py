"""The valid/ready agent: active (drives an input stream) or sink (receives an output)."""
from __future__ import annotations

from pyuvm import uvm_agent, uvm_sequencer

from mxdv.env.agents.valid_ready.config import StreamConfig
from mxdv.env.agents.valid_ready.driver import ValidReadyDriver
from mxdv.env.agents.valid_ready.monitor import ValidReadyMonitor
from mxdv.env.agents.valid_ready.sink import ReadyDriver


class ValidReadyAgent(uvm_agent):
    """Configure with :meth:`setup` right after construction (in the parent's build_phase)."""

    def setup(self, cfg: StreamConfig, dut, state, active: bool) -> "ValidReadyAgent":
        self.cfg, self.dut, self.state, self.is_active = cfg, dut, state, active
        return self

    def build_phase(self) -> None:
        self.monitor = self._child(ValidReadyMonitor, "monitor")
        if self.is_active:
            self.sequencer = uvm_sequencer("sequencer", self)
            self.driver = self._child(ValidReadyDriver, "driver")
        else:
            self.ready_driver = self._child(ReadyDriver, "ready_driver")

    def connect_phase(self) -> None:
        if self.is_active:
            self.driver.seq_item_port.connect(self.sequencer.seq_item_export)

    def _child(self, cls, name):
        child = cls(name, self)  # pyuvm builds it; the agent hands it the shared setup
        child.cfg, child.dut, child.state = self.cfg, self.dut, self.state
        return child
