"""Assemble refmodel/NUMERICS.md from its chapters in refmodel/numerics/*.md (sorted).

    python scripts/build_numerics.py          # write refmodel/NUMERICS.md
    python scripts/build_numerics.py --check  # exit 1 if it is out of date (used by the tests)
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "refmodel"
HEADER = """# NUMERICS.md: the mxdv numerics contract

<!-- Assembled from refmodel/numerics/*.md by scripts/build_numerics.py; edit the chapters. -->

Every unit's RTL implements these rules bit for bit, and `mxdv.refmodel` implements them in
numpy; the scoreboards compare the two with no tolerance. Each rule comes with a worked
example in bits. Chapters: 1-2 formats and quantization (`mx.py`, `formats.py`), 3 block-scaled
GEMM (`gemm.py`), 4 attention (`attention.py`), 5 the rest of the inference stack
(`layers.py`, `model.py`, `kv_cache.py`).

"""


def render() -> str:
    parts = [HEADER]
    for chapter in sorted((ROOT / "numerics").glob("*.md")):
        parts.append(chapter.read_text().strip() + "\n\n")
    return "".join(parts).rstrip() + "\n"


def main(argv: list[str]) -> int:
    target = ROOT / "NUMERICS.md"
    text = render()
    if "--check" in argv:
        if not target.exists() or target.read_text() != text:
            print("refmodel/NUMERICS.md is out of date: run python scripts/build_numerics.py")
            return 1
        return 0
    target.write_text(text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
