"""``hypothesis``: Hypothesis draws transactions inside the simulation and shrinks failures.

The property "the DUT matches the reference model on this transaction" runs in a bridge
thread (``cocotb.task.bridge``); each example is driven with ``resume(ctx.execute)``. On a
scoreboard mismatch Hypothesis shrinks the transaction to a minimal failing one, which is
saved in the example database (option ``db``; by default ``<runs>/hypothesis-db/<unit>``)
and replayed first by the next run. ``hypothesis.target()`` rewards newly covered bins.
Examples are drawn in chunks (option ``chunk``, default 64), each seeded from the run seed,
so a run is reproducible.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

from cocotb.task import bridge, resume

from mxdv.sequences.registry import Strategy, register_strategy


class _Mismatch(AssertionError):
    pass


@register_strategy("hypothesis")
class HypothesisStrategy(Strategy):
    summary = "Hypothesis in the simulation: shrinks mismatches to minimal reproducers"

    async def run(self, ctx) -> None:
        await bridge(self._run_blocking)(ctx)

    def _db_path(self, ctx) -> Path:
        if self.options.get("db"):
            return Path(self.options["db"])
        return Path(ctx.cfg.run_dir).resolve().parent / "hypothesis-db" / ctx.unit.variant.replace(":", "_")

    def _run_blocking(self, ctx) -> None:
        from hypothesis import HealthCheck, given, reject, seed, settings, target
        from hypothesis.database import DirectoryBasedExampleDatabase
        from hypothesis.errors import HypothesisSideeffectWarning

        warnings.filterwarnings("ignore", category=HypothesisSideeffectWarning)
        db = DirectoryBasedExampleDatabase(str(self._db_path(ctx)))
        chunk = int(self.options.get("chunk", 64))
        txn_strategy = ctx.unit.schema.hypothesis_strategy()
        execute = resume(ctx.execute)
        state = {"failing": None, "failures_seen": 0}

        def prop(txn):
            if ctx.done and state["failing"] is None:
                return  # budget spent or plan closed: the chunk finishes without simulating
            if ctx.budget_left == 0:
                ctx.cfg.budget += 1  # shrinking a failure may go past the budget
            results = execute([txn])
            if not results or results[0].status == "dropped":
                reject()
            target(float(len(results[0].new_bins)), label="newly covered bins")
            if results[0].status == "fail":
                state["failing"] = txn
                state["failures_seen"] += 1
                raise _Mismatch(f"scoreboard mismatch on {ctx.unit.format_txn(txn)}")

        index = 0
        self.stats = {"chunks": 0, "shrunk_reproducer": None}
        while not ctx.done:
            test = settings(max_examples=chunk, deadline=None, database=db, derandomize=False,
                            suppress_health_check=list(HealthCheck), print_blob=False)(
                seed(ctx.cfg.seed * 100003 + index)(given(txn_strategy)(prop)))
            index += 1
            self.stats["chunks"] = index
            try:
                test()
            except _Mismatch:
                minimal = state["failing"]
                self.stats["shrunk_reproducer"] = minimal
                self.stats["failing_examples_run"] = state["failures_seen"]
                path = Path(ctx.cfg.run_dir) / "hypothesis_reproducer.json"
                path.write_text(json.dumps({"unit": ctx.unit.variant, "txn": minimal,
                                            "pretty": ctx.unit.format_txn(minimal)}, indent=2))
                return
