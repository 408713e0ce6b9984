"""``mxdv regress``: run a suite's jobs in parallel worker processes, merge coverage, write
JUnit XML and print the closure table.

Outputs in ``--out`` (default ``runs/regress-<suite>-<time>``): one run directory per job,
``junit.xml``, ``coverage/<unit>.yml`` (merged over the unit's jobs), ``closure.md``
(the table printed at the end) and ``summary.json`` (every job's result).
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path
from xml.sax.saxutils import escape

from mxdv.suites import Job, get_suite


def _run_job(job: dict, out_dir: str, plugins: list[str]) -> dict:
    from mxdv.env.run_config import RunConfig
    from mxdv.runs import run_one

    job_obj = Job(**job)
    run_dir = Path(out_dir) / "jobs" / job_obj.name.replace(":", "_").replace(",", "_")
    cfg = RunConfig(unit=job_obj.unit, strategy=job_obj.strategy, seed=job_obj.seed,
                    budget=job_obj.budget, run_dir=str(run_dir), sim=job_obj.sim,
                    plugins=plugins, strategy_options=dict(job_obj.options),
                    stop_on_mismatch=job_obj.stop_on_mismatch)
    t0 = time.monotonic()
    try:
        result = run_one(cfg, test=job_obj.test)
    except Exception as exc:  # a crashed job is a failed job, never a crashed regression
            result = _error_result(f"{type(exc).__name__}: {exc}", traceback.format_exc(), run_dir, job_obj.test)
    result["job"] = job
    result["job_wall_s"] = round(time.monotonic() - t0, 2)
    return result


def split_units(text: str) -> list[str]:
    """``"quantizer,systolic_array:R=8,C=8"`` -> ``["quantizer", "systolic_array:R=8,C=8"]``: a
    ``K=V`` item without a colon continues the variant before it."""
    out: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        if "=" in item and ":" not in item and out and ":" in out[-1]:
            out[-1] += "," + item
        else:
            out.append(item)
    return out


def _error_result(error: str, tb: str, run_dir: Path, test: str) -> dict:
    return {"error": error, "traceback": tb, "transactions": 0, "mismatches": 0,
            "protocol_violations": [], "coverage_percent": 0.0, "closure_txns": None,
            "run_dir": str(run_dir), "test": test, "holes": [], "wall_s": 0.0, "txn_per_s": None}


def failed(result: dict) -> bool:
    return bool(result.get("mismatches") or result.get("protocol_violations") or result.get("error"))


def run_suite(args) -> int:
    from mxdv.runs import build_for
    from mxdv.sim import BuildFailed
    from mxdv.unit import get_unit

    suite = get_suite(args.suite)
    if args.seeds:
        suite = replace(suite, seeds=args.seeds)
    if args.budget_scale != 1.0:
        suite = replace(suite, budget_scale=suite.budget_scale * args.budget_scale)
    if args.sim:
        suite = replace(suite, sim=args.sim)
    units = split_units(args.units) if args.units else None
    jobs = suite.jobs()
    if units:
        # "name" selects every variant of a unit, "name:default" only its default parameters,
        # "name:K=V,..." exactly that variant.
        known = {j.unit for j in jobs} | {j.unit.split(":")[0] for j in jobs}
        known |= {f"{k}:default" for k in known if ":" not in k}
        bad = [u for u in units if u not in known]
        if bad:
            raise ValueError(f"--units: {bad} not in suite {suite.name} (has {sorted(known)})")
        jobs = [j for j in jobs if j.unit in units or j.unit.split(":")[0] in units
                or (":" not in j.unit and f"{j.unit}:default" in units)]
    if args.strategies:
        wanted = [s.strip() for s in args.strategies.split(",")]
        from mxdv.sequences.registry import get_strategy, load_plugins
        load_plugins(args.plugin)
        for s in wanted:
            get_strategy(s)
        # the named strategies replace the suite's (plugin strategies enter it this way)
        wanted_jobs = suite.jobs(strategies=wanted)
        jobs = [j for j in wanted_jobs if j.unit in {k.unit for k in jobs}]
    if not jobs:
        raise ValueError("the selection leaves no jobs to run")
    out = Path(args.out or Path("runs") / f"regress-{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    plugins = [str(Path(p).resolve()) if p.endswith(".py") else p for p in args.plugin]
    print(f"mxdv regress: suite {suite.name}: {len(jobs)} jobs, {args.jobs} workers, sim {suite.sim} -> {out}", flush=True)

    if getattr(args, "stop_on_mismatch", False):
        jobs = [replace(j, stop_on_mismatch=True) for j in jobs]

    # Build every variant once up front; a variant that does not build fails its jobs (recorded
    # in summary.json and JUnit like any failure) instead of ending the regression.
    build_errors = {}
    for variant in sorted({j.unit for j in jobs}):
        t0 = time.monotonic()
        try:
            build_for(get_unit(variant), suite.sim, log=lambda m: print("  " + m, flush=True))
            print(f"  build ready: {variant} ({time.monotonic() - t0:.1f}s)", flush=True)
        except BuildFailed as exc:
            build_errors[variant] = f"BuildFailed: {exc}"
            print(f"  BUILD FAILED: {variant}: {str(exc).splitlines()[0] if str(exc) else ''}", flush=True)
    results = [{**_error_result(build_errors[j.unit], "", out / "jobs", j.test), "job": asdict(j),
                "job_wall_s": 0.0} for j in jobs if j.unit in build_errors]
    jobs = [j for j in jobs if j.unit not in build_errors]

    if jobs:
        with _llm_endpoint(jobs) as llm_options:
            jobs = [replace(j, options={**j.options, **llm_options}) if j.strategy == "llm" else j for j in jobs]
            results += _execute(jobs, out, plugins, max(1, args.jobs))

    (out / "summary.json").write_text(json.dumps(results, indent=2, default=str))
    _write_junit(out / "junit.xml", suite.name, results)
    merged = _merge_coverage(out, results)
    table = closure_table(results, merged)
    errors = error_table(results)
    if errors:
        table += "\n\n" + errors
    (out / "closure.md").write_text(table + "\n")
    print("\n" + table, flush=True)
    bad = [r for r in results if failed(r)]
    print(f"\n{len(results) - len(bad)} passed, {len(bad)} failed", flush=True)
    for r in bad[:10]:
        print(f"  FAILED {Job(**r['job']).name}: mismatches={r.get('mismatches')} "
              f"violations={len(r.get('protocol_violations') or [])} error={r.get('error')} ({r.get('run_dir')})")
    print(f"results: {out}", flush=True)
    return 1 if bad else 0


def _execute(jobs: list[Job], out: Path, plugins: list[str], workers: int) -> list[dict]:
    results = []
    t0 = time.monotonic()
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        pending = [pool.apply_async(_run_job, (asdict(j), str(out), plugins)) for j in jobs]
        for i, handle in enumerate(pending, 1):
            r = handle.get()
            results.append(r)
            job = Job(**r["job"])
            status = "FAIL" if failed(r) else "ok  "
            closed = f"closed@{r['closure_txns']}" if r.get("closure_txns") else f"{r.get('coverage_percent', 0):.1f}%"
            print(f"  [{i:>3}/{len(jobs)}] {status} {job.name:55} {r.get('transactions', 0):>6} txns  {closed:>13}"
                  f"  {r.get('job_wall_s', 0):6.1f}s  (elapsed {time.monotonic() - t0:.0f}s)", flush=True)
    return results


@contextlib.contextmanager
def _llm_endpoint(jobs: list[Job]):
    """The ``llm`` jobs talk to MXDV_LLM_BASE_URL if set, else to the scripted stand-in."""
    if not any(j.strategy == "llm" for j in jobs) or os.environ.get("MXDV_LLM_BASE_URL"):
        yield {}
        return
    from mxdv.llm_stimuli.standin import StandinServer

    with StandinServer(seed=0) as server:
        print(f"  llm jobs use the scripted stand-in server at {server.base_url} (not an LLM)", flush=True)
        yield {"base_url": server.base_url, "model": "scripted-standin", "api_key": "standin"}


def _write_junit(path: Path, suite: str, results: list[dict]) -> None:
    cases = []
    for r in results:
        job = Job(**r["job"])
        body = ""
        if failed(r):
            msg = r.get("error") or f"{r.get('mismatches')} mismatches, {len(r.get('protocol_violations') or [])} protocol violations"
            body = f'<failure message="{escape(str(msg), {chr(34): "&quot;"})}">{escape(r.get("traceback", "") or str(r.get("run_dir")))}</failure>'
        cases.append(f'  <testcase classname="mxdv.{escape(job.unit)}.{job.strategy}" name="{escape(job.name)}" '
                     f'time="{r.get("job_wall_s", 0)}">{body}</testcase>')
    n_fail = sum(1 for r in results if failed(r))
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="mxdv.{suite}" tests="{len(results)}" '
                    f'failures="{n_fail}">\n' + "\n".join(cases) + "\n</testsuite>\n")


def _merge_coverage(out: Path, results: list[dict]) -> dict[str, dict]:
    """Merge each unit variant's coverage files; returns variant -> {percent, holes, file}."""
    from mxdv.coverage.collector import load_hits, merge_files
    from mxdv.unit import get_unit

    by_unit: dict[str, list[Path]] = {}
    for r in results:
        f = Path(r.get("run_dir", "")) / r.get("test", "StrategyRun") / "coverage.yml"
        if f.exists():
            by_unit.setdefault(r["job"]["unit"], []).append(f)
    merged = {}
    (out / "coverage").mkdir(exist_ok=True)
    for variant, files in sorted(by_unit.items()):
        target = out / "coverage" / f"{variant.replace(':', '_').replace(',', '_')}.yml"
        merge_files(target, files)
        unit = get_unit(variant)
        hits = load_hits(target, unit.name)
        holes = [b for b in unit.plan.bin_names if hits.get(b, 0) == 0]
        merged[variant] = {"percent": 100.0 * (len(unit.plan.bin_names) - len(holes)) / len(unit.plan.bin_names),
                           "holes": holes, "file": str(target)}
    return merged


def closure_table(results: list[dict], merged: dict[str, dict] | None = None) -> str:
    """Per unit and strategy: transactions to 100% of the plan (median over seeds), or the
    coverage reached within the budget when not every seed closed."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        if r["job"]["test"] != "StrategyRun":
            continue
        groups.setdefault((r["job"]["unit"], r["job"]["strategy"]), []).append(r)
    lines = ["| unit | strategy | seeds | closed | txns to closure (median) | min..max | coverage (median) | budget | txn/s | failures |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    best: dict[str, tuple[float, str]] = {}
    notes = []
    for (unit, strategy), rs in sorted(groups.items()):
        closed = [r["closure_txns"] for r in rs if r.get("closure_txns")]
        budget = rs[0]["job"]["budget"]
        cov = statistics.median(r.get("coverage_percent", 0.0) for r in rs)
        rates = [r["txn_per_s"] for r in rs if r.get("txn_per_s")]
        if len(closed) == len(rs):
            med = statistics.median(closed)
            txt, span = f"{med:g}", f"{min(closed)}..{max(closed)}"
            if unit not in best or med < best[unit][0]:
                best[unit] = (med, strategy)
        else:
            txt, span = f"not closed within {budget}", (f"{min(closed)}..{max(closed)}" if closed else "-")
        lines.append(f"| {unit} | {strategy} | {len(rs)} | {len(closed)}/{len(rs)} | {txt} | {span} | {cov:.1f}% | "
                     f"{budget} | {statistics.median(rates):.0f} | {sum(1 for r in rs if failed(r))} |"
                     if rates else
                     f"| {unit} | {strategy} | {len(rs)} | {len(closed)}/{len(rs)} | {txt} | {span} | {cov:.1f}% | {budget} | - | {sum(1 for r in rs if failed(r))} |")
    for unit, (med, strategy) in sorted(best.items()):
        rnd = groups.get((unit, "random"))
        if not rnd:
            continue
        rnd_closed = [r["closure_txns"] for r in rnd if r.get("closure_txns")]
        # Target: the best strategy needs >= 10x fewer transactions than random. When random
        # does not close, it needs more than its budget, so a budget >= 10x the best settles it.
        if len(rnd_closed) == len(rnd):
            ratio = statistics.median(rnd_closed) / med
            notes.append(f"- {unit}: best `{strategy}` closes in {med:g} txns (median), "
                         f"`random` in {statistics.median(rnd_closed):g}: {ratio:.1f}x fewer; "
                         f"10x target {'met' if ratio >= 10 else 'NOT met'}")
        else:
            budget = rnd[0]["job"]["budget"]
            notes.append(f"- {unit}: best `{strategy}` closes in {med:g} txns (median); `random` did not close "
                         f"within {budget} txns ({budget / med:.0f}x the best) in {len(rnd) - len(rnd_closed)}/{len(rnd)} seeds; "
                         f"10x target {'met' if budget / med >= 10 else 'not settled (raise the random budget)'}")
    if merged:
        for unit, m in merged.items():
            notes.append(f"- {unit}: merged coverage over all its jobs {m['percent']:.1f}%"
                         + (f", holes: {', '.join(m['holes'])}" if m["holes"] else ""))
    return "\n".join(lines + [""] + notes)


def error_table(results: list[dict]) -> str:
    """Per unit variant: the error of its outputs against the float64 golden over every job
    (transactions that passed the bit-exact check, outputs inside NUMERICS.md's bounds)."""
    groups: dict[str, list[dict]] = {}
    for r in results:
        if r.get("golden_error"):
            groups.setdefault(r["job"]["unit"], []).append(r["golden_error"])
    if not groups:
        return ""
    lines = ["Error against the float64 golden (outputs that passed the bit-exact check and lie in "
             "NUMERICS.md's bounded range; `error/bound` <= 1 means the bound holds):", "",
             "| unit | measure | outputs | max | mean | max error/bound | over bound |", "|---|---|---|---|---|---|---|"]
    for unit, gs in sorted(groups.items()):
        n = sum(g["elements"] for g in gs)
        mean = sum(g["mean_abs"] * g["elements"] for g in gs) / n
        label = gs[0].get("label", "abs error").replace("|", "\\|")  # a pipe would end the cell
        lines.append(f"| {unit} | {label} | {n} | {max(g['max_abs'] for g in gs):.3g} | "
                     f"{mean:.3g} | {max(g['max_bound_ratio'] for g in gs):.3f} | {sum(g['over_bound'] for g in gs)} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `mxdv regress`")
