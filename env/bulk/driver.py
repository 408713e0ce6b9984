"""The batch driver: encodes a batch of transactions and loads it into the harness at once."""
from __future__ import annotations

import numpy as np
from pyuvm import uvm_component

from mxdv.env.bulk import layout as L
from mxdv.env.bulk import payload as P
from mxdv.env.bulk.channels import Channels
from mxdv.env.bulk.schedule import Schedule
from mxdv.unit import Beat, Unit


class BatchTooLarge(ValueError):
    pass


def pack_beats(pl: L.PortLayout, beats: list[Beat]) -> np.ndarray:
    """[beats, words] uint32 payloads (first field in the lowest bits)."""
    offsets = pl.offsets()
    nbytes = 4 * pl.words
    buf = bytearray()
    for b in beats:
        v = 0
        for name, off, w in offsets:
            v |= (int(b[name]) & ((1 << w) - 1)) << off
        buf += v.to_bytes(nbytes, "little")
    return np.frombuffer(bytes(buf), dtype="<u4").reshape(len(beats), pl.words)


class BatchDriver(uvm_component):
    """Configure with :meth:`setup`. ``depth``: the most beats one batch holds on any input
    port (the harness's stimulus memories); :meth:`split` cuts a larger batch into pieces
    that fit, never truncating it."""

    def setup(self, unit: Unit, depth: int, idle_limit: int) -> "BatchDriver":
        if depth < 1:
            raise ValueError(f"bulk_depth must be >= 1, got {depth}")
        if idle_limit < 1:
            raise ValueError(f"bulk_idle_cycles must be >= 1, got {idle_limit}")
        self.unit, self.depth, self.idle_limit = unit, depth, idle_limit
        self.layout = L.Layout.of(unit)
        self.channels: Channels | None = None
        return self

    def encode(self, txns: list[dict]) -> list[dict[str, list[Beat]]]:
        return [self.unit.encode(t) for t in txns]

    def split(self, txns: list[dict], encoded: list[dict[str, list[Beat]]]) -> list[tuple[int, int]]:
        """[start, stop) index ranges of batches whose beats fit ``depth`` on every port."""
        out, start, used = [], 0, {pl.port.prefix: 0 for pl in self.layout.inputs}
        for i, enc in enumerate(encoded):
            need = {p: len(enc.get(p, [])) for p in used}
            big = [p for p, n in need.items() if n > self.depth]
            if big:
                raise BatchTooLarge(f"transaction {i} has {need[big[0]]} beats on port {big[0]}, more than "
                                    f"bulk_depth={self.depth}: raise bulk_depth")
            if any(used[p] + need[p] > self.depth for p in used):
                out.append((start, i))
                start, used = i, {p: 0 for p in used}
            for p in used:
                used[p] += need[p]
        if start < len(encoded):
            out.append((start, len(encoded)))
        return out

    def encode_columns(self, cols) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The columnar path: a ``Columns`` batch to stimulus records per input port
        (``[beats, 1 + words]``: transaction index, payload) and each transaction's beat count."""
        n = len(cols)
        enc = self.unit.encode_columns(cols)
        stims, counts = {}, {}
        for pl in self.layout.inputs:
            beats, fields = enc.get(pl.port.prefix, (np.zeros(n, np.int64), {}))
            beats = np.asarray(beats, dtype=np.int64).reshape(n)
            total = int(beats.sum())
            stim = np.empty((total, pl.stim_record), np.uint32)
            stim[:, 0] = np.repeat(np.arange(n, dtype=np.uint32), beats)
            if total:
                stim[:, 1:] = P.pack(pl, fields, total)
            stims[pl.port.prefix], counts[pl.port.prefix] = stim, beats
        return stims, counts

    def split_columns(self, counts: dict[str, np.ndarray]) -> list[tuple[int, int]]:
        """[start, stop) transaction ranges of a columnar batch whose beats fit ``depth`` on
        every port (``counts``: each transaction's beats per port), never truncating it."""
        n = len(next(iter(counts.values()))) if counts else 0
        for p, c in counts.items():
            if n and int(c.max()) > self.depth:
                i = int(np.argmax(c))
                raise BatchTooLarge(f"transaction {i} has {int(c[i])} beats on port {p}, more than "
                                    f"bulk_depth={self.depth}: raise bulk_depth")
        firsts = [P.frame_starts(c) for c in counts.values()]
        out, start = [], 0
        while start < n:
            # the most transactions from ``start`` whose beats fit ``depth`` on every port
            stop = min((int(np.searchsorted(f, f[start] + self.depth, side="right")) - 1 for f in firsts), default=n)
            stop = min(max(stop, start + 1), n)
            out.append((start, stop))
            start = stop
        return out

    def load(self, encoded: list[dict[str, list[Beat]]], schedule: Schedule) -> dict:
        """Write one batch (its encoded transactions, in order) and its schedule into the
        harness's memories; returns what was loaded (beat counts per port, limits)."""
        stims, fstarts = {}, {}
        for pl in self.layout.inputs:
            beats, owner, fstart = [], [], [0]
            for t, enc in enumerate(encoded):
                bs = enc.get(pl.port.prefix, [])
                beats += bs
                owner += [t] * len(bs)
                fstart.append(fstart[-1] + len(bs))
            stim = np.zeros((len(beats), pl.stim_record), np.uint32)
            if beats:
                stim[:, 0] = owner
                stim[:, 1:] = pack_beats(pl, beats)
            stims[pl.port.prefix], fstarts[pl.port.prefix] = stim, np.asarray(fstart, np.uint32)
        return self.load_records(len(encoded), stims, fstarts, schedule)

    def load_columns(self, n: int, stims: dict[str, np.ndarray], counts: dict[str, np.ndarray],
                     schedule: Schedule) -> dict:
        """:meth:`load` of a columnar batch (records from :meth:`encode_columns`)."""
        fstarts = {p: P.frame_starts(c).astype(np.uint32) for p, c in counts.items()}
        return self.load_records(n, stims, fstarts, schedule)

    def load_records(self, n_txns: int, stims: dict[str, np.ndarray], fstarts: dict[str, np.ndarray],
                     schedule: Schedule) -> dict:
        """Bind the stimulus records, first-beat indices and schedule of one batch."""
        if self.channels is None:
            self.channels = Channels()
        ch, lay = self.channels, self.layout
        params = np.zeros(lay.params_words, np.uint32)
        total = 0
        for pl in lay.inputs:
            stim = stims[pl.port.prefix]
            ch.bind(pl.stim, np.ascontiguousarray(stim))
            ch.bind(pl.fstart, fstarts[pl.port.prefix])
            ch.alloc(pl.in_cap, len(stim) * pl.cap_record)
            params[pl.index] = len(stim)
            total += len(stim)
        out_cap = 4 * total + 1024
        resets = int(np.count_nonzero(schedule.rst[1:] & ~schedule.rst[:-1])) + int(schedule.rst[:1].sum()) + 1
        limits = {"n_txns": n_txns, "sched_len": schedule.cycles, "sched_quiet": schedule.quiet_from,
                  "idle_limit": self.idle_limit,
                  "max_cycles": schedule.cycles + self.idle_limit + 2000 + 400 * total,
                  "in_cap": max(params[: len(lay.inputs)].max(initial=0), 1), "out_cap": out_cap,
                  "reset_cap": resets}
        for name, v in limits.items():
            params[lay.param_index(name)] = v
        ch.bind(L.PARAMS, params)
        ch.bind(L.SCHED, schedule.words() if schedule.cycles else np.zeros(1, np.uint32))
        ch.alloc(L.STATUS, lay.status_words)
        ch.alloc(L.RESETS, resets)
        ch.alloc(L.OUT_CAP, out_cap * lay.output.cap_record)
        return {"beats": {pl.port.prefix: int(params[pl.index]) for pl in lay.inputs}, **limits}
