"""The generic pyuvm test: run one strategy against one unit and write the run's results.

``mxdv.env.tests`` subclasses :class:`StrategyTest` under ``@pyuvm.test`` (with a timeout)
once for every unit. The run's settings come from :mod:`mxdv.env.run_config`; the results
(``result.json``, ``coverage.yml``, ``mismatches.jsonl``) go to ``<run dir>/<test class>/``.
"""
from __future__ import annotations

import json
import os
import resource
import time
import traceback
from pathlib import Path

import cocotb
import numpy as np
import numpy.ma  # noqa: F401  (np.unique imports it on first use, 0.2 s: kept out of the timed run phase)
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from pyuvm import uvm_test

from mxdv.bugs import install_encode_bug
from mxdv.coverage.collector import CoverageCollector
from mxdv.coverage.plan import HINT_POLICY
from mxdv.env import run_config
from mxdv.env.checked_top import property_violations
from mxdv.env.run_context import CLOCK_PERIOD_NS, RunContext
from mxdv.env.state import EnvState
from mxdv.env.unit_env import UnitEnv
from mxdv.sequences.registry import get_strategy, load_plugins
from mxdv.unit import get_unit


class StrategyTest(uvm_test):
    """Clock, reset, then ``strategy.run(ctx)`` until the budget is spent or the plan closes;
    then drain, and fail if anything mismatched or broke the protocol."""

    #: Overrides applied on top of the run configuration (subclasses tune the environment).
    overrides: dict = {}

    def build_phase(self) -> None:
        self.cfg = run_config.load()
        for key, value in self.overrides.items():
            setattr(self.cfg, key, value)
        self.unit = get_unit(self.cfg.unit)
        install_encode_bug(self.unit)  # only when $MXDV_ENCODE_BUG plants one (bug injection)
        self.dut = cocotb.top
        rng = np.random.default_rng([self.cfg.seed, 0xE4F])
        self.state = self.make_state(rng)
        self.env = self.make_env()
        load_plugins(self.cfg.plugins)
        self.strategy = get_strategy(self.cfg.strategy)(self.cfg.strategy_options)
        HINT_POLICY.allowed = bool(self.strategy.reads_hints)
        HINT_POLICY.strategy = self.cfg.strategy

    # -- what a mode changes (bulk mode, mxdv.env.bulk.base_test, overrides these) ------------
    def make_state(self, rng) -> EnvState:
        return EnvState(clk=self.dut.clk, rst=self.dut.rst, rng=rng)

    def make_env(self):
        return UnitEnv("env", self).setup(self.unit, self.cfg, self.dut, self.state, self._replay_hint)

    def make_context(self, collector: CoverageCollector) -> RunContext:
        return RunContext(self.unit, self.cfg, self.env, collector)

    async def start(self) -> None:
        """Clock and the first reset."""
        Clock(self.dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
        await self.env.reset(cycles=5)

    async def settle(self) -> None:
        """After the drain: anything stale would show up here."""
        await ClockCycles(self.dut.clk, 20)

    def _replay_hint(self) -> str:
        return self.ctx.replay_hint() if hasattr(self, "ctx") else "(not started)"

    async def run_phase(self) -> None:
        self.raise_objection()
        run_dir = Path(self.cfg.run_dir) / type(self).__name__
        run_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        collector = CoverageCollector(self.unit.plan)
        self.ctx = self.make_context(collector)
        self.ctx.strategy = self.strategy
        error = None
        profiler = None
        if os.environ.get("MXDV_PROFILE"):  # a cProfile of the run phase, for throughput work
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        try:
            await self.start()
            await self.strategy.run(self.ctx)
            await self.ctx.drain()
            await self.settle()
        except Exception as exc:  # recorded in result.json, then re-raised to fail the test
            error = exc
            self.logger.error("run aborted: %s\n%s", exc, traceback.format_exc())
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(os.environ["MXDV_PROFILE"])
        # the checkers' reports first: the result keeps only the first 50 violations
        self.state.violations[:0] = property_violations(self.unit, self.dut)
        wall = time.monotonic() - t0
        self._write_results(run_dir, collector, wall, error)
        self.drop_objection()
        if error is not None:
            raise error
        self._fail_if_needed(self.env.scoreboard.stats)

    def _write_results(self, run_dir: Path, collector: CoverageCollector, wall: float, error) -> None:
        ctx, stats = self.ctx, self.env.scoreboard.stats
        collector.export(run_dir / "coverage.yml")
        with (run_dir / "mismatches.jsonl").open("w") as fh:
            for m in stats.mismatches:
                fh.write(json.dumps({"txn_id": m.txn_id, "txn": m.txn, "beat": m.beat_index,
                                     "expected": m.expected, "actual": m.actual,
                                     "report": m.report}) + "\n")
        result = {
            "unit": self.unit.variant, "strategy": self.cfg.strategy, "seed": self.cfg.seed,
            "sim": self.cfg.sim, "mode": self.cfg.mode, "budget": self.cfg.budget,
            "transactions": ctx.submitted, "checked": stats.checked, "passed": stats.passed,
            "dropped": stats.dropped, "mismatches": len(stats.mismatches),
            "protocol_violations": self.state.violations[:50],
            "coverage_percent": round(collector.percent(), 3),
            "bins_total": len(self.unit.plan.bins), "holes": collector.uncovered(),
            "closure_txns": ctx.closure_txns,
            "history": ctx.history, "coverage_curve": ctx.coverage_curve(), "wall_s": round(wall, 3),
            "txn_per_s": round(ctx.submitted / wall, 1) if wall > 0 else None,
            "strategy_stats": getattr(self.strategy, "stats", {}),
            "streams": self.env.stream_stats(),
            "stimulus_mismatches": self.env.predictor.stimulus_mismatches,
            "busy_cycles": ctx.busy_cycles, "work": ctx.work, "work_label": self.unit.work_label,
            "bulk_batches": getattr(ctx, "batches_run", None),
            "columnar_batches": getattr(ctx, "columnar_batches", None),
            "golden_error": (None if stats.golden.as_dict() is None else
                             {"label": self.unit.golden_error_label, **stats.golden.as_dict()}),
            "error": None if error is None else f"{type(error).__name__}: {error}",
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        (run_dir / "result.json").write_text(json.dumps(result, indent=2))

    def _fail_if_needed(self, stats) -> None:
        problems = []
        if stats.mismatches:
            problems.append(f"{len(stats.mismatches)} mismatch(es); first:\n{stats.mismatches[0].report}")
        if self.state.violations:
            problems.append(f"{len(self.state.violations)} protocol violation(s); first: {self.state.violations[0]}")
        if problems:
            raise AssertionError("\n".join(problems))
