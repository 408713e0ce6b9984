"""The pyuvm environment of any unit: one agent per port, the scoreboard, reset control."""
from __future__ import annotations

from cocotb.triggers import ClockCycles, RisingEdge
from pyuvm import uvm_env

from mxdv.env.agents.valid_ready import Backpressure, Idle, StreamConfig, ValidReadyAgent
from mxdv.env.run_config import RunConfig
from mxdv.env.scoreboard import BitExactScoreboard
from mxdv.env.state import EnvState
from mxdv.unit import Unit


class UnitEnv(uvm_env):
    """Built from a :class:`~mxdv.unit.Unit`: an active agent per input port, a sink agent
    on the output port (random backpressure), and a :class:`BitExactScoreboard` fed by the
    output monitor. Call :meth:`setup` before the build phase runs."""

    def setup(self, unit: Unit, cfg: RunConfig, dut, state: EnvState, replay_hint) -> "UnitEnv":
        self.unit, self.cfg, self.dut, self.state, self.replay_hint = unit, cfg, dut, state, replay_hint
        return self

    def build_phase(self) -> None:
        idle = Idle(prob=self.cfg.idle_prob)
        bp = Backpressure(prob=self.cfg.backpressure_prob)
        self.input_agents = {}
        for port in self.unit.input_ports:
            agent = ValidReadyAgent(f"{port.prefix}agent", self)
            self.input_agents[port.prefix] = agent.setup(StreamConfig(port, idle=idle), self.dut, self.state, True)
        out = self.unit.output_port
        self.output_agent = ValidReadyAgent(f"{out.prefix}agent", self).setup(
            StreamConfig(out, backpressure=bp), self.dut, self.state, False)
        self.scoreboard = BitExactScoreboard("scoreboard", self).setup(self.unit, self.replay_hint)

    def connect_phase(self) -> None:
        self.output_agent.monitor.ap.connect(self.scoreboard.analysis_export)

    async def reset(self, cycles: int = 4) -> list[int]:
        """Synchronous reset: bumps the reset epoch (drivers drop older beats), holds ``rst``
        for ``cycles`` clocks, and flushes the scoreboard. Returns the dropped transaction ids."""
        self.state.in_reset = True
        self.state.generation += 1
        self.state.rst.value = 1
        await ClockCycles(self.state.clk, cycles)
        dropped = self.scoreboard.flush()
        self.state.rst.value = 0
        self.state.in_reset = False
        await RisingEdge(self.state.clk)
        return dropped
