"""The harness's DPI channels as numpy arrays: Python owns the memory, the simulator reads and
writes it (``mxdv_bulk_dpi.cpp``). Reached with ctypes in the simulator process itself (the
bulk build links the executable with ``-rdynamic``, so ``mxdv_bulk_bind`` is visible)."""
from __future__ import annotations

import ctypes

import numpy as np


class BulkUnavailable(RuntimeError):
    """The running simulator is not a bulk build (no DPI channels to bind)."""


class Channels:
    def __init__(self) -> None:
        lib = ctypes.CDLL(None)
        try:
            self._bind = lib.mxdv_bulk_bind
        except AttributeError as exc:
            raise BulkUnavailable(
                "mxdv_bulk_bind not found in the simulator: not a bulk-mode build "
                "(mxdv.env.bulk.harness_gen.BUILD_ARGS)") from exc
        self._bind.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_int64)
        self._bind.restype = ctypes.c_int
        self._arrays: dict[int, np.ndarray] = {}

    def bind(self, ch: int, array: np.ndarray) -> np.ndarray:
        """Hand ``array`` (uint32, C-contiguous; kept alive here) to the harness as channel ``ch``."""
        array = np.ascontiguousarray(array, dtype=np.uint32).reshape(-1)
        if self._bind(ch, array.ctypes.data, array.size) != 0:
            raise ValueError(f"channel {ch}: out of range")
        self._arrays[ch] = array
        return array

    def alloc(self, ch: int, words: int) -> np.ndarray:
        """A zeroed channel of ``words`` words (reused when already that size)."""
        have = self._arrays.get(ch)
        if have is not None and have.size == words:
            have[:] = 0
            return have
        return self.bind(ch, np.zeros(max(1, words), dtype=np.uint32))
