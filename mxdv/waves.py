"""Wave files: check that an FST written by a wave rerun opens, and say what is in it.

The reader is ``pylibfst`` (PyPI, a binding of GTKWave's libfst). When it is missing, the
check says so (the file is still kept and named in the report), never fails the regression.
"""
from __future__ import annotations

from pathlib import Path


def check_fst(path: str | Path) -> tuple[bool, str]:
    """``(ok, note)``: ok when the FST opens and holds signals with value changes."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False, f"wave file {path} missing or empty"
    try:
        import pylibfst
    except ImportError:
        return False, f"FST written ({path.stat().st_size} bytes) but no wave reader: pip install pylibfst (make install)"
    fst = pylibfst.lib.fstReaderOpen(str(path).encode())
    if fst == pylibfst.ffi.NULL:
        return False, f"{path}: not a readable FST file"
    try:
        _scopes, signals = pylibfst.get_scopes_signals2(fst)
        end_ns = pylibfst.lib.fstReaderGetEndTime(fst)
        n = len(signals.by_name)
    finally:
        pylibfst.lib.fstReaderClose(fst)
    if n == 0:
        return False, f"{path}: FST opens but holds no signals"
    return True, f"FST opens: {n} signals up to time {end_ns}"


def signal_names(path: str | Path) -> list[str]:
    import pylibfst

    fst = pylibfst.lib.fstReaderOpen(str(path).encode())
    if fst == pylibfst.ffi.NULL:
        raise ValueError(f"{path}: not a readable FST file")
    try:
        return sorted(pylibfst.get_scopes_signals2(fst)[1].by_name)
    finally:
        pylibfst.lib.fstReaderClose(fst)
