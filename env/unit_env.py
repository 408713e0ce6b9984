"""The pyuvm environment of any unit: one agent per port, predictor, scoreboard, reset control."""
from __future__ import annotations

from cocotb.triggers import ClockCycles, RisingEdge
from pyuvm import uvm_env

from mxdv.env.agents.valid_ready import Backpressure, Idle, StreamConfig, ValidReadyAgent
from mxdv.env.predictor import Predictor
from mxdv.env.run_config import RunConfig
from mxdv.env.scoreboard import BitExactScoreboard
from mxdv.env.state import EnvState
from mxdv.unit import Unit


class UnitEnv(uvm_env):
    """Built from a :class:`~mxdv.unit.Unit`: an active agent per input port, a sink agent
    on the output port (random backpressure), a :class:`~mxdv.env.predictor.Predictor` fed by
    the input monitors and a :class:`BitExactScoreboard` fed by the predictor (expectations)
    and the output monitor (actual beats). Call :meth:`setup` before the build phase runs."""

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
            StreamConfig(out, backpressure=bp, quiet_after_reset=self.unit.reset_quiet_cycles),
            self.dut, self.state, False)
        self.scoreboard = BitExactScoreboard("scoreboard", self).setup(self.unit, self.replay_hint)
        self.predictor = Predictor("predictor", self).setup(self.unit, self.scoreboard, self.state.report_violation)

    def connect_phase(self) -> None:
        self.output_agent.monitor.ap.connect(self.scoreboard.analysis_export)
        for agent in self.input_agents.values():
            agent.monitor.obs_ap.connect(self.predictor.analysis_export)

    def stream_stats(self) -> dict:
        """Per port: accepted beats, refused cycles, first and last accepting cycle."""
        return {a.cfg.port.prefix: a.monitor.stats for a in (*self.input_agents.values(), self.output_agent)}

    async def reset(self, cycles: int = 4) -> list[int]:
        """Synchronous reset: bumps the reset epoch (drivers drop older beats) and holds
        ``rst`` for ``cycles`` clocks. The predictor drops what was in flight when the input
        monitors see ``rst`` high; returns the transaction ids it dropped."""
        self.predictor.last_dropped = []
        self.state.in_reset = True
        self.state.generation += 1
        self.state.rst.value = 1
        await ClockCycles(self.state.clk, cycles)
        self.state.rst.value = 0
        self.state.in_reset = False
        await RisingEdge(self.state.clk)
        return self.predictor.last_dropped
