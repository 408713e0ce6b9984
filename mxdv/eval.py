"""``mxdv eval``: measure how fast strategies close one unit's coverage plan, over seeds.

Every strategy x seed runs as one job (``mxdv.runs.run_one``, in parallel worker processes),
by default until the plan closes or the budget is spent. Each run records its coverage after
every transaction (``coverage_curve`` in ``result.json``, from ``env/run_context.py``), with
wall seconds and, for strategies that call an LLM, calls and tokens so far. From those curves
the out directory gets:

* ``closure.png``: coverage % against transactions (one thin line per strategy x seed, the
  strategy's median bold), against wall seconds, and against LLM tokens when any run has them;
* ``eval.md``: the command line, then per strategy: transactions to 50 / 90 / 100 % (median
  and min..max over seeds), seeds closed, final coverage, LLM calls and tokens to closure,
  tokens per newly covered bin, wall time;
* ``eval.json``: the same numbers plus every run's milestones and curve;
* ``runs.jsonl``: one line per finished job, written as jobs finish (nothing finished is lost);
* ``jobs/<strategy>-s<seed>/``: each run's own directory (as ``mxdv run`` writes it).

An ``llm`` row is labelled with its endpoint and model; a row produced by the scripted
stand-in is labelled "scripted stand-in (not an LLM)" and is never named fastest.
"""
from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import shlex
import statistics
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mxdv.labels import STANDIN_LABEL, is_standin, row_label

THRESHOLDS = (50, 90, 100)
#: Fractions of the budget at which every strategy's coverage is compared (equal transactions).
EQUAL_TXNS_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1)
#: Options never written to eval.json / runs.jsonl.
SECRET_OPTIONS = ("api_key",)


@dataclass
class EvalSpec:
    """What one ``mxdv eval`` measures (validated by :func:`make_spec`)."""

    unit: str
    strategies: list[str]
    seeds: list[int]
    budget: int
    sim: str = "verilator"
    #: Simulation mode of every job: "bulk" or "cycle" (``make_spec`` resolves "auto").
    mode: str = "cycle"
    jobs: int = 1
    out: str = ""
    stop_at_closure: bool = True
    plugins: list[str] = field(default_factory=list)
    #: Strategy options: ``{"*": {...}}`` for every strategy, ``{name: {...}}`` for one.
    options: dict = field(default_factory=dict)
    command: str = ""

    def options_for(self, strategy: str) -> dict:
        return {**self.options.get("*", {}), **self.options.get(strategy, {})}


def split_options(options: dict, strategies: list[str]) -> dict:
    """``{"explore": 0.5, "llm.timeout_s": 300}`` -> ``{"*": {"explore": 0.5}, "llm":
    {"timeout_s": 300}}``: a key ``STRATEGY.KEY`` applies to that strategy only."""
    out: dict = {"*": {}}
    for key, value in options.items():
        prefix, dot, rest = key.partition(".")
        if dot and prefix in strategies and rest:
            out.setdefault(prefix, {})[rest] = value
        else:
            out["*"][key] = value
    return out


def make_spec(unit: str, strategies: str, seeds: int, budget: int, *, seed_base: int = 1,
              sim: str = "verilator", mode: str = "auto", jobs: int = 1, out: str | None = None,
              stop_at_closure: bool = True, plugins: list[str] | None = None,
              options: dict | None = None, command: str = "") -> EvalSpec:
    """Check every argument; a ValueError names the bad one."""
    from mxdv.sequences.registry import get_strategy, load_plugins
    from mxdv.unit import get_unit

    try:
        variant = get_unit(unit).variant
    except ValueError as exc:
        raise ValueError(f"--unit {unit!r}: {exc}") from None
    plugins = [str(Path(p).resolve()) if p.endswith(".py") else p for p in (plugins or [])]
    load_plugins(plugins)
    names = list(dict.fromkeys(s.strip() for s in (strategies or "").split(",") if s.strip()))
    if not names:
        raise ValueError("--strategies: name at least one strategy (comma-separated)")
    for name in names:
        try:
            get_strategy(name)
        except ValueError as exc:
            raise ValueError(f"--strategies: {exc}") from None
    for flag, value in (("--seeds", seeds), ("--budget", budget), ("--jobs", jobs)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    from mxdv.runs import resolve_mode

    mode = resolve_mode(mode, sim)  # a ValueError naming --mode
    if not isinstance(seed_base, int) or seed_base < 0:
        raise ValueError(f"--seed-base must be >= 0, got {seed_base}")
    out = out or str(Path("runs") / f"eval-{variant.replace(':', '_').replace(',', '_')}-{time.strftime('%Y%m%d-%H%M%S')}")
    return EvalSpec(unit=unit, strategies=names, seeds=list(range(seed_base, seed_base + seeds)),
                    budget=budget, sim=sim, mode=mode, jobs=jobs, out=str(Path(out).resolve()),
                    stop_at_closure=stop_at_closure, plugins=plugins,
                    options=split_options(options or {}, names), command=command)


# -- running ---------------------------------------------------------------------------------
def _public(options: dict) -> dict:
    return {k: ("<redacted>" if k in SECRET_OPTIONS else v) for k, v in options.items()}


def _run_job(job: dict) -> dict:
    """One strategy x seed (in a worker process); a crash is a failed run, never a crash."""
    from mxdv.env.run_config import RunConfig
    from mxdv.runs import run_one

    cfg = RunConfig(unit=job["unit"], strategy=job["strategy"], seed=job["seed"], budget=job["budget"],
                    run_dir=job["run_dir"], sim=job["sim"], mode=job["mode"],
                    plugins=list(job["plugins"]),
                    strategy_options=dict(job["options"]), stop_at_closure=job["stop_at_closure"],
                    fresh=True)  # a measurement: no corpus or example database carried over
    t0 = time.monotonic()
    try:
        result = run_one(cfg)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                  "transactions": 0, "mismatches": 0, "protocol_violations": [], "coverage_percent": 0.0,
                  "closure_txns": None, "run_dir": job["run_dir"], "strategy_stats": {}}
    result["job"] = dict(job, options=_public(job["options"]))
    result["job_wall_s"] = round(time.monotonic() - t0, 2)
    return result


def failed(result: dict) -> bool:
    return bool(result.get("mismatches") or result.get("protocol_violations") or result.get("error"))


@contextlib.contextmanager
def _llm_endpoint(spec: EvalSpec):
    """``llm`` talks to its ``base_url`` option or MXDV_LLM_BASE_URL; without either, to the
    scripted stand-in (whose rows are then labelled as such)."""
    wants = "llm" in spec.strategies and not spec.options_for("llm").get("base_url")
    if not wants or os.environ.get("MXDV_LLM_BASE_URL"):
        yield {}
        return
    from mxdv.llm_stimuli.standin import MODEL_ID, StandinServer

    with StandinServer(seed=0) as server:
        print(f"  llm jobs use the {STANDIN_LABEL} at {server.base_url}", flush=True)
        yield {"base_url": server.base_url, "model": MODEL_ID, "api_key": "standin"}


def run_eval(spec: EvalSpec) -> int:
    """Run every job, write the reports; exit status 1 when any run failed."""
    from mxdv.runs import build_for
    from mxdv.sim import BuildFailed
    from mxdv.unit import get_unit

    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    unit = get_unit(spec.unit)
    total = len(spec.strategies) * len(spec.seeds)
    print(f"mxdv eval: {unit.variant}: {len(spec.strategies)} strategies x {len(spec.seeds)} seeds = {total} jobs, "
          f"budget {spec.budget}, sim {spec.sim}, {spec.jobs} workers, "
          f"stop at closure {'on' if spec.stop_at_closure else 'off'} -> {out}", flush=True)
    t0 = time.monotonic()
    try:
        build_for(unit, spec.sim, log=lambda m: print("  " + m, flush=True))
    except BuildFailed as exc:
        print(f"mxdv eval: BUILD FAILED: {unit.variant} on {spec.sim}: {exc}", file=sys.stderr)
        return 1
    print(f"  build ready ({time.monotonic() - t0:.1f}s)", flush=True)
    results: list[dict] = []
    with _llm_endpoint(spec) as llm_options:
        jobs = []
        for strategy in spec.strategies:
            options = spec.options_for(strategy)
            if strategy == "llm":
                options = {**llm_options, **options}
            for seed in spec.seeds:
                jobs.append({"unit": spec.unit, "strategy": strategy, "seed": seed, "budget": spec.budget,
                             "sim": spec.sim, "mode": spec.mode, "run_dir": str(out / "jobs" / f"{strategy}-s{seed}"),
                             "plugins": spec.plugins, "options": options,
                             "stop_at_closure": spec.stop_at_closure})
        log_path = out / "runs.jsonl"
        log_path.unlink(missing_ok=True)
        try:
            with mp.get_context("spawn").Pool(min(spec.jobs, len(jobs))) as pool:
                for i, r in enumerate(pool.imap_unordered(_run_job, jobs), 1):
                    results.append(r)
                    with log_path.open("a") as fh:
                        fh.write(json.dumps(r, default=str) + "\n")
                    print(_progress_line(i, len(jobs), r, time.monotonic() - t0), flush=True)
        finally:
            if results:
                write_reports(spec, results, out)
    bad = [r for r in results if failed(r)]
    for r in bad[:10]:
        print(f"  FAILED {r['job']['strategy']} seed {r['job']['seed']}: mismatches={r.get('mismatches')} "
              f"violations={len(r.get('protocol_violations') or [])} error={r.get('error')} ({r.get('run_dir')})")
    print(f"results: {out / 'eval.md'}, {out / 'eval.json'}, {out / 'closure.png'}", flush=True)
    return 1 if bad else 0


def _progress_line(i: int, n: int, r: dict, elapsed: float) -> str:
    job = r["job"]
    status = "FAIL" if failed(r) else "ok  "
    reached = f"closed@{r['closure_txns']}" if r.get("closure_txns") else f"{r.get('coverage_percent', 0):.1f}%"
    return (f"  [{i:>3}/{n}] {status} {job['strategy']:>14} seed {job['seed']:<4} {r.get('transactions', 0):>7} txns "
            f"{reached:>14}  {r.get('job_wall_s', 0):7.1f}s  (elapsed {elapsed:.0f}s)")


# -- measuring -------------------------------------------------------------------------------
def curve_points(result: dict) -> list[dict]:
    """The run's coverage curve as dicts (``txns``, ``coverage``, ``wall_s``, ``llm_tokens``,
    ``llm_calls``), starting from 0 transactions."""
    curve = result.get("coverage_curve") or {}
    names = curve.get("fields") or []
    points = [dict(zip(names, p)) for p in curve.get("points") or []]
    if not points or points[0].get("txns", 0) > 0:
        points.insert(0, {"txns": 0, "coverage": 0.0, "wall_s": 0.0, "llm_tokens": None, "llm_calls": None})
    return points


def coverage_at(points: list[dict], txns: int) -> float:
    """Coverage after the first ``txns`` transactions of a run (curve points are cumulative). A run
    that ended before ``txns`` (closed, or its strategy stopped) counts with its final coverage."""
    return _step_median([_txns_curve(points)], [txns])[0]


def _txns_curve(points: list[dict]) -> list[tuple[float, float]]:
    return [(p.get("txns") or 0, p.get("coverage") or 0.0) for p in points]


def equal_txns_checkpoints(budget: int) -> list[int]:
    return sorted({max(1, round(budget * f)) for f in EQUAL_TXNS_FRACTIONS})


def coverage_at_checkpoints(curves: list[list[dict]], budget: int) -> dict[str, float | None]:
    """Median coverage over runs (their :func:`curve_points`) at each equal-transactions checkpoint."""
    if not curves:
        return {str(n): None for n in equal_txns_checkpoints(budget)}
    xs = equal_txns_checkpoints(budget)
    return dict(zip(map(str, xs), _step_median([_txns_curve(c) for c in curves], xs)))


def _llm_totals(stats: dict) -> tuple[int | None, int | None]:
    if not {"prompt_tokens", "completion_tokens"} & set(stats):
        return None, None
    tokens = int(stats.get("prompt_tokens") or 0) + int(stats.get("completion_tokens") or 0)
    calls = stats.get("replies")
    return tokens, (int(calls) if isinstance(calls, (int, float)) else None)


def run_summary(result: dict) -> dict:
    """One run's milestones: transactions (and wall s, LLM calls/tokens) to each threshold,
    LLM calls and tokens to closure, tokens per newly covered bin."""
    points = curve_points(result)
    stats = result.get("strategy_stats") or {}
    milestones = {}
    for thr in THRESHOLDS:
        hit = next((p for p in points if p.get("coverage", 0) >= thr - 1e-9), None)
        milestones[str(thr)] = hit
    closure = result.get("closure_txns")
    tokens, calls = _llm_totals(stats)
    calls_to, tokens_to = None, None
    log = stats.get("calls_log")
    if closure and isinstance(log, list) and log:
        before = [c for c in log if isinstance(c, dict) and (c.get("txns") or 0) < closure]
        calls_to = len(before)
        tokens_to = sum(int(c.get("prompt_tokens") or 0) + int(c.get("completion_tokens") or 0) for c in before)
    elif closure and milestones["100"] is not None:
        calls_to, tokens_to = milestones["100"].get("llm_calls"), milestones["100"].get("llm_tokens")
    bins = result.get("bins_total") or 0
    new_bins = round(bins * (result.get("coverage_percent") or 0.0) / 100.0 - bins * points[0]["coverage"] / 100.0)
    return {
        "strategy": result["job"]["strategy"], "seed": result["job"]["seed"],
        "transactions": result.get("transactions", 0), "closure_txns": closure,
        "coverage_percent": result.get("coverage_percent", 0.0), "bins_total": bins, "new_bins": new_bins,
        "txns_to": {k: (None if v is None else v["txns"]) for k, v in milestones.items()},
        "wall_s_to": {k: (None if v is None else v["wall_s"]) for k, v in milestones.items()},
        "wall_s": result.get("wall_s"), "job_wall_s": result.get("job_wall_s"),
        "llm": tokens is not None, "llm_calls": calls, "llm_tokens": tokens,
        "llm_calls_to_closure": calls_to, "llm_tokens_to_closure": tokens_to,
        "tokens_per_new_bin": (round(tokens / new_bins, 1) if tokens is not None and new_bins > 0 else None),
        "standin": is_standin(result), "failed": failed(result), "error": result.get("error"),
        "strategy_error": stats.get("error"), "run_dir": result.get("run_dir"),
    }


def _median_with_misses(values: list) -> float | None:
    """Median where None (not reached) counts as larger than anything; None when the median
    itself is not reached."""
    keyed = sorted(math.inf if v is None else v for v in values)
    med = statistics.median(keyed) if keyed else math.inf
    return None if math.isinf(med) else med


def _median(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def strategy_rows(spec: EvalSpec, results: list[dict]) -> list[dict]:
    """Per strategy (in the order asked for): the medians and spreads of :func:`run_summary`."""
    rows = []
    for strategy in spec.strategies:
        rs = [r for r in results if r["job"]["strategy"] == strategy]
        if not rs:
            continue
        runs = sorted((run_summary(r) for r in rs), key=lambda s: s["seed"])
        row = {"strategy": strategy, "label": row_label(strategy, rs), "standin": any(s["standin"] for s in runs),
               "seeds": len(runs), "closed": sum(1 for s in runs if s["closure_txns"]),
               "coverage_median": _median([s["coverage_percent"] for s in runs]),
               "failures": sum(1 for s in runs if s["failed"]), "llm": any(s["llm"] for s in runs),
               "wall_s_median": _median([s["wall_s"] for s in runs]),
               "wall_s_to_closure_median": _median_with_misses([s["wall_s_to"]["100"] for s in runs]),
               "milestones": {}}
        for thr in map(str, THRESHOLDS):
            vals = [s["txns_to"][thr] for s in runs]
            reached = [v for v in vals if v is not None]
            row["milestones"][thr] = {"median": _median_with_misses(vals), "reached": len(reached),
                                      "min": min(reached) if reached else None,
                                      "max": max(reached) if reached else None, "per_seed": vals}
        row["coverage_at"] = coverage_at_checkpoints([curve_points(r) for r in rs], spec.budget)
        if row["llm"]:
            closed = [s for s in runs if s["closure_txns"]]
            row.update({"llm_calls_median": _median([s["llm_calls"] for s in runs]),
                        "llm_tokens_median": _median([s["llm_tokens"] for s in runs]),
                        "llm_calls_to_closure_median": _median([s["llm_calls_to_closure"] for s in closed]),
                        "llm_tokens_to_closure_median": _median([s["llm_tokens_to_closure"] for s in closed]),
                        "tokens_per_new_bin_median": _median([s["tokens_per_new_bin"] for s in runs])})
        row["runs"] = runs
        rows.append(row)
    return rows


def fastest(rows: list[dict]) -> dict | None:
    """The row with the fewest median transactions to 100 %, never a stand-in row."""
    real = [r for r in rows if not r["standin"] and r["milestones"]["100"]["median"] is not None]
    return min(real, key=lambda r: r["milestones"]["100"]["median"]) if real else None


# -- reporting -------------------------------------------------------------------------------
def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _round(v, digits: int = 1):
    return None if v is None else round(v, digits)


def milestone_cell(m: dict, seeds: int, budget: int) -> str:
    span = f"{m['min']}..{m['max']}" if m["reached"] else ""
    if m["median"] is None:
        return f"not reached within {budget}" + (f" ({m['reached']}/{seeds}: {span})" if m["reached"] else "")
    if m["reached"] == seeds:
        return f"{_fmt(m['median'])} ({span})"
    return f"{_fmt(m['median'])} ({m['min']}..>{budget}, {m['reached']}/{seeds})"


def markdown(spec: EvalSpec, rows: list[dict], unit_variant: str) -> str:
    lines = [f"# mxdv eval: {unit_variant}", "", f"Produced by: `{spec.command}`", "",
             f"Simulator {spec.sim}, {spec.mode} mode; seeds {spec.seeds[0]}..{spec.seeds[-1]}; budget {spec.budget} transactions "
             f"per run; stop at closure {'on' if spec.stop_at_closure else 'off'}. Transactions to X % are "
             "counted when the run's coverage first reaches X % (median over seeds, min..max in brackets; a "
             "seed that never reached it counts as more than the budget). Wall seconds are spent inside the "
             "simulation (build and simulator start-up excluded); LLM tokens are prompt + completion.", "",
             "![closure curves](closure.png)", "",
             "| strategy | seeds closed | txns to 50 % | txns to 90 % | txns to 100 % | final coverage (median) "
             "| LLM calls to closure | LLM tokens to closure | tokens per newly covered bin | wall s (median) "
             "| wall s to 100 % (median) | failures |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms = [milestone_cell(r["milestones"][str(t)], r["seeds"], spec.budget) for t in THRESHOLDS]
        llm = ([_fmt(r["llm_calls_to_closure_median"]), _fmt(r["llm_tokens_to_closure_median"]),
                _fmt(r["tokens_per_new_bin_median"])] if r["llm"] else ["-", "-", "-"])
        cov = r["coverage_median"]
        lines.append(f"| {r['label']} | {r['closed']}/{r['seeds']} | " + " | ".join(ms)
                     + f" | {_fmt(round(cov, 1) if cov is not None else None)} % | " + " | ".join(llm)
                     + f" | {_fmt(_round(r['wall_s_median']))} | {_fmt(_round(r['wall_s_to_closure_median']))} | {r['failures']} |")
    lines += ["", *equal_txns_table(rows), ""]
    best = fastest(rows)
    if best is not None:
        lines.append(f"- Fastest to 100 %: `{best['strategy']}`, {_fmt(best['milestones']['100']['median'])} "
                     "transactions (median).")
    else:
        lines.append("- No strategy (stand-in rows excluded) reached 100 % in the median seed.")
    for r in rows:
        if r["standin"]:
            lines.append(f"- `{r['strategy']}` ran against the {STANDIN_LABEL}: a scripted server, not a "
                         "model; plumbing only, no closure claim rests on it.")
        if r["llm"]:
            lines.append(f"- `{r['strategy']}`: LLM calls per run {_fmt(r['llm_calls_median'])}, tokens per run "
                         f"{_fmt(r['llm_tokens_median'])} (medians).")
        for s in r["runs"]:
            if s["error"] or s["strategy_error"]:
                lines.append(f"- `{r['strategy']}` seed {s['seed']}: {s['error'] or s['strategy_error']}")
    return "\n".join(lines) + "\n"


def equal_txns_table(rows: list[dict]) -> list[str]:
    """Markdown lines: each strategy's median coverage after the same numbers of transactions."""
    cols = sorted({int(n) for r in rows for n in r.get("coverage_at", {})})
    if not cols:
        return []
    out = ["Coverage at equal transactions (median over seeds, %; a run that ended earlier counts with "
           "its final coverage):", "",
           "| strategy | " + " | ".join(f"{n} txns" for n in cols) + " |", "|---|" + "---|" * len(cols)]
    for r in rows:
        cells = [r.get("coverage_at", {}).get(str(n)) for n in cols]
        out.append(f"| {r['label']} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
    return out


def merged_equal_txns(paths: list[str]) -> str:
    """The equal-transactions table over several ``mxdv eval`` outputs (their ``eval.json``) of one
    unit, e.g. an ``llm`` eval and a baseline eval run separately at the same budget."""
    rows, units, budgets = [], set(), set()
    for p in paths:
        f = Path(p) / "eval.json" if Path(p).is_dir() else Path(p)
        try:
            report = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"mxdv.eval: cannot read {f}: {exc}") from None
        budget = (report.get("spec") or {}).get("budget")
        units.add(report.get("unit"))
        budgets.add(budget)
        for row in report.get("strategies") or []:
            if "coverage_at" not in row:  # written before the table existed: measured from the curves
                curves = [curve_points({"coverage_curve": c}) for k, c in (report.get("curves") or {}).items()
                          if k.rsplit("-s", 1)[0] == row["strategy"]]
                row["coverage_at"] = coverage_at_checkpoints(curves, int(budget or 1))
            rows.append(row)
    if len(units) > 1:
        raise SystemExit(f"mxdv.eval: the evals are of different units {sorted(map(str, units))}")
    if len(budgets) > 1:
        raise SystemExit(f"mxdv.eval: the evals have different budgets {sorted(map(str, budgets))}; "
                         "equal-transaction checkpoints would not line up")
    return "\n".join([f"# {units.pop()}: coverage at equal transactions", "",
                      "Produced by: `python -m mxdv.eval " + " ".join(paths) + "`", "", *equal_txns_table(rows)]) + "\n"


def _step_median(curves: list[list[tuple[float, float]]], xs: list[float]) -> list[float]:
    """Median over runs of each run's step curve (coverage of its last point at or before x;
    a run that ended holds its last coverage)."""
    out = []
    for x in xs:
        vals = []
        for c in curves:
            y = 0.0
            for cx, cy in c:
                if cx > x:
                    break
                y = cy
            vals.append(y)
        out.append(statistics.median(vals))
    return out


def plot(rows: list[dict], results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_spec = [("txns", "transactions", True), ("wall_s", "wall seconds (in simulation)", True)]
    if any(r["llm"] for r in rows):
        axes_spec.append(("llm_tokens", "LLM tokens (prompt + completion)", False))
    fig, axes = plt.subplots(1, len(axes_spec), figsize=(6.5 * len(axes_spec), 4.8), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, row in enumerate(rows):
        color = colors[i % len(colors)]
        rs = [r for r in results if r["job"]["strategy"] == row["strategy"]]
        for ax, (key, label, logx) in zip(axes[0], axes_spec):
            if key == "llm_tokens" and not row["llm"]:
                continue
            curves = []
            for r in rs:
                points = curve_points(r)
                points[0] = {**points[0], key: points[0].get(key) or 0}  # the start is at 0 tokens
                pts = [(float(p[key]), float(p["coverage"])) for p in points if p.get(key) is not None]
                if logx:  # a log axis cannot show 0: the start sits at the axis' left edge
                    floor = 1.0 if key == "txns" else 0.01
                    pts = [(max(x, floor), y) for x, y in pts]
                if not pts:
                    continue
                curves.append(pts)
                ax.step([x for x, _ in pts], [y for _, y in pts], where="post", color=color, alpha=0.3, lw=0.8)
            if curves:
                xs = sorted({x for c in curves for x, _ in c})
                ax.step(xs, _step_median(curves, xs), where="post", color=color, lw=2.4, label=row["label"])
    for ax, (key, label, logx) in zip(axes[0], axes_spec):
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("coverage %")
        ax.set_ylim(0, 101)
        ax.grid(True, alpha=0.3)
    axes[0][0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(spec: EvalSpec, results: list[dict], out: Path) -> dict:
    """eval.md, eval.json and closure.png from the finished runs."""
    from mxdv.unit import get_unit

    variant = get_unit(spec.unit).variant
    rows = strategy_rows(spec, results)
    (out / "eval.md").write_text(markdown(spec, rows, variant))
    curves = {f"{r['job']['strategy']}-s{r['job']['seed']}": r.get("coverage_curve") for r in results}
    spec_public = dict(asdict(spec), options={k: _public(v) for k, v in spec.options.items()})
    report = {"command": spec.command, "unit": variant, "spec": spec_public, "thresholds": list(THRESHOLDS),
              "strategies": rows, "fastest": (fastest(rows) or {}).get("strategy"), "curves": curves}
    (out / "eval.json").write_text(json.dumps(report, indent=2, default=str))
    plot(rows, results, out / "closure.png",
         f"{variant}: coverage closure, {len(spec.seeds)} seeds, budget {spec.budget}, {spec.sim}")
    return report


def command_line(argv: list[str]) -> str:
    return shlex.join(["mxdv", *argv])


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: python -m mxdv.eval EVAL_DIR [EVAL_DIR ...]\n  prints the coverage-at-equal-transactions "
              "table over the evals' eval.json (same unit, same budget)")
        sys.exit(0 if len(sys.argv) >= 2 else 2)
    print(merged_equal_txns(sys.argv[1:]), end="")

__all__ = ["coverage_at", "coverage_at_checkpoints", "equal_txns_table", "merged_equal_txns", "EvalSpec", "make_spec", "run_eval", "run_summary", "strategy_rows", "markdown", "fastest",
           "write_reports", "split_options"]
