"""Both modes agree: the same stimulus and schedule through the bulk harness and through a
per-cycle Python transactor on the checked toplevel (cycle mode) give the same captures.

:func:`agreement_stimulus` draws, from the run's seed, random transactions and a schedule
with input gaps, output backpressure and a reset in the traffic. ``BulkAgreement`` (module
``mxdv.env.bulk.agreement_bulk``) loads them into the harness; ``CycleAgreement`` (module
``mxdv.env.bulk.agreement_cycle``) drives the checked toplevel from Python, cycle by cycle,
with :func:`replay_cycle_mode`, which follows the harness's transactor rules
(``harness_gen``) beat for beat. Each writes ``captures.json`` to the run's test directory:
every accepted input and output beat with its cycle, and the reset cycles.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, ValueChange

from mxdv.env import run_config
from mxdv.env.agents.valid_ready import Backpressure, Idle
from mxdv.env.bulk import layout as L
from mxdv.env.bulk.monitor import Captured
from mxdv.env.bulk.schedule import Schedule, random_schedule
from mxdv.env.run_context import CLOCK_PERIOD_NS
from mxdv.unit import Unit, get_unit

LEAD_RESET = 5


def agreement_stimulus(unit: Unit, seed: int, n_txns: int, reset: bool = True):
    """(transactions, encoded beats, schedule), all drawn from ``seed``."""
    rng = np.random.default_rng([seed, 0xA6EE])
    txns = [unit.schema.random(rng) for _ in range(n_txns)]
    encoded = [unit.encode(t) for t in txns]
    beats = [sum(len(e.get(p.prefix, [])) for e in encoded) for p in unit.input_ports]
    sched = random_schedule(beats, Idle(prob=0.3), Backpressure(prob=0.2), rng,
                            reset_at=int(rng.integers(beats[0] // 3, max(beats[0] // 3 + 1, beats[0] // 2))) if reset else None,
                            reset_len=2, lead_reset=LEAD_RESET)
    return txns, encoded, sched


def captures_json(cap: Captured) -> dict:
    return {"inputs": {p: [[c, t, s, b] for c, t, s, b in recs] for p, recs in cap.inputs.items()},
            "outputs": [[c, s, b] for c, s, b in cap.outputs], "resets": list(cap.resets)}


def _out_path() -> tuple[Path, run_config.RunConfig]:
    cfg = run_config.load()
    return Path(cfg.run_dir), cfg


async def replay_cycle_mode(dut, unit: Unit, encoded, sched: Schedule, idle_limit: int) -> tuple[Captured, int]:
    """Drive the checked toplevel from Python by the harness's rules; returns the captures
    and the number of cycles."""
    lay = L.Layout.of(unit)
    ports = [pl.port for pl in lay.inputs]
    out = lay.output.port
    beats = {p.prefix: [b for e in encoded for b in e.get(p.prefix, [])] for p in ports}
    owner = {p.prefix: [t for t, e in enumerate(encoded) for _ in e.get(p.prefix, [])] for p in ports}
    fstart = {p.prefix: np.concatenate([[0], np.cumsum([len(e.get(p.prefix, [])) for e in encoded])]).tolist()
              for p in ports}
    n_txns = len(encoded)
    sig = lambda name: getattr(dut, name)  # noqa: E731
    idx = {p.prefix: 0 for p in ports}
    valid = {p.prefix: 0 for p in ports}
    stall = {p.prefix: 0 for p in ports}
    acc = {p.prefix: False for p in ports}
    rst, out_stall, cyc, idle = 0, 0, 0, 0
    rst_prev = 0
    cap = Captured(inputs={p.prefix: [] for p in ports})
    words = sched.words()

    def word(c: int) -> int:  # the harness's sched_at: past the end, the ready pattern repeats
        if c < words.size:
            return int(words[c])
        if not words.size:
            return lay.sched_default
        return (lay.sched_default & ~2) | (int(words[c % words.size]) & 2)

    def resume_at(p) -> int:
        i = idx[p]
        if i >= len(beats[p]):
            return n_txns
        t = owner[p][i]
        return t if fstart[p][t] == i else t + 1

    def drive(sw: int) -> None:
        nonlocal rst
        new_rst = sw & 1
        if new_rst and not rst:
            r = max(resume_at(p.prefix) for p in ports)
            for p in ports:
                idx[p.prefix] = fstart[p.prefix][r]
        for k, p in enumerate(ports):
            q = p.prefix
            if new_rst:
                valid[q] = 0
            elif valid[q] and not acc[q] and not rst:
                pass
            elif idx[q] < len(beats[q]) and (sw >> (2 + k)) & 1:
                valid[q] = 1
                for f, v in beats[q][idx[q]].items():
                    sig(p.signal(f)).value = v
            else:
                valid[q] = 0
            sig(p.signal("valid")).value = valid[q]
        sig(out.signal("ready")).value = (sw >> 1) & 1
        dut.rst.value = new_rst
        rst = new_rst

    for p in ports:
        sig(p.signal("valid")).value = 0
    drive(word(0))
    while True:
        await RisingEdge(dut.clk)
        cyc += 1
        progress = False
        for p in ports:
            acc[p.prefix] = False
        if rst:
            out_stall = 0
            for p in ports:
                stall[p.prefix] = 0
            if not rst_prev:
                cap.resets.append(cyc)
        else:
            for p in ports:
                q = p.prefix
                ready = int(sig(p.signal("ready")).value)
                if valid[q] and not ready:
                    stall[q] += 1
                if valid[q] and ready:
                    acc[q] = progress = True
                    data = {f: int(sig(p.signal(f)).value) for f, _ in p.fields}
                    cap.inputs[q].append((cyc, owner[q][idx[q]], stall[q], data))
                    idx[q] += 1
                    stall[q] = 0
            ov, ordy = int(sig(out.signal("valid")).value), int(sig(out.signal("ready")).value)
            if ov and not ordy:
                out_stall += 1
            if ov and ordy:
                progress = True
                cap.outputs.append((cyc, out_stall, {f: int(sig(out.signal(f)).value) for f, _ in out.fields}))
                out_stall = 0
        rst_prev = rst
        idle = 0 if progress else idle + 1
        if cyc >= sched.quiet_from and idle >= idle_limit:
            return cap, cyc
        drive(word(cyc))


async def run_cycle(dut) -> None:
    out_dir, cfg = _out_path()
    unit = get_unit(cfg.unit)
    _, encoded, sched = agreement_stimulus(unit, cfg.seed, cfg.budget, reset=cfg.reset_prob > 0)
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
    await ClockCycles(dut.clk, 2)
    cap, cycles = await replay_cycle_mode(dut, unit, encoded, sched, cfg.bulk_idle_cycles)
    (out_dir / "captures.json").write_text(json.dumps({"cycles": cycles, **captures_json(cap)}))


async def run_bulk(dut) -> None:
    from mxdv.env.bulk.driver import BatchDriver
    from mxdv.env.bulk.monitor import BatchMonitor

    out_dir, cfg = _out_path()
    unit = get_unit(cfg.unit)
    _, encoded, sched = agreement_stimulus(unit, cfg.seed, cfg.budget, reset=cfg.reset_prob > 0)
    drv = BatchDriver("agreement_driver", None).setup(unit, cfg.bulk_depth, cfg.bulk_idle_cycles)
    drv.load(encoded, sched)
    dut.mxdv_go.value = 1
    while int(dut.mxdv_done.value) != 1:
        await ValueChange(dut.mxdv_done)
    mon = BatchMonitor.__new__(BatchMonitor)
    mon.layout = drv.layout
    status = mon.read_status(drv.channels)
    cap = mon.read(drv.channels, status)
    (out_dir / "captures.json").write_text(json.dumps({"cycles": status.cycles, "reason": status.reason_text,
                                                       **captures_json(cap)}))
