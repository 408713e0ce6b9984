"""``hypothesis``: Hypothesis draws transactions inside the simulation and shrinks failures.

The property "the DUT matches the reference model on this sequence of transactions" runs in
a bridge thread (``cocotb.task.bridge``). An example is a sequence of 1 to ``max_sequence``
(option, default 4) transactions, driven back to back as one batch with ``resume(ctx.execute)``,
so pipeline and backpressure bugs (a second block arriving while the first is held) are
reachable too. On a scoreboard mismatch Hypothesis shrinks the sequence to a minimal failing
one (fewest, simplest transactions), saved as ``hypothesis_reproducer.json`` and as
``hypothesis_reproducer.jsonl`` (``--strategy replay --option file=...`` replays it), and in the
example database (option ``db``; by default ``<runs>/hypothesis-db/<unit>``), which the next
run replays first. ``hypothesis.target()`` rewards newly covered bins. Examples are drawn in
chunks (option ``chunk``, default 64), each seeded from the run seed, so a run is reproducible.
Option ``shrink=false`` skips shrinking (the first failing example is reported as found), as
``mxdv mutate`` wants it.
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
        from hypothesis import HealthCheck, Phase, given, reject, seed, settings, target
        from hypothesis.database import DirectoryBasedExampleDatabase
        from hypothesis.errors import HypothesisSideeffectWarning

        warnings.filterwarnings("ignore", category=HypothesisSideeffectWarning)
        db = DirectoryBasedExampleDatabase(str(self._db_path(ctx)))
        chunk = int(self.options.get("chunk", 64))
        longest = int(self.options.get("max_sequence", 4))
        if chunk < 1 or longest < 1:
            raise ValueError(f"hypothesis strategy: options chunk and max_sequence must be >= 1, got {chunk}, {longest}")
        from hypothesis import strategies as st

        seq_strategy = st.lists(ctx.unit.schema.hypothesis_strategy(), min_size=1, max_size=longest)
        execute = resume(ctx.execute)
        state = {"failing": None, "failures_seen": 0}

        def prop(txns):
            if ctx.done and state["failing"] is None:
                return  # budget spent or plan closed: the chunk finishes without simulating
            if state["failing"] is None:
                txns = txns[: ctx.budget_left]  # the last example of a run ends with the budget
            elif ctx.budget_left < len(txns):
                ctx.cfg.budget += len(txns) - ctx.budget_left  # shrinking a failure may go past the budget
            results = execute(txns)
            failed = [r for r in results if r.status == "fail"]
            if not failed and (len(results) < len(txns) or any(r.status == "dropped" for r in results)):
                reject()  # a reset dropped part of the sequence
            target(float(sum(len(r.new_bins) for r in results)), label="newly covered bins")
            if failed:
                state["failing"] = txns
                state["failures_seen"] += 1
                raise _Mismatch(f"scoreboard mismatch on {ctx.unit.format_txn(failed[0].txn)}")

        # Option shrink=false: report the first failing example as found (mutation testing only
        # needs to know that a mutant fails; shrinking costs many more simulated examples).
        shrink = str(self.options.get("shrink", True)).lower() not in ("false", "0", "no")
        phases = tuple(Phase) if shrink else tuple(p for p in Phase if p.name not in ("shrink", "explain"))
        index = 0
        self.stats = {"chunks": 0, "shrunk_reproducer": None}
        while not ctx.done:
            test = settings(max_examples=chunk, deadline=None, database=db, derandomize=False, phases=phases,
                            suppress_health_check=list(HealthCheck), print_blob=False)(
                seed(ctx.cfg.seed * 100003 + index)(given(seq_strategy)(prop)))
            index += 1
            self.stats["chunks"] = index
            try:
                test()
            except _Mismatch:
                minimal = state["failing"]
                self.stats["shrunk_reproducer"] = minimal
                self.stats["failing_examples_run"] = state["failures_seen"]
                run_dir = Path(ctx.cfg.run_dir)
                (run_dir / "hypothesis_reproducer.json").write_text(json.dumps(
                    {"unit": ctx.unit.variant, "txns": minimal,
                     "pretty": [ctx.unit.format_txn(t) for t in minimal]}, indent=2))
                (run_dir / "hypothesis_reproducer.jsonl").write_text(
                    "".join(json.dumps({"txn": t}) + "\n" for t in minimal))
                return
