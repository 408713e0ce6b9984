"""How far an attention transaction is from hitting a bin (0 when it hits it).

For coverage-directed generators (``hypothesis``'s ``target()`` and near-miss elites). The
distances are *approach levels*, as in search-based testing: how many of the bin's
preconditions the design's situation still misses (a causal tile, a key that some row does not
see, a NaN scale on such a key; at least three tiles, a row whose running max rose in every
tile), checked cheaply first; 0 only when :func:`mxdv.coverage.attention.model.sample` hits
the bin. They say what the design did, never how to generate a transaction.
"""
from __future__ import annotations

import numpy as np

from mxdv.coverage.attention.model import UNDERFLOW, key_gaps, scaled_quotients
from mxdv.coverage.trace_cache import TraceCache
from mxdv.refmodel.attention import exp2_lut_index, mx_attention_trace
from mxdv.refmodel.mx import MXTensor

_NAN = 0xFF
_NEG = np.iinfo(np.int64).min


def _operands(txn: dict, p):
    def mx(codes, scales, fmt):
        return MXTensor(scales=np.asarray(scales, dtype=np.uint8), elements=np.asarray(codes, dtype=np.int8),
                        fmt=fmt, block_size=p.block, axis=-1)
    kfmt = f"mxint{p.kb}"
    return (mx(txn["q_codes"], txn["q_scales"], "mxint8"), mx(txn["k_codes"], txn["k_scales"], kfmt),
            mx(txn["v_codes"], txn["v_scales"], kfmt))


def _params(p) -> dict:
    return {"TILE": p.tile, "MAXLEN": p.maxlen, "QROWS": p.qrows}


def _trace_cache(p) -> TraceCache:
    return TraceCache(lambda txn: mx_attention_trace(*_operands(txn, p), causal=bool(txn["causal"]),
                                                     q_offset=int(txn["q_offset"]), tile=p.tile))


def exp2_entry_distance(trace, p, which: str, entry: int):
    """Approach levels for a read of one 2^-x table entry by a key with non-zero weight
    (each level a half-open interval): 5 no key is visible in a non-NaN row;
    [3, 4) every visible gap m - t is 0 (binades of the largest |score| away from 2^16, i.e. 16);
    [2, 3) keys differ but every other key's weight underflows (binades past the underflow);
    [1, 2) some key has a non-zero gap and weight but reads another entry (entries away, circularly);
    0 hit."""
    def distance(txn: dict) -> float:
        tr = trace(txn)
        gap = key_gaps(tr, p.tile)
        vis = np.asarray(tr.visible) & ~np.asarray(tr.row_nan)[:, None]
        if not vis.any():
            return 5.0
        weighted = vis & (gap < UNDERFLOW)
        idx = exp2_lut_index(gap[weighted])[0 if which == "hi" else 1]
        if (idx == entry).any():
            return 0.0
        live = weighted & (gap > 0)
        if live.any():
            away = np.abs(exp2_lut_index(gap[live])[0 if which == "hi" else 1] - entry)
            return 1.0 + float(np.minimum(away, 32 - away).min()) / 16
        spread = gap[vis & (gap > 0)]
        if spread.size:
            return 2.0 + min(float(np.log2(spread.min() / UNDERFLOW)), 20.0) / 21
        top = float(np.abs(np.asarray(tr.scores)[vis]).max())
        return 3.0 + min(abs(np.log2(top + 1) - 16), 16.0) / 17
    return distance


def div_tie_distance(trace, odd: bool):
    """How far the nearest output division is from an exact tie of the wanted parity: with the
    quotient x = |O| / (l * 2^14) scaled into [256, 512) (9 bits: the BF16 significand and the
    guard bit), the circular distance of x mod 4 from 1 (tie, even significand) or 3 (odd),
    exact in integers, over the non-NaN outputs with O != 0; 4 when there is none."""
    goal = 3 if odd else 1

    def distance(txn: dict) -> float:
        tr = trace(txn)
        nan = np.asarray(tr.nan)
        acc = np.where(nan, 0, np.asarray(tr.acc))
        l_sum = np.broadcast_to(np.asarray(tr.l)[:, None], acc.shape)
        best = 4.0
        for num, div in scaled_quotients(acc, l_sum):
            off = abs(num % (4 * div) - goal * div)
            best = min(best, min(off, 4 * div - off) / div)
            if off == 0:
                return 0.0
        return max(best, 1e-12) if best < 4.0 else best
    return distance


def masked_nan_distance(p, operand: str, name: str):
    """Unmet preconditions of a NaN scale on a key that a causal row does not see (plus 1 when
    they all hold and the bin is still missed, e.g. the row is NaN for another reason)."""
    from mxdv.coverage.attention.model import sample

    def distance(txn: dict) -> float:
        n_rows, n_keys = int(txn["n_rows"]), int(txn["n_keys"])
        rows = np.arange(n_rows)[:, None]
        keys = np.arange(n_keys)[None, :]
        causal = bool(txn["causal"])
        hidden = keys > int(txn["q_offset"]) + rows if causal else np.zeros((n_rows, n_keys), dtype=bool)
        nan_key = (np.asarray(txn[f"{operand}_scales"]) == _NAN).any(axis=1)[None, :]
        unmet = (not causal) + (not hidden.any()) + (not (hidden & nan_key).any())
        if unmet:
            return float(1 + unmet)
        return 0.0 if name in sample(txn, *_operands(txn, p), _params(p)) else 1.0
    return distance


def change_every_distance(trace, p):
    """Tiles short of three, else the fewest tiles (after the first) in which a non-NaN row's
    running max did not rise."""
    def distance(txn: dict) -> float:
        n_tiles = -(-int(txn["n_keys"]) // p.tile)
        if n_tiles < 3:
            return float(1 + 3 - n_tiles) * 8
        tr = trace(txn)
        tm = np.asarray(tr.tile_max)
        changed = (tm[:-1] != _NEG) & (tm[1:] != tm[:-1])          # [tiles-1, rows]
        ok = ~np.asarray(tr.row_nan)
        if not ok.any():
            return float(tm.shape[0])
        return float((~changed).sum(axis=0)[ok].min())
    return distance


def distances(p) -> dict:
    """Bin name -> distance function, for the bins that declare one."""
    trace = _trace_cache(p)
    return {"nan.k_masked": masked_nan_distance(p, "k", "nan.k_masked"),
            "nan.v_masked": masked_nan_distance(p, "v", "nan.v_masked"),
            "max.change_every": change_every_distance(trace, p),
            "div.tie_even": div_tie_distance(trace, odd=False), "div.tie_odd": div_tie_distance(trace, odd=True),
            **{f"exp2.{w}_{i}": exp2_entry_distance(trace, p, w, i) for w in ("hi", "lo") for i in range(32)}}
