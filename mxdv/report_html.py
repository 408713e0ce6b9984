"""``report.html``: one self-contained page per regression (plots inline as SVG, no links to
fetch). Per unit variant: closure curves per strategy, the plan with hit counts and holes,
the failure buckets with replay commands and wave files, the trend over past nights from
the results database, and the RTL code coverage when the run collected it.
"""
from __future__ import annotations

import html
import io
import time
from pathlib import Path

#: Closure-curve colors (used nowhere else on the page: the rendering test looks for them).
STRATEGY_COLORS = {"random": "#d62728", "constrained": "#1f77b4", "hypothesis": "#2ca02c", "llm": "#9467bd"}

CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 24px; } h2 { font-size: 20px; border-bottom: 2px solid #555; padding-bottom: 4px; }
h3 { font-size: 16px; margin-top: 18px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
td, th { border: 1px solid #bbb; padding: 3px 8px; text-align: left; }
th { background: #e8eef7; } tr.hole td { background: #fde2e2; } .ok { color: #137333; } .bad { color: #b3261e; font-weight: bold; }
code { background: #f3f3f3; padding: 1px 4px; font-size: 12px; }
.summary { font-size: 15px; padding: 8px; background: #f5f7fb; border: 1px solid #ccd; }
"""


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def closure_svg(results: list[dict], variant: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = [r for r in results if r["job"]["unit"] == variant and r.get("history")]
    if not rs:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    seen = set()
    for r in rs:
        s = r["job"]["strategy"]
        xs = [0] + [h[0] for h in r["history"]]
        ys = [0] + [h[1] for h in r["history"]]
        ax.step(xs, ys, where="post", color=STRATEGY_COLORS.get(s, "#555"), linewidth=1.8,
                label=None if s in seen else s)
        seen.add(s)
    ax.set_xlabel("transactions")
    ax.set_ylabel("plan coverage %")
    ax.set_ylim(0, 102)
    ax.set_title(f"{variant}: closure curves (one line per job)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _svg(fig)


def trend_svg(rows: list[dict], variant: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["variant"] == variant]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 2.8))
    x = [r["run"] for r in rows]
    ax.plot(x, [r["night_percent"] for r in rows], "o-", color="#17becf", label="coverage that night")
    ax.plot(x, [r["accumulated_percent"] for r in rows], "s--", color="#ff7f0e", label="accumulated over nights")
    ax2 = ax.twinx()
    ax2.bar(x, [r["failed"] for r in rows], alpha=0.25, color="#d62728", width=0.4, label="failed jobs")
    ax2.set_ylabel("failed jobs")
    ax2.set_ylim(0, max(1, max(r["failed"] for r in rows)) * 1.1)
    ax.plot(x, [r["median_job_percent"] for r in rows], "^:", color="#7f7f7f", label="median job coverage")
    ax.set_xlabel("run")
    ax.set_ylabel("coverage %")
    ax.set_ylim(0, 102)
    ax.set_xticks(x)
    ax.set_title(f"{variant}: trend over nights")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _svg(fig)


def _table(header: list[str], rows: list[list], row_class=None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(rows):
        cls = f' class="{row_class(i)}"' if row_class and row_class(i) else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return "\n".join(out + ["</table>"])


def _e(x) -> str:
    return html.escape(str(x))


def write_report(path: Path, suite: str, results: list[dict], merged: dict, buckets, db, run_id: int,
                 codecov: dict | None = None) -> Path:
    from mxdv.coverage.collector import load_hits
    from mxdv.history import trend
    from mxdv.regress import failed
    from mxdv.unit import get_unit

    variants = sorted({r["job"]["unit"] for r in results})
    n_bad = sum(1 for r in results if failed(r))
    run = next((r for r in db.runs() if r["id"] == run_id), {})
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>mxdv regress {_e(suite)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>mxdv regression report: suite {_e(suite)}</h1>",
             f"<p class='summary'>run {run_id}, started {_e(run.get('started', '?'))}, seed base "
             f"{_e(run.get('seed_base', '?'))}, commit <code>{_e(run.get('git_commit') or '-')}</code>: "
             f"<b>{len(results)} jobs, <span class='ok'>{len(results) - n_bad} passed</span>, "
             f"<span class='{'bad' if n_bad else 'ok'}'>{n_bad} failed</span></b>, "
             f"{len(buckets)} failure bucket(s). Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}.</p>"]
    trend_rows = trend(db)
    for variant in variants:
        unit = get_unit(variant)
        rs = [r for r in results if r["job"]["unit"] == variant]
        parts.append(f"<h2>{_e(variant)}</h2>")
        # jobs
        job_rows = [[_e(r["job"]["strategy"]), _e(r["job"]["test"]), _e(r["job"]["seed"]),
                     f"<span class='{'bad' if failed(r) else 'ok'}'>{_e(r.get('status', '?'))}</span>",
                     _e(r.get("transactions", 0)), f"{r.get('coverage_percent', 0):.1f}%",
                     _e(r.get("closure_txns") or "-"), f"{r.get('job_wall_s', 0):.1f}s"] for r in rs]
        parts.append(_table(["strategy", "test", "seed", "status", "txns", "coverage", "closed at", "wall"], job_rows))
        svg = closure_svg(results, variant)
        if svg:
            parts.append("<h3>Closure curves per strategy</h3>" + svg)
        # plan with hit counts
        m = merged.get(variant)
        if m:
            hits = load_hits(Path(m["file"]), unit.name)
            names = list(unit.plan.bin_names)
            parts.append(f"<h3>Coverage plan: {m['percent']:.1f}% of {len(names)} bins hit this run, "
                         f"{len(m['holes'])} hole(s)</h3>")
            plan_rows = []
            for name in names:
                b = unit.plan.get(name)
                goal = getattr(b, "at_least", 1)
                plan_rows.append([f"<code>{_e(name)}</code>", _e(hits.get(name, 0)), _e(goal),
                                  "HOLE" if hits.get(name, 0) < goal else "", _e(getattr(b, "meaning", "") or "")])
            parts.append(_table(["bin", "hits", "goal", "", "meaning"], plan_rows,
                                row_class=lambda i: "hole" if plan_rows[i][3] else ""))
        # buckets
        bs = [b for b in buckets if b.first["job"]["unit"] == variant]
        parts.append(f"<h3>Failure buckets ({len(bs)})</h3>")
        if bs:
            parts.append(_table(["signature", "jobs", "seeds", "replay", "waves"],
                                [[_e(b.signature), _e(len(b.results)), _e(", ".join(map(str, b.seeds[:12]))),
                                  f"<code>{_e(b.replay)}</code>",
                                  (f"<code>{_e(b.waves)}</code><br>" if b.waves else "") + _e(b.waves_note)] for b in bs]))
        else:
            parts.append("<p class='ok'>No failures.</p>")
        # trend
        parts.append("<h3>Trend over nights (results database)</h3>")
        svg = trend_svg(trend_rows, variant)
        if svg:
            parts.append(svg)
        rows = [[_e(r["run"]), _e(r["started"]), _e(r["seed_base"]), _e(r["jobs"]), _e(r["failed"]),
                 f"{r['night_percent']:.1f}%", f"{r['accumulated_percent']:.1f}%"]
                for r in trend_rows if r["variant"] == variant]
        parts.append(_table(["run", "started", "seed base", "jobs", "failed", "coverage that night", "accumulated"], rows))
        # code coverage
        parts.append("<h3>RTL code coverage (Verilator)</h3>")
        cc = (codecov or {}).get(variant)
        if cc:
            parts.append(_table(["type", "hit", "points", "%"],
                                [[_e(t), _e(v["hit"]), _e(v["total"]), f"{v['percent']:.1f}%"] for t, v in cc["types"].items()]
                                + [["all", "", _e(cc["points"]), f"{cc['percent']:.1f}%"]]))
            if cc["uncovered"]:
                parts.append("<p>Uncovered source points:</p><ul>" + "".join(
                    f"<li><code>{_e(f)}:{ln}</code> {_e(t)} {_e(o)}</li>" for f, ln, t, o in cc["uncovered"][:50]) + "</ul>")
        else:
            parts.append("<p>Not collected in this run (<code>mxdv regress --code-coverage</code>, Verilator).</p>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts))
    return path
