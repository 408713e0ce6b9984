"""Inject each of a unit's declared bugs into a copy of the RTL and run the smoke suite on it.

    python scripts/inject_bugs.py --unit quantizer [--jobs 2] [--budget-scale 1.0] [--only NAME]

A bug is caught when the suite reports a mismatch, a protocol violation or a hang (drain
timeout) in at least one job. The unmodified RTL is run first and must pass. Prints a
markdown table (also written to --report) with, per bug, how many jobs caught it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mxdv.bugs import apply_bug, bugs_of
from mxdv.unit import get_unit


def run_suite(unit: str, out: Path, jobs: int, scale: float, rtl_root: Path | None, build_dir: Path,
              sim: str | None = None) -> list[dict]:
    env = dict(os.environ, MXDV_BUILD_DIR=str(build_dir))
    if rtl_root is not None:
        env["MXDV_RTL_ROOT"] = str(rtl_root)
    cmd = [sys.executable, "-m", "mxdv.cli", "regress", "--suite", "smoke", "--units", unit,
           "--jobs", str(jobs), "--out", str(out), "--budget-scale", str(scale)]
    if sim:
        cmd += ["--sim", sim]
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    summary = out / "summary.json"
    if not summary.exists():
        raise RuntimeError(f"regression produced no summary in {out}")
    return json.loads(summary.read_text())


def caught_by(results: list[dict]) -> list[dict]:
    return [r for r in results if r.get("mismatches") or r.get("protocol_violations") or r.get("error")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unit", required=True, help="unit name (its bugs come from env/<unit>/bugs.py)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--budget-scale", type=float, default=1.0)
    p.add_argument("--only", action="append", help="run only these bug names")
    p.add_argument("--sim", default=None, help="simulator (default: the suite's, verilator)")
    p.add_argument("--report", default=None, help="write the markdown table here too")
    args = p.parse_args(argv)
    unit = get_unit(args.unit)
    bugs = [b for b in bugs_of(unit.name) if not args.only or b.name in args.only]
    work = Path(tempfile.mkdtemp(prefix=f"mxdv-bugs-{unit.name}-"))
    builds = work / "build"
    print(f"{len(bugs)} bugs for {unit.name}; work dir {work}", flush=True)
    t0 = time.monotonic()
    base = run_suite(unit.name, work / "baseline", args.jobs, args.budget_scale, None, builds, args.sim)
    if caught_by(base):
        print("the unmodified RTL fails the suite; fix that first", file=sys.stderr)
        return 2
    print(f"baseline: {len(base)} jobs pass ({time.monotonic() - t0:.0f}s)", flush=True)
    rows = ["| bug | what | caught | jobs that caught it | first failure |", "|---|---|---|---|---|"]
    n_caught = 0
    for bug in bugs:
        t1 = time.monotonic()
        rtl = apply_bug(unit.name, bug, work / "rtl" / bug.name)
        res = run_suite(unit.name, work / "runs" / bug.name, args.jobs, args.budget_scale, rtl, builds, args.sim)
        hit = caught_by(res)
        n_caught += bool(hit)
        strategies = sorted({r["job"]["strategy"] for r in hit})
        first = ""
        if hit:
            r = hit[0]
            first = (r.get("error") or (f"{r['mismatches']} mismatches" if r.get("mismatches") else
                     (r.get("protocol_violations") or [""])[0]))[:80].replace("|", "/")
        rows.append(f"| `{bug.name}` | {bug.what} | {'yes' if hit else '**no**'} | "
                    f"{len(hit)}/{len(res)} ({', '.join(strategies)}) | {first} |")
        print(f"  {bug.name:28} {'CAUGHT' if hit else 'MISSED'} by {len(hit)}/{len(res)} jobs "
              f"({time.monotonic() - t1:.0f}s)", flush=True)
    table = "\n".join(rows + ["", f"{n_caught}/{len(bugs)} bugs caught by `mxdv regress --suite smoke`"
                              f" (budget scale {args.budget_scale}, sim {args.sim or 'verilator'}, {time.monotonic() - t0:.0f}s)."])
    print("\n" + table)
    if args.report:
        Path(args.report).write_text(table + "\n")
    return 0 if n_caught == len(bugs) else 1


if __name__ == "__main__":
    sys.exit(main())
