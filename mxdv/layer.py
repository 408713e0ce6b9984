"""``mxdv layer``: one transformer layer on the RTL units, bit for bit against the stack.

Validates the request (model, checkpoint, dimensions against the RTL variant, quantization)
before anything is built, builds the layer top once per variant and simulator, runs the
``LayerRun`` pyuvm test (``env/layer/tests.py``) with its progress shown, and formats the
result: bit-exactness, the first differing op, accuracy against float64, per-unit work and
the workload coverage of each unit's plan.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

from mxdv import sim
from mxdv.runs import follow_jsonl
from mxdv.env.layer import top
from mxdv.env.layer.workload import LayerRequest, build_workload

TEST = "LayerRun"
ENV_VAR = "MXDV_LAYER_REQUEST"


class LayerRunFailed(RuntimeError):
    pass


def validate(req: LayerRequest):
    """The workload, or LayerInputError / ValueError naming the bad parameter (no simulation)."""
    sim.check_simulator(req.sim)
    return build_workload(req)


def run_layer(req: LayerRequest, progress: Callable[[dict], None] | None = None,
              log: Callable[[str], None] | None = None) -> dict:
    wl = validate(req)
    run_dir = Path(req.run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    req.run_dir = str(run_dir)
    try:
        build_dir = top.build(wl.hardware, req.sim, log=log)
    except sim.BuildFailed as exc:
        raise LayerRunFailed(str(exc)) from exc
    req_path = req.save(run_dir / "layer_request.json")
    prog = run_dir / "progress.jsonl"
    prog.unlink(missing_ok=True)
    stop = threading.Event()
    watcher = None
    if progress is not None:
        watcher = threading.Thread(target=follow_jsonl, args=(prog, progress, stop, 0.5), daemon=True)
        watcher.start()
    t0 = time.monotonic()
    try:
        _simulate(build_dir, req, wl.hardware, run_dir, {ENV_VAR: str(req_path)})
    except (RuntimeError, SystemExit):
        pass  # the test fails on a mismatch; result.json says why
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
    path = run_dir / TEST / "result.json"
    if not path.exists():
        raise LayerRunFailed(f"the layer simulation produced no result; see {run_dir / 'sim.log'}")
    result = json.loads(path.read_text())
    result["run_dir"] = str(run_dir)
    result["sim_wall_s"] = round(time.monotonic() - t0, 2)
    return result


def _simulate(build_dir: Path, req: LayerRequest, hw: dict, run_dir: Path, env: dict) -> None:
    from cocotb_tools.runner import get_runner

    env = {**env, "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "INFO")}
    ctx = sim.verilator_env() if req.sim == "verilator" else contextlib.nullcontext()
    with ctx:
        runner = get_runner(req.sim)
        runner.build_dir = build_dir
        runner.test(test_module="mxdv.env.layer.tests", hdl_toplevel=top.TOPLEVEL, hdl_toplevel_lang="verilog",
                    build_dir=str(build_dir), test_dir=str(run_dir), extra_env=env, testcase=TEST,
                    seed=req.seed, results_xml=str(run_dir / "results.xml"), timescale=sim.TIMESCALE,
                    parameters=hw, log_file=str(run_dir / "sim.log"))


def format_progress(p: dict) -> str:
    d, t = p["done"], p["totals"]
    eta = "?" if p.get("eta_s") is None else f"{p['eta_s']:.0f}s"
    return (f"  [{p['elapsed_s']:7.1f}s] {p.get('step', '')}: tiles {d['tiles']}/{t['tiles']}  "
            f"blocks {d['blocks']}/{t['blocks']}  heads {d['heads']}/{t['heads']}  ({p.get('op', '')})  ETA {eta}")


def format_result(r: dict) -> str:
    lines = [f"model: {r['model']}", f"layer {r['request']['layer']}, quant {r['request']['quant']}, "
             f"sim {r['request']['sim']}, steps: " + ", ".join(f"{s['name']} ({s['tokens']} tok @ {s['start']})"
                                                                 for s in r["steps"])]
    lines.append(f"bit-exact against QuantizedPath: {'YES' if r['bit_exact'] else 'NO'}"
                 f" (unit mismatches: {sum(u['mismatches'] for u in r['per_unit'].values())})")
    if r.get("first_difference"):
        lines.append(f"first difference: {r['first_difference']}")
    for m in r.get("unit_mismatches", [])[:2]:  # the full reports (with the input) are in result.json
        lines.extend(x for x in m.splitlines() if not x.lstrip().startswith(("input:", "replay:")))
    if r.get("error"):
        lines.append(f"error: {r['error']}")
    a = r.get("accuracy")
    if a:
        lines.append(f"against float64 (same layer, same inputs): cosine {a['cosine']:.6f}, max abs error "
                     f"{a['max_abs_err']:.4g} (max |golden| {a['max_abs_golden']:.4g})")
    lines.append("")
    lines.append("| unit | variant | transactions (blocks / tiles / head row-tiles) | work | busy cycles | wall s |")
    lines.append("|---|---|---|---|---|---|")
    for name, u in r["per_unit"].items():
        lines.append(f"| {name} | {u['variant']} | {u['transactions']} | {u['work']:.4g} {u['work_label']} "
                     f"| {u['busy_cycles']} | {u['wall_s']} |")
    lines.append(f"total: {r['sim_cycles']} simulated cycles, {r['wall_s']} s in the simulator")
    lines.append("")
    lines.append("workload coverage (unit plans sampled on the layer's traffic):")
    for name, c in r["coverage"].items():
        data = [b for b in c["never_hit"] if not b.startswith("protocol.")]
        proto = [b for b in c["never_hit"] if b.startswith("protocol.")]
        lines.append(f"  {name}: {len(c['hit'])}/{c['bins']} bins hit ({c['percent']}%); data bins never hit: "
                     + (", ".join(data) or "none")
                     + (f"; protocol bins never hit (environment stress, not data): {len(proto)}" if proto else ""))
    return "\n".join(lines)
