"""One systolic-array transaction (a tile) as reference-model operands.

Shared by the unit (``predict``) and the coverage model (``sample``), so both read a
transaction the same way (one tile as MX tensors, :func:`operands`; many stacked, :class:`Tiles`):

* ``a``        [R][kblocks][BLOCK] MXINT8 activation codes, ``a_scale`` [R][kblocks] E8M0 codes;
* ``w``        [kblocks][BLOCK][C] weight codes, ``w_scale`` [kblocks][C] E8M0 codes;
* ``wfmt``     8 (MXINT8 weights) or 4 (MXINT4 weights: only the low nibble of each ``w`` code
  counts, sign-extended from bit 3; the RTL ignores bits 7..4 of each weight lane).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mxdv.refmodel.gemm import golden_matmul_tiles, mx_matmul_tiles, mx_matmul_tiles_trace
from mxdv.refmodel.mx import MXTensor

#: The environment's largest K, in blocks (the RTL itself has no limit): "K = maximum".
MAX_KBLOCKS = 4


def weight_codes(txn: dict) -> np.ndarray:
    """The weight element codes the array multiplies, int64 [kblocks, BLOCK, C]."""
    w = np.asarray(txn["w"], dtype=np.int64)
    return _low_nibble(w) if int(txn["wfmt"]) == 4 else w


def _low_nibble(w: np.ndarray) -> np.ndarray:
    """MXINT4 weight lanes: each code's low nibble, sign-extended from bit 3."""
    return ((w & 0xF) ^ 0x8) - 0x8


def activation_codes(txn: dict) -> np.ndarray:
    """The activation element codes, int64 [R, kblocks, BLOCK]."""
    return np.asarray(txn["a"], dtype=np.int64)


def operands(txn: dict) -> tuple[MXTensor, MXTensor]:
    """``(A, W)`` for :func:`mxdv.refmodel.gemm.mx_matmul_bits`: A [R, K] (axis -1, mxint8) and
    W [K, C] (axis 0, mxint8 or mxint4), K = kblocks * BLOCK."""
    a = activation_codes(txn)
    w = weight_codes(txn)
    rows, kblocks, block = a.shape
    cols = w.shape[2]
    big_a = MXTensor(scales=np.asarray(txn["a_scale"], dtype=np.uint8).reshape(rows, kblocks),
                     elements=a.reshape(rows, kblocks * block).astype(np.int8),
                     fmt="mxint8", block_size=block, axis=-1)
    big_w = MXTensor(scales=np.asarray(txn["w_scale"], dtype=np.uint8).reshape(kblocks, cols),
                     elements=w.reshape(kblocks * block, cols).astype(np.int8),
                     fmt="mxint4" if int(txn["wfmt"]) == 4 else "mxint8", block_size=block, axis=0)
    return big_a, big_w


@dataclass(frozen=True)
class Tiles:
    """Many tiles as stacked arrays, for the batched reference model and coverage model.

    ``a`` [n, R, KB, B] activation codes, ``a_scale`` [n, R, KB], ``w`` [n, KB, B, C] the weight
    codes the array multiplies (MXINT4 low nibbles sign-extended), ``w_scale`` [n, KB, C],
    ``wfmt`` and ``kblocks`` [n]. ``KB`` is the largest depth in the batch: a shorter tile's
    blocks past its ``kblocks`` are padding (zeros), which every consumer ignores.
    """

    a: np.ndarray
    a_scale: np.ndarray
    w: np.ndarray
    w_scale: np.ndarray
    wfmt: np.ndarray
    kblocks: np.ndarray

    @classmethod
    def of(cls, txn: dict) -> "Tiles":
        """One transaction (a dict, or a :meth:`mxdv.columns.Columns.views` view)."""
        a = activation_codes(txn)
        return cls(a=a[None], a_scale=np.asarray(txn["a_scale"], dtype=np.int64)[None],
                   w=weight_codes(txn)[None], w_scale=np.asarray(txn["w_scale"], dtype=np.int64)[None],
                   wfmt=np.array([int(txn["wfmt"])]), kblocks=np.array([a.shape[1]]))

    @classmethod
    def from_columns(cls, cols) -> "Tiles":
        """A :class:`mxdv.columns.Columns` batch (padded to ``MAX_KBLOCKS``)."""
        wfmt = np.asarray(cols["wfmt"], dtype=np.int64)
        w = np.asarray(cols["w"], dtype=np.int64)
        w = np.where((wfmt == 4)[:, None, None, None], _low_nibble(w), w)
        return cls(a=np.asarray(cols["a"], dtype=np.int64), a_scale=np.asarray(cols["a_scale"], dtype=np.int64),
                   w=w, w_scale=np.asarray(cols["w_scale"], dtype=np.int64), wfmt=wfmt,
                   kblocks=np.asarray(cols["kblocks"], dtype=np.int64))

    def __len__(self) -> int:
        return int(self.wfmt.shape[0])

    @property
    def live_blocks(self) -> np.ndarray:
        """[n, KB]: whether block b belongs to tile i (not padding)."""
        return np.arange(self.a.shape[2])[None, :] < self.kblocks[:, None]

    def _operands(self) -> tuple:
        return (self.a, self.a_scale, self.w, self.w_scale), {"w_width": np.where(self.wfmt == 4, 4, 8),
                                                             "nblocks": self.kblocks}

    def bits(self) -> np.ndarray:
        """The array's outputs, FP32 codes uint32 [n, R, C] (:func:`mx_matmul_tiles`)."""
        args, kw = self._operands()
        return mx_matmul_tiles(*args, **kw)

    def trace(self):
        """:func:`mx_matmul_tiles_trace` of the tiles (arrays ``[n, KB, R, C]``)."""
        args, kw = self._operands()
        return mx_matmul_tiles_trace(*args, **kw)

    def golden(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float64 product of the dequantized operands, ``P = |A| @ |W|`` and NUMERICS.md's
        error bound, [n, R, C] each (:func:`golden_matmul_tiles`)."""
        args, kw = self._operands()
        return golden_matmul_tiles(*args, **kw)
