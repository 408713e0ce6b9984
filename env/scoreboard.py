"""Bit-exact scoreboard: compares every output beat with the reference model's prediction."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

from pyuvm import uvm_subscriber

from mxdv.env.bulk import payload as P
from mxdv.env.bulk.batches import OutputBatch
from mxdv.env.bulk.layout import Layout
from mxdv.unit import Beat, Unit, format_beat


@dataclass
class Expectation:
    txn_id: int
    txn: dict
    beats: list[Beat]
    matched: int = 0
    failed: bool = False
    meant: dict | None = None
    actual: list[Beat] = field(default_factory=list)
    #: the cycle its input frame completed (None: not known)
    cycle: int | None = None


@dataclass
class Mismatch:
    txn_id: int
    txn: dict
    beat_index: int
    expected: Beat | None
    actual: Beat
    report: str = ""


def _exact_sum(x: np.ndarray) -> int:
    """The exact sum of finite float64 values, as an integer in units of 2^-1126 (below the
    smallest subnormal's lowest bit), so a sum does not depend on how its terms were grouped."""
    mant, exp = np.frexp(x)
    m = np.ldexp(mant, 53).astype(np.int64)               # x = m * 2^(exp - 53), |m| < 2^53
    shift = exp.astype(np.int64) - 53 + 1126
    total = 0
    for sh in np.unique(shift).tolist():
        group = m[shift == sh]                             # int64 halves: no overflow below 2^37 terms
        total += ((int((group >> 26).sum()) << 26) + int((group & ((1 << 26) - 1)).sum())) << sh
    return total


@dataclass
class GoldenError:
    """Error of the unit's (bit-exact) outputs against the float64 golden, over a run.

    The sum behind the mean is exact, so a run's figures do not depend on how its outputs were
    grouped (one transaction at a time, or a bulk batch at once)."""
    elements: int = 0
    exact_sum: int = 0
    max_abs: float = 0.0
    #: largest abs_error / bound over elements with a finite bound (<= 1 when the bound holds)
    max_bound_ratio: float = 0.0
    over_bound: int = 0

    @property
    def sum_abs(self) -> float:
        return float(Fraction(self.exact_sum, 1 << 1126))

    def add(self, err: np.ndarray, bound: np.ndarray) -> None:
        err = np.asarray(err, dtype=np.float64).ravel()
        bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), err.shape).ravel()
        if not err.size:
            return
        if not np.isfinite(err).all():
            raise ValueError("golden error: the unit's golden_error returned a non-finite error")
        self.elements += int(err.size)
        self.exact_sum += _exact_sum(err)
        self.max_abs = max(self.max_abs, float(err.max()))
        fin = np.isfinite(bound)
        if fin.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(bound[fin] > 0, err[fin] / bound[fin], np.where(err[fin] > 0, np.inf, 0.0))
            self.max_bound_ratio = max(self.max_bound_ratio, float(ratio.max()))
            self.over_bound += int((err[fin] > bound[fin]).sum())

    def as_dict(self) -> dict | None:
        if not self.elements:
            return None
        return {"elements": self.elements, "max_abs": self.max_abs,
                "mean_abs": float(Fraction(self.exact_sum, self.elements << 1126)),
                "max_bound_ratio": self.max_bound_ratio, "over_bound": self.over_bound}


@dataclass
class ScoreboardStats:
    checked: int = 0
    passed: int = 0
    dropped: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    golden: GoldenError = field(default_factory=GoldenError)


class BitExactScoreboard(uvm_subscriber):
    """Output beats arrive in order; each is compared to the oldest pending expectation.

    ``expect`` registers a transaction's predicted beats (the predictor does, once the input
    monitors have seen the whole transaction enter the DUT). ``flush``
    (called on reset) drops everything in flight: those transactions are neither passed nor
    failed, and any beat arriving afterwards with nothing pending is an error (stale output).
    ``on_done(txn_id, ok, observed)`` is called when a transaction's last beat has been checked
    (``observed``: the transaction as the input monitors saw it enter the DUT).
    """

    def setup(self, unit: Unit, describe_replay: Callable[[], str]) -> "BitExactScoreboard":
        self.unit = unit
        self.describe_replay = describe_replay
        self.pending: deque[Expectation] = deque()
        self.stats = ScoreboardStats()
        self.on_done: Callable[[int, bool, dict], None] | None = None
        #: The columnar path: ``on_done_batch(ids, ok, observed Columns, stalled)`` once per
        #: batch (without it, ``on_done`` is called per transaction).
        self.on_done_batch: Callable | None = None
        #: The columnar path's expectation (an ``ExpectedBatch``) waiting for its output batch.
        self.pending_batch = None
        return self

    def expect_batch(self, exp) -> None:
        """Register a whole batch's predicted output (bulk mode's columnar path)."""
        if self.pending_batch is not None:
            raise RuntimeError("scoreboard: an expectation batch registered while another is pending")
        self.pending_batch = exp

    def expect(self, txn_id: int, txn: dict, beats: list[Beat], failed: bool = False,
               meant: dict | None = None, cycle: int | None = None) -> Expectation:
        """Register a transaction's predicted beats (``txn``: what the DUT was given, from which
        they were predicted; ``meant``: what the strategy submitted, shown in reports and
        replayed; ``failed``: already failed, e.g. a stimulus mismatch)."""
        exp = Expectation(txn_id, txn, beats, failed=failed, meant=meant if meant is not None else txn, cycle=cycle)
        self.pending.append(exp)
        return exp

    def stimulus_mismatch(self, txn_id: int, meant: dict, problem: str, cycle: int) -> None:
        """The DUT's input beats were not the encoding of the submitted transaction."""
        m = Mismatch(txn_id, meant, -1, None, {})
        m.report = "\n".join([
            f"MISMATCH (stimulus) in {self.unit.variant}, transaction #{txn_id}, completed at cycle {cycle}",
            f"  {problem}",
            f"  submitted: {self.unit.format_txn(meant)}",
            f"  replay:   {self.describe_replay()}",
        ])
        self.stats.mismatches.append(m)
        self.logger.error(m.report)

    def flush(self) -> list[int]:
        dropped = [e.txn_id for e in self.pending]
        if self.pending_batch is not None:
            dropped += self.pending_batch.ids.tolist()
            self.pending_batch = None
        self.stats.dropped += len(dropped)
        self.pending.clear()
        return dropped

    @property
    def in_flight(self) -> int:
        return len(self.pending) + (len(self.pending_batch.ids) if self.pending_batch is not None else 0)

    @property
    def oldest_pending(self) -> int | None:
        """Id of the transaction whose output beats come next (None when nothing is pending)."""
        return self.pending[0].txn_id if self.pending else None

    def write(self, beat: Beat) -> None:
        if isinstance(beat, OutputBatch):
            self._check_batch(beat)
            return
        if not self.pending:
            self._mismatch(Mismatch(-1, {}, 0, None, beat), "output beat with nothing in flight (stale or spurious)")
            return
        exp = self.pending[0]
        want = exp.beats[exp.matched]
        exp.actual.append(beat)
        if beat != want:
            exp.failed = True
            self._mismatch(Mismatch(exp.txn_id, exp.meant, exp.matched, want, beat), "output differs from the reference model")
        exp.matched += 1
        if exp.matched == len(exp.beats):
            self.pending.popleft()
            self.stats.checked += 1
            if not exp.failed:
                self.stats.passed += 1  # txn == meant here (else a stimulus mismatch failed it)
                measured = self.unit.golden_error(exp.txn, exp.actual)
                if measured is not None:
                    self.stats.golden.add(*measured)
            if self.on_done is not None:
                self.on_done(exp.txn_id, not exp.failed, exp.txn)

    def _check_batch(self, out: OutputBatch) -> None:
        """The columnar path: every output beat of a batch against its expectation at once.
        A batch whose beat count differs from the prediction (or that arrives with per-beat
        expectations pending) is checked beat by beat instead, with the per-beat reports."""
        exp, self.pending_batch = self.pending_batch, None
        port = Layout.of(self.unit).output
        if exp is None or self.pending or out.payload.shape[0] != exp.payload.shape[0]:
            if exp is not None:
                self._materialize(exp)
            for beat in P.beat_dicts(port, out.payload):
                self.write(beat)
            return
        n = len(exp.ids)
        first = P.frame_starts(exp.beats)
        owner = np.repeat(np.arange(n), exp.beats)
        beat_ok = (out.payload == exp.payload).all(axis=1)
        bad = np.flatnonzero(~beat_ok)
        failed = exp.failed.copy()
        failed[owner[bad]] = True
        if bad.size:
            want, got = P.beat_dicts(port, exp.payload[bad]), P.beat_dicts(port, out.payload[bad])
            for k, w, g in zip(bad.tolist(), want, got):
                i = int(owner[k])
                self._mismatch(Mismatch(int(exp.ids[i]), exp.meant.rows([i])[0], k - int(first[i]), w, g),
                               "output differs from the reference model")
        self.stats.checked += n
        self.stats.passed += int(n - failed.sum())
        if type(self.unit).golden_error_columns is not Unit.golden_error_columns:
            keep = np.flatnonzero(~failed)
            if keep.size:
                fields = P.unpack(port, out.payload[np.repeat(~failed, exp.beats)])
                measured = self.unit.golden_error_columns(exp.seen.take(keep), exp.beats[keep], fields)
                if measured is not None:
                    self.stats.golden.add(*measured)
        elif type(self.unit).golden_error is not Unit.golden_error:
            views = exp.seen.views()
            for i in np.flatnonzero(~failed).tolist():
                txn = views[i]
                measured = self.unit.golden_error(txn, P.beat_dicts(port, out.payload[first[i]:first[i + 1]]))
                if measured is not None:
                    self.stats.golden.add(*measured)
        stalled = np.zeros(n, dtype=bool)
        stalled[owner[out.stalls > 0]] = True
        if self.on_done_batch is not None:
            self.on_done_batch(exp.ids, ~failed, exp.seen, stalled)
        elif self.on_done is not None:
            for tid, ok, txn in zip(exp.ids.tolist(), (~failed).tolist(), exp.seen.rows()):
                self.on_done(tid, ok, txn)

    def _materialize(self, exp) -> None:
        """An expectation batch as per-transaction expectations (for the per-beat check)."""
        beats = P.beat_dicts(Layout.of(self.unit).output, exp.payload)
        first = P.frame_starts(exp.beats).tolist()
        for i, (seen, meant) in enumerate(zip(exp.seen.rows(), exp.meant.rows())):
            self.pending.append(Expectation(int(exp.ids[i]), seen, beats[first[i]:first[i + 1]],
                                            failed=bool(exp.failed[i]), meant=meant, cycle=int(exp.cycles[i])))

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
