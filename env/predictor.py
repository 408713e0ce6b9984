"""Prediction from observation: the predictor between the input monitors and the scoreboard.

The input monitors publish what the DUT accepted (``Observation`` beats) and the resets they
saw. The predictor groups each port's beats into a transaction's frame (``Unit.frame_ends``),
and once every input port holds a complete frame it decodes them (``Unit.decode``), predicts
the output beats from the *decoded* transaction and registers them with the scoreboard. The
stimulus side only says which transactions it submitted, in order (:meth:`submit`), so they
get their ids and so that what reached the DUT can be compared with what was meant: a bug in
``Unit.encode`` or in a driver is a stimulus mismatch, reported like an output mismatch.

A reset is observed, not assumed: when a monitor sees ``rst`` high, everything submitted and
not completed is dropped (partial frames, expectations in the scoreboard, and beats the
drivers have not offered yet, which they drop themselves by the reset epoch).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np
from pyuvm import uvm_subscriber

from mxdv.env.bulk import payload as P
from mxdv.env.bulk.batches import ExpectedBatch, ObservationBatch
from mxdv.env.bulk.layout import Layout
from mxdv.env.scoreboard import BitExactScoreboard
from mxdv.schema import TxnError
from mxdv.unit import Beat, Unit


@dataclass(frozen=True)
class Observation:
    """What a monitor saw at one clock edge: an accepted beat (``kind == "beat"``) or the
    first edge of a reset (``kind == "reset"``, ``beat`` None)."""

    prefix: str
    kind: str
    beat: Beat | None
    cycle: int


class Predictor(uvm_subscriber):
    def setup(self, unit: Unit, scoreboard: BitExactScoreboard,
              report_violation: Callable[[str], None]) -> "Predictor":
        self.unit = unit
        self.scoreboard = scoreboard
        self.report_violation = report_violation
        self.ports = [p.prefix for p in unit.input_ports]
        self._partial: dict[str, list[Beat]] = {p: [] for p in self.ports}
        self._frames: dict[str, deque[list[Beat]]] = {p: deque() for p in self.ports}
        self._submitted: deque[tuple[int, dict]] = deque()
        self._last_reset_cycle: int | None = None
        #: Ids dropped by the most recent observed reset (``UnitEnv.reset`` returns them).
        self.last_dropped: list[int] = []
        self.stimulus_mismatches = 0
        #: Bulk mode: expectations are registered without beats and predicted together by
        #: :meth:`resolve` (one ``Unit.predict_batch`` call), before their outputs are published.
        self.defer = False
        self._deferred: list = []
        #: Bulk mode's columnar path: (ids, Columns) of the batch submitted at once.
        self._submitted_batch = None
        return self

    def resolve(self) -> None:
        """Predict every deferred expectation in one ``Unit.predict_batch`` call."""
        if not self._deferred:
            return
        pending, self._deferred = self._deferred, []
        for exp, beats in zip(pending, self.unit.predict_batch([e.txn for e in pending])):
            exp.beats = beats

    # -- stimulus side ------------------------------------------------------------------
    def submit(self, txn_id: int, txn: dict) -> None:
        """A transaction handed to the drivers (ids increase in driving order)."""
        self._submitted.append((txn_id, txn))

    def submit_columns(self, ids: np.ndarray, cols) -> None:
        """Bulk mode's columnar path: a whole batch (``mxdv.columns.Columns``) handed to the
        harness at once; its inputs arrive as one :class:`ObservationBatch`."""
        if self._submitted or self._submitted_batch is not None:
            raise RuntimeError("predictor: a columnar batch submitted with transactions still unobserved")
        self._submitted_batch = (np.asarray(ids, dtype=np.int64), cols)

    @property
    def in_flight(self) -> int:
        """Submitted transactions not yet completed: not fully observed, or observed and
        waiting for their output beats."""
        batch = len(self._submitted_batch[0]) if self._submitted_batch is not None else 0
        return len(self._submitted) + batch + self.scoreboard.in_flight

    # -- monitor side -------------------------------------------------------------------
    def write(self, obs: Observation) -> None:
        if isinstance(obs, ObservationBatch):
            self._complete_batch(obs)
            return
        if obs.kind == "reset":
            self._reset(obs.cycle)
            return
        self._partial[obs.prefix].append(obs.beat)
        if self.unit.frame_ends(obs.prefix, obs.beat):
            self._frames[obs.prefix].append(self._partial[obs.prefix])
            self._partial[obs.prefix] = []
            self._complete(obs)

    def _complete(self, obs: Observation) -> None:
        while all(self._frames[p] for p in self.ports):
            frames = {p: self._frames[p].popleft() for p in self.ports}
            if not self._submitted:
                self.report_violation(
                    f"{obs.prefix}: input transaction accepted at cycle {obs.cycle} with nothing "
                    f"submitted (a driver sent beats of its own)")
                continue
            txn_id, meant = self._submitted.popleft()
            try:
                seen = self.unit.decode(frames)
                problem = _differences(meant, seen)
            except (ValueError, KeyError, IndexError) as exc:
                seen, problem = meant, f"input beats do not decode: {exc}"
            if problem:
                self.stimulus_mismatches += 1
                self.scoreboard.stimulus_mismatch(txn_id, meant, problem, obs.cycle)
            beats = None if self.defer else self.unit.predict(seen)
            exp = self.scoreboard.expect(txn_id, seen, beats, failed=bool(problem), meant=meant, cycle=obs.cycle)
            if self.defer:
                self._deferred.append(exp)

    def _complete_batch(self, obs: ObservationBatch) -> None:
        """The columnar path: decode, check against what was submitted and predict a whole
        batch with one ``Unit.decode_columns`` and one ``Unit.predict_columns`` call. Beats
        that do not decode are replayed through the per-beat path (its reports)."""
        if self._submitted_batch is None:
            raise RuntimeError("predictor: an observation batch arrived with no columnar batch submitted")
        ids, meant = self._submitted_batch
        self._submitted_batch = None
        layout = Layout.of(self.unit)
        n = obs.n
        cycles = obs.completed_at()
        try:
            if n != len(ids):
                raise ValueError(f"{n} transactions observed, {len(ids)} submitted")
            frames = {pl.port.prefix: (obs.beats[pl.port.prefix], P.unpack(pl, obs.payloads[pl.port.prefix]))
                      for pl in layout.inputs}
            seen = self.unit.decode_columns(frames, n)
        except (ValueError, KeyError, IndexError, TxnError):
            self._replay_beats(obs, ids, meant)
            return
        bad_fields = {f.name: (seen[f.name] != meant[f.name]).reshape(n, -1).any(axis=1) for f in meant.schema.fields}
        failed = np.zeros(n, dtype=bool)
        for mask in bad_fields.values():
            failed |= mask
        for i in np.flatnonzero(failed).tolist():
            names = [f for f, mask in bad_fields.items() if mask[i]]
            self.stimulus_mismatches += 1
            self.scoreboard.stimulus_mismatch(
                int(ids[i]), meant.rows([i])[0], "input beats differ from the submitted transaction (encode or "
                "driver bug) in field(s) " + ", ".join(names), int(cycles[i]))
        beats, fields = self.unit.predict_columns(seen)
        beats = np.asarray(beats, dtype=np.int64).reshape(n)
        expected = P.pack(layout.output, fields, int(beats.sum()))
        self.scoreboard.expect_batch(ExpectedBatch(ids, seen, meant, expected, beats, failed, cycles))

    def _replay_beats(self, obs: ObservationBatch, ids: np.ndarray, meant) -> None:
        """A batch the columnar path cannot take, through the per-beat path instead."""
        for tid, txn in zip(ids.tolist(), meant.rows()):
            self.submit(tid, txn)
        layout = Layout.of(self.unit)
        events = []
        for pl in layout.inputs:
            p = pl.port.prefix
            for cycle, beat in zip(obs.cycles[p].tolist(), P.beat_dicts(pl, obs.payloads[p])):
                events.append((cycle, pl.index, p, beat))
        events.sort(key=lambda e: (e[0], e[1]))
        for cycle, _, p, beat in events:
            self.write(Observation(p, "beat", beat, cycle))

    def _reset(self, cycle: int) -> None:
        if self._last_reset_cycle == cycle:  # another input monitor saw the same edge
            return
        self._last_reset_cycle = cycle
        dropped = [tid for tid, _ in self._submitted]
        if self._submitted_batch is not None:
            dropped += self._submitted_batch[0].tolist()
            self._submitted_batch = None
        self._submitted.clear()
        self._deferred.clear()
        for p in self.ports:
            self._partial[p] = []
            self._frames[p].clear()
        self.scoreboard.stats.dropped += len(dropped)  # flush() counts the ones it held
        self.last_dropped = sorted(self.scoreboard.flush() + dropped)


def _plain(v):
    """Lists all the way down (a strategy may hand in tuples or numpy arrays and scalars)."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _same(a, b) -> bool:
    if type(a) is type(b) and isinstance(a, (list, int)):  # plain values: compare directly
        try:
            return bool(a == b)
        except ValueError:  # numpy arrays inside the lists
            pass
    return _plain(a) == _plain(b)


def _differences(meant: dict, seen: dict) -> str:
    bad = [k for k in meant if not _same(seen.get(k), meant[k])]
    if not bad:
        return ""
    return ("input beats differ from the submitted transaction (encode or driver bug) in field(s) "
            + ", ".join(bad))
