"""The prompt of the ``llm`` strategy: the unit's spec, its fields, the stimulus program
language (generated from the schema), a sample of the uncovered bins in plain words (what
the design does there and why it matters; never a plan hint), the best programs so far as
examples, and program-by-program feedback on the last reply; then the request for N programs
as ``{"programs": [...]}``.

Three machine-readable lines open the user message (``UNIT:``, ``PROGRAMS:``,
``TARGET_BINS:``) so the scripted stand-in can answer without being an LLM;
:func:`parse_header` reads them back.
"""
from __future__ import annotations

import json

from mxdv.sequences.programs.json_schema import describe_language

SYSTEM = ("You are a hardware verification engineer. You write stimulus programs (small JSON "
          "descriptions of how to generate test transactions) that drive a design into the coverage "
          "bins you are asked to hit. You answer with JSON only: {\"programs\": [...]}.")


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


def build_prompt(unit, targets, n_programs: int, total_open: int, feedback: list[str],
                 examples: list[dict], assign: bool = False, fill: str = "uniform") -> str:
    """``targets``: the bins (plan :class:`Bin` objects) this request aims at; ``assign``: each
    program is asked for one of them, in order (``targets`` holds at most ``n_programs``)."""
    lines = [
        f"UNIT: {unit.variant}",
        f"PROGRAMS: {n_programs}",
        "TARGET_BINS: " + ", ".join(b.name for b in targets),
        "",
        "Design under test:",
        unit.description.strip(),
        "",
        "Transaction fields:",
        unit.schema.describe(),
        "",
        describe_language(unit.schema, fill),
        "",
    ]
    if targets and assign:
        # one named bin per program: a small model given a list aims every program at its head
        lines.append(f"Coverage bins not hit yet ({len(targets)} of {total_open} open ones shown); "
                     "write one program per bin, in this order:")
        for i, b in enumerate(targets, 1):
            lines.append(f"- program {i}: {b.name}: {b.meaning}")
    elif targets:
        lines.append(f"Coverage bins not hit yet ({len(targets)} of {total_open} open ones shown). "
                     "Each program should aim at one or two of them:")
        for b in targets:
            lines.append(f"- {b.name}: {b.meaning}")
    else:
        lines.append("Every bin that transaction contents can hit is covered; write unusual programs.")
    if examples:
        lines += ["", "Programs that worked before (what they newly covered):"]
        for ex in examples:
            lines.append(f"- {json.dumps(ex['program'], separators=(',', ':'))} -> {', '.join(ex['hit'])}")
    if feedback:
        lines += ["", "Your last programs:"] + [f"- {x}" for x in feedback]
    lines += ["", f'Answer with {n_programs} programs as JSON: {{"programs": [...]}}.']
    return "\n".join(lines)


def repair_prompt(problems: list[str], n_programs: int) -> str:
    """The follow-up message after a reply with no usable program."""
    listed = "; ".join(problems[:6]) + ("; ..." if len(problems) > 6 else "")
    return (f"Your answer could not be used: {listed}. Answer again with {n_programs} programs as "
            '{"programs": [...]}, following the program format exactly.')


def parse_header(text: str) -> dict:
    """Read the machine-readable lines back (used by the scripted stand-in)."""
    out = {"unit": None, "programs": 1, "bins": []}
    for line in text.splitlines():
        if line.startswith("UNIT: "):
            out["unit"] = line[6:].strip()
        elif line.startswith("PROGRAMS: "):
            out["programs"] = int(line[10:].strip())
        elif line.startswith("TARGET_BINS:"):
            out["bins"] = [b.strip() for b in line.split(":", 1)[1].split(",") if b.strip()]
    return out
