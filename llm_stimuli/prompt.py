"""The prompt of the ``llm`` strategy: the unit's spec, its transaction format, the uncovered
bins in plain words (what each means and why it matters), what earlier batches covered or got
wrong, and the request for exactly N transactions as ``{"transactions": [...]}``.

Three machine-readable lines open the user message (``UNIT:``, ``COUNT:``,
``UNCOVERED_BINS:``) so that the scripted stand-in server can answer without being an LLM;
:func:`parse_header` reads them back.
"""
from __future__ import annotations

SYSTEM = ("You are a hardware verification engineer writing test stimulus for a design under test. "
          "You answer with JSON only: one object {\"transactions\": [...]} whose items follow the "
          "given field list exactly, with no comments and no extra text.")

COMPACT_FORM = ('An array field may instead be written compactly as {"fill": v, "set": {"index": v, ...}}: '
                "every element is v except the listed indices (into the flattened array, from 0). "
                'Example for a 4-element array: {"fill": 1.0, "set": {"3": -2.5}} means [1.0, 1.0, 1.0, -2.5].')


def stimulus_bins(unit, uncovered) -> tuple[list, int]:
    """The uncovered bins that transaction contents can hit, and how many others there are
    (stalls and resets are hit by the environment, so the model is not asked for them)."""
    plan = unit.plan
    mine, env = [], 0
    for b in uncovered:
        try:
            environment = plan.group_of(b.name).environment
        except KeyError:
            environment = False
        if environment:
            env += 1
        else:
            mine.append(b)
    return mine, env


def build_prompt(unit, uncovered, count: int, history: list[str], max_bins: int = 12) -> str:
    bins, env_bins = stimulus_bins(unit, uncovered)
    shown = bins[:max_bins]
    lines = [
        f"UNIT: {unit.variant}",
        f"COUNT: {count}",
        "UNCOVERED_BINS: " + ", ".join(b.name for b in shown),
        "",
        "Design under test:",
        unit.description.strip(),
        "",
        "A transaction is a JSON object with these fields:",
        unit.schema.describe(),
        COMPACT_FORM,
        "",
    ]
    if shown:
        lines.append("Coverage bins not hit yet. Write transactions that hit them, one bin per transaction, "
                     "in this order:")
        for b in shown:
            lines.append(f"- {b.name}: {b.meaning} (why it matters: {b.why})")
        if len(bins) > len(shown):
            lines.append(f"- ... and {len(bins) - len(shown)} more")
    else:
        lines.append("Every coverage bin that transaction contents can hit is covered; write unusual, "
                     "varied transactions that might expose a bug.")
    if env_bins:
        lines.append(f"({env_bins} more bins are hit by the test bench itself: stalls and resets; ignore them.)")
    if history:
        lines += ["", "What your earlier batches did:"] + [f"- {h}" for h in history[-4:]]
    lines += ["", f'Answer with exactly {count} transactions as JSON: {{"transactions": [...]}}.']
    return "\n".join(lines)


def repair_prompt(problems: list[str], count: int) -> str:
    """The follow-up message after a reply that could not (fully) be used."""
    listed = "; ".join(problems[:8]) + ("; ..." if len(problems) > 8 else "")
    return (f"Your answer could not be used: {listed}. Answer again with exactly {count} transactions "
            'as {"transactions": [...]}, every field within its range.')


def parse_header(text: str) -> dict:
    """Read the machine-readable lines back (used by the scripted stand-in)."""
    out = {"unit": None, "count": 1, "bins": []}
    for line in text.splitlines():
        if line.startswith("UNIT: "):
            out["unit"] = line[6:].strip()
        elif line.startswith("COUNT: "):
            out["count"] = int(line[7:].strip())
        elif line.startswith("UNCOVERED_BINS:"):
            out["bins"] = [b.strip() for b in line.split(":", 1)[1].split(",") if b.strip()]
    return out
