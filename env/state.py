"""State the environment's components share: clock, reset epoch, random source, events."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class EnvState:
    clk: object
    rst: object
    rng: np.random.Generator
    #: Reset epoch: incremented by every reset; beats of an older epoch are never driven.
    generation: int = 0
    in_reset: bool = False
    violations: list[str] = field(default_factory=list)
    #: Called with (port prefix, event name, value) for stalls and back-to-back beats.
    on_stream_event: Callable[[str, str, int], None] | None = None

    def report_violation(self, message: str) -> None:
        self.violations.append(message)

    def stream_event(self, prefix: str, event: str, value: int) -> None:
        if self.on_stream_event is not None:
            self.on_stream_event(prefix, event, value)
