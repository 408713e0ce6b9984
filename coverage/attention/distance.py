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

from mxdv.refmodel.attention import mx_attention_trace
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


def change_every_distance(p):
    """Tiles short of three, else the fewest tiles (after the first) in which a non-NaN row's
    running max did not rise."""
    def distance(txn: dict) -> float:
        n_tiles = -(-int(txn["n_keys"]) // p.tile)
        if n_tiles < 3:
            return float(1 + 3 - n_tiles) * 8
        tr = mx_attention_trace(*_operands(txn, p), causal=bool(txn["causal"]),
                                q_offset=int(txn["q_offset"]), tile=p.tile)
        tm = np.asarray(tr.tile_max)
        changed = (tm[:-1] != _NEG) & (tm[1:] != tm[:-1])          # [tiles-1, rows]
        ok = ~np.asarray(tr.row_nan)
        if not ok.any():
            return float(tm.shape[0])
        return float((~changed).sum(axis=0)[ok].min())
    return distance


def distances(p) -> dict:
    """Bin name -> distance function, for the bins that declare one."""
    return {"nan.k_masked": masked_nan_distance(p, "k", "nan.k_masked"),
            "nan.v_masked": masked_nan_distance(p, "v", "nan.v_masked"),
            "max.change_every": change_every_distance(p)}
