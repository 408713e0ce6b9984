"""Samples a valid/ready stream: publishes every accepted beat and checks the protocol."""
from __future__ import annotations

from cocotb.triggers import RisingEdge
from pyuvm import uvm_analysis_port, uvm_component

from mxdv.env.agents.valid_ready.config import StreamConfig
from mxdv.env.protocol_checker import ProtocolChecker


class ValidReadyMonitor(uvm_component):
    """On every rising edge outside reset: if ``valid && ready``, writes the beat
    (``{field: int}``) to ``ap``. Also feeds the :class:`ProtocolChecker` and reports
    stream events (output stalls by length, back-to-back beats) to ``self.state``.

    Start it before the first drive (it is started in run_phase with the rest of the env,
    and the test only drives after reset), or beat 0 is missed.
    """

    cfg: StreamConfig

    def build_phase(self) -> None:
        self.ap = uvm_analysis_port("ap", self)

    def start_of_simulation_phase(self) -> None:
        port = self.cfg.port
        self.valid = getattr(self.dut, port.signal("valid"))
        self.ready = getattr(self.dut, port.signal("ready"))
        self.data = {name: getattr(self.dut, port.signal(name)) for name, _ in port.fields}
        self.checker = ProtocolChecker(port.prefix, self.state.report_violation)
        self.beats = 0

    async def run_phase(self) -> None:
        clk, rst = self.state.clk, self.state.rst
        stall = 0
        last_beat_cycle = -2
        cycle = 0
        while True:
            await RisingEdge(clk)
            cycle += 1
            if rst.value != 0:
                self.checker.reset()
                stall = 0
                continue
            valid = self.checker.valid_bit(self.valid.value)
            if not valid:
                self.checker.idle()
                continue
            ready = self.ready.value == 1
            data = {name: sig.value for name, sig in self.data.items()}
            self.checker.check(data, ready)
            if ready:
                if stall:
                    self.state.stream_event(self.cfg.port.prefix, "stall", stall)
                stall = 0
                if cycle == last_beat_cycle + 1:
                    self.state.stream_event(self.cfg.port.prefix, "back_to_back", 1)
                last_beat_cycle = cycle
                self.beats += 1
                self.ap.write({name: _to_int(v) for name, v in data.items()})
            else:
                stall += 1


def _to_int(value) -> int:
    """Unsigned value of a sampled signal (-1 when it has X/Z bits: never equal to a prediction)."""
    if not value.is_resolvable:
        return -1
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)
