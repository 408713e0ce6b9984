"""One strategy on one (mutant) RTL, in its own process, killed at a wall-clock limit.

The parent starts ``python -m mxdv.mutate.jobs SPEC.json`` in a new session with
``MXDV_RTL_ROOT`` on the RTL copy and ``MXDV_BUILD_DIR`` on the campaign's build cache; the
child runs :func:`mxdv.runs.run_one` (the same path as ``mxdv run`` and the regression workers)
and writes the result next to the spec. A mutant that hangs the simulator (no simulated time
advances, so the environment's own drain timeout never fires) is killed with its whole
process group at the limit and reported as ``timeout``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

#: How a job ended. Everything but ``survived`` kills the mutant.
SURVIVED, MISMATCH, PROTOCOL, DRAIN, ERROR, CRASH, TIMEOUT = (
    "survived", "mismatch", "protocol", "drain_timeout", "error", "crash", "timeout")


def run_job(spec: dict, rtl_root: Path, build_dir: Path, timeout_s: float) -> dict:
    """Run one job; returns ``{"outcome", "txns_to_kill", "transactions", "detail", "wall_s", ...}``."""
    run_dir = Path(spec["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    spec_path = run_dir / "mutate_job.json"
    out_path = run_dir / "mutate_result.json"
    out_path.unlink(missing_ok=True)
    spec_path.write_text(json.dumps(spec, indent=2))
    env = dict(os.environ, MXDV_RTL_ROOT=str(rtl_root), MXDV_BUILD_DIR=str(build_dir))
    t0 = time.monotonic()
    with (run_dir / "job.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mxdv.mutate.jobs", str(spec_path)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the job's own process group (simulator included)
            proc.wait()
            return {"outcome": TIMEOUT, "txns_to_kill": None, "transactions": None,
                    "detail": f"no result within {timeout_s:g}s: the simulation hung; killed",
                    "wall_s": round(time.monotonic() - t0, 2), "run_dir": str(run_dir)}
    wall = round(time.monotonic() - t0, 2)
    if not out_path.exists():
        return {"outcome": CRASH, "txns_to_kill": None, "transactions": None,
                "detail": f"the job process ended (exit {proc.returncode}) without a result; see {run_dir / 'job.log'}",
                "wall_s": wall, "run_dir": str(run_dir)}
    return {**classify(json.loads(out_path.read_text()), run_dir), "wall_s": wall, "run_dir": str(run_dir)}


def classify(result: dict, run_dir: Path) -> dict:
    """Outcome of one finished job from its result (as :func:`mxdv.runs.run_one` returns it, or
    ``{"run_failed": message}``)."""
    if "run_failed" in result:
        return {"outcome": CRASH, "txns_to_kill": None, "transactions": None, "detail": result["run_failed"][:300]}
    n = result.get("transactions")
    if result.get("mismatches"):
        first = _first_mismatch_txn(run_dir, result.get("test", "StrategyRun"))
        return {"outcome": MISMATCH, "txns_to_kill": first if first is not None else n, "transactions": n,
                "detail": f"{result['mismatches']} mismatch(es)"}
    if result.get("protocol_violations"):
        return {"outcome": PROTOCOL, "txns_to_kill": n, "transactions": n,
                "detail": str(result["protocol_violations"][0])[:300]}
    err = result.get("error")
    if err:
        kind = DRAIN if str(err).startswith("DrainTimeout") else ERROR
        return {"outcome": kind, "txns_to_kill": n, "transactions": n, "detail": str(err)[:300]}
    return {"outcome": SURVIVED, "txns_to_kill": None, "transactions": n,
            "detail": f"{n} transactions, coverage {result.get('coverage_percent', 0):.1f}%"}


def _first_mismatch_txn(run_dir: Path, test: str) -> int | None:
    """Transactions driven up to and including the first mismatching one (ids count from 0);
    None when the first mismatch is an output beat that belongs to no transaction (a stale or
    spurious beat, id -1): the caller then uses the transactions driven when the job stopped."""
    path = run_dir / test / "mismatches.jsonl"
    if not path.exists():
        return None
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if not lines:
        return None
    first = json.loads(lines[0])["txn_id"]  # mismatches are written in the order they were found
    return first + 1 if first is not None and first >= 0 else None


def _child(spec_path: Path) -> int:
    from mxdv.env.run_config import RunConfig
    from mxdv.runs import RunFailed, run_one

    spec = json.loads(spec_path.read_text())
    test = spec.pop("test", "StrategyRun")
    out_path = spec_path.parent / "mutate_result.json"
    try:
        result = run_one(RunConfig(**spec), test=test)
    except RunFailed as exc:
        result = {"run_failed": str(exc)}
    except Exception as exc:  # recorded, never lost
        result = {"run_failed": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"}
    out_path.write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(_child(Path(sys.argv[1])))
