"""Injected bugs, declared by the unit in ``env/<unit>/bugs.py`` as ``BUGS = [...]``.

* :class:`Bug`: one textual edit of one RTL file, applied by ``scripts/inject_bugs.py`` to a
  copy of ``rtl/`` (the checked-in RTL is never modified; ``MXDV_RTL_ROOT`` points at the copy).
* :class:`EncodeBug`: a bug in the Python side of the stimulus, ``Unit.encode`` (the beats it
  puts on the bus are corrupted by a function of the unit's). It is selected by name with the
  environment variable ``MXDV_ENCODE_BUG``, which the simulator's Python reads when the test
  builds (:func:`install_encode_bug`); nothing in the source tree changes. The predictor,
  which decodes what the input monitors saw, must report it as a stimulus mismatch.

:func:`bug_env` gives the environment variables that plant either kind for a run.
"""
from __future__ import annotations

import importlib
import shutil
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mxdv import REPO_ROOT


@dataclass(frozen=True)
class Bug:
    name: str
    file: str  # relative to rtl/<unit>/
    find: str  # must occur exactly once in the file
    replace: str
    what: str  # the class of bug, in words


@dataclass(frozen=True)
class EncodeBug:
    name: str
    #: ``corrupt(unit, beats)`` -> the beats a buggy ``encode`` would produce, from the
    #: correct ones (``{port prefix: [beat, ...]}``).
    corrupt: Callable
    what: str


ENCODE_BUG_VAR = "MXDV_ENCODE_BUG"


def install_encode_bug(unit) -> EncodeBug | None:
    """Plant the encode bug named by ``$MXDV_ENCODE_BUG`` (if set) into this unit instance:
    its ``encode`` then returns corrupted beats. ValueError names an unknown bug."""
    name = os.environ.get(ENCODE_BUG_VAR)
    if not name:
        return None
    known = [b for b in bugs_of(unit.name) if isinstance(b, EncodeBug)]
    bug = next((b for b in known if b.name == name), None)
    if bug is None:
        raise ValueError(f"{ENCODE_BUG_VAR}={name!r}: unit {unit.name} declares no such encode bug "
                         f"(known: {', '.join(b.name for b in known) or 'none'})")
    correct = unit.encode
    unit.encode = lambda txn: bug.corrupt(unit, correct(txn))
    if unit.columnar:
        correct_columns = unit.encode_columns
        unit.encode_columns = lambda cols: _corrupt_columns(unit, bug, correct_columns(cols), len(cols))
    return bug


def _corrupt_columns(unit, bug: EncodeBug, encoded: dict, n: int) -> dict:
    """The columnar path's encoding with ``bug`` applied, transaction by transaction (the
    same corruption as the per-transaction ``encode``), back in the columnar form."""
    import numpy as np

    from mxdv.env.bulk import layout as L
    from mxdv.env.bulk import payload as P
    from mxdv.env.bulk.driver import pack_beats

    layout = {pl.port.prefix: pl for pl in L.Layout.of(unit).inputs}
    first, beats = {}, {}
    for prefix, (counts, fields) in encoded.items():
        counts = np.asarray(counts, dtype=np.int64)
        first[prefix] = P.frame_starts(counts).tolist()
        beats[prefix] = P.beat_dicts(layout[prefix], P.pack(layout[prefix], fields, int(counts.sum())))
    out: dict[str, tuple[list, list]] = {p: ([], []) for p in encoded}
    for t in range(n):
        got = bug.corrupt(unit, {p: beats[p][first[p][t]:first[p][t + 1]] for p in encoded})
        for p in encoded:
            out[p][0].append(len(got[p]))
            out[p][1].extend(got[p])
    return {p: (np.asarray(c, dtype=np.int64), P.unpack(layout[p], pack_beats(layout[p], bs)))
            for p, (c, bs) in out.items()}


def bug_env(unit_name: str, bug, work: Path) -> dict[str, str]:
    """Environment variables that plant ``bug`` for a run (an RTL bug: a mutated copy of
    ``rtl/`` under ``work``; an encode bug: its name)."""
    if isinstance(bug, EncodeBug):
        return {ENCODE_BUG_VAR: bug.name}
    return {"MXDV_RTL_ROOT": str(apply_bug(unit_name, bug, work))}


def bugs_of(unit_name: str) -> list[Bug | EncodeBug]:
    module = importlib.import_module(f"mxdv.env.{unit_name}.bugs")
    return list(module.BUGS)


def apply_bug(unit_name: str, bug: Bug, rtl_copy: Path) -> Path:
    """Copy ``rtl/`` to ``rtl_copy`` and apply the (RTL) bug there; returns the copy's root."""
    if not isinstance(bug, Bug):
        raise ValueError(f"bug {bug.name} is not an RTL bug (plant it with bug_env)")
    if rtl_copy.exists():
        shutil.rmtree(rtl_copy)
    shutil.copytree(REPO_ROOT / "rtl", rtl_copy)
    path = rtl_copy / unit_name / bug.file
    text = path.read_text()
    count = text.count(bug.find)
    if count != 1:
        raise ValueError(f"bug {bug.name}: the text to replace occurs {count} times in {bug.file} (must be once)")
    path.write_text(text.replace(bug.find, bug.replace))
    return rtl_copy
