"""The mutation report: counts, per-strategy kill scores, survivors (markdown and JSON)."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from mxdv.mutate.campaign import EQUIVALENT, KILLED, STILLBORN, SURVIVED
from mxdv.mutate.jobs import SURVIVED as JOB_SURVIVED


def summarize(campaign: dict) -> dict:
    """Counts and scores from a campaign's records (see :func:`mxdv.mutate.campaign.run_campaign`)."""
    recs = campaign["records"]
    strategies = campaign["settings"]["strategies"]
    by = {k: [r for r in recs if r["status"] == k] for k in (STILLBORN, EQUIVALENT, KILLED, SURVIVED, "error")}
    simulated = by[KILLED] + by[SURVIVED]
    unknown = [r for r in simulated if r.get("equivalence", {}).get("status") == "unknown"]
    per_strategy = {}
    for st in strategies:
        kills = [r["jobs"][st] for r in simulated if r["jobs"][st]["outcome"] != JOB_SURVIVED]
        txns = [k["txns_to_kill"] for k in kills if k.get("txns_to_kill") is not None]
        reasons: dict[str, int] = {}
        for k in kills:
            reasons[k["outcome"]] = reasons.get(k["outcome"], 0) + 1
        per_strategy[st] = {
            "killed": len(kills), "of": len(simulated),
            "score": round(100.0 * len(kills) / len(simulated), 1) if simulated else None,
            "txns_to_kill_median": statistics.median(txns) if txns else None,
            "txns_to_kill_max": max(txns) if txns else None,
            "budget": campaign["baseline"][st]["budget"], "kill_reasons": reasons,
        }
    reasons_all: dict[str, int] = {}
    for r in by[KILLED]:
        for o in {j["outcome"] for j in r["jobs"].values() if j["outcome"] != JOB_SURVIVED}:
            reasons_all[o] = reasons_all.get(o, 0) + 1
    return {
        "unit": campaign["settings"]["unit"], "sampled": campaign["sampled"], "generated": campaign["generated"],
        "stillborn": len(by[STILLBORN]), "equivalent": len(by[EQUIVALENT]), "unknown": len(unknown),
        "simulated": len(simulated), "killed": len(by[KILLED]), "survived": len(by[SURVIVED]),
        "errors": len(by["error"]),
        "kill_percent": round(100.0 * len(by[KILLED]) / len(simulated), 1) if simulated else None,
        "kill_reasons": reasons_all, "per_strategy": per_strategy,
        "survivors": [{"id": r["mutant"]["id"], "where": f"{r['mutant']['file']}:{r['mutant']['line']}",
                       "class": r["mutant"]["cls"], "source_line": r["mutant"]["source_line"],
                       "mutated_line": r["mutant"]["mutated_line"],
                       "equivalence": r.get("equivalence", {}).get("status")} for r in by[SURVIVED]],
    }


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(campaign: dict, summary: dict, command: str = "") -> str:
    st = campaign["settings"]
    lines = [f"# Mutation testing: {summary['unit']}", ""]
    if command:
        lines += [f"`{command}`", ""]
    lines += [f"{summary['generated']} mutants generated, {summary['sampled']} sampled (seed {st['seed']}); "
              f"simulator {st['sim']}, budget scale {st['budget_scale']}, job time limit "
              f"{campaign['job_timeout_s']:.0f}s, Yosys time limit {st['equiv_timeout_s']:g}s; "
              + (f"**partial: {campaign['partial']}** (campaign interrupted)." if campaign.get("partial")
                 else f"{campaign['wall_s']:.0f}s."), "",
              "| sampled | stillborn | equivalent | simulated | of which unknown (Yosys) | killed | survived | killed % |",
              "|---|---|---|---|---|---|---|---|",
              f"| {summary['sampled']} | {summary['stillborn']} | {summary['equivalent']} | {summary['simulated']} | "
              f"{summary['unknown']} | {summary['killed']} | {summary['survived']} | "
              f"{summary['kill_percent'] if summary['kill_percent'] is not None else '-'} |", ""]
    if summary["errors"]:
        lines += [f"**{summary['errors']} mutant(s) could not be evaluated** (see mutants.jsonl).", ""]
    if summary["kill_reasons"]:
        lines += ["Killed by: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["kill_reasons"].items()))
                  + " (a mutant counts once per kind).", ""]
    lines += ["| strategy | budget | killed | kill score | txns to first kill (median) | max | how |",
              "|---|---|---|---|---|---|---|"]
    for name, p in summary["per_strategy"].items():
        lines.append(f"| {name} | {p['budget']} | {p['killed']}/{p['of']} | "
                     f"{p['score'] if p['score'] is not None else '-'}% | {p['txns_to_kill_median'] if p['txns_to_kill_median'] is not None else '-'} | "
                     f"{p['txns_to_kill_max'] if p['txns_to_kill_max'] is not None else '-'} | "
                     f"{', '.join(f'{k} {v}' for k, v in sorted(p['kill_reasons'].items())) or '-'} |")
    lines += ["", "## Survivors", ""]
    if summary["survivors"]:
        lines += ["| mutant | where | class | original line | mutated line | Yosys |", "|---|---|---|---|---|---|"]
        for s in summary["survivors"]:
            lines.append(f"| `{s['id']}` | {s['where']} | {s['class']} | `{_cell(s['source_line'])}` | "
                         f"`{_cell(s['mutated_line'])}` | {s['equivalence']} |")
    else:
        lines.append("none")
    lines += ["", "## Every mutant", "", "| mutant | class | status | Yosys | " +
              " | ".join(summary["per_strategy"]) + " |", "|---|---|---|---|" + "---|" * len(summary["per_strategy"])]
    for r in campaign["records"]:
        m = r["mutant"]
        cells = []
        for name in summary["per_strategy"]:
            j = r.get("jobs", {}).get(name)
            cells.append("-" if j is None else (j["outcome"] if j["outcome"] == JOB_SURVIVED else
                                                 f"{j['outcome']}@{j['txns_to_kill']}"))
        eq = r.get("equivalence", {}).get("status", "-")
        lines.append(f"| `{m['id']}` `{_cell(m['original'])}`->`{_cell(m['replacement'])}` | {m['cls']} | "
                     f"{r['status']} | {eq} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(campaign: dict, out: Path, command: str = "") -> dict:
    """Write ``report.json`` and ``report.md`` into ``out``; returns the summary."""
    summary = summarize(campaign)
    (Path(out) / "report.json").write_text(json.dumps({"summary": summary, "campaign": campaign}, indent=2, default=str))
    (Path(out) / "report.md").write_text(to_markdown(campaign, summary, command))
    return summary


def reclassify(campaign: dict) -> dict:
    """Re-derive every job's outcome from the ``mutate_result.json`` in its run directory (after
    a change to :func:`mxdv.mutate.jobs.classify`); timeouts and crashes have no result and stay."""
    from mxdv.mutate.jobs import classify

    for r in campaign["records"]:
        for j in r.get("jobs", {}).values():
            res = Path(j["run_dir"]) / "mutate_result.json"
            if res.exists():
                j.update(classify(json.loads(res.read_text()), Path(j["run_dir"])))
    return campaign


if __name__ == "__main__":  # python -m mxdv.mutate.report DIR: (re)write the report of a campaign
    import sys

    from mxdv.mutate.campaign import load_partial

    target = Path(sys.argv[1])
    full = target / "report.json"
    campaign = json.loads(full.read_text())["campaign"] if full.exists() else load_partial(target)
    command = (target / "report.md").read_text().splitlines()[2].strip("`") if full.exists() else ""
    write(reclassify(campaign), target, command)
    print((target / "report.md").read_text().split("\n## Every mutant")[0])
