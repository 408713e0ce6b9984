"""The columnar path's analysis-port items: one object per reset-free batch instead of one per
beat, flowing the same way as cycle mode's (batch monitor -> predictor -> scoreboard).

* :class:`ObservationBatch` (monitor ``obs_ap`` -> predictor): every input beat the harness
  accepted, whole transactions only, as payload words per port (transactions may differ in
  their beat counts).
* :class:`ExpectedBatch` (predictor -> scoreboard): what the reference model predicts from
  the decoded inputs, as payload words of the output port.
* :class:`OutputBatch` (monitor ``ap`` -> scoreboard): every output beat the harness accepted.

Where a batch is not regular enough for array comparison (a beat count that differs from the
prediction, beats that do not decode), the predictor and scoreboard replay it through their
per-beat paths, so reports keep cycle mode's form.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mxdv.columns import Columns


@dataclass
class ObservationBatch:
    #: per input port prefix: [beats, words] payloads, in acceptance order
    payloads: dict[str, np.ndarray]
    #: per input port prefix: its accepted cycle of every beat (run cycles)
    cycles: dict[str, np.ndarray]
    #: per input port prefix: [n] each transaction's beats
    beats: dict[str, np.ndarray]
    n: int

    def completed_at(self) -> np.ndarray:
        """[n] the cycle each transaction's input was complete (its last beat on any port;
        -1 for a transaction with no beat at all)."""
        done = np.full(self.n, -1, dtype=np.int64)
        for p, c in self.cycles.items():
            b = self.beats[p]
            has = b > 0
            done[has] = np.maximum(done[has], c[np.cumsum(b)[has] - 1])
        return done


@dataclass
class ExpectedBatch:
    ids: np.ndarray          # [n] transaction ids
    seen: Columns            # the transactions as decoded from the observed inputs
    meant: Columns           # as the strategy submitted them
    payload: np.ndarray      # [beats, words] expected output payloads, transaction by transaction
    beats: np.ndarray        # [n] output beats of each transaction
    failed: np.ndarray       # [n] bool: failed already (stimulus mismatch)
    cycles: np.ndarray       # [n] the cycle each transaction's input was complete


@dataclass
class OutputBatch:
    payload: np.ndarray      # [m, words]
    cycles: np.ndarray       # [m] run cycles
    stalls: np.ndarray       # [m] cycles each beat was refused before
