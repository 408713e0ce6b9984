"""One regression job, self-contained: what an executor (a Dask worker, here or on a cluster
node) runs for each job.

:func:`execute_job` runs the job in a child process (``python -m mxdv.job_exec SPEC``) in its
own process group, so a per-job wall-clock limit can end it and every simulator it started;
a job past its limit is recorded with ``status: timeout``. The child builds what it needs
(cached per machine under ``build/sim`` or ``$MXDV_BUILD_DIR``, keyed on the sources' hash)
and writes ``job_result.json`` into its run directory.

A spec is a plain dict: ``job`` (a :class:`mxdv.suites.Job` as a dict), ``out`` (the
regression's output directory), ``plugins``, ``timeout_s`` (None: no limit), ``waves``,
``code_coverage``, ``stop_at_closure`` and ``env`` (variables such as ``MXDV_RTL_ROOT``).
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

from mxdv.suites import Job


def job_dir(out: str | Path, job: Job) -> Path:
    return Path(out) / "jobs" / job.name.replace(":", "_").replace(",", "_")


def error_result(error: str, tb: str, run_dir: Path | str, test: str, status: str = "error") -> dict:
    return {"error": error, "traceback": tb, "transactions": 0, "mismatches": 0, "status": status,
            "protocol_violations": [], "coverage_percent": 0.0, "closure_txns": None,
            "run_dir": str(run_dir), "test": test, "holes": [], "wall_s": 0.0, "txn_per_s": None}


def run_config_for(spec: dict):
    from mxdv.env.run_config import RunConfig
    from mxdv.runs import DEFAULT_BULK_BATCH

    job = Job(**spec["job"])
    return RunConfig(unit=job.unit, strategy=job.strategy, seed=job.seed, budget=job.budget,
                     run_dir=str(spec.get("run_dir") or job_dir(spec["out"], job)), sim=job.sim,
                     plugins=list(spec.get("plugins") or []), strategy_options=dict(job.options),
                     stop_on_mismatch=job.stop_on_mismatch, mode=job.mode,
                     batch_size=spec.get("batch_size") or (DEFAULT_BULK_BATCH if job.mode == "bulk" else 16),
                     stop_at_closure=spec.get("stop_at_closure", True))


def _watch_parent() -> None:
    """End this job (its whole process group, simulator included) when the worker that
    started it dies, so a killed worker leaves no orphaned simulation running."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def _child(spec_path: Path) -> None:
    """In the child process: run the job, write job_result.json (also for a crash)."""
    from mxdv.runs import run_one

    _watch_parent()

    spec = json.loads(spec_path.read_text())
    cfg = run_config_for(spec)
    job = Job(**spec["job"])
    out = Path(cfg.run_dir) / "job_result.json"
    try:
        result = run_one(cfg, test=job.test, waves=spec.get("waves", False),
                         code_coverage=spec.get("code_coverage", False))
    except Exception as exc:  # a crashed job is a failed job, never a crashed regression
        result = error_result(f"{type(exc).__name__}: {exc}", traceback.format_exc(), cfg.run_dir, job.test)
    out.write_text(json.dumps(result, default=str))


def execute_job(spec: dict) -> dict:
    """Run one job to completion or to its wall-clock limit; always returns a result dict
    (``job`` and ``job_wall_s`` added)."""
    job = Job(**spec["job"])
    run_dir = Path(spec.get("run_dir") or job_dir(spec["out"], job)).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "run_dir": str(run_dir)}
    spec_path = run_dir / "job_spec.json"
    spec_path.write_text(json.dumps(spec))
    result_path = run_dir / "job_result.json"
    result_path.unlink(missing_ok=True)
    env = {**os.environ, **(spec.get("env") or {})}
    timeout = spec.get("timeout_s")
    t0 = time.monotonic()
    with (run_dir / "job.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mxdv.job_exec", str(spec_path)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            result = error_result(f"Timeout: job exceeded its wall-clock limit of {timeout:g}s", "", run_dir,
                                  job.test, status="timeout")
            rc = None
        except BaseException:  # the executor is shutting down (Ctrl-C): take the simulator with us
            _kill_group(proc)
            raise
    if rc is not None:
        if result_path.exists():
            result = json.loads(result_path.read_text())
        else:
            tail = (run_dir / "job.log").read_text(errors="replace").strip().splitlines()[-3:]
            result = error_result(f"JobCrashed: the job process ended with status {rc} and no result: "
                                  + " / ".join(tail), "", run_dir, job.test)
    result["job"] = spec["job"]
    result["job_wall_s"] = round(time.monotonic() - t0, 2)
    return result


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
