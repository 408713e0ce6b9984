"""Injected RTL bugs: each is one textual edit of one RTL file, declared by the unit in
``env/<unit>/bugs.py`` as ``BUGS = [Bug(...), ...]`` and applied by ``scripts/inject_bugs.py``
to a copy of ``rtl/`` (the checked-in RTL is never modified)."""
from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from mxdv import REPO_ROOT


@dataclass(frozen=True)
class Bug:
    name: str
    file: str  # relative to rtl/<unit>/
    find: str  # must occur exactly once in the file
    replace: str
    what: str  # the class of bug, in words


def bugs_of(unit_name: str) -> list[Bug]:
    module = importlib.import_module(f"mxdv.env.{unit_name}.bugs")
    return list(module.BUGS)


def apply_bug(unit_name: str, bug: Bug, rtl_copy: Path) -> Path:
    """Copy ``rtl/`` to ``rtl_copy`` and apply the bug there; returns the copy's root."""
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
