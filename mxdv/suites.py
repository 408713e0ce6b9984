"""Regression suites: which unit variants, strategies, seeds and budgets a suite runs.

Suites are built from what each unit declares (``Unit.regress_variants`` and
``Unit.budgets``), so adding a unit adds it to every suite without touching this file.
A suite's strategies can be replaced (``jobs(strategies=...)``, ``mxdv regress --strategies``),
so plugin strategies enter any suite; a strategy without an entry in ``Unit.budgets`` runs
with ``Unit.default_budget``. Budgets are per strategy: the closure table compares strategies by the transactions they
need to close the plan, so ``random`` gets a budget far above what the best strategy needs;
when it still does not close, that is the measured result.
"""
from __future__ import annotations

from dataclasses import dataclass, field

STRATEGIES = ("random", "corner_random", "constrained", "hypothesis", "llm")


@dataclass(frozen=True)
class Job:
    unit: str
    strategy: str
    seed: int
    budget: int
    sim: str
    test: str = "StrategyRun"
    options: dict = field(default_factory=dict)
    #: End the job at its first mismatch (bug hunting: a caught bug stops costing time).
    stop_on_mismatch: bool = False
    #: "cycle" or "bulk" (``mxdv.runs.resolve_mode``; ``mxdv regress --mode``).
    mode: str = "cycle"

    @property
    def name(self) -> str:
        return f"{self.unit}.{self.strategy}.{self.test}.s{self.seed}"


@dataclass(frozen=True)
class Suite:
    name: str
    doc: str
    seeds: int
    strategies: tuple = STRATEGIES
    tests: tuple = ("StrategyRun",)
    budget_scale: float = 1.0
    sim: str = "verilator"
    #: False: every job spends its whole budget (mxdv regress --no-stop-at-closure).
    stop_at_closure: bool = True
    #: Transactions per job, whatever the coverage (overrides the unit budgets; implies
    #: stop_at_closure False).
    fixed_budget: int | None = None
    #: Simulation mode (None: bulk on Verilator, cycle elsewhere; ``mxdv regress --mode``).
    mode: str | None = None

    def jobs(self, units=None, strategies=None) -> list[Job]:
        """The suite's jobs; ``strategies`` (any registered names, plugins included) replaces
        the suite's own list."""
        from mxdv.unit import get_unit, unit_names

        out = []
        for name in units or unit_names():
            unit = get_unit(name)
            for variant in (unit.variant, *unit.regress_variants):
                for strategy in strategies or self.strategies:
                    budget = max(1, int(unit.budget_for(strategy) * self.budget_scale))
                    for test in self.tests:
                        for seed in range(1, self.seeds + 1):
                            out.append(Job(variant, strategy, seed, budget, self.sim, test))
        return out


SUITES = {
    "smoke": Suite("smoke", "Every unit variant x the five strategies x 5 seeds, each until the plan "
                   "closes or the budget is spent: the nightly regression and the closure tables.", seeds=5),
    "smoke100": Suite("smoke100", "The smoke suite's random and constrained jobs at 100x their budgets, in "
                      "bulk mode, every transaction run (no stop at closure): bulk mode's throughput at "
                      "regression scale (README, Bulk mode).", seeds=5, strategies=("random", "constrained"),
                      budget_scale=100.0, stop_at_closure=False, mode="bulk"),
    "quick": Suite("quick", "One seed per strategy at 5% of the budgets: a quick sanity check.",
                   seeds=1, budget_scale=0.05),
    "stress": Suite("stress", "Environment stress per unit: heavy backpressure and resets in traffic.",
                    seeds=3, strategies=("constrained",), tests=("HeavyBackpressure", "ResetInTraffic"),
                    budget_scale=0.5),
}


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r} (--suite); known: {', '.join(sorted(SUITES))}")
    return SUITES[name]
