"""Drives beats onto a valid/ready input stream, with random idle cycles between beats."""
from __future__ import annotations

from cocotb.triggers import RisingEdge
from pyuvm import uvm_driver

from mxdv.env.agents.valid_ready.config import StreamConfig


class ValidReadyDriver(uvm_driver):
    """Presents each item's beat with ``valid`` high until ``ready``; holds data stable.

    Needs ``self.cfg`` (StreamConfig), ``self.dut``, ``self.state`` (the environment's
    :class:`~mxdv.env.state.EnvState`: clock, reset epoch, random generator) set by the agent.
    Beats issued before the latest reset are dropped, never driven.
    """

    cfg: StreamConfig

    def start_of_simulation_phase(self) -> None:
        port = self.cfg.port
        self.valid = getattr(self.dut, port.signal("valid"))
        self.ready = getattr(self.dut, port.signal("ready"))
        self.data = {name: getattr(self.dut, port.signal(name)) for name, _ in port.fields}
        self.valid.value = 0

    async def run_phase(self) -> None:
        clk = self.state.clk
        while True:
            item = await self.seq_item_port.get_next_item()
            if self._current(item):
                for _ in range(self.cfg.idle.draw(self.state.rng)):
                    self.valid.value = 0
                    await RisingEdge(clk)
                # A reset may have happened during the idle cycles: re-check, or a beat of a
                # dropped transaction would reach the DUT and shift every later comparison.
                if self._current(item):
                    await self._present(item, clk)
            self.seq_item_port.item_done()

    def _current(self, item) -> bool:
        return item.generation == self.state.generation and not self.state.in_reset

    async def _present(self, item, clk) -> None:
        for name, value in item.beat.items():
            self.data[name].value = value
        self.valid.value = 1
        while True:
            await RisingEdge(clk)
            if item.generation != self.state.generation or self.state.in_reset:
                break  # reset while presenting: the beat is abandoned
            if self.ready.value == 1:
                break
        self.valid.value = 0
