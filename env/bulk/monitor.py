"""The batch monitor: reads a finished batch's captures and publishes them like cycle mode's
monitors do: input beats and resets as :class:`~mxdv.env.predictor.Observation` on ``obs_ap``
(to the predictor), output beats on ``ap`` (to the scoreboard).

Between two resets the input and the output streams are independent (the scoreboard matches
outputs to expectations in order), so each reset-free segment is published inputs first,
then one vectorised prediction of the segment (``Predictor.resolve``), then its outputs. An
output beat captured before the input of the transaction it is matched to had completed is
reported as a violation, as cycle order would have shown it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from pyuvm import uvm_analysis_port, uvm_component

from mxdv.env.bulk import layout as L
from mxdv.env.bulk.batches import ObservationBatch, OutputBatch
from mxdv.env.bulk.channels import Channels
from mxdv.env.predictor import Observation
from mxdv.unit import Beat, Unit


@dataclass
class BatchStatus:
    reason: int
    cycles: int
    out_beats: int
    resets: int
    in_beats: dict[str, int]

    @property
    def reason_text(self) -> str:
        return L.REASONS.get(self.reason, f"unknown ({self.reason})")


@dataclass
class Captured:
    """One batch's captures, decoded: per input port [(cycle, txn, stall, beat)], outputs
    [(cycle, stall, beat)], reset cycles."""
    inputs: dict[str, list[tuple[int, int, int, Beat]]] = field(default_factory=dict)
    outputs: list[tuple[int, int, Beat]] = field(default_factory=list)
    resets: list[int] = field(default_factory=list)


def unpack(pl: L.PortLayout, words: np.ndarray) -> list[Beat]:
    """[n, words] payload words -> beats ({field: int})."""
    offsets = pl.offsets()
    raw = np.ascontiguousarray(words, dtype="<u4")
    out = []
    for row in raw:
        v = int.from_bytes(row.tobytes(), "little")
        out.append({name: (v >> off) & ((1 << w) - 1) for name, off, w in offsets})
    return out


class BatchMonitor(uvm_component):
    def build_phase(self) -> None:
        self.ap = uvm_analysis_port("ap", self)
        self.obs_ap = uvm_analysis_port("obs_ap", self)

    def setup(self, unit: Unit, state, scoreboard, predictor) -> "BatchMonitor":
        self.unit, self.state, self.scoreboard, self.predictor = unit, state, scoreboard, predictor
        self.layout = L.Layout.of(unit)
        self.cycle_base = 0  # cycles of the batches before, so stream stats count run cycles
        self.stats = {pl.port.prefix: {"accepted": 0, "refused_cycles": 0, "first_cycle": None, "last_cycle": None}
                      for pl in (*self.layout.inputs, self.layout.output)}
        return self

    def read_status(self, ch: Channels) -> BatchStatus:
        st = ch._arrays[L.STATUS]
        n = len(L.STATUS_NAMES)
        return BatchStatus(int(st[0]), int(st[1]), int(st[2]), int(st[3]),
                           {pl.port.prefix: int(st[n + pl.index]) for pl in self.layout.inputs})

    def read(self, ch: Channels, status: BatchStatus) -> Captured:
        cap = Captured()
        for pl in self.layout.inputs:
            n = status.in_beats[pl.port.prefix]
            rec = ch._arrays[pl.in_cap].reshape(-1, pl.cap_record)[:n]
            beats = unpack(pl, rec[:, 3:])
            cap.inputs[pl.port.prefix] = list(zip(rec[:, 0].tolist(), rec[:, 1].tolist(), rec[:, 2].tolist(), beats))
        out = self.layout.output
        rec = ch._arrays[L.OUT_CAP].reshape(-1, out.cap_record)[: status.out_beats]
        cap.outputs = list(zip(rec[:, 0].tolist(), rec[:, 1].tolist(), unpack(out, rec[:, 2:])))
        cap.resets = ch._arrays[L.RESETS][: status.resets].tolist()
        return cap

    def publish(self, cap: Captured, submit: Callable[[int], None], on_reset: Callable[[list[int]], None]) -> None:
        """Publish the captures in reset-free segments. ``submit(k)`` is called before the
        first beat of the batch's transaction ``k`` is published (the predictor pairs beats
        with submitted transactions in order); ``on_reset(ids)`` after each reset with the
        transaction ids it dropped."""
        first_port = self.layout.inputs[0].port.prefix
        out_prefix = self.layout.output.port.prefix
        bounds = [*cap.resets, float("inf")]
        submitted: set[int] = set()
        i_in = {p: 0 for p in cap.inputs}
        i_out = 0
        last_in_cycle = {p: -2 for p in cap.inputs}
        for seg_end in bounds:
            events = []
            for p, recs in cap.inputs.items():
                while i_in[p] < len(recs) and recs[i_in[p]][0] < seg_end:
                    events.append((recs[i_in[p]][0], p, recs[i_in[p]]))
                    i_in[p] += 1
            events.sort(key=lambda e: e[0])  # stable: port order within a cycle
            for cycle, p, (_, txn, stall, beat) in events:
                if txn not in submitted:
                    submitted.add(txn)
                    submit(txn)
                self._count(p, cycle, stall)
                if p == first_port and cycle == last_in_cycle[p] + 1:
                    self.state.stream_event(p, "back_to_back", 1)
                last_in_cycle[p] = cycle
                self.obs_ap.write(Observation(p, "beat", beat, self.cycle_base + cycle))
            self.predictor.resolve()
            while i_out < len(cap.outputs) and cap.outputs[i_out][0] < seg_end:
                cycle, stall, beat = cap.outputs[i_out]
                i_out += 1
                self._count(out_prefix, cycle, stall)
                if stall:
                    self.state.stream_event(out_prefix, "stall", stall)
                pending = self.scoreboard.pending[0] if self.scoreboard.pending else None
                if pending is not None and pending.cycle is not None and pending.cycle >= self.cycle_base + cycle:
                    self.state.report_violation(
                        f"{out_prefix}: output beat at cycle {self.cycle_base + cycle} before the input of "
                        f"transaction #{pending.txn_id} completed (cycle {pending.cycle})")
                self.ap.write(beat)
            if seg_end != float("inf"):
                self.obs_ap.write(Observation(first_port, "reset", None, self.cycle_base + int(seg_end)))
                on_reset(self.predictor.last_dropped)
                for p in last_in_cycle:
                    last_in_cycle[p] = -2

    # -- the columnar path ------------------------------------------------------------------
    def read_columns(self, ch: Channels, status: BatchStatus, counts: dict[str, np.ndarray], n: int):
        """The raw capture records of a batch of ``n`` whole transactions (``counts[prefix]``:
        each one's input beats): ({input prefix: [beats, cap_record]}, [out beats, cap_record]),
        or None when the captures are not that (a beat count or a beat's transaction
        differs): such a batch is published beat by beat."""
        ins = {}
        lead = int(ch._arrays[L.RESETS][0]) if status.resets else None
        for pl in self.layout.inputs:
            p, k = pl.port.prefix, status.in_beats[pl.port.prefix]
            if k != int(counts[p].sum()):
                return None
            rec = ch._arrays[pl.in_cap].reshape(-1, pl.cap_record)[:k]
            if not np.array_equal(rec[:, 1], np.repeat(np.arange(n, dtype=np.uint32), counts[p])):
                return None
            if lead is not None and k and int(rec[0, 0]) <= lead:
                return None  # a reset after a beat went in: not a leading reset
            ins[p] = rec
        out = ch._arrays[L.OUT_CAP].reshape(-1, self.layout.output.cap_record)[: status.out_beats]
        return ins, out

    def publish_lead_reset(self, ch: Channels) -> None:
        """The reset a batch starts with (before any beat), to the predictor."""
        cycle = int(ch._arrays[L.RESETS][0])
        self.obs_ap.write(Observation(self.layout.inputs[0].port.prefix, "reset", None, self.cycle_base + cycle))

    def publish_columns(self, ins: dict[str, np.ndarray], out: np.ndarray, counts: dict[str, np.ndarray], n: int) -> None:
        """Publish a reset-free batch of whole transactions as one :class:`ObservationBatch`
        (to the predictor, which registers one expectation batch with the scoreboard) and
        one :class:`OutputBatch` (to the scoreboard), with the stream statistics, stall and
        back-to-back events and the output-before-input check of :meth:`publish`."""
        first_port = self.layout.inputs[0].port.prefix
        out_prefix = self.layout.output.port.prefix
        cycles = {}
        for p, rec in ins.items():
            c = rec[:, 0].astype(np.int64)
            self._count_many(p, c, rec[:, 2])
            cycles[p] = c + self.cycle_base
            if p == first_port and c.size > 1 and bool((np.diff(c) == 1).any()):
                self.state.stream_event(p, "back_to_back", 1)
        self.obs_ap.write(ObservationBatch({p: rec[:, 3:] for p, rec in ins.items()}, cycles, dict(counts), n))
        self.predictor.resolve()
        oc, stalls = out[:, 0].astype(np.int64), out[:, 1].astype(np.int64)
        self._count_many(out_prefix, oc, stalls)
        for v in sorted(set(stalls[stalls > 0].tolist())):
            self.state.stream_event(out_prefix, "stall", int(v))
        exp = self.scoreboard.pending_batch
        if exp is not None and out.shape[0] == exp.payload.shape[0] and n:
            owner = np.repeat(np.arange(n), exp.beats)
            early = np.flatnonzero(oc + self.cycle_base <= exp.cycles[owner])
            for k in early.tolist():
                i = int(owner[k])
                self.state.report_violation(
                    f"{out_prefix}: output beat at cycle {self.cycle_base + int(oc[k])} before the input of "
                    f"transaction #{int(exp.ids[i])} completed (cycle {int(exp.cycles[i])})")
        self.ap.write(OutputBatch(out[:, 2:], oc + self.cycle_base, stalls))

    def _count_many(self, prefix: str, cycles: np.ndarray, stalls: np.ndarray) -> None:
        if not cycles.size:
            return
        s = self.stats[prefix]
        s["accepted"] += int(cycles.size)
        s["refused_cycles"] += int(np.asarray(stalls, dtype=np.int64).sum())
        s["first_cycle"] = s["first_cycle"] or self.cycle_base + int(cycles[0])
        s["last_cycle"] = self.cycle_base + int(cycles[-1])

    def _count(self, prefix: str, cycle: int, stall: int) -> None:
        s = self.stats[prefix]
        c = self.cycle_base + cycle
        s["accepted"] += 1
        s["refused_cycles"] += stall
        s["first_cycle"] = s["first_cycle"] or c
        s["last_cycle"] = c
