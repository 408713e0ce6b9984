"""``hypothesis``: coverage-directed Hypothesis inside the simulation; shrinks failures.

One long-lived Hypothesis engine per run (a new one only if Hypothesis ends its search before
the budget is spent). An example is a sequence of 1 to ``max_sequence`` (option, default 4)
transactions driven back to back as one batch (``resume(ctx.execute)`` from a bridge thread),
so pipeline and backpressure bugs are reachable. Each transaction is drawn from a *random
stimulus program* (``mxdv.sequences.programs``: swarm testing, a different subset of the
language's primitives enabled per transaction) or a mutation of an elite program, all of it
from one Hypothesis-drawn seed per transaction, so a failing sequence shrinks to the fewest
transactions and replays exactly.

Coverage direction, without the plan's hints (this strategy never calls them):

* per uncovered bin that declares a ``distance`` (0 when hit; ``coverage/<unit>/distance.py``),
  the program that came nearest is kept as a near-miss elite and walked closer by local nudges
  of its literals (``swarm.nudge_program``: an exponent by a few binades, a probability toward
  1, a special value to another); ``target()`` reports the same distances to Hypothesis;
* elites: programs whose transactions covered a bin first are mutated (a field respecified, or
  one primitive of a fresh spec added), as a coverage-guided fuzzer mutates its corpus;
* repeats are not driven again (Hypothesis hands out many);
* a persistent *covering corpus*: the smallest passing transaction seen for every bin, kept in
  ``<corpus dir>/<unit variant>/corpus.json`` (option ``corpus``, env ``MXDV_CORPUS_DIR``,
  default ``runs/corpus`` in the repository). Each run first replays it, then extends it, so
  nightly runs accumulate. A corrupt corpus file is reported, set aside and started afresh.
* the example database (option ``db``, default ``runs/hypothesis-db/<variant>``) replays
  earlier failures first.

A measurement run (``RunConfig.fresh``, set by ``mxdv eval``) neither reads nor writes the
corpus or the database, so closure numbers start from nothing.

On a scoreboard mismatch Hypothesis shrinks the sequence; the minimal one is written as
``hypothesis_reproducer.json`` and ``hypothesis_reproducer.jsonl`` (``--strategy replay``).

Option ``shrink=false`` skips shrinking (the first failing example is reported as found), as
``mxdv mutate`` wants it: shrinking costs many more simulated examples.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
from cocotb.task import bridge, resume

from mxdv import REPO_ROOT
from mxdv.sequences.registry import Strategy, register_strategy

log = logging.getLogger("mxdv.hypothesis")
CORPUS_ENV = "MXDV_CORPUS_DIR"
#: Open bins (the first in plan order) whose distance one example reports (``target()``,
#: near-miss elites). Measured on the coverage model: a window rotating over all open bins
#: closed attention no faster (median 777 against 625 transactions, 3 seeds).
TARGETS_PER_EXAMPLE = 16


class _Mismatch(AssertionError):
    pass


class CoveringCorpus:
    """One minimal passing transaction per bin, persisted as JSON (HypoFuzz keeps the same)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, dict] = {}
        self.problem: str | None = None
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                entries = data["bins"]
                if not isinstance(entries, dict) or not all(isinstance(v, dict) and "txn" in v for v in entries.values()):
                    raise ValueError("bins must map bin names to {\"txn\": ...}")
                self.entries = entries
            except (OSError, ValueError, KeyError, TypeError) as exc:
                aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
                path.rename(aside)
                self.problem = f"corpus {path} is unreadable ({type(exc).__name__}: {exc}); set aside as {aside.name}, starting empty"
                log.warning("hypothesis: %s", self.problem)

    def offer(self, txn: dict, bins) -> int:
        """Keep ``txn`` for each bin it hits where it is smaller than the kept one; returns how many."""
        size = len(json.dumps(txn))
        kept = 0
        for b in bins:
            old = self.entries.get(b)
            if old is None or size < old.get("size", math.inf):
                self.entries[b] = {"txn": txn, "size": size}
                kept += 1
        return kept

    def transactions(self, bins) -> list[dict]:
        """The corpus's distinct transactions for the given bins, smallest first."""
        seen, out = set(), []
        for b in bins:
            e = self.entries.get(b)
            if e is None:
                continue
            key = json.dumps(e["txn"], sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append((e.get("size", 0), e["txn"]))
        return [t for _, t in sorted(out, key=lambda x: x[0])]

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"bins": self.entries}, indent=1))
        os.replace(tmp, self.path)


class Elites:
    """Programs worth mutating: those whose transactions covered a bin first (novelty, as a
    coverage-guided fuzzer keeps its corpus), and per uncovered bin with a distance the program
    that came nearest. A proposal is a fresh swarm program, or (share ``mutate``) a mutation of
    an elite: a near miss of a still-open bin when there is one, else a novelty program.
    The elites change only while no failure is being shrunk, so a failing example replays."""

    def __init__(self, mutate: float, cap: int = 64):
        if not 0 <= float(mutate) <= 1:
            raise ValueError(f"hypothesis strategy: option mutate must be in [0, 1], got {mutate!r}")
        self.mutate, self.cap = float(mutate), cap
        self.novel: list[dict] = []
        self.near: dict[str, tuple[float, dict]] = {}

    def add(self, program: dict | None) -> None:
        if program is not None:
            self.novel = (self.novel + [program])[-self.cap:]

    def near_miss(self, bin_name: str, distance: float, program: dict | None) -> None:
        best = self.near.get(bin_name)
        if program is not None and distance > 0 and (best is None or distance < best[0]):
            self.near[bin_name] = (distance, program)

    def close(self, bin_names) -> None:
        for n in bin_names:
            self.near.pop(n, None)

    def propose(self, schema, ch) -> dict:
        """A near miss is walked by a local nudge of its numbers (or respecified); a novelty
        program is respecified (:func:`~mxdv.sequences.programs.swarm.mutate_program`)."""
        from mxdv.sequences.programs.swarm import mutate_program, nudge_program, random_program

        if (self.novel or self.near) and ch.coin(self.mutate):
            if self.near and (not self.novel or ch.coin(0.5)):
                near = list(self.near.values())
                program = near[ch.index(len(near))][1]
                return nudge_program(program, ch) if ch.coin(0.6) else mutate_program(schema, program, ch)
            return mutate_program(schema, self.novel[ch.index(len(self.novel))], ch)
        return random_program(schema, ch)


@register_strategy("hypothesis")
class HypothesisStrategy(Strategy):
    summary = "coverage-directed Hypothesis over random stimulus programs; shrinks mismatches"

    async def run(self, ctx) -> None:
        await bridge(self._run_blocking)(ctx, resume(ctx.execute))

    # -- persistent state ---------------------------------------------------------------------
    def _variant_dir(self, ctx) -> str:
        return ctx.unit.variant.replace(":", "_").replace(",", "_").replace("=", "")

    def _db_path(self, ctx) -> Path | None:
        if ctx.cfg.fresh:
            return None
        if self.options.get("db"):
            return Path(self.options["db"])
        return REPO_ROOT / "runs" / "hypothesis-db" / self._variant_dir(ctx)

    def _corpus_path(self, ctx) -> Path | None:
        if ctx.cfg.fresh:
            return None
        root = self.options.get("corpus") or os.environ.get(CORPUS_ENV) or REPO_ROOT / "runs" / "corpus"
        if str(root) in ("off", "none"):
            return None
        return Path(root) / self._variant_dir(ctx) / "corpus.json"

    # -- the run -----------------------------------------------------------------------------
    def _run_blocking(self, ctx, execute) -> None:
        """The search; ``execute(txns) -> results`` is blocking (in simulation, ``resume(ctx.execute)``)."""
        from hypothesis import HealthCheck, Phase, given, seed, settings, target
        from hypothesis import strategies as st
        from hypothesis.database import DirectoryBasedExampleDatabase, InMemoryExampleDatabase
        from hypothesis.errors import Flaky, HypothesisSideeffectWarning

        from mxdv.sequences.programs.language import ProgramError, validate_program
        from mxdv.sequences.programs.sample import NumpyChooser, sample_txn
        from mxdv.sequences.programs.swarm import random_program

        warnings.filterwarnings("ignore", category=HypothesisSideeffectWarning)
        longest = int(self.options.get("max_sequence", 4))
        if longest < 1:
            raise ValueError(f"hypothesis strategy: option max_sequence must be >= 1, got {longest}")
        db_path = self._db_path(ctx)
        db = DirectoryBasedExampleDatabase(str(db_path)) if db_path else InMemoryExampleDatabase()
        corpus = CoveringCorpus(self._corpus_path(ctx))
        schema, plan = ctx.unit.schema, ctx.unit.plan
        self.stats = {"engines": 0, "examples": 0, "targeted_bins": 0, "corpus_replayed": 0,
                      "corpus_size": 0, "corpus_problem": corpus.problem, "repeats_skipped": 0, "shrunk_reproducer": None}

        # 1. the covering corpus of earlier runs
        replay = corpus.transactions(plan.bin_names)
        if replay and not ctx.done:
            valid = []
            for t in replay:
                try:
                    valid.append(schema.normalize(t))
                except Exception as exc:  # a corpus from an older schema: skip that entry
                    log.warning("hypothesis: corpus transaction skipped: %s", exc)
            for i in range(0, len(valid), 16):
                if ctx.done:
                    break
                results = execute(valid[i:i + 16])
                self.stats["corpus_replayed"] += len(results)

        elites = Elites(self.options.get("mutate", 0.5))

        @st.composite
        def one_txn(draw):
            # One Hypothesis choice per transaction: the seed of everything below. Hypothesis
            # draws structure one choice at a time with a strong pull toward 0, which made
            # programs alike (closure took 3.5x longer, measured offline); a seed keeps examples
            # iid while Hypothesis still stores, replays and shrinks the sequence.
            ch = NumpyChooser(np.random.default_rng(draw(st.integers(0, 2 ** 63))))
            raw = elites.propose(schema, ch)
            try:
                program = validate_program(schema, raw)
            except ProgramError:  # a nudge stepped outside a domain: a fresh program instead
                raw = random_program(schema, ch)
                program = validate_program(schema, raw)
            return {"txn": sample_txn(schema, program, ch), "program": raw}

        seq_strategy = st.lists(one_txn(), min_size=1, max_size=longest)
        distances = {b.name: b.distance for b in plan.bins if b.distance is not None}
        state = {"failing": None}
        seen: set[str] = set()

        def prop(drawn):
            if ctx.done and state["failing"] is None:
                return  # budget spent or plan closed: the engine winds down without simulating
            self.stats["examples"] += 1
            if state["failing"] is None:
                # Hypothesis hands out many repeats; driving one again teaches nothing
                fresh = []
                for d in drawn:
                    key = json.dumps(d["txn"], sort_keys=True)
                    if key not in seen:
                        seen.add(key)
                        fresh.append(d)
                self.stats["repeats_skipped"] += len(drawn) - len(fresh)
                if not fresh:
                    return
                drawn = fresh[: ctx.budget_left]  # the last example of a run ends with the budget
            elif ctx.budget_left < len(drawn):
                ctx.cfg.budget += len(drawn) - ctx.budget_left  # shrinking a failure may go past the budget
            txns = [d["txn"] for d in drawn]
            open_bins = [n for n in self._uncovered_names(ctx) if n in distances]
            results = execute(txns)  # in the order of txns (cut short only by the budget)
            elites.close({b for r in results for b in r.new_bins})
            failed = [r for r in results if r.status == "fail"]
            for d, r in zip(drawn, results):
                if r.status == "pass":
                    corpus.offer(r.txn, ctx.unit.sample(r.txn))
                    if r.new_bins and state["failing"] is None:
                        elites.add(d["program"])
            # (a sequence that a reset cut short is not rejected: Hypothesis replays examples, and
            # a replay that skips the repeats must end the same way, or it reports FlakyReplay)
            self.stats["targeted_bins"] = max(self.stats["targeted_bins"], len(open_bins))
            for name in open_bins[:TARGETS_PER_EXAMPLE]:
                dist, nearest = min(((float(distances[name](d["txn"])), d["program"]) for d in drawn), key=lambda x: x[0])
                target(-dist, label=name)
                if state["failing"] is None:
                    elites.near_miss(name, dist, nearest)
            if failed:
                state["failing"] = txns
                raise _Mismatch(f"scoreboard mismatch on {ctx.unit.format_txn(failed[0].txn)}")

        # 2. one long-lived engine; its targeting phase starts after half its examples, so it
        #    is sized to the budget (an example averages (1 + max_sequence) / 2 transactions)
        mean_len = (1 + longest) / 2
        shrink = str(self.options.get("shrink", True)).lower() not in ("false", "0", "no")
        phases = tuple(Phase) if shrink else tuple(p for p in Phase if p.name not in ("shrink", "explain"))
        try:
            while not ctx.done:
                examples = max(10, math.ceil(ctx.budget_left / mean_len))
                test = settings(max_examples=examples, deadline=None, database=db, derandomize=False, phases=phases,
                                suppress_health_check=list(HealthCheck), print_blob=False)(
                    seed(ctx.cfg.seed * 100003 + self.stats["engines"])(given(seq_strategy)(prop)))
                self.stats["engines"] += 1
                try:
                    test()
                except _Mismatch:
                    self._write_reproducer(ctx, state["failing"])
                    return
                except Flaky as exc:
                    if state["failing"] is not None:  # the failure did not replay: report what was seen
                        self.stats["flaky"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                        self._write_reproducer(ctx, state["failing"])
                        return
                    # the engine's own replay disagreed (the run state changed under it): a new engine
                    self.stats["engine_restarts"] = self.stats.get("engine_restarts", 0) + 1
                    log.warning("hypothesis: engine ended on %s; starting a new one", type(exc).__name__)
        finally:
            self.stats["corpus_size"] = len(corpus.entries)
            corpus.save()

    @staticmethod
    def _uncovered_names(ctx) -> list[str]:
        return ctx.collector.uncovered()

    def _write_reproducer(self, ctx, minimal) -> None:
        self.stats["shrunk_reproducer"] = minimal
        run_dir = Path(ctx.cfg.run_dir)
        (run_dir / "hypothesis_reproducer.json").write_text(json.dumps(
            {"unit": ctx.unit.variant, "txns": minimal,
             "pretty": [ctx.unit.format_txn(t) for t in minimal]}, indent=2))
        (run_dir / "hypothesis_reproducer.jsonl").write_text(
            "".join(json.dumps({"txn": t}) + "\n" for t in minimal))
