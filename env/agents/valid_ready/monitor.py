"""Samples a valid/ready stream: publishes every accepted beat and resets, checks the protocol."""
from __future__ import annotations

from cocotb.triggers import RisingEdge
from pyuvm import uvm_analysis_port, uvm_component

from mxdv.env.agents.valid_ready.config import StreamConfig
from mxdv.env.predictor import Observation
from mxdv.env.protocol_checker import ProtocolChecker


class ValidReadyMonitor(uvm_component):
    """On every rising edge: if ``valid && ready`` outside reset, writes the beat
    (``{field: int}``) to ``ap`` and an :class:`~mxdv.env.predictor.Observation` to
    ``obs_ap``; at the first edge of each reset, an ``Observation`` of kind ``"reset"`` to
    ``obs_ap``. Feeds the :class:`ProtocolChecker` (X/Z on valid, ready and presented data;
    held beats), checks that an output stream stays idle during and right after reset
    (``StreamConfig.quiet_after_reset``), reports stream events (output stalls by length,
    back-to-back beats) to ``self.state`` and counts ``stats``: accepted beats, refused cycles
    (valid && !ready), first and last accepting cycle. Nothing is checked before the first reset.

    Start it before the first drive (it is started in run_phase with the rest of the env,
    and the test only drives after reset), or beat 0 is missed.
    """

    cfg: StreamConfig

    def build_phase(self) -> None:
        self.ap = uvm_analysis_port("ap", self)
        self.obs_ap = uvm_analysis_port("obs_ap", self)

    def start_of_simulation_phase(self) -> None:
        port = self.cfg.port
        self.valid = getattr(self.dut, port.signal("valid"))
        self.ready = getattr(self.dut, port.signal("ready"))
        self.data = {name: getattr(self.dut, port.signal(name)) for name, _ in port.fields}
        self.cycle = 0
        self.checker = ProtocolChecker(port.prefix, self._report)
        self.beats = 0
        self.stats = {"accepted": 0, "refused_cycles": 0, "first_cycle": None, "last_cycle": None}

    def _report(self, message: str) -> None:
        self.state.report_violation(f"{message} (cycle {self.cycle})")

    async def run_phase(self) -> None:
        clk, rst = self.state.clk, self.state.rst
        prefix = self.cfg.port.prefix
        quiet = self.cfg.quiet_after_reset
        stall = 0
        last_beat_cycle = -2
        seen_reset = False
        prev_rst = False
        quiet_left = 0
        while True:
            await RisingEdge(clk)
            self.cycle += 1
            cycle = self.cycle
            in_rst = rst.value != 0
            if in_rst:
                if not prev_rst:
                    self.obs_ap.write(Observation(prefix, "reset", None, cycle))
                elif quiet is not None:
                    self._check_quiet("during reset")
                self.checker.reset()
                stall = 0
                seen_reset = prev_rst = True
                quiet_left = quiet or 0
                continue
            prev_rst = False
            if not seen_reset:
                continue
            if quiet_left:
                quiet_left -= 1
                if not self._check_quiet("right after reset"):
                    continue
            valid = self.checker.valid_bit(self.valid.value)
            ready = self.checker.ready_bit(self.ready.value)
            if not valid:
                self.checker.idle()
                continue
            data = {name: sig.value for name, sig in self.data.items()}
            self.checker.check(data, ready)
            if ready:
                if stall:
                    self.state.stream_event(prefix, "stall", stall)
                stall = 0
                if cycle == last_beat_cycle + 1:
                    self.state.stream_event(prefix, "back_to_back", 1)
                last_beat_cycle = cycle
                self.beats += 1
                self.stats["accepted"] += 1
                self.stats["first_cycle"] = self.stats["first_cycle"] or cycle
                self.stats["last_cycle"] = cycle
                beat = {name: _to_int(v) for name, v in data.items()}
                self.ap.write(beat)
                self.obs_ap.write(Observation(prefix, "beat", beat, cycle))
            else:
                stall += 1
                self.stats["refused_cycles"] += 1

    def _check_quiet(self, when: str) -> bool:
        """``valid`` must be 0 here; reports otherwise. Returns whether it was."""
        v = self.valid.value
        if v.is_resolvable and int(v) == 0:
            return True
        self._report(f"{self.cfg.port.signal('valid')} is {v} {when} (must be 0)")
        return False


def _to_int(value) -> int:
    """Unsigned value of a sampled signal (-1 when it has X/Z bits: never equal to a prediction)."""
    if not value.is_resolvable:
        return -1
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)
