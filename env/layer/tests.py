"""The layer test: one transformer layer on the three RTL units, bit for bit against the stack.

A virtual sequence in the plain sense: the refmodel's layer graph (in a bridge thread) issues
quantizer, systolic-array and attention transactions to the three unit environments of the
layer top, each a generic :class:`~mxdv.env.unit_env.UnitEnv` (its agents, its bit-exact
scoreboard against ``Unit.predict``) driven through its own
:class:`~mxdv.env.run_context.RunContext`. Writes ``<run dir>/LayerRun/result.json``.
"""
from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path

import cocotb
import numpy as np
import pyuvm
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import ClockCycles
from pyuvm import uvm_subscriber, uvm_test

from mxdv.coverage.collector import CoverageCollector
from mxdv.env.layer.compare import first_difference
from mxdv.env.layer.rtl_path import Lane, LayerStopped, Progress, RTLPath
from mxdv.env.layer.top import PREFIXES, PrefixedUnit, units
from mxdv.env.layer.traced_path import TracedPath
from mxdv.env.layer.workload import LayerRequest, build_workload, cosine
from mxdv.env.run_config import RunConfig
from mxdv.env.run_context import CLOCK_PERIOD_NS, RunContext
from mxdv.env.state import EnvState
from mxdv.env.unit_env import UnitEnv

ENV_VAR = "MXDV_LAYER_REQUEST"
TIMEOUT_MS = 1_000_000  # simulated time: far above a MiniLM layer (a hang still ends the run)


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class LayerRun(uvm_test):
    def build_phase(self) -> None:
        self.req = LayerRequest.load(Path(os.environ[ENV_VAR]))
        self.workload = build_workload(self.req)
        self.dut = cocotb.top
        self.envs: dict[str, UnitEnv] = {}
        self.cfgs: dict[str, RunConfig] = {}
        for i, (name, unit) in enumerate(units(self.workload.hardware).items()):
            cfg = RunConfig(unit=unit.variant, strategy="layer", seed=self.req.seed, budget=1 << 62,
                            run_dir=str(Path(self.req.run_dir) / "units" / name), sim=self.req.sim,
                            stop_at_closure=False, reset_prob=0.0, idle_prob=self.req.idle_prob,
                            backpressure_prob=self.req.backpressure_prob)
            Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
            state = EnvState(clk=self.dut.clk, rst=self.dut.rst,
                             rng=np.random.default_rng([self.req.seed, 0x1A7, i]))
            self.cfgs[name] = cfg
            self.envs[name] = UnitEnv(name, self).setup(PrefixedUnit(unit, PREFIXES[name]), cfg, self.dut,
                                                        state, lambda: "mxdv layer (same command)")
        self.lanes = {name: Lane(name, None) for name in self.envs}
        self.taps = {name: _BeatTap(f"{name}_tap", self) for name in self.envs}
        for name, tap in self.taps.items():
            tap.lane = self.lanes[name]

    def connect_phase(self) -> None:
        for name, env in self.envs.items():
            env.output_agent.monitor.ap.connect(self.taps[name].analysis_export)

    async def run_phase(self) -> None:
        self.raise_objection()
        out_dir = Path(self.req.run_dir) / type(self).__name__
        out_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        Clock(self.dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
        collectors = {}
        for name, env in self.envs.items():
            collectors[name] = CoverageCollector(env.unit.plan)
            self.lanes[name].ctx = RunContext(env.unit, self.cfgs[name], env, collectors[name])
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 5)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)
        wl = self.workload
        layer = self.req.layer
        ref_path = TracedPath(wl.quant, wl.hardware["AT_TILE"], wl.config)
        ref_model = wl.new_model(ref_path)
        ref_path.name_weights(ref_model, layer)
        ref_outs = wl.run_layer(ref_model, on_step=lambda s: setattr(ref_path, "step", s.name))
        stack_outs = wl.run_layer(wl.new_model(wl.quantized_path()))
        golden = wl.golden()
        totals, work = _totals(ref_path.records, wl.hardware)
        progress = Progress(Path(self.req.run_dir) / "progress.jsonl", totals, work)
        rtl_path = RTLPath(wl.quant, wl.hardware["AT_TILE"], wl.config, self.lanes, wl.hardware,
                           progress, layer, self.req.stop_on_mismatch)
        rtl_model = wl.new_model(rtl_path)
        rtl_path.name_weights(rtl_model, layer)
        error, outs = None, None
        try:
            outs = await bridge(wl.run_layer)(rtl_model, lambda s: setattr(rtl_path, "step", s.name))
            await ClockCycles(self.dut.clk, 20)
        except LayerStopped as exc:
            error = f"stopped: {exc}"
        except Exception as exc:  # recorded in result.json
            error = f"{type(exc).__name__}: {exc}"
            self.logger.error("layer run aborted: %s\n%s", exc, traceback.format_exc())
        result = self._result(ref_path, rtl_path, stack_outs, ref_outs, golden, outs, collectors,
                              time.monotonic() - t0, error)
        (out_dir / "result.json").write_text(json.dumps(result, indent=2))
        self.drop_objection()
        if error is not None or not result["bit_exact"] or result["unit_mismatches"]:
            raise AssertionError(result["first_difference"] or error or "layer output differs from the stack")

    def _result(self, ref_path, rtl_path, stack_outs, ref_outs, golden, outs, collectors, wall, error) -> dict:
        wl, hw = self.workload, self.workload.hardware
        bit_exact = outs is not None and all(
            np.array_equal(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32))
            for a, b in zip(outs, stack_outs))
        trace_matches_stack = all(np.array_equal(a.view(np.uint32), b.view(np.uint32))
                                  for a, b in zip(ref_outs, stack_outs))
        diff = first_difference(ref_path.records, rtl_path.records, self.req.layer, hw["SA_R"], hw["SA_C"])
        accuracy = None
        if outs is not None:
            got = np.concatenate([np.asarray(o, np.float64).ravel() for o in outs])
            want = np.concatenate([np.asarray(g, np.float64).ravel() for g in golden])
            accuracy = {"cosine": cosine(got, want), "max_abs_err": float(np.max(np.abs(got - want))),
                        "max_abs_golden": float(np.max(np.abs(want)))}
        per_unit, mism, coverage = {}, [], {}
        for name, lane in self.lanes.items():
            ctx = lane.ctx
            stats = ctx.scoreboard.stats
            per_unit[name] = {"variant": ctx.unit.variant, "transactions": ctx.submitted, "checked": stats.checked,
                              "passed": stats.passed, "mismatches": len(stats.mismatches),
                              "work": ctx.work, "work_label": ctx.unit.work_label,
                              "busy_cycles": ctx.busy_cycles, "wall_s": round(lane.wall_s, 2),
                              "protocol_violations": ctx.state.violations[:10]}
            for m in stats.mismatches[:20]:
                mism.append(f"unit {name}: {lane.labels.get(m.txn_id, '?')}\n{m.report}")
            hits = collectors[name].hits()
            coverage[name] = {"bins": len(hits), "hit": sorted(k for k, v in hits.items() if v > 0),
                              "never_hit": collectors[name].uncovered(), "percent": round(collectors[name].percent(), 1)}
        return {"model": wl.description, "request": vars(self.req), "hardware": hw,
                "steps": [{"name": s.name, "tokens": int(s.hidden.shape[1]), "start": s.start} for s in wl.steps],
                "bit_exact": bool(bit_exact), "trace_matches_stack": bool(trace_matches_stack),
                "first_difference": diff, "unit_mismatches": mism, "accuracy": accuracy,
                "per_unit": per_unit, "coverage": coverage, "error": error, "wall_s": round(wall, 2),
                "sim_cycles": int(cocotb.utils.get_sim_time(unit="ns") // CLOCK_PERIOD_NS),
                "totals": _totals(ref_path.records, hw)[0]}


class _BeatTap(uvm_subscriber):
    """Second subscriber of a unit's output monitor (the scoreboard is the first): hands each
    output beat to the unit's Lane, which feeds the RTL's outputs to the next op."""

    lane: Lane

    def write(self, beat) -> None:
        self.lane.write(beat)


def _totals(records, hw) -> tuple[dict[str, int], float]:
    """Tiles, blocks and heads of a layer run (from the reference trace) and its work
    (quantizer blocks + array beats + attention query rows), for progress and ETA."""
    tiles = blocks = heads = 0
    work = 0.0
    for r in records:
        if r.kind == "quantize":
            n = int(np.asarray(r.value.scales).size)
            blocks += n
            work += n
        elif r.kind == "gemm":
            shape = np.shape(r.value)
            m = int(np.prod(shape[:-1]))
            t = -(-m // hw["SA_R"]) * -(-shape[-1] // hw["SA_C"])
            tiles += t
            work += t * r.k
        else:
            b, h, lq, _ = np.shape(r.value)
            heads += b * h
            work += b * h * lq
    return {"tiles": tiles, "blocks": blocks, "heads": heads}, work
