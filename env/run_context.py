"""What a stimulus strategy sees of a running simulation: :class:`RunContext`.

A strategy reads the unit (its schema and plan), the coverage state (``uncovered()``), the
budget left, and calls ``await ctx.execute(transactions)``: the batch is driven through the
agents back to back, predicted by the reference model from what the input monitors saw enter
the DUT (``env/predictor.py``), checked bit for bit, and sampled
into coverage: the transaction as the monitors observed it (not as it was meant), and only
when it passed (a failing transaction's content proves nothing about the design's handling
of it). Each checked transaction is also crossed with what the environment did to it
(``CoveragePlan.env_cross_hits``: its output stalled, or it was the first after a reset); the call returns when every transaction of the batch is checked or dropped
by a reset. The environment injects resets and backpressure on its own schedule.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, Event, First, RisingEdge
from cocotb.utils import get_sim_time

from mxdv.coverage.collector import CoverageCollector
from mxdv.coverage.plan import Bin, stall_bin
from mxdv.env.agents.valid_ready.item import BeatItem
from mxdv.env.run_config import RunConfig
from mxdv.env.sequences import BeatSequence
from mxdv.schema import Txn
from mxdv.unit import Unit

#: The test bench's clock period (env/base_test.py starts the clock with it).
CLOCK_PERIOD_NS = 10

#: Transactions driven after a reset that count as "after_reset" for the environment crosses.
AFTER_RESET_TXNS = 4


@dataclass
class TxnResult:
    txn_id: int
    txn: Txn
    status: str  # "pass", "fail" or "dropped"
    new_bins: list[str] = field(default_factory=list)


class DrainTimeout(RuntimeError):
    """Transactions never completed: a named failure (``result.json`` ``error`` starts with
    ``DrainTimeout``), never a silent end of the run."""


class RunContext:
    def __init__(self, unit: Unit, cfg: RunConfig, env, collector: CoverageCollector):
        self.unit = unit
        self.cfg = cfg
        self.env = env
        self.state = env.state
        self.scoreboard = env.scoreboard
        self.collector = collector
        #: The strategy's own random source (independent of the environment's timing draws).
        self.rng = np.random.default_rng([cfg.seed, 0x57A7])
        self.submitted = 0
        self.completed = 0
        self.closure_txns: int | None = None
        self.history: list[tuple[int, float]] = []
        #: Clock cycles spent inside execute() (first beat offered to last output checked,
        #: summed over batches) and the unit's work metric (``Unit.work``) of what was driven.
        self.busy_cycles = 0
        self.work = 0.0
        self.results: dict[int, TxnResult] = {}
        #: The running strategy (set by the test); its ``stats`` give LLM calls and tokens.
        self.strategy = None
        #: Coverage after every transaction, compacted (see :meth:`coverage_curve`).
        self._curve: list[list] = []
        self._curve_last: list | None = None
        self._waiting: set[int] = set()
        #: Ids of transactions whose output was stalled, and of the first transaction after each reset.
        self._stalled: set[int] = set()
        self._after_reset: set[int] = set()
        self._batch_done = Event()
        self._batches = 0
        self._t0 = time.monotonic()
        self._last_progress = 0.0
        self.scoreboard.on_done = self._on_done
        self.state.on_stream_event = self._on_stream_event
        self._progress_path = Path(cfg.run_dir) / "progress.jsonl"
        if collector.percent() >= 100.0:
            self.closure_txns = 0

    # -- what strategies read ----------------------------------------------------------
    @property
    def budget_left(self) -> int:
        return max(0, self.cfg.budget - self.submitted)

    @property
    def closed(self) -> bool:
        return self.closure_txns is not None

    @property
    def done(self) -> bool:
        if self.cfg.stop_on_mismatch and self.scoreboard.stats.mismatches:
            return True
        return self.budget_left == 0 or (self.cfg.stop_at_closure and self.closed)

    def uncovered(self) -> list[Bin]:
        return [self.unit.plan.get(n) for n in self.collector.uncovered()]

    def coverage_percent(self) -> float:
        return self.collector.percent()

    # -- what strategies call -----------------------------------------------------------
    async def execute(self, txns: list[Txn]) -> list[TxnResult]:
        """Drive, check and sample a batch (truncated to the budget left)."""
        txns = list(txns)[: self.budget_left]
        if not txns:
            return []
        while self.state.in_reset:
            await RisingEdge(self.state.clk)
        ids = []
        per_port: dict[str, list[BeatItem]] = {p.prefix: [] for p in self.unit.input_ports}
        gen = self.state.generation
        for txn in txns:
            tid = self.submitted
            self.submitted += 1
            ids.append(tid)
            self.results[tid] = TxnResult(tid, txn, "pending")
            self.env.predictor.submit(tid, txn)  # expectations come from the input monitors
            for prefix, beats in self.unit.encode(txn).items():
                per_port[prefix].extend(BeatItem(f"t{tid}", b, tid, gen) for b in beats)
        self._waiting = set(ids)
        self._batch_done = Event()
        self.work += sum(self.unit.work(t) for t in txns)
        t_start = get_sim_time(unit="ns")
        for prefix, items in per_port.items():
            if items:
                seqr = self.env.input_agents[prefix].sequencer
                cocotb.start_soon(BeatSequence("beats", items).start(seqr))
        self._batches += 1
        injector = None
        if self._wants_reset():
            delay = int(self.rng_env.integers(1, 4 + 2 * len(txns)))
            injector = cocotb.start_soon(self._reset_in_traffic(delay))
        limit = 2000 + 400 * sum(len(v) for v in per_port.values())
        await First(self._batch_done.wait(), ClockCycles(self.state.clk, limit))
        if injector is not None and not injector.done():
            if self.state.in_reset:
                await injector
            else:
                injector.cancel()
        if self._waiting:
            raise DrainTimeout(
                f"{len(self._waiting)} transaction(s) of {self.unit.variant} never completed within "
                f"{limit} cycles (ids {sorted(self._waiting)[:8]}...): the DUT hung or lost outputs; "
                f"replay: {self.replay_hint()}")
        self.busy_cycles += round((get_sim_time(unit="ns") - t_start) / CLOCK_PERIOD_NS)
        self._record_history()
        return [self.results[i] for i in ids]

    # -- environment hooks ----------------------------------------------------------------
    @property
    def rng_env(self) -> np.random.Generator:
        return self.state.rng

    def _wants_reset(self, batch: int | None = None) -> bool:
        """Whether batch number ``batch`` (default: the current one) gets a reset in its traffic:
        always the third, else with ``reset_prob``."""
        if self.cfg.reset_prob <= 0:
            return False
        return (self._batches if batch is None else batch) == 3 or self.rng_env.random() < self.cfg.reset_prob

    async def _reset_in_traffic(self, delay: int) -> None:
        await ClockCycles(self.state.clk, delay)
        if self.env.predictor.in_flight:
            self.on_reset(await self.env.reset(cycles=int(self.rng_env.integers(1, 4))))

    async def reset(self) -> None:
        """A reset requested by a strategy (whatever is in flight is dropped)."""
        self.on_reset(await self.env.reset())

    def on_reset(self, in_flight: list[int]) -> None:
        """After a reset: everything that was in flight is dropped, never checked."""
        if in_flight:
            self._sample_env({"protocol.reset_in_traffic"})
        self._mark_after_reset()
        for tid in in_flight:
            self._stalled.discard(tid)
            self.results[tid].status = "dropped"
            self.completed += 1
            self._waiting.discard(tid)
        if in_flight:
            self._curve_point()
        if not self._waiting:
            self._batch_done.set()

    def _mark_after_reset(self) -> None:
        """The next :data:`AFTER_RESET_TXNS` transactions driven are "after_reset"."""
        self._after_reset.update(range(self.submitted, self.submitted + AFTER_RESET_TXNS))

    def environment_of(self, tid: int) -> set[str]:
        """The environment conditions (``coverage.plan.ENV_CONDITIONS``) transaction ``tid`` saw."""
        return ({"stalled"} if tid in self._stalled else set()) | ({"after_reset"} if tid in self._after_reset else set())

    def _on_done(self, tid: int, ok: bool, observed: dict | None = None) -> None:
        res = self.results[tid]
        res.status = "pass" if ok else "fail"
        if ok:  # sampled as observed at the DUT's inputs; a failing transaction is not coverage
            content = set(self.unit.sample(res.txn if observed is None else observed))
            res.new_bins = self.collector.sample(
                content | self.unit.plan.env_cross_hits(content, self.environment_of(tid)))
        self._stalled.discard(tid)
        self._after_reset.discard(tid)
        self.completed += 1
        self._check_closure()
        self._curve_point()
        self._waiting.discard(tid)
        if not self._waiting:
            self._batch_done.set()

    def _on_stream_event(self, prefix: str, event: str, value: int) -> None:
        if event == "stall" and prefix == self.unit.output_port.prefix:
            stalled = self.scoreboard.oldest_pending  # the stall ends as its beat is accepted
            if stalled is not None:
                self._stalled.add(stalled)
            name = stall_bin(value)
            if name in self.collector.plan.bin_names:
                self._sample_env({name})
        elif event == "back_to_back" and prefix == self.unit.input_ports[0].prefix:
            self._sample_env({"protocol.back_to_back"})

    def _sample_env(self, names: set[str]) -> None:
        self.collector.sample(names)
        self._check_closure()
        self._curve_point()

    def _check_closure(self) -> None:
        if self.closure_txns is None and self.collector.percent() >= 100.0:
            self.closure_txns = max(self.completed, 1)

    # -- the closure curve -----------------------------------------------------------------
    CURVE_FIELDS = ("txns", "coverage", "wall_s", "llm_tokens", "llm_calls")

    def _llm_so_far(self) -> tuple[int | None, int | None]:
        """(tokens, calls) the strategy reports so far; (None, None) when it reports none."""
        stats = getattr(self.strategy, "stats", None)
        if not isinstance(stats, dict) or not ({"prompt_tokens", "completion_tokens"} & set(stats)):
            return None, None
        tokens = int(stats.get("prompt_tokens") or 0) + int(stats.get("completion_tokens") or 0)
        calls = stats.get("replies")
        return tokens, (int(calls) if isinstance(calls, (int, float)) else None)

    def _curve_point(self, pct: float | None = None) -> None:
        """Record coverage after a completed transaction (or an environment bin): a point is
        kept when coverage changed; the latest point is kept apart and added at the end.
        ``pct``: the coverage at that transaction, where the database already holds more
        (a batch sampled at once); the collector's figure otherwise."""
        pct = round(self.collector.percent() if pct is None else pct, 3)
        tokens, calls = self._llm_so_far()
        point = [self.completed, pct, round(time.monotonic() - self._t0, 3), tokens, calls]
        if not self._curve or self._curve[-1][1] != pct:
            if self._curve and self._curve[-1][0] == self.completed:
                self._curve[-1] = point        # same transaction: keep only its final coverage
            else:
                self._curve.append(point)
        self._curve_last = point

    def coverage_curve(self) -> dict:
        """``{"fields": CURVE_FIELDS, "points": [[txns, coverage %, wall s, LLM tokens, LLM
        calls], ...]}``: every point where coverage changed plus the last one (tokens and calls
        are None for strategies that call no LLM)."""
        points = list(self._curve)
        if self._curve_last is not None and (not points or points[-1] != self._curve_last):
            points.append(self._curve_last)
        return {"fields": list(self.CURVE_FIELDS), "points": points}

    # -- reporting ------------------------------------------------------------------------
    def replay_hint(self) -> str:
        c = self.cfg
        return (f"mxdv run --unit {c.unit} --strategy {c.strategy} --sim {c.sim} --mode {c.mode} "
                f"--seed {c.seed} --budget {c.budget}")

    def _record_history(self) -> None:
        pct = self.collector.percent()
        self.history.append((self.submitted, pct))
        now = time.monotonic()
        if now - self._last_progress >= 0.5 or self.done:
            self._last_progress = now
            line = {"txns": self.submitted, "budget": self.cfg.budget, "coverage": round(pct, 2),
                    "holes": len(self.collector.uncovered()),
                    "mismatches": len(self.scoreboard.stats.mismatches),
                    "wall_s": round(now - self._t0, 2)}
            with self._progress_path.open("a") as fh:
                fh.write(json.dumps(line) + "\n")

    async def drain(self, limit: int = 10000) -> None:
        """Wait for the pipeline to be empty (used at the end of a run); raises
        :class:`DrainTimeout` when transactions are still in flight after ``limit`` cycles."""
        for _ in range(limit):
            if not self.env.predictor.in_flight:
                return
            await RisingEdge(self.state.clk)
        raise DrainTimeout(
            f"drain: {self.env.predictor.in_flight} transaction(s) of {self.unit.variant} still in flight "
            f"after {limit} cycles at the end of the run: the DUT hung or lost outputs; replay: {self.replay_hint()}")
