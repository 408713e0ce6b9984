"""Simulation throughput of the verification bench, per unit and simulator, in one run.

    python scripts/sim_throughput.py [--unit quantizer] [--budget 2000]

Runs the `random` strategy with no idle cycles, no backpressure and no resets (the bench's
best case) on Verilator and on Icarus, and prints transactions/s and simulated cycles/s of
each, and the Verilator/Icarus ratio measured here and now. Builds are done first, so build
time is not counted.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mxdv.env.run_config import RunConfig
from mxdv.runs import build_for, run_one
from mxdv.sim import SIMULATORS
from mxdv.unit import get_unit, unit_names


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unit", action="append", help="unit variant (default: every unit)")
    p.add_argument("--budget", type=int, default=2000)
    args = p.parse_args(argv)
    rows = ["| unit | simulator | transactions | wall (s) | txn/s |", "|---|---|---|---|---|"]
    tmp = Path(tempfile.mkdtemp(prefix="mxdv-throughput-"))
    for name in args.unit or unit_names():
        unit = get_unit(name)
        rates = {}
        for sim in SIMULATORS:
            build_for(unit, sim)
            cfg = RunConfig(unit=name, strategy="random", seed=1, budget=args.budget, sim=sim,
                            run_dir=str(tmp / f"{name}-{sim}"), stop_at_closure=False,
                            reset_prob=0.0, idle_prob=0.0, backpressure_prob=0.0)
            r = run_one(cfg)
            rates[sim] = r["txn_per_s"]
            rows.append(f"| {unit.variant} | {sim} | {r['transactions']} | {r['wall_s']:.2f} | {r['txn_per_s']:.0f} |")
        rows.append(f"| {unit.variant} | verilator / icarus | | | {rates['verilator'] / rates['icarus']:.2f}x |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
