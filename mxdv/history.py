"""``mxdv history``: trends over past nights from the results database.

Per run: date, suite, seed base, commit, jobs passed/failed, and per unit variant the
coverage that night and the coverage accumulated over every night up to it (bin hits summed
across nights). Then the flakes (a seed that passed and failed on the same RTL) and the
failure signatures seen.
"""
from __future__ import annotations

import statistics

from mxdv.results_db import ResultsDB


def _percent(hits: dict[str, int], bins: dict[str, int]) -> tuple[float, list[str]]:
    """Coverage and holes, a bin covered at its goal (``bins``: name -> ``Bin.at_least``)."""
    holes = [b for b, goal in bins.items() if hits.get(b, 0) < goal]
    return 100.0 * (len(bins) - len(holes)) / len(bins), holes


def _bins(variant: str) -> dict[str, int]:
    from mxdv.unit import get_unit

    return {b.name: b.at_least for b in get_unit(variant).plan.bins}


def trend(db: ResultsDB, unit: str | None = None, last: int | None = None) -> list[dict]:
    """One row per (run, unit variant): jobs, failures, night and accumulated coverage."""
    rows = []
    for run in db.runs(unit, limit=last):
        jobs = db.jobs(run["id"], unit)
        for variant in sorted({j["unit"] for j in jobs}):
            js = [j for j in jobs if j["unit"] == variant]
            bins = _bins(variant)
            night, _ = _percent(db.run_hits(variant, run["id"]), bins)
            acc, holes = _percent(db.accumulated_hits(variant, run["id"]), bins)
            rows.append({"run": run["id"], "started": run["started"], "suite": run["suite"],
                         "seed_base": run["seed_base"], "commit": (run["git_commit"] or "-")[:12],
                         "status": run["status"], "variant": variant, "jobs": len(js),
                         "passed": sum(j["status"] == "pass" for j in js),
                         "failed": sum(j["status"] != "pass" for j in js),
                         "seeds": sorted({j["seed"] for j in js}),
                         "night_percent": night,
                         "median_job_percent": statistics.median(j["coverage_percent"] or 0.0 for j in js), "accumulated_percent": acc, "accumulated_holes": holes,
                         "wall_s": sum(j["wall_s"] or 0 for j in js)})
    return rows


def trend_markdown(rows: list[dict]) -> str:
    lines = ["| run | started (UTC) | suite | seed base | commit | unit | jobs | passed | failed | "
             "coverage that night | accumulated | job time |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']}{'' if r['status'] == 'finished' else ' (' + r['status'] + ')'} | {r['started']} | "
                     f"{r['suite']} | {r['seed_base']} | {r['commit']} | {r['variant']} | {r['jobs']} | {r['passed']} | "
                     f"{r['failed']} | {r['night_percent']:.1f}% | {r['accumulated_percent']:.1f}% | {r['wall_s']:.0f}s |")
    return "\n".join(lines)


def accumulated_table(db: ResultsDB, variants: list[str], run_id: int) -> str:
    """Coverage of this night next to the coverage accumulated over all nights so far."""
    lines = ["| unit | coverage this night | accumulated over nights | nights | accumulated holes |",
             "|---|---|---|---|---|"]
    for v in variants:
        bins = _bins(v)
        night, _ = _percent(db.run_hits(v, run_id), bins)
        acc, holes = _percent(db.accumulated_hits(v, run_id), bins)
        nights = db.conn.execute("SELECT COUNT(DISTINCT run_id) FROM jobs WHERE unit=? AND run_id<=?",
                                 (v, run_id)).fetchone()[0]
        lines.append(f"| {v} | {night:.1f}% | {acc:.1f}% | {nights} | {', '.join(holes) or '-'} |")
    return "\n".join(lines) if variants else ""


def flakes_markdown(flakes: list[dict]) -> str:
    if not flakes:
        return "No flakes: no seed both passed and failed on the same RTL."
    lines = ["| unit | strategy | test | sim | seed | passes | failures | runs |", "|---|---|---|---|---|---|---|---|"]
    for f in flakes:
        lines.append(f"| {f['unit']} | {f['strategy']} | {f['test']} | {f['sim']} | {f['seed']} | "
                     f"{f['passes']} | {f['fails']} | {f['runs']} |")
    return "\n".join(lines)


def history_text(db: ResultsDB, unit: str | None = None, last: int | None = None) -> str:
    rows = trend(db, unit, last)
    if not rows:
        return f"no runs{' of ' + unit if unit else ''} in {db.path}"
    out = [f"# History{' of ' + unit if unit else ''} ({db.path})", "", trend_markdown(rows), "",
           "## Flakes (FLAKY: same seed, same RTL, both passed and failed)", "", flakes_markdown(db.flakes(unit))]
    sigs: dict[str, list] = {}
    for f in db.failures(unit=unit):
        sigs.setdefault(f["signature"], []).append(f)
    if sigs:
        out += ["", "## Failure signatures", "", "| signature | jobs | runs | last replay |", "|---|---|---|---|"]
        for sig, fs in sorted(sigs.items(), key=lambda kv: -len(kv[1])):
            out.append(f"| {sig.replace('|', '/')} | {len(fs)} | {sorted({f['run_id'] for f in fs})} | `{fs[-1]['replay']}` |")
    return "\n".join(out)
