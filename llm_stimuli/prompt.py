"""The prompt of the ``llm`` strategy: the unit's spec, its transaction format, the uncovered
bins in plain words, and what earlier batches achieved. Machine-readable lines (``UNIT:``,
``COUNT:``, ``UNCOVERED_BINS:``) let the scripted stand-in answer without being an LLM."""
from __future__ import annotations

SYSTEM = ("You are a hardware verification engineer generating test stimulus. You answer with JSON "
          "only: an object {\"transactions\": [...]} following the given field list exactly.")


def build_prompt(unit, uncovered, count: int, history: list[str], max_bins: int = 12) -> str:
    bins = uncovered[:max_bins]
    lines = [
        f"UNIT: {unit.variant}",
        f"COUNT: {count}",
        "UNCOVERED_BINS: " + ", ".join(b.name for b in bins),
        "",
        f"Design under test: {unit.description}",
        "",
        "Transaction fields:",
        unit.schema.describe(),
        'An array field may also be written compactly as {"fill": v, "set": {"index": v, ...}} '
        "(index into the flattened array).",
        "",
        "Coverage bins not hit yet (write transactions that hit them):",
    ]
    for b in bins:
        lines.append(f"- {b.name}: {b.meaning}")
    if len(uncovered) > len(bins):
        lines.append(f"- ... and {len(uncovered) - len(bins)} more")
    if history:
        lines += ["", "What earlier batches did:"] + [f"- {h}" for h in history[-4:]]
    lines += ["", f'Answer with exactly {count} transactions as JSON: {{"transactions": [...]}}.']
    return "\n".join(lines)


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
