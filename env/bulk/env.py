"""The pyuvm environment of bulk mode: batch driver, batch monitor, and the same predictor
and scoreboard as cycle mode (the monitor feeds the predictor, which feeds the scoreboard)."""
from __future__ import annotations

from pyuvm import uvm_env

from mxdv.env.bulk.driver import BatchDriver
from mxdv.env.bulk.monitor import BatchMonitor
from mxdv.env.predictor import Predictor
from mxdv.env.run_config import RunConfig
from mxdv.env.scoreboard import BitExactScoreboard
from mxdv.env.state import EnvState
from mxdv.unit import Unit


class BulkEnv(uvm_env):
    def setup(self, unit: Unit, cfg: RunConfig, dut, state: EnvState, replay_hint) -> "BulkEnv":
        self.unit, self.cfg, self.dut, self.state, self.replay_hint = unit, cfg, dut, state, replay_hint
        return self

    def build_phase(self) -> None:
        self.scoreboard = BitExactScoreboard("scoreboard", self).setup(self.unit, self.replay_hint)
        self.predictor = Predictor("predictor", self).setup(self.unit, self.scoreboard, self.state.report_violation)
        self.predictor.defer = True
        self.batch_driver = BatchDriver("batch_driver", self).setup(self.unit, self.cfg.bulk_depth,
                                                                    self.cfg.bulk_idle_cycles)
        self.batch_monitor = BatchMonitor("batch_monitor", self).setup(self.unit, self.state, self.scoreboard,
                                                                       self.predictor)

    def connect_phase(self) -> None:
        self.batch_monitor.ap.connect(self.scoreboard.analysis_export)
        self.batch_monitor.obs_ap.connect(self.predictor.analysis_export)

    def stream_stats(self) -> dict:
        return self.batch_monitor.stats
