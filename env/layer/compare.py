"""Where a layer run left the stack: the first op whose RTL output differs from the reference.

Both traces (:class:`~mxdv.env.layer.traced_path.Record` lists) come from the same graph, so
they align one to one. A report names the layer, the step (prefill / decode n), the op
(``q_proj``, ``k_cache``, ``attention`` ...), the unit, the place (token and block; GEMM tile
and element; batch, head and query row) and the expected and actual codes in hex.
"""
from __future__ import annotations

import numpy as np

from mxdv.env.layer.traced_path import Record, op_at


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32)).view(np.uint32)


def first_difference(ref: list[Record], rtl: list[Record], layer: int, rows: int, cols: int) -> str | None:
    """A report of the first differing record, or None when every op matched."""
    for i, (want, got) in enumerate(zip(ref, rtl)):
        if want.kind != got.kind:  # names come from the reference (a stopped run may not know them)
            return (f"layer {layer} {got.step}: op sequence diverged at op #{i}: expected "
                    f"{want.kind} {want.op}, ran {got.kind} {got.op}")
        where = _where(want, got, rows, cols)
        if where is not None:
            return f"layer {layer} {got.step}: {where}"
    if len(ref) != len(rtl):
        return f"layer {layer}: {len(rtl)} ops ran, the reference has {len(ref)}"
    return None


def _where(want: Record, got: Record, rows: int, cols: int) -> str | None:
    if want.kind == "quantize":
        ws, gs = np.asarray(want.value.scales), np.asarray(got.value.scales)
        we, ge = np.asarray(want.value.elements), np.asarray(got.value.elements)
        block = want.value.block_size
        el_bad = (we != ge).reshape(*we.shape[:-1], -1, block).any(axis=-1)
        bad = (ws != gs) | el_bad
        if not bad.any():
            return None
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        *lead, b = idx
        sl = (*lead, slice(b * block, (b + 1) * block))
        hexes = lambda e: " ".join(f"{int(v) & 0xFF:02x}" for v in e)  # noqa: E731
        return (f"op {want.op}, unit quantizer, token {tuple(lead)} block {b}: expected scale "
                f"0x{int(ws[idx]):02x} elements [{hexes(we[sl])}], actual scale 0x{int(gs[idx]):02x} "
                f"elements [{hexes(ge[sl])}]")
    wb, gb = _bits(want.value), _bits(got.value)
    bad = wb != gb
    if not bad.any():
        return None
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    if want.kind == "gemm":
        flat_row = int(np.ravel_multi_index(idx[:-1], wb.shape[:-1])) if wb.ndim > 1 else 0
        col = idx[-1]
        n_bad = int(bad.sum())
        return (f"op {op_at(want.columns, col)} ({want.op}), unit systolic_array, tile (row {flat_row // rows}, "
                f"col {col // cols}) element (token {flat_row}, column {col}): expected 0x{int(wb[idx]):08x}, "
                f"actual 0x{int(gb[idx]):08x} ({n_bad} output(s) differ)")
    b, h, r, d = idx
    ew = int(wb[idx]) >> 16
    ea = int(gb[idx]) >> 16
    return (f"op attention, unit attention, batch {b} head {h} query row {r} column {d}: expected "
            f"BF16 0x{ew:04x}, actual 0x{ea:04x} ({int(bad.sum())} output(s) differ)")
