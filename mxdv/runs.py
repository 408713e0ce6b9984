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


def test_modules(unit_name: str) -> list[str]:
    """The cocotb test modules of a unit: the generic ``mxdv.env.tests`` and, when the unit
    has one, ``mxdv.env.<unit>.tests`` with tests of its own."""
    import importlib.util

    own = f"mxdv.env.{unit_name}.tests"
    return ["mxdv.env.tests"] + ([own] if importlib.util.find_spec(own) is not None else [])


def build_for(unit: Unit, sim_name: str, log: Callable[[str], None] | None = None,
              waves: bool = False, coverage: bool = False) -> Path:
    """Build the unit's checked toplevel (the DUT inside the generated wrapper with the
    interface-property checkers, ``mxdv.env.checked_top``); the wrapper carries the variant's
    parameters itself."""
    from mxdv.env.checked_top import sources_of, toplevel_of

    return sim.build(sources_of(unit, sim.BUILD_ROOT / "wrappers"), toplevel_of(unit), {}, sim_name, log=log,
                     waves=waves, coverage=coverage)


def run_one(cfg: RunConfig, test: str = DEFAULT_TEST,
            progress: Callable[[dict], None] | None = None,
            log: Callable[[str], None] | None = None, waves: bool = False,
            code_coverage: bool = False) -> dict:
    """Run one test of one unit with one strategy; returns the parsed ``result.json``.

    ``waves`` records ``<run_dir>/waves.fst`` (both simulators); ``code_coverage`` (Verilator)
    writes Verilator's ``<run_dir>/coverage.dat``.

    The simulator's own output goes to ``<run_dir>/sim.log``; ``progress`` is called with
    each line the running test appends to ``progress.jsonl``.
    """
    unit = get_unit(cfg.unit)
    run_dir = Path(cfg.run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.run_dir = str(run_dir)
    try:
        build_dir = build_for(unit, cfg.sim, log=log, waves=waves, coverage=code_coverage)
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
        _run_quiet(build_dir, unit, cfg, run_dir, env, test, waves)
    except (RuntimeError, SystemExit) as exc:  # the runner raises these when the simulator fails
        error = exc
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
    result_path = run_dir / test / "result.json"
    if not result_path.exists():
        raise RunFailed(f"{unit.variant} on {cfg.sim}: the simulation produced no result "
                        f"({error or 'no error reported'}); see {run_dir / 'sim.log'}")
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


def _run_quiet(build_dir: Path, unit: Unit, cfg: RunConfig, run_dir: Path, env: dict, test: str,
               waves: bool = False) -> None:
    """Run the simulator with its output in ``sim.log`` (the runner prints only there)."""
    from cocotb_tools.runner import get_runner

    from mxdv.env.checked_top import toplevel_of

    ctx = sim.verilator_env() if cfg.sim == "verilator" else contextlib.nullcontext()
    with ctx:
        runner = get_runner(cfg.sim)
        runner.build_dir = build_dir
        runner.test(test_module=test_modules(unit.name), hdl_toplevel=toplevel_of(unit), hdl_toplevel_lang="verilog",
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
