"""One simulation run, outside the simulator: build (cached), configure, simulate, collect.

Used by ``mxdv run``, by ``mxdv regress`` workers and by the pytest suite, so all three run
exactly the same way.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from mxdv import sim
from mxdv.env.run_config import ENV_VAR, RunConfig
from mxdv.unit import Unit, get_unit

DEFAULT_TEST = "StrategyRun"


class RunFailed(RuntimeError):
    """The simulation did not produce a result (crash, build error, hang)."""


MODES = ("cycle", "bulk")
#: Transactions per batch in bulk mode when none is asked for (cycle mode: 16).
DEFAULT_BULK_BATCH = 1024


def test_modules(unit_name: str, mode: str = "cycle") -> list[str]:
    """The cocotb test modules of a unit: the generic ``mxdv.env.tests`` and, when the unit
    has one, ``mxdv.env.<unit>.tests`` with tests of its own; in bulk mode the generic tests
    of ``mxdv.env.bulk.tests`` only."""
    import importlib.util

    if mode == "bulk":
        return ["mxdv.env.bulk.tests"]
    own = f"mxdv.env.{unit_name}.tests"
    return ["mxdv.env.tests"] + ([own] if importlib.util.find_spec(own) is not None else [])


def resolve_mode(mode: str | None, sim_name: str) -> str:
    """``None``/"auto": bulk where the simulator supports it (Verilator), else cycle.
    ValueError for bulk on a simulator without DPI (Icarus) or an unknown mode."""
    if mode in (None, "auto"):
        return "bulk" if sim_name == "verilator" else "cycle"
    if mode not in MODES:
        raise ValueError(f"--mode {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "bulk" and sim_name != "verilator":
        raise ValueError(f"--mode bulk needs --sim verilator ({sim_name} has no DPI); use --mode cycle")
    return mode


def build_for(unit: Unit, sim_name: str, log: Callable[[str], None] | None = None,
              waves: bool = False, coverage: bool = False, mode: str = "cycle") -> Path:
    """Build the unit's checked toplevel (the DUT inside the generated wrapper with the
    interface-property checkers, ``mxdv.env.checked_top``); the wrapper carries the variant's
    parameters itself. Bulk mode builds the bulk harness around it (``mxdv.env.bulk``)."""
    if mode == "bulk":
        from mxdv.env.bulk import harness_gen

        return sim.build(harness_gen.sources_of(unit, sim.BUILD_ROOT / "wrappers"), harness_gen.toplevel_of(unit),
                         {}, sim_name, log=log, waves=waves, coverage=coverage,
                         extra_args=harness_gen.BUILD_ARGS)
    from mxdv.env.checked_top import sources_of, toplevel_of

    return sim.build(sources_of(unit, sim.BUILD_ROOT / "wrappers"), toplevel_of(unit), {}, sim_name, log=log,
                     waves=waves, coverage=coverage)


def toplevel_for(unit: Unit, mode: str) -> str:
    if mode == "bulk":
        from mxdv.env.bulk.harness_gen import toplevel_of
    else:
        from mxdv.env.checked_top import toplevel_of
    return toplevel_of(unit)


def run_one(cfg: RunConfig, test: str = DEFAULT_TEST,
            progress: Callable[[dict], None] | None = None,
            log: Callable[[str], None] | None = None, waves: bool = False,
            code_coverage: bool = False, modules: list[str] | None = None,
            require_result: bool = True) -> dict:
    """Run one test of one unit with one strategy; returns the parsed ``result.json``.

    ``waves`` records ``<run_dir>/waves.fst`` (both simulators); ``code_coverage`` (Verilator)
    writes Verilator's ``<run_dir>/coverage.dat``. ``modules``: the cocotb test modules to load
    instead of the mode's (``test_modules``); ``require_result``: False for tests that write no
    ``result.json`` (the mode-agreement tests); the result is then ``{}`` plus run facts.

    The simulator's own output goes to ``<run_dir>/sim.log``; ``progress`` is called with
    each line the running test appends to ``progress.jsonl``.
    """
    unit = get_unit(cfg.unit)
    try:
        cfg.mode = resolve_mode(cfg.mode, cfg.sim)
    except ValueError as exc:
        raise RunFailed(str(exc)) from exc
    run_dir = Path(cfg.run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.run_dir = str(run_dir)
    try:
        build_dir = build_for(unit, cfg.sim, log=log, waves=waves, coverage=code_coverage, mode=cfg.mode)
    except sim.BuildFailed as exc:
        raise RunFailed(str(exc)) from exc
    secret = cfg.strategy_options.pop("api_key", None)  # never written to disk: passed by env
    cfg_path = cfg.save(run_dir / "run_config.json")
    progress_file = run_dir / "progress.jsonl"
    progress_file.unlink(missing_ok=True)
    env = {ENV_VAR: str(cfg_path),
           "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "INFO")}
    if secret is not None:
        env["MXDV_LLM_API_KEY"] = str(secret)
    stop = threading.Event()
    watcher = None
    if progress is not None:
        watcher = threading.Thread(target=follow_jsonl, args=(progress_file, progress, stop), daemon=True)
        watcher.start()
    t0 = time.monotonic()
    error = None
    try:
        _run_quiet(build_dir, unit, cfg, run_dir, env, test, waves, modules)
    except (RuntimeError, SystemExit) as exc:  # the runner raises these when the simulator fails
        error = exc
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
    result_path = run_dir / test / "result.json"
    if not require_result:
        return {"run_dir": str(run_dir), "test": test, "results_xml_ok": error is None}
    if not result_path.exists():
        log = run_dir / "sim.log"
        if log.exists() and "SimTimeoutError" in log.read_text(errors="replace"):
            error = (f"SimTimeout: the test reached its simulated-time limit of {unit.sim_timeout_for(cfg.budget)} ms "
                     f"(Unit.sim_timeout_ms scaled to the budget of {cfg.budget})")
        raise RunFailed(f"{unit.variant} on {cfg.sim}: the simulation produced no result "
                        f"({error or 'no error reported'}); see {log}" + _bulk_death(run_dir))
    result = json.loads(result_path.read_text())
    result["run_dir"] = str(run_dir)
    result["test"] = test
    result["sim_wall_s"] = round(time.monotonic() - t0, 3)
    result["results_xml_ok"] = error is None
    if waves:
        dump = run_dir / "dump.fst"  # Verilator's trace file name; Icarus writes waves.fst
        if dump.exists():
            dump.replace(run_dir / "waves.fst")
        if (run_dir / "waves.fst").exists():
            result["waves"] = str(run_dir / "waves.fst")
    if code_coverage and (run_dir / "coverage.dat").exists():
        result["code_coverage_file"] = str(run_dir / "coverage.dat")
    return result


def _bulk_death(run_dir: Path) -> str:
    """What a bulk run's progress file says about a simulator that died: the batch in flight
    (with the seed) and what the finished batches had checked (kept in the file)."""
    from mxdv.env.bulk.context import PROGRESS_FILE

    path = run_dir / PROGRESS_FILE
    if not path.exists():
        return ""
    p = json.loads(path.read_text())
    where = p.get("in_flight") or {}
    batch = (f"in bulk batch {where['batch']} (transactions {where['ids'][0]}..{where['ids'][1]})"
             if where else "between bulk batches")
    return (f"; the simulator died {batch}, seed {p['seed']}; the {p['finished_batches']} finished batch(es) "
            f"checked {p['checked']} transaction(s) ({p['passed']} passed, {p['mismatch_count']} mismatch(es)), "
            f"kept in {path}; replay: {p['replay']}")


def _run_quiet(build_dir: Path, unit: Unit, cfg: RunConfig, run_dir: Path, env: dict, test: str,
               waves: bool = False, modules: list[str] | None = None) -> None:
    """Run the simulator with its output in ``sim.log`` (the runner prints only there)."""
    from cocotb_tools.runner import get_runner

    ctx = sim.verilator_env() if cfg.sim == "verilator" else contextlib.nullcontext()
    with ctx:
        runner = get_runner(cfg.sim)
        runner.build_dir = build_dir
        runner.test(test_module=modules or test_modules(unit.name, cfg.mode), hdl_toplevel=toplevel_for(unit, cfg.mode),
                    hdl_toplevel_lang="verilog",
                    build_dir=str(build_dir), test_dir=str(run_dir), extra_env=env,
                    testcase=test, seed=cfg.seed, results_xml=str(run_dir / "results.xml"),
                    timescale=sim.TIMESCALE,
                    log_file=str(run_dir / "sim.log"), waves=waves,
                    plusargs=[f"+dumpfile_path={run_dir / 'waves.fst'}"] if waves and cfg.sim == "icarus" else [])


def follow_jsonl(path: Path, callback: Callable[[dict], None], stop: threading.Event,
                 interval_s: float = 0.3) -> None:
    """Call ``callback`` with each complete JSON line appended to ``path`` until ``stop``
    (a progress file written by the simulation)."""
    pos = 0
    while True:
        done = stop.is_set()
        if path.exists():
            with path.open("rb") as fh:
                fh.seek(pos)
                chunk = fh.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            pos += len(complete)
            for line in complete.decode().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    callback(json.loads(line))
        if done:
            return
        stop.wait(interval_s)


def config_dict(cfg: RunConfig) -> dict:
    return asdict(cfg)
