"""How far a systolic-array tile is from hitting a bin (0 when it hits it).

For coverage-directed generators (``hypothesis``'s ``target()`` and near-miss elites): what the
design computed was that far from the bin's case (operand elements away from an identity tile,
block sums away from the extreme sum, an accumulation away from exact cancellation), never a
recipe. Each function agrees with :func:`mxdv.coverage.systolic_array.model.sample`: 0 exactly
when the bin is hit, positive otherwise.
"""
from __future__ import annotations

import numpy as np

from mxdv.coverage.systolic_array.tile import activation_codes, operands, weight_codes
from mxdv.coverage.trace_cache import TraceCache
from mxdv.refmodel.gemm import mx_matmul_trace

FAR = 1e6


_TRACES = TraceCache(lambda txn: mx_matmul_trace(*operands(txn)))  # several bins measure one tile


def _trace(txn: dict):
    tr = _TRACES(txn)
    return tr, ~tr.nan


def identity_distance(operand: str):
    """Elements of the operand that differ from the identity tile (W[k][j] = 1 iff k = j in the
    first block, 0 elsewhere; A likewise), plus 1 when every output is NaN."""
    def distance(txn: dict) -> float:
        if operand == "w":
            w = weight_codes(txn)
            m = w.reshape(-1, w.shape[2])
            n = m.shape[1]
        else:
            a = activation_codes(txn)
            m = a.reshape(a.shape[0], -1)
            n = m.shape[0]
        eye = np.zeros_like(m)
        eye[np.arange(n), np.arange(n)] = 1
        off = float(np.count_nonzero(m != eye))
        if off == 0:
            _, ok = _trace(txn)
            return 0.0 if ok.any() else 1.0
        return off
    return distance


def full_sum_distance(negative: bool):
    """How far (in units of one largest product, 2^14) the block sum nearest the extreme is from
    it, among live blocks of non-NaN outputs; plus 1 for MXINT4 weights."""
    def distance(txn: dict) -> float:
        tr, ok = _trace(txn)
        block = activation_codes(txn).shape[2]
        s = tr.block_sums
        live = (s != 0) & ok[None]
        goal = -block * 16256 if negative else block * 16384
        if not live.any():
            return FAR
        d = float(np.abs(s[live] - goal).min()) / 16384.0
        return d + (0.0 if int(txn["wfmt"]) == 8 else 1.0)
    return distance


def cancel_exact_distance(txn: dict) -> float:
    """min |acc + T_b| / max(|acc|, |T_b|) over the blocks after the first with a nonzero finite
    accumulator and a nonzero block value, in non-NaN outputs (2 when there is none)."""
    tr, ok = _trace(txn)
    acc = tr.acc_bits.view(np.float32).astype(np.float64)
    prev = np.concatenate([np.zeros_like(acc[:1]), acc[:-1]])
    t = np.ldexp(tr.block_sums.astype(np.float64), tr.block_exponents)
    okb = np.broadcast_to(ok[None], acc.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        both = okb & np.isfinite(prev) & (prev != 0) & (t != 0)
        if not both.any():
            return 2.0
        if (both & (tr.acc_bits == 0)).any():
            return 0.0
        rel = np.abs(prev + t) / np.maximum(np.abs(prev), np.abs(t))
    return float(max(np.nanmin(np.where(both, rel, np.inf)), 1e-12))


def distances() -> dict:
    """Bin name -> distance function, for the bins that declare one."""
    return {"tile.identity_w": identity_distance("w"), "tile.identity_a": identity_distance("a"),
            "sum.full_pos": full_sum_distance(False), "sum.full_neg": full_sum_distance(True),
            "acc.cancel_exact": cancel_exact_distance}
