""":class:`BulkRunContext`: what a strategy sees in bulk mode. ``await ctx.execute(txns)``
loads the batch into the harness (split where it exceeds ``bulk_depth``), runs it in HDL,
publishes the captures to the predictor and scoreboard, and samples coverage: the batch is
the unit of feedback, as in cycle mode."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from cocotb.triggers import ValueChange

from mxdv.env.agents.valid_ready import Backpressure, Idle
from mxdv.env.bulk import layout as L
from mxdv.env.bulk.schedule import random_schedule
from mxdv.env.run_context import DrainTimeout, RunContext, TxnResult
from mxdv.schema import Txn

#: Reset cycles at the start of the run (cycle mode's first reset is as long).
FIRST_RESET_CYCLES = 5
#: Progress of a bulk run, rewritten before and after every batch (``mxdv.runs`` reads it when
#: the simulator died and wrote no result): the batch in flight and the finished batches' results.
PROGRESS_FILE = "bulk_progress.json"
#: Fault injection for the tests: the simulator process kills itself when batch N starts.
CRASH_VAR = "MXDV_BULK_CRASH_AT_BATCH"


class BulkHang(DrainTimeout):
    """A bulk batch ended without every transaction completing (no output progress for
    ``bulk_idle_cycles``, the cycle limit, or a full capture memory): a named failure."""


class BulkRunContext(RunContext):
    def __init__(self, unit, cfg, env, collector, dut):
        super().__init__(unit, cfg, env, collector)
        self.dut = dut
        self._go = 0
        self._lead_reset = FIRST_RESET_CYCLES
        self.batches_run = 0
        #: (result, observed transaction, environment conditions) of passing transactions not yet sampled.
        self._done_queue: list[tuple[TxnResult, dict, set[str]]] = []
        self._env_bins: set[str] = set()

    # -- vectorised coverage: sampled once per batch, in completion order --------------------
    def _on_done(self, tid: int, ok: bool, observed: dict | None = None) -> None:
        """As in cycle mode, only a passing transaction is coverage, sampled as observed at
        the DUT's inputs, with the environment conditions it saw; the sampling itself waits
        for the end of the batch (one vectorised call)."""
        res = self.results[tid]
        res.status = "pass" if ok else "fail"
        conditions = self.environment_of(tid)
        self._stalled.discard(tid)
        self._after_reset.discard(tid)
        self._waiting.discard(tid)
        if ok:
            self._done_queue.append((res, res.txn if observed is None else observed, conditions))
        else:
            self.completed += 1
            self._curve_point()

    def _sample_env(self, names: set[str]) -> None:
        self._env_bins.update(names)

    def _sample_done(self) -> None:
        """One ``Unit.sample_batch`` and one ``CoverageCollector.sample_batch`` for every
        passing transaction the batch completed (with its environment crosses), then the
        environment bins it hit."""
        done, self._done_queue = self._done_queue, []
        if done:
            contents = self.unit.sample_batch([obs for _, obs, _ in done])
            plan = self.unit.plan
            hit_sets = []
            for (_, _, conditions), content in zip(done, contents):
                content = set(content)
                hit_sets.append(content | plan.env_cross_hits(content, conditions) if conditions else content)
            news = self.collector.sample_batch(hit_sets)
            for (res, _, _), new in zip(done, news):
                res.new_bins = new
                self.completed += 1
                if new:
                    self._check_closure()
                    self._curve_point()
        if self._env_bins:
            env, self._env_bins = self._env_bins, set()
            self.collector.sample(env)
            self._check_closure()
        self._curve_point()

    async def execute(self, txns: list[Txn]) -> list[TxnResult]:
        txns = list(txns)[: self.budget_left]
        if not txns:
            return []
        drv = self.env.batch_driver
        encoded = drv.encode(txns)
        out: list[TxnResult] = []
        for start, stop in drv.split(txns, encoded):
            out += await self._run_batch(txns[start:stop], encoded[start:stop])
        self._record_history()
        return out

    async def reset(self) -> None:
        """A reset asked for by a strategy: the next batch starts with one."""
        self._lead_reset = max(self._lead_reset, 4)

    async def _run_batch(self, txns: list[Txn], encoded) -> list[TxnResult]:
        ids = list(range(self.submitted, self.submitted + len(txns)))
        self.submitted += len(txns)
        for tid, txn in zip(ids, txns):
            self.results[tid] = TxnResult(tid, txn, "pending")
        self._waiting = set(ids)
        self.work += sum(self.unit.work(t) for t in txns)
        self._batches += 1
        drv, mon = self.env.batch_driver, self.env.batch_monitor
        beats = [sum(len(e.get(pl.port.prefix, [])) for e in encoded) for pl in drv.layout.inputs]
        reset_at = reset_len = None
        if self._wants_reset():
            reset_at = int(self.rng_env.integers(1, 4 + 2 * len(txns)))
            reset_len = int(self.rng_env.integers(1, 4))
        idle, bp = Idle(prob=self.cfg.idle_prob), Backpressure(prob=self.cfg.backpressure_prob)
        sched = random_schedule(beats, idle, bp, self.rng_env, reset_at=reset_at, reset_len=reset_len or 1,
                                lead_reset=self._lead_reset)
        self._lead_reset = 0
        loaded = drv.load(encoded, sched)
        self._write_progress({"batch": self._batches, "ids": [ids[0], ids[-1]], "state": "running"})
        if os.environ.get(CRASH_VAR) == str(self._batches):
            os.kill(os.getpid(), signal.SIGKILL)
        self._go += 1
        self.dut.mxdv_go.value = self._go
        while int(self.dut.mxdv_done.value) != self._go:
            await ValueChange(self.dut.mxdv_done)
        self.batches_run += 1
        status = mon.read_status(drv.channels)
        cap = mon.read(drv.channels, status)
        started: set[int] = set()

        def submit(k: int) -> None:
            started.add(ids[k])
            self.env.predictor.submit(ids[k], txns[k])

        mon.publish(cap, submit=submit, on_reset=self.on_reset)
        self._sample_done()
        mon.cycle_base += status.cycles
        self.busy_cycles += status.cycles
        # transactions no reset dropped and no output completed
        never = sorted(self._waiting)
        skipped = [t for t in never if t not in started]
        if status.reason != L.DONE or self.env.predictor.in_flight or (skipped and not cap.resets):
            raise BulkHang(
                f"bulk batch {self._batches} ({len(txns)} transactions, ids {ids[0]}..{ids[-1]}) of "
                f"{self.unit.variant}, seed {self.cfg.seed}: ended with '{status.reason_text}' after "
                f"{status.cycles} cycles; {len(never)} transaction(s) never completed (first ids {never[:8]}); "
                f"{status.in_beats} of {loaded['beats']} input beats accepted, {status.out_beats} output beats; "
                f"replay: {self.replay_hint()}")
        if skipped:  # abandoned by a reset before any beat of theirs went in
            self.on_reset(skipped)
            self._sample_done()
        self._write_progress(None)
        return [self.results[i] for i in ids]

    def _write_progress(self, running: dict | None) -> None:
        stats = self.scoreboard.stats
        data = {"unit": self.unit.variant, "seed": self.cfg.seed, "replay": self.replay_hint(),
                "finished_batches": self.batches_run, "in_flight": running,
                "transactions_done": self.completed, "checked": stats.checked, "passed": stats.passed,
                "dropped": stats.dropped, "mismatches": [m.report for m in stats.mismatches[:20]],
                "mismatch_count": len(stats.mismatches)}
        path = Path(self.cfg.run_dir) / PROGRESS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)

    async def drain(self, limit: int = 0) -> None:
        """Every batch ends drained; something still in flight here is a hang."""
        if self.env.predictor.in_flight:
            raise DrainTimeout(
                f"drain: {self.env.predictor.in_flight} transaction(s) of {self.unit.variant} still in flight "
                f"after the last bulk batch; replay: {self.replay_hint()}")
