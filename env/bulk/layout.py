"""Where everything of a bulk batch lives: the DPI channels of a unit's bulk harness.

Shared by the harness generator (:mod:`.harness_gen`), which bakes the channel numbers and
record sizes into the SystemVerilog, and by the batch driver and monitor, which fill and read
the same channels from Python. A channel is a flat buffer of 32-bit words (numpy ``uint32``).

Channels (``NIN`` input ports, port ``i`` in declaration order):

* ``PARAMS``: the batch's parameters (see :data:`PARAM_NAMES`), written by the driver.
* ``STATUS``: how the batch ended (see :data:`STATUS_NAMES`), written by the harness.
* ``SCHED``: one word per cycle: bit 0 ``rst``, bit 1 output ``ready``, bit ``2 + i`` "input
  port i may present a beat this cycle" (a gap where it is 0). Past its end: no reset,
  no gaps, and the output's ready pattern repeats from the start (backpressure goes on while
  the DUT drains).
* ``RESETS``: the cycle of the first edge of every reset the harness saw.
* ``OUT_CAP``: one record per accepted output beat: ``[cycle, stall, payload words...]``
  (``stall``: the cycles it was presented and refused before).
* per input port: ``STIM`` records ``[transaction index, payload words...]``; ``FSTART`` the
  index of each transaction's first beat (plus one entry past the end); ``IN_CAP`` records
  ``[cycle, transaction index, stall, payload words...]`` of every accepted input beat.

A payload packs the port's fields, the first field in the lowest bits; words are little-endian.
"""
from __future__ import annotations

from dataclasses import dataclass

from mxdv.unit import Port, Unit

PARAMS, STATUS, SCHED, RESETS, OUT_CAP = 0, 1, 2, 3, 4
FIRST_PORT_CHANNEL = 5
#: Words of PARAMS after the per-port beat counts (one per input port come first).
#: ``sched_quiet``: the first cycle after the schedule's last reset; a batch ends once it is past
#: that and nothing has moved for ``idle_limit`` cycles (the schedule's tail, kept for
#: backpressure that may still come, is not waited out).
PARAM_NAMES = ("n_txns", "sched_len", "sched_quiet", "idle_limit", "max_cycles", "in_cap", "out_cap", "reset_cap")
#: Words of STATUS after which the per-port accepted input beat counts follow.
STATUS_NAMES = ("reason", "cycles", "out_beats", "resets")
#: STATUS ``reason`` codes.
DONE, STALLED, CAPTURE_FULL, MAX_CYCLES = 1, 2, 3, 4
REASONS = {DONE: "done", STALLED: "stalled", CAPTURE_FULL: "capture full", MAX_CYCLES: "cycle limit"}


def words_for(bits: int) -> int:
    return max(1, (bits + 31) // 32)


@dataclass(frozen=True)
class PortLayout:
    port: Port
    index: int

    @property
    def width(self) -> int:
        return sum(w for _, w in self.port.fields)

    @property
    def words(self) -> int:
        return words_for(self.width)

    def offsets(self) -> list[tuple[str, int, int]]:
        """(field, bit offset in the payload, width), first field lowest."""
        out, off = [], 0
        for name, w in self.port.fields:
            out.append((name, off, w))
            off += w
        return out

    @property
    def stim_record(self) -> int:
        return self.words + 1

    @property
    def cap_record(self) -> int:
        """Words per capture record: input ports [cycle, txn, stall, payload], output [cycle, stall, payload]."""
        return self.words + (3 if self.index >= 0 else 2)

    @property
    def stim(self) -> int:
        return FIRST_PORT_CHANNEL + 3 * self.index

    @property
    def fstart(self) -> int:
        return self.stim + 1

    @property
    def in_cap(self) -> int:
        return self.stim + 2


@dataclass(frozen=True)
class Layout:
    inputs: tuple[PortLayout, ...]
    output: PortLayout

    @classmethod
    def of(cls, unit: Unit) -> "Layout":
        return cls(tuple(PortLayout(p, i) for i, p in enumerate(unit.input_ports)),
                   PortLayout(unit.output_port, -1))

    @property
    def channels(self) -> int:
        return FIRST_PORT_CHANNEL + 3 * len(self.inputs)

    def param_index(self, name: str) -> int:
        return len(self.inputs) + PARAM_NAMES.index(name)

    @property
    def params_words(self) -> int:
        return len(self.inputs) + len(PARAM_NAMES)

    @property
    def status_words(self) -> int:
        return len(STATUS_NAMES) + len(self.inputs)

    @property
    def sched_default(self) -> int:
        """The schedule word past the schedule's end: ready high, every input may present."""
        return 2 | (((1 << len(self.inputs)) - 1) << 2)
