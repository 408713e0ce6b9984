"""Per-cycle schedules of a bulk batch: input gaps, output backpressure and resets.

A schedule is what the harness's pattern memory holds (``layout.SCHED``): for each cycle
``rst``, output ``ready`` and, per input port, whether it may present a beat. Random
schedules are drawn from the same profiles as cycle mode's agents (``Idle`` before each beat,
``Backpressure`` stalls), vectorised with numpy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mxdv.env.agents.valid_ready import Backpressure, Idle


@dataclass
class Schedule:
    #: [cycles] bool each
    rst: np.ndarray
    ready: np.ndarray
    #: [ports, cycles] bool
    gates: np.ndarray

    @property
    def cycles(self) -> int:
        return int(self.rst.size)

    def words(self) -> np.ndarray:
        w = self.rst.astype(np.uint32) | (self.ready.astype(np.uint32) << 1)
        for i, g in enumerate(self.gates):
            w |= g.astype(np.uint32) << (2 + i)
        return w

    @property
    def quiet_from(self) -> int:
        """The first cycle after the last reset cycle (0 without a reset): from there on a
        batch may end as soon as nothing moves (``layout.PARAM_NAMES``)."""
        hits = np.flatnonzero(self.rst)
        return int(hits[-1]) + 1 if hits.size else 0

    @classmethod
    def free(cls, ports: int, cycles: int = 0) -> "Schedule":
        """No gaps, no backpressure, no reset."""
        return cls(np.zeros(cycles, bool), np.ones(cycles, bool), np.ones((ports, cycles), bool))


def gate_pattern(beats: int, idle: Idle, rng: np.random.Generator) -> np.ndarray:
    """Open/closed cycles for ``beats`` beats: before each, ``idle.draw`` closed cycles."""
    if beats == 0:
        return np.zeros(0, bool)
    gaps = np.zeros(beats, np.int64)
    if idle.prob > 0:
        hit = rng.random(beats) < idle.prob
        gaps[hit] = rng.integers(1, idle.max_cycles + 1, size=int(hit.sum()))
    pattern = np.ones(beats + int(gaps.sum()), bool)
    starts = np.cumsum(gaps + 1) - 1  # position of each beat's open cycle
    pattern[:] = False
    pattern[starts] = True
    return pattern


def ready_pattern(cycles: int, bp: Backpressure, rng: np.random.Generator) -> np.ndarray:
    """``cycles`` of output ready: each ready cycle starts a stall with ``bp.prob``."""
    ready = np.ones(cycles, bool)
    if bp.prob <= 0 or cycles == 0:
        return ready
    starts = np.flatnonzero(rng.random(cycles) < bp.prob)
    lengths = np.asarray(bp.lengths)[rng.integers(len(bp.lengths), size=starts.size)]
    c = 0
    for s, n in zip(starts.tolist(), lengths.tolist()):
        if s < c:
            continue  # inside the previous stall
        ready[s:s + n] = False
        c = s + n
    return ready


def random_schedule(beats_per_port: list[int], idle: Idle, bp: Backpressure, rng: np.random.Generator,
                    reset_at: int | None = None, reset_len: int = 1, lead_reset: int = 0) -> Schedule:
    """A schedule for a batch with these beat counts. ``lead_reset``: cycles of reset first
    (the run's first batch, or a reset a strategy asked for); ``reset_at``: a reset of
    ``reset_len`` cycles starting that many cycles into the traffic."""
    gates = [gate_pattern(n, idle, rng) for n in beats_per_port]
    span = max((g.size for g in gates), default=0)
    cycles = lead_reset + 2 * span + 64
    ready = ready_pattern(cycles, bp, rng)
    g = np.ones((len(gates), cycles), bool)
    for i, pat in enumerate(gates):
        g[i, lead_reset:lead_reset + pat.size] = pat
    rst = np.zeros(cycles, bool)
    rst[:lead_reset] = True
    if reset_at is not None:
        at = lead_reset + reset_at
        rst[at:at + reset_len] = True
    return Schedule(rst, ready, g)
