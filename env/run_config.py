"""The settings of one simulation run, passed from the CLI to the simulator's Python.

The CLI writes them as JSON into the run directory and points ``MXDV_RUN_CONFIG`` at the
file; the in-simulation test reads them back with :func:`load`.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class RunConfig:
    unit: str
    strategy: str = "random"
    seed: int = 1
    budget: int = 1000
    run_dir: str = "."
    sim: str = "verilator"
    #: Stop as soon as every bin of the plan is hit (closure measurement).
    stop_at_closure: bool = True
    batch_size: int = 16
    #: Probability that a batch gets a reset injected while it is in flight (when above 0,
    #: the third batch always gets one, so every run exercises reset).
    reset_prob: float = 0.05
    idle_prob: float = 0.2
    backpressure_prob: float = 0.15
    #: Extra modules (dotted names or .py paths) to import for user strategies.
    plugins: list[str] = field(default_factory=list)
    #: Free-form options for the strategy (for example the LLM endpoint settings).
    strategy_options: dict = field(default_factory=dict)
    #: Stop at the first mismatch (the default keeps going and reports all of them).
    stop_on_mismatch: bool = False
    #: A measurement run (``mxdv eval``): persistent state that would carry coverage over from
    #: earlier runs (the hypothesis covering corpus and example database) is neither read nor
    #: written, so every seed starts from nothing.
    fresh: bool = False
    #: "cycle" (every beat driven and sampled from Python; both simulators) or "bulk" (the
    #: split testbench of ``mxdv.env.bulk``: batches loaded into an HDL harness; Verilator).
    mode: str = "cycle"
    #: Bulk mode: the most beats one batch holds on an input port (larger batches are split).
    bulk_depth: int = 65536
    #: Bulk mode: a batch ends this many cycles after the last accepted beat (once its
    #: schedule is over); outputs still missing then are a hang (``BulkHang``).
    bulk_idle_cycles: int = 2000

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2))
        return path


ENV_VAR = "MXDV_RUN_CONFIG"


def load() -> RunConfig:
    path = os.environ.get(ENV_VAR)
    if not path:
        raise RuntimeError(f"{ENV_VAR} is not set: run simulations through `mxdv run` or mxdv.runs")
    return RunConfig(**json.loads(Path(path).read_text()))
