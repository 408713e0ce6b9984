"""Coverage plans: every bin with what it means, why it matters and, optionally, how to hit it.

A unit's plan is written once, in ``coverage/<unit>/model.py``, as a :class:`CoveragePlan`.
``coverage/<unit>/plan.md`` is rendered from it (``mxdv plan --unit NAME``; a test keeps the
two in step), so the written plan and the implemented model cannot drift apart.

Bins are grouped; a group becomes one cocotb-coverage ``CoverPoint`` (see ``collector.py``).
Every unit's plan also gets the :func:`protocol_group` bins, which the environment (not the
stimulus) hits: output stalls of several lengths, back-to-back transfers, reset in traffic.

A bin may need more than one hit (``Bin.at_least``, default 1) where one hit proves little
(rounding ties, saturation); closure is every bin at its goal. A unit may cross classes of
its content bins with what the environment did to the transaction (:func:`env_cross_group`:
the output stalled while its result waited, or it was the first transaction after a reset);
the run context samples those crosses from each checked transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterable, Mapping

import numpy as np

#: A recipe producing a transaction likely to hit a bin. Only the ``constrained`` strategy (and
#: the reachability tests) may use it: calling one from a strategy whose ``reads_hints`` is
#: False raises :class:`HintNotAllowed`. Takes a numpy Generator, returns a transaction dict.
Hint = Callable[[np.random.Generator], dict]


#: How far a transaction is from hitting a bin: 0 when it hits, larger when further away.
#: Coverage-directed strategies (``hypothesis``) climb toward the nearest uncovered bins.
Distance = Callable[[dict], float]


class HintNotAllowed(RuntimeError):
    """A strategy that claims to find its own way (``llm``, ``hypothesis``) used a plan hint."""


class _HintPolicy:
    """Whether plan hints may be called in this process. The test bench sets it from the running
    strategy's ``reads_hints`` before the strategy starts; only ``constrained`` (and user
    strategies that declare it) may read hints."""

    allowed = True
    strategy = ""


HINT_POLICY = _HintPolicy()


def _guarded(name: str, hint: Hint) -> Hint:
    def call(rng):
        if not HINT_POLICY.allowed:
            raise HintNotAllowed(f"strategy {HINT_POLICY.strategy!r} called the plan hint of bin "
                                 f"{name!r}; only strategies with reads_hints = True may")
        return hint(rng)
    call.__wrapped__ = hint
    return call


@dataclass(frozen=True)
class Bin:
    name: str
    meaning: str
    why: str
    hint: Hint | None = field(default=None, compare=False, repr=False)
    distance: Distance | None = field(default=None, compare=False, repr=False)
    #: Hits this bin needs before it counts as covered (closure = every bin at its goal).
    at_least: int = 1
    #: For a bin of an :func:`env_cross_group`: the content class and environment condition.
    env_cross: "EnvCross | None" = None

    def __post_init__(self) -> None:
        if not isinstance(self.at_least, int) or self.at_least < 1:
            raise ValueError(f"bin {self.name!r}: at_least must be an integer >= 1, got {self.at_least!r}")
        if self.hint is not None and not hasattr(self.hint, "__wrapped__"):
            object.__setattr__(self, "hint", _guarded(self.name, self.hint))


#: What the environment did to a transaction, as the run context observes it.
ENV_CONDITIONS = {
    "stalled": "its output was stalled (valid, not ready) before it was accepted",
    "after_reset": "it was one of the first 4 transactions driven after a reset (within the pipeline's depth)",
}


@dataclass(frozen=True)
class EnvCross:
    """A content class (any of ``members``, content bins of the plan) crossed with an
    environment condition (a key of :data:`ENV_CONDITIONS`)."""

    klass: str
    members: tuple[str, ...]
    condition: str

    def __post_init__(self) -> None:
        if self.condition not in ENV_CONDITIONS:
            raise ValueError(f"env cross {self.klass!r}: unknown condition {self.condition!r}; "
                             f"known: {', '.join(ENV_CONDITIONS)}")
        if not self.members:
            raise ValueError(f"env cross {self.klass!r}: members is empty")


@dataclass(frozen=True)
class BinGroup:
    name: str
    doc: str
    bins: tuple[Bin, ...]
    #: True for bins hit by the environment (stalls, resets), not by transaction contents.
    environment: bool = False


@dataclass(frozen=True)
class CoveragePlan:
    unit: str
    intro: str
    groups: tuple[BinGroup, ...]

    def __post_init__(self) -> None:
        names = [b.name for g in self.groups for b in g.bins]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"plan {self.unit}: duplicate bin names {sorted(dup)}")
        for b in self.bins:
            if b.env_cross is not None:
                missing = set(b.env_cross.members) - set(names)
                if missing:
                    raise ValueError(f"plan {self.unit}: bin {b.name!r} crosses unknown bins {sorted(missing)}")

    def goal(self, bin_name: str) -> int:
        return self.get(bin_name).at_least

    def env_cross_hits(self, content_hits: Iterable[str], conditions: Iterable[str]) -> set[str]:
        """The :func:`env_cross_group` bins a transaction hits: its content bins, crossed with
        the environment conditions it saw."""
        hit, cond = set(content_hits), set(conditions)
        return {b.name for b in self._env_cross_bins if b.env_cross.condition in cond
                and hit.intersection(b.env_cross.members)}

    @cached_property
    def _env_cross_bins(self) -> tuple[Bin, ...]:
        return tuple(b for b in self._bins if b.env_cross is not None)

    @cached_property
    def _bins(self) -> tuple[Bin, ...]:
        # the plan is frozen (tuples all the way down), so the flattened views are computed once
        return tuple(b for g in self.groups for b in g.bins)

    @cached_property
    def _index(self) -> dict[str, Bin]:
        return {b.name: b for b in self._bins}

    @property
    def bins(self) -> list[Bin]:
        return list(self._bins)

    @property
    def bin_names(self) -> list[str]:
        return list(self._index)

    @cached_property
    def bin_name_set(self) -> frozenset[str]:
        return frozenset(self._index)

    def group_of(self, bin_name: str) -> BinGroup:
        for g in self.groups:
            if any(b.name == bin_name for b in g.bins):
                return g
        raise KeyError(bin_name)

    def get(self, bin_name: str) -> Bin:
        return self._index[bin_name]

    def to_markdown(self) -> str:
        lines = [f"# Coverage plan: `{self.unit}`", "",
                 "<!-- Rendered from the model by `mxdv plan`; edit the model, not this file. -->", "",
                 self.intro.strip(), ""]
        total = len(self.bins)
        multi = [b for b in self.bins if b.at_least > 1]
        if multi:
            lines.append(f"{total} bins in {len(self.groups)} groups. Closure = every bin hit at its goal: "
                         f"once, except {len(multi)} bins whose goal (column `goal`) is more hits.")
        else:
            lines.append(f"{total} bins in {len(self.groups)} groups. Closure = every bin hit at least once.")
        lines.append("")
        for g in self.groups:
            origin = ("hit by transaction contents crossed with the environment" if any(b.env_cross for b in g.bins)
                      else "hit by the environment" if g.environment else "hit by transaction contents")
            goals = any(b.at_least > 1 for b in g.bins)
            lines += [f"## `{g.name}` ({len(g.bins)} bins, {origin})", "", g.doc.strip(), "",
                      "| bin | what it means | why it matters |" + (" goal |" if goals else ""),
                      "|---|---|---|" + ("---|" if goals else "")]
            for b in g.bins:
                lines.append(f"| `{b.name}` | {b.meaning} | {b.why} |" + (f" {b.at_least} |" if goals else ""))
            lines.append("")
        return "\n".join(lines)


#: Output stall lengths (consecutive cycles with out_valid && !out_ready), binned.
STALL_BINS = ((1, 1), (2, 3), (4, 7), (8, 31))


def stall_bin(length: int) -> str | None:
    for lo, hi in STALL_BINS:
        if lo <= length <= hi:
            return f"protocol.stall_{lo}" if lo == hi else f"protocol.stall_{lo}_{hi}"
    return "protocol.stall_long" if length > STALL_BINS[-1][1] else None


def protocol_group() -> BinGroup:
    stall_bins = []
    for lo, hi in STALL_BINS:
        name = stall_bin(lo)
        span = f"{lo} cycle" if lo == hi else f"{lo} to {hi} cycles"
        stall_bins.append(Bin(name, f"an output beat held (valid, not ready) for {span}",
                              "data must stay stable and nothing be lost or duplicated while the "
                              "receiver stalls; pipelines fail differently at different depths"))
    return BinGroup(
        "protocol",
        "Hit by the environment: the sink's random backpressure, the driver's idle cycles and "
        "the reset injector. Every unit's plan ends with this group.",
        tuple(stall_bins) + (
            Bin("protocol.back_to_back", "two input beats accepted in consecutive cycles",
                "the steady-state path (no bubbles) is where pipeline hazards show"),
            Bin("protocol.reset_in_traffic", "reset asserted while transactions are in flight",
                "nothing stale may come out after reset; in-flight work must be discarded"),
        ),
        environment=True,
    )


def env_cross_group(name: str, doc: str, classes: Iterable[tuple[str, str, tuple[str, ...], Hint | None]],
                    conditions: Iterable[str] = tuple(ENV_CONDITIONS)) -> BinGroup:
    """Content classes crossed with environment conditions: for each ``(class, words,
    member bins, hint)`` and condition, a bin ``xenv.<class>.<condition>`` hit by a checked
    transaction in the class (any member bin) that saw the condition. The hint makes a
    transaction of the class; the environment's backpressure and resets supply the condition."""
    bins = []
    for klass, words, members, hint in classes:
        for cond in conditions:
            cross = EnvCross(klass, tuple(members), cond)
            bins.append(Bin(f"xenv.{klass}.{cond}", f"{words}, and {ENV_CONDITIONS[cond]}",
                            {"stalled": "the result must survive the output being held: a stall "
                                        "must not corrupt or reorder a corner-case result",
                             "after_reset": "a corner case right after reset: state the reset "
                                            "must clear (pipeline registers, flags) shows here"}[cond],
                            hint, env_cross=cross))
    return BinGroup(name, doc, tuple(bins), environment=True)


def any_of(*hints):
    """A hint ``hint(rng, ctx)`` that makes its transaction with one of ``hints``, chosen at random."""
    return lambda rng, ctx: hints[int(rng.integers(len(hints)))](rng, ctx)


def env_cross_plan_group(classes, ctx, broad_words: str, doc: str) -> BinGroup:
    """A unit plan's ``env_cross`` group: every content class of ``classes`` (``(class, words,
    member bins, hint(rng, ctx))``) crossed with a stalled output, and one broad class of all
    their members (``broad_words``) crossed with coming right after a reset (resets are rare in a
    run, so one class per unit). ``ctx`` is what the unit's hints take (geometry, block size)."""
    bind = lambda h: (lambda rng: h(rng, ctx))  # noqa: E731
    stalled = [(k, w, m, bind(h)) for k, w, m, h in classes]
    members = tuple(b for _, _, m, _ in classes for b in m)
    broad = [("corner", broad_words, members, bind(any_of(*(h for _, _, _, h in classes))))]
    bins = (env_cross_group("env_cross", "", stalled, conditions=("stalled",)).bins
            + env_cross_group("env_cross", "", broad, conditions=("after_reset",)).bins)
    return BinGroup("env_cross", doc, bins, environment=True)


def covered(plan: CoveragePlan, hits: dict[str, int], bin_name: str) -> bool:
    """Whether a bin is at its goal (``Bin.at_least`` hits)."""
    return hits.get(bin_name, 0) >= plan.goal(bin_name)


def uncovered(plan: CoveragePlan, hits: dict[str, int]) -> list[Bin]:
    return [b for b in plan.bins if hits.get(b.name, 0) < b.at_least]


def percent(plan: CoveragePlan, hits: dict[str, int]) -> float:
    bins = plan.bins
    return 100.0 * sum(1 for b in bins if hits.get(b.name, 0) >= b.at_least) / len(bins)


def check_hits(plan: CoveragePlan, hit_names: Iterable[str]) -> set[str]:
    """Validate that a model only reports bins of its plan (a typo would never close)."""
    hit = set(hit_names)
    unknown = hit - plan.bin_name_set
    if unknown:
        raise KeyError(f"coverage model of {plan.unit} reported unknown bins {sorted(unknown)}")
    return hit


def hit_matrix(plan: CoveragePlan, hit_sets: Iterable[Iterable[str]]) -> tuple[tuple[str, ...], np.ndarray]:
    """Samples given as sets of bin names (each checked with :func:`check_hits`) as (the
    plan's bin names, bool matrix [samples, bins]): the form ``Unit.sample_columns`` returns
    and ``CoverageCollector.sample_matrix`` takes."""
    names = tuple(plan.bin_names)
    col = {n: j for j, n in enumerate(names)}
    rows = [[col[n] for n in check_hits(plan, hs)] for hs in hit_sets]
    matrix = np.zeros((len(rows), len(names)), dtype=bool)
    for i, js in enumerate(rows):
        matrix[i, js] = True
    return names, matrix


def bin_matrix(plan: CoveragePlan, columns: Mapping[str, Any], n: int) -> tuple[tuple[str, ...], np.ndarray]:
    """A vectorised model's ``{bin name: bool [n]}`` (bins it leaves out: not hit) as the
    (names, matrix) of :func:`hit_matrix`; unknown names are rejected as by :func:`check_hits`."""
    names = tuple(plan.bin_names)
    check_hits(plan, columns)
    col = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((n, len(names)), dtype=bool)
    for name, hit in columns.items():
        matrix[:, col[name]] = np.asarray(hit, dtype=bool)
    return names, matrix
