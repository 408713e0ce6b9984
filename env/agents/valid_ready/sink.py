"""Drives ``ready`` of an output stream with random backpressure (the receiving side)."""
from __future__ import annotations

from cocotb.triggers import RisingEdge
from pyuvm import uvm_component

from mxdv.env.agents.valid_ready.config import StreamConfig


class ReadyDriver(uvm_component):
    """Holds ``<prefix>ready`` high, except for random stalls drawn from the stream's
    :class:`~mxdv.env.agents.valid_ready.config.Backpressure` profile."""

    cfg: StreamConfig

    def start_of_simulation_phase(self) -> None:
        self.ready = getattr(self.dut, self.cfg.port.signal("ready"))
        self.ready.value = 0

    async def run_phase(self) -> None:
        clk = self.state.clk
        rng = self.state.rng
        stall_left = 0
        while True:
            if stall_left == 0:
                stall_left = self.cfg.backpressure.draw(rng)
            if stall_left:
                self.ready.value = 0
                stall_left -= 1
            else:
                self.ready.value = 1
            await RisingEdge(clk)
