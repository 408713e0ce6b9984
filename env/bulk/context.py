""":class:`BulkRunContext`: what a strategy sees in bulk mode. ``await ctx.execute(txns)``
loads the batch into the harness (split where it exceeds ``bulk_depth``), runs it in HDL,
publishes the captures to the predictor and scoreboard, and samples coverage: the batch is
the unit of feedback, as in cycle mode."""
from __future__ import annotations

import json
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from cocotb.triggers import ValueChange

from mxdv.env.agents.valid_ready import Backpressure, Idle
from mxdv.env.bulk import layout as L
from mxdv.env.bulk import payload as P
from mxdv.env.bulk.schedule import random_schedule
from mxdv.columns import Columns
from mxdv.env.run_context import AFTER_RESET_TXNS, DrainTimeout, RunContext, TxnResult
from mxdv.schema import Txn

#: Reset cycles at the start of the run (cycle mode's first reset is as long).
FIRST_RESET_CYCLES = 5
#: Progress of a bulk run, rewritten before and after every batch (``mxdv.runs`` reads it when
#: the simulator died and wrote no result): the batch in flight and the finished batches' results.
PROGRESS_FILE = "bulk_progress.json"
#: Fault injection for the tests: the simulator process kills itself when batch N starts.
CRASH_VAR = "MXDV_BULK_CRASH_AT_BATCH"
#: ``MXDV_COLUMNAR=0`` turns the columnar path off (every batch per transaction), for
#: comparisons and benchmarks.
COLUMNAR_VAR = "MXDV_COLUMNAR"
#: Transactions past the ``reset_at``-th input beat kept in the head of a columnar batch that is
#: run around its reset (see ``BulkRunContext._run_split``).
RESET_HEAD_MARGIN = 2


def _slice_encoded(encoded, start: int, stop: int):
    """Transactions ``start:stop`` of a columnar batch's ``(stimulus records, beats per
    transaction)``, their records renumbered from 0."""
    stims, counts = encoded
    part = {}
    for p, s in stims.items():
        first = P.frame_starts(counts[p])
        part[p] = s[first[start]: first[stop]].copy()
        part[p][:, 0] -= start
    return part, {p: c[start:stop] for p, c in counts.items()}


class ChainedResults(Sequence):
    """Results of the pieces of one ``execute`` call, in order, without building them."""

    def __init__(self, parts: list[Sequence]):
        self._parts = [p for p in parts if len(p)]
        self._starts = np.cumsum([0] + [len(p) for p in self._parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        part = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self._parts[part][i - int(self._starts[part])]


class ColumnarResults(Sequence):
    """The results of a columnar batch, one :class:`TxnResult` built when asked for (the
    transaction dicts are not made unless a strategy reads them)."""

    def __init__(self, ctx: "BulkRunContext", ids: np.ndarray, cols: Columns):
        self._ctx, self.ids, self.cols = ctx, ids, cols
        self.status = np.full(len(ids), "dropped", dtype=object)
        self.new_bins: dict[int, list[str]] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        tid = int(self.ids[i])
        if tid in self._ctx.results:  # checked beat by beat (an irregular batch)
            return self._ctx.results[tid]
        return TxnResult(tid, self.cols.rows([i])[0], str(self.status[i]), list(self.new_bins.get(i, [])))


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
        self._columnar_results: ColumnarResults | None = None
        self.scoreboard.on_done_batch = self._on_done_batch
        #: Batches run on the columnar path (the others ran per transaction).
        self.columnar_batches = 0
        #: Transactions still to be marked "after_reset" as their first beat is published.
        self._after_reset_left = 0

    def _mark_after_reset(self) -> None:
        """In bulk mode the transactions after a reset are those whose beats the harness
        accepted after it, in this batch or the next: marked as they are published."""
        self._after_reset_left = AFTER_RESET_TXNS

    def _started(self, ids) -> None:
        """Transactions whose first input beat is being published, in order."""
        if self._after_reset_left:
            take = list(ids)[: self._after_reset_left]
            self._after_reset.update(int(t) for t in take)
            self._after_reset_left -= len(take)

    @property
    def columnar(self) -> bool:
        """Whether :meth:`execute` takes a ``mxdv.columns.Columns`` batch to the columnar path
        (the unit declares it and ``MXDV_COLUMNAR`` is not 0); strategies that can propose
        columns do so then."""
        return self.unit.columnar and os.environ.get(COLUMNAR_VAR, "1") != "0"

    # -- vectorised coverage: sampled once per batch, in completion order --------------------
    def _on_done(self, tid: int, ok: bool, observed: dict | None = None) -> None:
        """As in cycle mode, only a passing transaction is coverage, sampled as observed at
        the DUT's inputs, with the environment conditions it saw; the sampling itself waits
        for the end of the batch (one vectorised call)."""
        res = self.results.get(tid)
        if res is None:  # a columnar batch checked beat by beat
            res = self.results[tid] = TxnResult(tid, observed or {}, "pending")
        res.status = "pass" if ok else "fail"
        if self._columnar_results is not None:
            k = tid - int(self._columnar_results.ids[0])
            self._columnar_results.status[k] = res.status
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
        """One ``Unit.sample_batch`` and one ``CoverageCollector.sample_rows`` for every
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
            covered = self._covered()
            sampled = self.collector.sample_rows(hit_sets)
            for (res, _, _), new in zip(done, sampled.new_bins):
                res.new_bins = new
            self._advance(sampled, np.arange(len(done)), len(done), covered)
        if self._env_bins:
            env, self._env_bins = self._env_bins, set()
            self.collector.sample(env)
            self._check_closure()
        self._curve_point()

    def _covered(self) -> int:
        """Bins at their goal now."""
        return len(self.unit.plan.bins) - len(self.collector.uncovered())

    def _advance(self, sampled, positions: np.ndarray, n: int, covered: int) -> None:
        """Count ``n`` completed transactions, of which those at ``positions`` were sampled
        (row ``r`` of ``sampled`` is transaction ``positions[r]``): closure-curve points and
        the closure transaction at the exact transaction where each bin reached its goal, not
        at the end of the batch."""
        base, total = self.completed, len(self.unit.plan.bins)
        for row, _ in sampled.goal_rows:
            covered += 1
            self.completed = base + int(positions[row]) + 1
            pct = 100.0 * covered / total
            self._curve_point(pct)
            if self.closure_txns is None and pct >= 100.0:
                self.closure_txns = max(self.completed, 1)
        self.completed = base + n

    def _on_done_batch(self, ids: np.ndarray, ok: np.ndarray, observed: Columns, stalled: np.ndarray) -> None:
        """The columnar path: a whole batch checked. Its passing transactions are sampled as
        observed with one ``Unit.sample_columns`` and one ``CoverageCollector.sample_matrix``
        call, crossed with the environment conditions each saw."""
        res = self._columnar_results
        res.status[:] = np.where(ok, "pass", "fail")
        passing = np.flatnonzero(ok)
        names, m = self.unit.sample_columns(observed if passing.size == len(ids) else observed.take(passing))
        names, m = tuple(names), np.asarray(m, dtype=bool)
        after = np.zeros(passing.size, dtype=bool)
        if self._after_reset:
            marked = self._after_reset
            after = np.fromiter((t in marked for t in ids[passing].tolist()), dtype=bool, count=passing.size)
            self._after_reset.difference_update(ids.tolist())
        conditioned = np.flatnonzero(stalled[passing] | after)
        plan = self.unit.plan
        if conditioned.size:
            crossed: dict[str, int] = {}
            extra_hits = []
            for r in conditioned.tolist():
                content = {names[j] for j in np.flatnonzero(m[r]).tolist()}
                conds = ({"stalled"} if stalled[passing[r]] else set()) | ({"after_reset"} if after[r] else set())
                hit = plan.env_cross_hits(content, conds)
                for name in hit:
                    crossed.setdefault(name, len(crossed))
                extra_hits.append((r, hit))
            extra = np.zeros((passing.size, len(crossed)), dtype=bool)
            for r, hit in extra_hits:
                for name in hit:
                    extra[r, crossed[name]] = True
            names, m = names + tuple(crossed), np.hstack([m, extra])
        covered = self._covered()
        sampled = self.collector.sample_matrix(names, m)
        for r, new in sampled.new_at.items():
            res.new_bins[int(passing[r])] = new
        self._advance(sampled, passing, len(ids), covered)
        self._curve_point()

    async def execute(self, txns) -> list[TxnResult]:
        """Run a batch: a list of transactions, or a ``mxdv.columns.Columns`` batch (see
        :attr:`columnar`); truncated to the budget left and split where it exceeds ``bulk_depth``."""
        drv = self.env.batch_driver
        cols = None
        if isinstance(txns, Columns):
            cols = txns.take(slice(0, self.budget_left))
            if not len(cols):
                return []
            if not self.columnar:
                txns, cols = cols.rows(), None
        else:
            txns = list(txns)[: self.budget_left]
            if not txns:
                return []
            if self.columnar:
                try:
                    cols = Columns.from_rows(self.unit.schema, txns)
                except (ValueError, TypeError, KeyError):
                    cols = None  # not of the schema's shapes: the per-transaction path reports it
        out: list = []
        if cols is not None:
            encoded = drv.encode_columns(cols)
            for start, stop in drv.split_columns(encoded[1]):
                out += await self._run_split(cols.take(slice(start, stop)), _slice_encoded(encoded, start, stop))
        else:
            encoded = drv.encode(txns)
            for start, stop in drv.split(txns, encoded):
                out += await self._run_split(txns[start:stop], encoded[start:stop])
        self._record_history()
        return out[0] if len(out) == 1 else ChainedResults(out)

    async def reset(self) -> None:
        """A reset asked for by a strategy: the next batch starts with one."""
        self._lead_reset = max(self._lead_reset, 4)

    def _draw_reset(self, n: int) -> tuple[int, int] | None:
        """A reset in the traffic of the next batch of ``n`` transactions, as cycle mode draws
        it (``(cycles into the traffic, length)``), or None."""
        if not self._wants_reset(self._batches + 1):
            return None
        return int(self.rng_env.integers(1, 4 + 2 * n)), int(self.rng_env.integers(1, 4))

    async def _run_split(self, batch, encoded) -> list:
        """A batch (a transaction list or a ``Columns`` batch, as :meth:`_run_batch` takes it).
        A reset drawn for it lands within the first ``reset_at`` input beats, so only a head of
        transactions holding that many beats (plus :data:`RESET_HEAD_MARGIN`) runs with the
        reset (a columnar batch: per transaction); the rest follows as a batch of its own,
        without one (a columnar batch: on the columnar path)."""
        n = len(batch)
        reset = self._draw_reset(n)
        if reset is not None:
            if isinstance(batch, Columns):
                per_port = list(encoded[1].values())
                cut = lambda a, b: (batch.take(slice(a, b)), _slice_encoded(encoded, a, b))  # noqa: E731
            else:
                ports = {p for e in encoded for p in e}
                per_port = [[len(e.get(p, ())) for e in encoded] for p in sorted(ports)]
                cut = lambda a, b: (batch[a:b], encoded[a:b])  # noqa: E731
            beats = np.max(np.stack([np.cumsum(np.asarray(c, dtype=np.int64)) for c in per_port]), axis=0)
            head = min(n, int(np.searchsorted(beats, reset[0])) + 1 + RESET_HEAD_MARGIN)
            if head < n:
                return [await self._run_batch(*cut(0, head), reset), await self._run_batch(*cut(head, n), None)]
        return [await self._run_batch(batch, encoded, reset)]

    async def _run_batch(self, batch, encoded, reset: tuple[int, int] | None) -> list[TxnResult]:
        """One batch through the harness, with ``reset`` (from :meth:`_draw_reset`) in its
        traffic. ``batch`` is a list of transactions (``encoded``: their beats) or a ``Columns``
        batch (``encoded``: its stimulus records and beats per transaction). A columnar batch
        whose schedule holds a reset, or whose captures are not whole transactions, is
        published per transaction."""
        n = len(batch)
        ids = list(range(self.submitted, self.submitted + n))
        self.submitted += n
        self._batches += 1
        drv, mon = self.env.batch_driver, self.env.batch_monitor
        reset_at, reset_len = reset if reset is not None else (None, None)
        cols = batch if isinstance(batch, Columns) else None
        if cols is not None and reset_at is not None:
            batch = cols.rows()
            encoded = drv.encode(batch)
            cols = None
        if cols is not None:
            stims, counts = encoded
            self.work += self.unit.work_columns(cols)
            beats = [len(stims[pl.port.prefix]) for pl in drv.layout.inputs]
        else:
            self._register_rows(ids, batch)
            self.work += sum(self.unit.work(t) for t in batch)
            beats = [sum(len(e.get(pl.port.prefix, [])) for e in encoded) for pl in drv.layout.inputs]
        idle, bp = Idle(prob=self.cfg.idle_prob), Backpressure(prob=self.cfg.backpressure_prob)
        sched = random_schedule(beats, idle, bp, self.rng_env, reset_at=reset_at, reset_len=reset_len or 1,
                                lead_reset=self._lead_reset)
        self._lead_reset = 0
        if cols is not None:
            loaded = drv.load_columns(n, stims, counts, sched)
        else:
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
        if cols is not None:
            captured = None
            if status.reason == L.DONE and status.resets == (1 if sched.rst[:1].any() else 0):
                captured = mon.read_columns(drv.channels, status, counts, n)
            if captured is not None:
                return self._publish_columns(ids, cols, captured, counts, status)
            batch = cols.rows()  # not whole transactions: published beat by beat, checked as such
            self._register_rows(ids, batch)
        return self._publish_rows(ids, batch, status, loaded)

    def _register_rows(self, ids: list[int], txns: list[Txn]) -> None:
        """A batch published per transaction: its results, pending until checked or dropped."""
        for tid, txn in zip(ids, txns):
            self.results[tid] = TxnResult(tid, txn, "pending")
        self._waiting = set(ids)

    def _publish_columns(self, ids, cols: Columns, captured, counts, status) -> list[TxnResult]:
        drv, mon = self.env.batch_driver, self.env.batch_monitor
        id_array = np.asarray(ids, dtype=np.int64)
        results = self._columnar_results = ColumnarResults(self, id_array, cols)
        if status.resets:  # the batch's leading reset, before any beat
            mon.publish_lead_reset(drv.channels)
            self.on_reset([])
        self._started(ids)
        self.env.predictor.submit_columns(id_array, cols)
        try:
            mon.publish_columns(*captured, counts, len(cols))
            self._sample_done()
        finally:
            self._columnar_results = None
        mon.cycle_base += status.cycles
        self.busy_cycles += status.cycles
        self.columnar_batches += 1
        if self.env.predictor.in_flight:
            raise BulkHang(
                f"bulk batch {self._batches} ({len(ids)} transactions, ids {ids[0]}..{ids[-1]}) of "
                f"{self.unit.variant}, seed {self.cfg.seed}: {self.env.predictor.in_flight} transaction(s) "
                f"never completed after {status.cycles} cycles; {status.out_beats} output beats; "
                f"replay: {self.replay_hint()}")
        self._write_progress(None)
        return results

    def _publish_rows(self, ids, txns, status, loaded) -> list[TxnResult]:
        drv, mon = self.env.batch_driver, self.env.batch_monitor
        cap = mon.read(drv.channels, status)
        started: set[int] = set()

        def submit(k: int) -> None:
            started.add(ids[k])
            self._started([ids[k]])
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
