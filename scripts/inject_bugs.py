"""Inject each of a unit's declared bugs into a copy of the RTL and run the smoke suite on it.

    python scripts/inject_bugs.py --unit quantizer [--jobs 2] [--sim icarus] [--only NAME]

A bug is caught when the suite reports a mismatch, a protocol violation or a hang (drain
timeout) in at least one job. A mutant whose RTL does not build is reported as invalid, not
caught. Encode bugs (``EncodeBug``: the Python ``Unit.encode`` corrupted, planted with
``MXDV_ENCODE_BUG``) run the same way, with the unmodified RTL. The unmodified RTL is run first and must pass. Jobs stop at their first mismatch
(``--stop-on-mismatch``; pass ``--full-jobs`` to let them run their whole budget). Every
regression's output is kept in ``<work>/runs/<bug>/regress.log``; a regression that ends
without a summary is recorded as such and the script goes on to the next bug. Prints a
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

from mxdv.bugs import bug_env, bugs_of
from mxdv.regress import failed
from mxdv.unit import get_unit


class NoSummary(Exception):
    """The regression ended without writing summary.json (its log says why)."""


def run_suite(units: str, out: Path, jobs: int, scale: float, rtl_root: Path | None, build_dir: Path,
              sim: str | None = None, stop_on_mismatch: bool = True, strategies: str | None = None,
              extra_env: dict | None = None) -> list[dict]:
    env = dict(os.environ, MXDV_BUILD_DIR=str(build_dir), **(extra_env or {}))
    if rtl_root is not None:
        env["MXDV_RTL_ROOT"] = str(rtl_root)
    cmd = [sys.executable, "-m", "mxdv.cli", "regress", "--suite", "smoke", "--units", units,
           "--jobs", str(jobs), "--out", str(out), "--budget-scale", str(scale),
           # seeds 1..N as in the recorded tables; the campaign keeps its own results store
           "--seed-base", "1", "--db", str(out / "results.db"), "--no-waves"]
    if sim:
        cmd += ["--sim", sim]
    if stop_on_mismatch:
        cmd += ["--stop-on-mismatch"]
    if strategies:
        cmd += ["--strategies", strategies]
    out.mkdir(parents=True, exist_ok=True)
    log = out / "regress.log"
    with log.open("w") as fh:
        proc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    summary = out / "summary.json"
    if not summary.exists():
        tail = log.read_text().strip().splitlines()[-1:] or ["(empty log)"]
        raise NoSummary(f"exit {proc.returncode}: {tail[0][:120]} (log: {log})")
    return json.loads(summary.read_text())


def build_failed(results: list[dict]) -> bool:
    return bool(results) and all(str(r.get("error", "")).startswith("BuildFailed") for r in results)


def caught_by(results: list[dict]) -> list[dict]:
    """The jobs that failed (mismatch, protocol violation or error), as `mxdv regress` counts them."""
    return [r for r in results if failed(r)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unit", required=True, help="unit name (its bugs come from env/<unit>/bugs.py)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--budget-scale", type=float, default=1.0)
    p.add_argument("--only", action="append", help="run only these bug names")
    p.add_argument("--sim", default=None, help="simulator (default: the suite's, verilator)")
    p.add_argument("--report", default=None, help="write the markdown table here too")
    p.add_argument("--variants", default=None,
                   help="unit variants of the smoke suite to run (mxdv regress --units syntax; default: all "
                        "of the unit's variants, e.g. 'attention:default' for the default parameters only)")
    p.add_argument("--strategies", default=None,
                   help="comma-separated strategies of the smoke suite to run (default: all four). A bug "
                        "caught by a subset of the suite's jobs is caught by the suite; a miss needs the full suite")
    p.add_argument("--full-jobs", action="store_true",
                   help="let failing jobs run their whole budget (default: stop each at its first mismatch)")
    args = p.parse_args(argv)
    unit = get_unit(args.unit)
    bugs = [b for b in bugs_of(unit.name) if not args.only or b.name in args.only]
    work = Path(tempfile.mkdtemp(prefix=f"mxdv-bugs-{unit.name}-"))
    builds = work / "build"
    print(f"{len(bugs)} bugs for {unit.name}; work dir {work}", flush=True)
    t0 = time.monotonic()
    fast = not args.full_jobs
    selection = args.variants or unit.name
    try:
        base = run_suite(selection, work / "baseline", args.jobs, args.budget_scale, None, builds, args.sim, fast,
                         args.strategies)
    except NoSummary as exc:
        print(f"the baseline regression failed: {exc}", file=sys.stderr)
        return 2
    if caught_by(base):
        print("the unmodified RTL fails the suite; fix that first", file=sys.stderr)
        return 2
    print(f"baseline: {len(base)} jobs pass ({time.monotonic() - t0:.0f}s)", flush=True)
    rows = ["| bug | what | caught | jobs that caught it | first failure |", "|---|---|---|---|---|"]
    n_caught = 0
    problems = []
    for bug in bugs:
        t1 = time.monotonic()
        planted = bug_env(unit.name, bug, work / "rtl" / bug.name)  # RTL copy or encode-bug name
        try:
            res = run_suite(selection, work / "runs" / bug.name, args.jobs, args.budget_scale, None, builds,
                            args.sim, fast, args.strategies, extra_env=planted)
        except NoSummary as exc:
            problems.append(bug.name)
            rows.append(f"| `{bug.name}` | {bug.what} | **error** | - | regression ended without a summary: "
                        f"{str(exc).replace('|', '/')} |")
            print(f"  {bug.name:28} ERROR: {exc} ({time.monotonic() - t1:.0f}s)", flush=True)
            continue
        if build_failed(res):
            problems.append(bug.name)
            rows.append(f"| `{bug.name}` | {bug.what} | **invalid** | - | the mutant RTL does not build |")
            print(f"  {bug.name:28} INVALID: the mutant does not build ({time.monotonic() - t1:.0f}s)", flush=True)
            continue
        hit = caught_by(res)
        n_caught += bool(hit)
        strategies = sorted({r["job"]["strategy"] for r in hit})
        first = ""
        if hit:
            r = hit[0]
            first = (r.get("error") or (f"{r['mismatches']} mismatch(es)" if r.get("mismatches") else
                     (r.get("protocol_violations") or [""])[0]))[:80].replace("|", "/")
        rows.append(f"| `{bug.name}` | {bug.what} | {'yes' if hit else '**no**'} | "
                    f"{len(hit)}/{len(res)} ({', '.join(strategies)}) | {first} |")
        print(f"  {bug.name:28} {'CAUGHT' if hit else 'MISSED'} by {len(hit)}/{len(res)} jobs "
              f"({time.monotonic() - t1:.0f}s)", flush=True)
    mode = "jobs stop at their first mismatch" if fast else "jobs run their whole budget"
    table = "\n".join(rows + ["", f"{n_caught}/{len(bugs)} bugs caught by `mxdv regress --suite smoke`"
                              f" (budget scale {args.budget_scale}, sim {args.sim or 'verilator'}, variants {selection}, "
                              f"strategies {args.strategies or 'all four'}, {mode}, "
                              f"{time.monotonic() - t0:.0f}s)."
                              + (f" Not evaluated: {', '.join(problems)}." if problems else "")])
    print("\n" + table)
    if args.report:
        Path(args.report).write_text(table + "\n")
    return 0 if n_caught == len(bugs) else 1


if __name__ == "__main__":
    sys.exit(main())
