"""Failure buckets: failed jobs grouped by signature, as dvsim buckets them.

A signature is ``unit | check | field | class``:

* ``check``: ``mismatch`` (the bit-exact scoreboard), ``protocol`` (the protocol checker),
  ``timeout`` (the per-job wall-clock limit), ``error:<ExceptionType>`` (e.g. a drain
  timeout: the DUT hung) or ``build``;
* ``field``: the output fields that differed in the first mismatch (``-`` when none);
* ``class``: ``value`` (a beat differs), ``spurious`` (an output beat with nothing in flight),
  or, for protocol violations and errors, the message with its numbers removed.

Each bucket lists its jobs and seeds and the command that replays its first job exactly
(same configuration, same seed, so the same idle gaps, backpressure and resets).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

_NUM = re.compile(r"0x[0-9a-fA-F]+|\d+")


def _generic(text: str, n: int = 80) -> str:
    """A message with numbers, ids and paths removed, so that the same failure in two seeds
    gives the same text."""
    first = (text or "").splitlines()[0] if text else ""
    first = re.split(r"\(ids |; replay:| see /|\(log ", first)[0]
    return _NUM.sub("N", first).strip()[:n]


def first_mismatch(result: dict) -> dict | None:
    path = Path(result.get("run_dir") or "") / result.get("test", "StrategyRun") / "mismatches.jsonl"
    if not path.is_file():
        return None
    with path.open() as fh:
        line = fh.readline()
    try:
        return json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        return None


def signature(result: dict) -> str:
    """The bucket signature of a failed job's result (see the module docstring)."""
    unit = result["job"]["unit"]
    error = result.get("error") or ""
    if result.get("status") == "timeout":
        return f"{unit} | timeout | - | wall-clock limit"
    if error.startswith("BuildFailed") or (error.startswith("RunFailed") and " build of " in error.split(";")[0]):
        return f"{unit} | build | - | build failed"
    if result.get("mismatches"):
        m = first_mismatch(result)
        if m is None:
            return f"{unit} | mismatch | ? | value"
        if m.get("expected") is None:
            return f"{unit} | mismatch | - | spurious"
        fields = [k for k in m["expected"] if m["expected"].get(k) != (m.get("actual") or {}).get(k)]
        return f"{unit} | mismatch | {','.join(fields) or '-'} | value"
    if result.get("protocol_violations"):
        return f"{unit} | protocol | - | {_generic(str(result['protocol_violations'][0]))}"
    if error:
        kind, _, msg = error.partition(":")
        return f"{unit} | error:{kind.strip()} | - | {_generic(msg)}"
    return f"{unit} | unknown | - | -"


@dataclass
class Bucket:
    signature: str
    results: list[dict] = field(default_factory=list)
    #: Waves of the bucket's first job, rerun with tracing (None until rerun or on failure).
    waves: str | None = None
    waves_note: str = ""

    @property
    def seeds(self) -> list[int]:
        return sorted({r["job"]["seed"] for r in self.results})

    @property
    def first(self) -> dict:
        return self.results[0]

    @property
    def replay(self) -> str:
        return self.first.get("replay") or ""


def bucketize(results: list[dict], is_failed) -> list[Bucket]:
    """Failed results grouped by signature, largest bucket first (ties by signature)."""
    buckets: dict[str, Bucket] = {}
    for r in results:
        if not is_failed(r):
            continue
        sig = r.get("signature") or signature(r)
        buckets.setdefault(sig, Bucket(sig)).results.append(r)
    return sorted(buckets.values(), key=lambda b: (-len(b.results), b.signature))


def buckets_markdown(buckets: list[Bucket]) -> str:
    if not buckets:
        return "No failures."
    lines = ["| bucket (unit / check / field / class) | jobs | seeds | replay | waves |", "|---|---|---|---|---|"]
    for b in buckets:
        seeds = ", ".join(map(str, b.seeds[:12])) + (" ..." if len(b.seeds) > 12 else "")
        waves = f"{b.waves} ({b.waves_note})" if b.waves else (b.waves_note or "-")
        lines.append(f"| {b.signature.replace('|', '/')} | {len(b.results)} | {seeds} | `{b.replay}` | {waves} |")
    return "\n".join(lines)
