"""Simulation throughput of the verification bench, per unit and simulator, in one run.

    python scripts/sim_throughput.py [--unit quantizer] [--budget 2000] [--batch-size 64]

Runs the `random` strategy with no idle cycles, no backpressure and no resets (the bench's
best case) on Verilator and on Icarus, and prints per run: transactions/s (wall clock), the
clock cycles the DUT was busy (batches back to back; counted in simulated time), the unit's
work per cycle (MACs, keys, blocks: ``Unit.work``) and, where the unit declares its peak,
the utilization; then the Verilator/Icarus ratio measured here and now. Builds are done
first, so build time is not counted. Each batch ends when its last output is checked, so the
pipeline fills and drains once per batch: a larger --batch-size gets closer to steady state.
"""
from __future__ import annotations

import argparse
import json
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
    p.add_argument("--batch-size", type=int, default=64, help="transactions per batch (default 64)")
    p.add_argument("--sim", action="append", help="simulator (default: both)")
    p.add_argument("--pin", default=None, help='JSON object of fields to fix, e.g. \'{"n_keys": 64}\' '
                   "(the random strategy's pin option)")
    args = p.parse_args(argv)
    rows = ["| unit | simulator | transactions | wall (s) | txn/s | busy cycles | work per cycle | utilization |",
            "|---|---|---|---|---|---|---|---|"]
    tmp = Path(tempfile.mkdtemp(prefix="mxdv-throughput-"))
    for name in args.unit or unit_names():
        unit = get_unit(name)
        rates = {}
        for sim in args.sim or SIMULATORS:
            build_for(unit, sim)
            cfg = RunConfig(unit=name, strategy="random", seed=1, budget=args.budget, sim=sim,
                            run_dir=str(tmp / f"{name}-{sim}"), stop_at_closure=False, batch_size=args.batch_size,
                            reset_prob=0.0, idle_prob=0.0, backpressure_prob=0.0,
                            strategy_options={"pin": json.loads(args.pin)} if args.pin else {})
            r = run_one(cfg)
            rates[sim] = r["txn_per_s"]
            cycles, work = r["busy_cycles"], r["work"]
            per_cycle = work / cycles if cycles else float("nan")
            util = (f"{100 * per_cycle / unit.peak_work_per_cycle:.1f}% of {unit.peak_work_per_cycle:g}"
                    if unit.peak_work_per_cycle else "-")
            rows.append(f"| {unit.variant} | {sim} | {r['transactions']} | {r['wall_s']:.2f} | {r['txn_per_s']:.0f} | "
                        f"{cycles} | {per_cycle:.4g} {r['work_label']} | {util} |")
            print(rows[-1], flush=True)
        if len(rates) == 2:
            rows.append(f"| {unit.variant} | verilator / icarus | | | {rates['verilator'] / rates['icarus']:.2f}x | | | |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
