"""One systolic-array transaction (a tile) as reference-model operands.

Shared by the unit (``predict``) and the coverage model (``sample``), so both read a
transaction the same way:

* ``a``        [R][kblocks][BLOCK] MXINT8 activation codes, ``a_scale`` [R][kblocks] E8M0 codes;
* ``w``        [kblocks][BLOCK][C] weight codes, ``w_scale`` [kblocks][C] E8M0 codes;
* ``wfmt``     8 (MXINT8 weights) or 4 (MXINT4 weights: only the low nibble of each ``w`` code
  counts, sign-extended from bit 3; the RTL ignores bits 7..4 of each weight lane).
"""
from __future__ import annotations

import numpy as np

from mxdv.refmodel.mx import MXTensor

#: The environment's largest K, in blocks (the RTL itself has no limit): "K = maximum".
MAX_KBLOCKS = 4


def weight_codes(txn: dict) -> np.ndarray:
    """The weight element codes the array multiplies, int64 [kblocks, BLOCK, C]."""
    w = np.asarray(txn["w"], dtype=np.int64)
    if int(txn["wfmt"]) == 4:
        return ((w & 0xF) ^ 0x8) - 0x8  # low nibble, sign-extended
    return w


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
