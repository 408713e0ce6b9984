"""Bit-exact scoreboard: compares every output beat with the reference model's prediction."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from pyuvm import uvm_subscriber

from mxdv.unit import Beat, Unit, format_beat


@dataclass
class Expectation:
    txn_id: int
    txn: dict
    beats: list[Beat]
    matched: int = 0
    failed: bool = False


@dataclass
class Mismatch:
    txn_id: int
    txn: dict
    beat_index: int
    expected: Beat | None
    actual: Beat
    report: str = ""


@dataclass
class ScoreboardStats:
    checked: int = 0
    passed: int = 0
    dropped: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)


class BitExactScoreboard(uvm_subscriber):
    """Output beats arrive in order; each is compared to the oldest pending expectation.

    ``expect`` registers a transaction's predicted beats before it is driven. ``flush``
    (called on reset) drops everything in flight: those transactions are neither passed nor
    failed, and any beat arriving afterwards with nothing pending is an error (stale output).
    ``on_done(txn_id, ok)`` is called when a transaction's last beat has been checked.
    """

    def setup(self, unit: Unit, describe_replay: Callable[[], str]) -> "BitExactScoreboard":
        self.unit = unit
        self.describe_replay = describe_replay
        self.pending: deque[Expectation] = deque()
        self.stats = ScoreboardStats()
        self.on_done: Callable[[int, bool], None] | None = None
        return self

    def expect(self, txn_id: int, txn: dict, beats: list[Beat]) -> None:
        self.pending.append(Expectation(txn_id, txn, beats))

    def flush(self) -> list[int]:
        dropped = [e.txn_id for e in self.pending]
        self.stats.dropped += len(dropped)
        self.pending.clear()
        return dropped

    @property
    def in_flight(self) -> int:
        return len(self.pending)

    def write(self, beat: Beat) -> None:
        if not self.pending:
            self._mismatch(Mismatch(-1, {}, 0, None, beat), "output beat with nothing in flight (stale or spurious)")
            return
        exp = self.pending[0]
        want = exp.beats[exp.matched]
        if beat != want:
            exp.failed = True
            self._mismatch(Mismatch(exp.txn_id, exp.txn, exp.matched, want, beat), "output differs from the reference model")
        exp.matched += 1
        if exp.matched == len(exp.beats):
            self.pending.popleft()
            self.stats.checked += 1
            if not exp.failed:
                self.stats.passed += 1
            if self.on_done is not None:
                self.on_done(exp.txn_id, not exp.failed)

    def _mismatch(self, m: Mismatch, what: str) -> None:
        port = self.unit.output_port
        diff = ""
        if m.expected is not None:
            diff = "  differing fields: " + ", ".join(k for k in m.expected if m.expected.get(k) != m.actual.get(k))
        m.report = "\n".join([
            f"MISMATCH ({what}) in {self.unit.variant}, transaction #{m.txn_id}, beat {m.beat_index}",
            f"  input:    {self.unit.format_txn(m.txn) if m.txn else '<none>'}",
            f"  expected: {format_beat(m.expected, port)}",
            f"  actual:   {format_beat(m.actual, port)}",
            diff,
            f"  replay:   {self.describe_replay()}",
        ])
        self.stats.mismatches.append(m)
        self.logger.error(m.report)
