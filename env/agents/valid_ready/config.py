"""Per-stream configuration: which signals, and how the environment randomizes timing."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mxdv.unit import Port


@dataclass(frozen=True)
class Idle:
    """Driver-side idle cycles before each beat: 0 with probability ``1 - prob``, else
    uniform in ``1..max_cycles``."""

    prob: float = 0.2
    max_cycles: int = 4

    def draw(self, rng: np.random.Generator) -> int:
        if self.prob <= 0 or rng.random() >= self.prob:
            return 0
        return int(rng.integers(1, self.max_cycles + 1))


@dataclass(frozen=True)
class Backpressure:
    """Sink-side ready pattern: while ready, each cycle starts a stall with probability
    ``prob``; a stall lasts a length drawn from ``lengths`` (uniformly)."""

    prob: float = 0.15
    lengths: tuple[int, ...] = (1, 1, 2, 3, 4, 6, 9, 14, 24)

    def draw(self, rng: np.random.Generator) -> int:
        if self.prob <= 0 or rng.random() >= self.prob:
            return 0
        return int(self.lengths[int(rng.integers(len(self.lengths)))])


@dataclass(frozen=True)
class StreamConfig:
    port: Port
    idle: Idle = Idle()
    backpressure: Backpressure = Backpressure()
    #: Output streams: ``valid`` must be low at every edge after a reset edge while ``rst``
    #: stays high and for this many edges after it is released (None: not checked, inputs).
    quiet_after_reset: int | None = None
