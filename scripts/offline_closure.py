"""How fast a strategy's *generator* closes a unit's plan against the coverage model alone.

No RTL and no simulator: every transaction "passes" and is sampled by the unit's own coverage
model (``Unit.sample``); environment bins (stalls, resets, and content crossed with them) are
left out, since only a simulation hits them. A bin is covered at its goal (``Bin.at_least``).
A tool for strategy developers: minutes instead of hours per comparison. Closure numbers for
claims come from ``mxdv eval`` (simulation); label numbers from this script "coverage model only".

    python scripts/offline_closure.py --unit attention --strategies corner_random,hypothesis --seeds 5 --budget 400
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from mxdv.env.run_context import TxnResult
from mxdv.sequences.registry import get_strategy
from mxdv.unit import get_unit


@dataclass
class _Cfg:
    seed: int
    budget: int
    run_dir: str = "build/offline-closure"
    fresh: bool = True
    batch_size: int = 16
    stop_on_mismatch: bool = False


class _Collector:
    def __init__(self, ctx: "OfflineContext"):
        self.ctx = ctx

    def uncovered(self) -> list[str]:
        return [n for n in self.ctx.names if n not in self.ctx.covered]


class OfflineContext:
    """Enough of :class:`~mxdv.env.run_context.RunContext` for a strategy, without a simulator."""

    def __init__(self, unit, seed: int, budget: int):
        self.unit, self.cfg = unit, _Cfg(seed, budget)
        self.names = [b.name for g in unit.plan.groups if not g.environment for b in g.bins]
        self.covered: set[str] = set()
        #: hits per bin; a bin is covered at its goal (``Bin.at_least``)
        self.counts: dict[str, int] = {}
        self.goals = {b.name: b.at_least for b in unit.plan.bins}
        self.first_hit: dict[str, int] = {}
        self.submitted = 0
        self.closure_txns: int | None = None
        self.collector = _Collector(self)
        self.rng = np.random.default_rng([seed, 0x57A7])

    @property
    def budget_left(self) -> int:
        return max(0, self.cfg.budget - self.submitted)

    @property
    def closed(self) -> bool:
        return self.closure_txns is not None

    @property
    def done(self) -> bool:
        return self.budget_left == 0 or self.closed

    def uncovered(self):
        return [self.unit.plan.get(n) for n in self.collector.uncovered()]

    def coverage_percent(self) -> float:
        return 100.0 * len(self.covered) / len(self.names)

    def execute_now(self, txns) -> list[TxnResult]:
        out = []
        for t in list(txns)[: self.budget_left]:
            self.submitted += 1
            hit = set(self.unit.sample(t)) & set(self.names)
            for n in hit:
                self.counts[n] = self.counts.get(n, 0) + 1
            new = sorted(n for n in hit - self.covered if self.counts[n] >= self.goals[n])
            for n in new:
                self.first_hit[n] = self.submitted
            self.covered |= set(new)
            if self.closure_txns is None and len(self.covered) == len(self.names):
                self.closure_txns = self.submitted
            out.append(TxnResult(self.submitted, t, "pass", new))
        return out

    async def execute(self, txns) -> list[TxnResult]:
        return self.execute_now([self.unit.schema.normalize(t) for t in txns])


def run_one(unit, strategy: str, seed: int, budget: int, options: dict | None = None) -> OfflineContext:
    ctx = OfflineContext(unit, seed, budget)
    strat = get_strategy(strategy)(dict(options or {}))
    ctx.strategy = strat
    if hasattr(strat, "_run_blocking"):  # hypothesis: its search loop, with a blocking execute
        strat._run_blocking(ctx, ctx.execute_now)
    else:
        asyncio.run(strat.run(ctx))
    return ctx


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unit", required=True)
    p.add_argument("--strategies", default="random,corner_random,hypothesis")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--slowest", type=int, default=0, metavar="K",
                   help="also print, per strategy, the K bins with the latest median first hit")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy option, as for `mxdv run --option` (repeatable)")
    args = p.parse_args(argv)
    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--option {item!r}: expected KEY=VALUE")
        options[key] = value
    if args.seeds < 1 or args.budget < 1:
        p.error("--seeds and --budget must be >= 1")
    unit = get_unit(args.unit)
    print(f"{unit.variant}: coverage model only (no simulation), {args.seeds} seeds, budget {args.budget}")
    print("| strategy | seeds closed | txns to 100 % (median) | min..max | holes left (union) | s |")
    print("|---|---|---|---|---|---|")
    for strategy in args.strategies.split(","):
        t0 = time.monotonic()
        runs = [run_one(unit, strategy, s, args.budget, options) for s in range(1, args.seeds + 1)]
        closed = [r.closure_txns for r in runs if r.closure_txns]
        med = statistics.median([r.closure_txns or args.budget + 1 for r in runs])
        med_txt = f"{med:g}" if med <= args.budget else f"not within {args.budget}"
        span = f"{min(closed)}..{max(closed)}" if closed else "-"
        holes = sorted(set().union(*(set(r.names) - r.covered for r in runs)))
        print(f"| {strategy} | {len(closed)}/{len(runs)} | {med_txt} | {span} | {', '.join(holes) or '-'} | "
              f"{time.monotonic() - t0:.0f} |", flush=True)
        if args.slowest > 0:
            late = {n: statistics.median([r.first_hit.get(n, args.budget + 1) for r in runs]) for n in runs[0].names}
            worst = sorted(late.items(), key=lambda kv: -kv[1])[: args.slowest]
            print(f"  slowest bins ({strategy}): " + ", ".join(f"{n} {v:g}" for n, v in worst), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
