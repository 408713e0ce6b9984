"""``mxdv replay JOB_DIR``: rerun one regression job exactly and say whether it reproduced.

A job's run directory holds ``job_spec.json``: the whole configuration (unit variant,
strategy, seed, budget, simulator, test, stop conditions, strategy options, plugins). The
seed drives the stimulus and the environment's schedule alike (idle gaps, backpressure
stalls, injected resets), so the same spec on the same RTL replays the same cycles, not only
the same transactions. The replay compares the result with the original's: transactions,
checked, dropped, mismatches, the first mismatch and the failure signature.

Strategies that depend on state outside the spec do not replay exactly: ``hypothesis``
replays its example database first, ``llm`` asks its endpoint again.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

COMPARED = ("transactions", "checked", "dropped", "mismatches", "coverage_percent", "closure_txns")


def replay(job_dir: str | Path, waves: bool = False, out: str | Path | None = None,
           rtl_root: str | None = None) -> tuple[dict, dict, list[str]]:
    """Rerun; returns (original result, replay result, differences). ``rtl_root`` replaces
    the recorded ``MXDV_RTL_ROOT`` (check a fix against the failing schedule)."""
    from mxdv.buckets import first_mismatch, signature
    from mxdv.job_exec import execute_job
    from mxdv.regress import failed, job_status

    job_dir = Path(job_dir).resolve()
    spec_file = job_dir / "job_spec.json"
    if not spec_file.is_file():
        raise ValueError(f"replay {job_dir}: no job_spec.json there (give the run directory of a regression job)")
    spec = json.loads(spec_file.read_text())
    original = json.loads((job_dir / "job_result.json").read_text()) if (job_dir / "job_result.json").is_file() else {}
    target = Path(out) if out else job_dir.parent / f"{job_dir.name}-replay-{time.strftime('%Y%m%d-%H%M%S')}"
    spec.update(run_dir=str(target.resolve()), waves=waves, timeout_s=None)
    if rtl_root is not None:
        spec["env"] = {**(spec.get("env") or {}), "MXDV_RTL_ROOT": str(Path(rtl_root).resolve())}
    result = execute_job(spec)
    diffs = []
    for key in COMPARED:
        if key in original and original.get(key) != result.get(key):
            diffs.append(f"{key}: {original.get(key)} -> {result.get(key)}")
    if original:
        original = {**original, "job": spec["job"]}
        o_sig = signature({**original, "status": job_status(original)}) if failed(original) else "pass"
        r_sig = signature({**result, "status": job_status(result)}) if failed(result) else "pass"
        if o_sig != r_sig:
            diffs.append(f"signature: {o_sig} -> {r_sig}")
        om, rm = first_mismatch(original), first_mismatch(result)
        if (om or {}).get("txn_id") != (rm or {}).get("txn_id") or (om or {}).get("actual") != (rm or {}).get("actual"):
            diffs.append("first mismatch differs")
        result["signature"] = r_sig
    return original, result, diffs
