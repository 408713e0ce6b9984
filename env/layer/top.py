"""The layer top (``rtl/layer/mxdv_layer_top.sv``): the three units in one simulation.

Each unit keeps its own :class:`~mxdv.unit.Unit` (encode, predict, plan, sample); on the top
its ports carry a prefix (``qz_``, ``sa_``, ``at_``). :class:`PrefixedUnit` is that unit with
prefixed ports, so the generic :class:`~mxdv.env.unit_env.UnitEnv` (agents, scoreboard) and
:class:`~mxdv.env.run_context.RunContext` drive it unchanged.
"""
from __future__ import annotations

import os
from pathlib import Path

from mxdv import REPO_ROOT, sim
from mxdv.unit import Port, Unit, get_unit

TOPLEVEL = "mxdv_layer_top"
#: unit name -> port prefix on the top
PREFIXES = {"quantizer": "qz_", "systolic_array": "sa_", "attention": "at_"}


class PrefixedUnit:
    """A unit whose ports are named ``<prefix><port prefix><field>`` on the layer top."""

    def __init__(self, unit: Unit, prefix: str) -> None:
        self._unit, self._prefix = unit, prefix
        self.input_ports = tuple(Port(prefix + p.prefix, p.fields) for p in unit.input_ports)
        self.output_port = Port(prefix + unit.output_port.prefix, unit.output_port.fields)

    def encode(self, txn):
        return {self._prefix + k: v for k, v in self._unit.encode(txn).items()}

    def decode(self, frames):
        """The unit's own decode, on frames keyed by its own port prefixes."""
        n = len(self._prefix)
        return self._unit.decode({k[n:] if k.startswith(self._prefix) else k: v for k, v in frames.items()})

    def __getattr__(self, name):
        return getattr(self._unit, name)


def units(hw: dict[str, int]) -> dict[str, Unit]:
    """The three units with the top's parameters."""
    return {
        "quantizer": get_unit(f"quantizer:BLOCK={hw['QBLOCK']}"),
        "systolic_array": get_unit(f"systolic_array:R={hw['SA_R']},C={hw['SA_C']},BLOCK={hw['SA_BLOCK']}"),
        "attention": get_unit(
            f"attention:D={hw['AT_D']},BLOCK={hw['AT_BLOCK']},KB={hw['AT_KB']},QROWS={hw['AT_QROWS']},"
            f"TILE={hw['AT_TILE']},MAXLEN={hw['AT_MAXLEN']}"),
    }


def wrapper_source() -> Path:
    """``rtl/layer/mxdv_layer_top.sv`` (from ``$MXDV_RTL_ROOT`` when a bug-injection copy has it)."""
    root = Path(os.environ.get("MXDV_RTL_ROOT", REPO_ROOT / "rtl"))
    path = root / "layer" / f"{TOPLEVEL}.sv"
    return path if path.exists() else REPO_ROOT / "rtl" / "layer" / f"{TOPLEVEL}.sv"


def sources(hw: dict[str, int]) -> list[Path]:
    """Every unit's RTL (each from its ``rtl_dir``, so ``MXDV_RTL_ROOT`` mutants apply), then the top."""
    paths: list[Path] = []
    for unit in units(hw).values():
        paths.extend(unit.source_paths())
    return paths + [wrapper_source()]


def build(hw: dict[str, int], sim_name: str, log=None) -> Path:
    return sim.build(sources(hw), TOPLEVEL, hw, sim_name, log=log)
