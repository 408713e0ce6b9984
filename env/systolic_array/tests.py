"""pyuvm tests of the MX systolic array (run through `mxdv run` / the pytest runner).

Every test runs the configured strategy on the generic environment; they differ in how the
environment stresses the DUT. Each has a timeout and ends only when every driven
transaction has been checked (or dropped by a reset).
"""
import json
from pathlib import Path

import cocotb
import pyuvm
from cocotb.triggers import RisingEdge

from mxdv.env.base_test import StrategyTest

TIMEOUT_MS = 2000  # simulated time; far above any budget we run (a hang fails fast instead)


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class StrategyRun(StrategyTest):
    """The run the CLI asks for: strategy, budget, seed and stress from the run config."""


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class HeavyBackpressure(StrategyTest):
    """Output stalls most of the time; the input side never idles (back-to-back tiles)."""

    overrides = {"backpressure_prob": 0.6, "idle_prob": 0.0, "reset_prob": 0.0}


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class ResetInTraffic(StrategyTest):
    """A reset lands in the middle of most batches; nothing stale may come out after it."""

    overrides = {"reset_prob": 0.7, "backpressure_prob": 0.3}


@pyuvm.test(timeout_time=TIMEOUT_MS, timeout_unit="ms")
class SteadyState(StrategyTest):
    """Throughput: no idle input cycles, no output stalls, no injected resets (beyond the
    environment's one forced reset in the third batch). Counts, at every rising edge outside
    reset, the cycles with an input beat accepted (in_valid && in_ready) and the cycles the
    driver offered a beat the array refused (in_valid && !in_ready), and writes
    ``<run dir>/SteadyState/throughput.json``:

    * ``refused_cycles``: must be 0 (with the output never stalled, the array takes a beat
      every cycle it is offered one);
    * ``utilization``: accepted beats / cycles from the first to the last accepted beat, i.e.
      (MACs per cycle) / (R * C); it includes the gaps between batches (the environment waits
      for a batch's outputs before driving the next one).
    """

    overrides = {"idle_prob": 0.0, "backpressure_prob": 0.0, "reset_prob": 0.0}

    async def run_phase(self) -> None:
        counts = {"accepted": 0, "refused_cycles": 0, "first": None, "last": None, "cycle": 0}

        async def count() -> None:
            dut = self.dut
            while True:
                await RisingEdge(dut.clk)
                counts["cycle"] += 1
                if dut.rst.value != 0 or dut.in_valid.value != 1:
                    continue
                if dut.in_ready.value == 1:
                    counts["accepted"] += 1
                    counts["first"] = counts["first"] or counts["cycle"]
                    counts["last"] = counts["cycle"]
                else:
                    counts["refused_cycles"] += 1

        counter = cocotb.start_soon(count())
        await super().run_phase()
        counter.cancel()
        span = (counts["last"] - counts["first"] + 1) if counts["first"] else 0
        p = self.unit.parameters
        out = {"unit": self.unit.variant, "accepted_beats": counts["accepted"], "span_cycles": span,
               "refused_cycles": counts["refused_cycles"],
               "macs_per_cycle": p["R"] * p["C"] * counts["accepted"] / span if span else None,
               "utilization": counts["accepted"] / span if span else None}
        path = Path(self.cfg.run_dir) / type(self).__name__ / "throughput.json"
        path.write_text(json.dumps(out, indent=2))
        self.logger.info("steady state: %s", out)
