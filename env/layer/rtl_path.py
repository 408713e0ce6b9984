"""The quantized stack with its three accelerator ops on the RTL units of the layer top.

:class:`RTLPath` is a :class:`~mxdv.env.layer.traced_path.TracedPath` whose ``quantize``,
``gemm`` and ``attend`` become transactions on the units (through each unit's own
:class:`~mxdv.env.run_context.RunContext`, i.e. its generic agents and bit-exact scoreboard),
built from the previous unit's actual outputs:

* ``quantize``: the float32 tensor is rounded to BF16 (rule S0) and sent block by block to the
  quantizer; its output codes and scales are the MX tensor the next op reads (GEMM input,
  attention queries, or the K/V rows of the KV cache);
* ``gemm``: A [M, K] (quantizer output) x W [K, N] (weights, quantized offline) is cut into
  R x C output tiles over the full K, one systolic-array transaction each (rows past M are
  zero codes, their outputs dropped);
* ``attend``: one attention transaction per (batch, query head, QROWS query rows) over the
  head's K/V rows of the cache (GQA: query head h reads KV head h // group), the keys past
  ``kv_len`` not streamed (padding mask), ``q_offset`` = the rows' position (causal).

The graph (norms, activations, residuals, biases, RoPE, head split and merge) is the
refmodel's, run on the host in a bridge thread; each op blocks on the simulation
(``cocotb.task.resume``) until its transactions are checked.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cocotb.task import resume

from mxdv.env.layer.traced_path import TracedPath, op_at
from mxdv.refmodel.kv_cache import to_bf16
from mxdv.refmodel.mx import MXTensor
from mxdv.schema import unpack_lanes


class LayerStopped(RuntimeError):
    """Raised at the first unit mismatch when the run stops on mismatch."""


@dataclass
class Lane:
    """One unit of the layer top as the layer sees it: the run context that drives and checks
    it, the output beats its monitor saw (``beats``), what each transaction was for."""

    name: str
    ctx: object
    beats: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    wall_s: float = 0.0
    txns: int = 0

    def write(self, beat) -> None:  # analysis subscriber of the unit's output monitor
        self.beats.append(beat)

    async def run(self, txns: list[dict], labels: list[str], beats_per_txn: list[int]) -> list[list[dict]]:
        start = self.ctx.submitted
        for i, label in enumerate(labels):
            self.labels[start + i] = label
        self.beats.clear()
        t0 = time.monotonic()
        results = await self.ctx.execute(txns)
        self.wall_s += time.monotonic() - t0
        self.txns += len(txns)
        if len(results) != len(txns) or any(r.status == "dropped" for r in results):
            raise RuntimeError(f"{self.name}: {len(txns)} transactions sent, {len(results)} completed")
        out, pos = [], 0
        for n in beats_per_txn:
            out.append(self.beats[pos:pos + n])
            pos += n
        if pos != len(self.beats):
            raise RuntimeError(f"{self.name}: expected {pos} output beats, the monitor saw {len(self.beats)}")
        return out


class Progress:
    """Counts tiles, blocks and heads done against the reference trace's totals; writes
    ``progress.jsonl`` (with an ETA from the work done so far) at most twice a second."""

    def __init__(self, path: Path, totals: dict[str, int], work_total: float) -> None:
        self.path, self.totals, self.work_total = path, totals, work_total
        self.done = {k: 0 for k in totals}
        self.work = 0.0
        self.t0 = time.monotonic()
        self._last = 0.0

    def add(self, what: str, n: int, work: float, step: str = "", op: str = "") -> None:
        self.done[what] += n
        self.work += work
        now = time.monotonic()
        if now - self._last >= 0.5 or self.work >= self.work_total:
            self._last = now
            elapsed = now - self.t0
            eta = elapsed / self.work * (self.work_total - self.work) if self.work else None
            line = {"done": self.done, "totals": self.totals, "step": step, "op": op,
                    "elapsed_s": round(elapsed, 1), "eta_s": None if eta is None else round(eta, 1)}
            with self.path.open("a") as fh:
                fh.write(json.dumps(line) + "\n")


class RTLPath(TracedPath):
    def __init__(self, quant, tile: int, config, lanes: dict[str, Lane], hardware: dict[str, int],
                 progress: Progress, layer: int, stop_on_mismatch: bool = False) -> None:
        super().__init__(quant, tile, config)
        self.lanes, self.hw, self.progress, self.layer = lanes, hardware, progress, layer
        self.stop_on_mismatch = stop_on_mismatch
        self._last_gemm_op = "gemm"

    def after_record(self, rec) -> None:
        self._check_stop()

    def _check_stop(self) -> None:
        if self.stop_on_mismatch:
            for lane in self.lanes.values():
                if lane.ctx.scoreboard.stats.mismatches:
                    raise LayerStopped(f"{lane.name}: mismatch (stopping at the first one)")

    # -- quantizer ------------------------------------------------------------------------
    def quantize(self, x, fmt: str, what: str) -> MXTensor:
        return _quantize_on_rtl(self, np.asarray(x), fmt, what)

    # -- systolic array -------------------------------------------------------------------
    def gemm(self, a: MXTensor, w: MXTensor, columns: list) -> np.ndarray:
        return _gemm_on_rtl(self, a, w, columns)

    # -- attention ------------------------------------------------------------------------
    def attend(self, q, k, v, *, causal, q_offset, kv_len, group) -> np.ndarray:
        return _attend_on_rtl(self, q, k, v, causal=causal, q_offset=q_offset, kv_len=kv_len, group=group)


@resume
async def _quantize_on_rtl(path: RTLPath, x: np.ndarray, fmt: str, what: str) -> MXTensor:
    block = path.hw["QBLOCK"]
    codes = to_bf16(x).view(np.uint16)
    lead, feats = codes.shape[:-1], codes.shape[-1]
    blocks = codes.reshape(-1, feats // block, block)
    width = 4 if fmt == "mxint4" else 8
    txns, labels = [], []
    for t in range(blocks.shape[0]):
        for b in range(blocks.shape[1]):
            txns.append({"elem_width": width, "values": blocks[t, b].tolist()})
            labels.append(f"layer {path.layer} {path.step}: {what} (token row {t}, block {b})")
    got = await path.lanes["quantizer"].run(txns, labels, [1] * len(txns))
    scales = np.array([g[0]["scale"] for g in got], dtype=np.uint8)
    elems = np.array([unpack_lanes(g[0]["elems"], 8, block, signed=True) for g in got], dtype=np.int8)
    path.progress.add("blocks", len(txns), len(txns), path.step, what)
    return MXTensor(scales=scales.reshape(*lead, feats // block), elements=elems.reshape(*lead, feats),
                    fmt=fmt, block_size=block, axis=-1)


#: Tiles per execute() call (progress granularity).
_TILES_PER_BATCH = 16


@resume
async def _gemm_on_rtl(path: RTLPath, a: MXTensor, w: MXTensor, columns: list) -> np.ndarray:
    rows, cols, block = path.hw["SA_R"], path.hw["SA_C"], path.hw["SA_BLOCK"]
    lead, k = a.elements.shape[:-1], a.elements.shape[-1]
    n = w.elements.shape[1]
    kb = k // block
    a_el = np.asarray(a.elements, np.int64).reshape(-1, k)
    a_sc = np.asarray(a.scales, np.int64).reshape(-1, kb)
    m = a_el.shape[0]
    m_pad = -(-m // rows) * rows
    a_el = np.concatenate([a_el, np.zeros((m_pad - m, k), np.int64)])
    a_sc = np.concatenate([a_sc, np.zeros((m_pad - m, kb), np.int64)])
    w_el = np.asarray(w.elements, np.int64)
    w_sc = np.asarray(w.scales, np.int64)
    wfmt = 4 if w.fmt == "mxint4" else 8
    name = "/".join(c[0] for c in columns)
    tiles = [(r0, c0) for r0 in range(0, m_pad, rows) for c0 in range(0, n, cols)]
    out = np.zeros((m_pad, n), np.float32)
    for i in range(0, len(tiles), _TILES_PER_BATCH):
        batch = tiles[i:i + _TILES_PER_BATCH]
        txns, labels = [], []
        for r0, c0 in batch:
            txns.append({"wfmt": wfmt, "kblocks": kb,
                         "a": a_el[r0:r0 + rows].reshape(rows, kb, block).tolist(),
                         "a_scale": a_sc[r0:r0 + rows].tolist(),
                         "w": w_el[:, c0:c0 + cols].reshape(kb, block, cols).tolist(),
                         "w_scale": w_sc[:, c0:c0 + cols].tolist()})
            labels.append(f"layer {path.layer} {path.step}: op {op_at(columns, c0)} ({name}) tile "
                          f"(row {r0 // rows}, col {c0 // cols})")
        got = await path.lanes["systolic_array"].run(txns, labels, [rows] * len(txns))
        for (r0, c0), beats in zip(batch, got):
            for r, beat in enumerate(beats):
                raw = int(beat["data"]) & ((1 << (32 * cols)) - 1)
                out[r0 + r, c0:c0 + cols] = np.frombuffer(raw.to_bytes(4 * cols, "little"), dtype="<f4")
        path.progress.add("tiles", len(batch), len(batch) * k, path.step, name)
    return out[:m].reshape(*lead, n)


@resume
async def _attend_on_rtl(path: RTLPath, q: MXTensor, k: MXTensor, v: MXTensor, *, causal, q_offset,
                         kv_len, group) -> np.ndarray:
    qrows = path.hw["AT_QROWS"]
    qe, qs = np.asarray(q.elements), np.asarray(q.scales)
    ke, ks = np.asarray(k.elements), np.asarray(k.scales)
    ve, vs = np.asarray(v.elements), np.asarray(v.scales)
    nb_, heads, lq, d = qe.shape
    lk = ke.shape[2]
    lens = np.broadcast_to(np.asarray(lk if kv_len is None else kv_len, dtype=np.int64), (nb_, heads))
    txns, labels, where = [], [], []
    for b in range(nb_):
        for h in range(heads):
            kvh = h // group
            nk = int(lens[b, h])
            for r0 in range(0, lq, qrows):
                nr = min(qrows, lq - r0)
                txns.append({"n_rows": nr, "n_keys": nk, "causal": int(bool(causal)),
                             "q_offset": int(q_offset) + r0,
                             "q_codes": qe[b, h, r0:r0 + nr].tolist(), "q_scales": qs[b, h, r0:r0 + nr].tolist(),
                             "k_codes": ke[b, kvh, :nk].tolist(), "k_scales": ks[b, kvh, :nk].tolist(),
                             "v_codes": ve[b, kvh, :nk].tolist(), "v_scales": vs[b, kvh, :nk].tolist()})
                labels.append(f"layer {path.layer} {path.step}: op attention batch {b} head {h} "
                              f"(kv head {kvh}) rows {r0}..{r0 + nr - 1}")
                where.append((b, h, r0, nr))
    got = await path.lanes["attention"].run(txns, labels, [w[3] for w in where])
    out = np.zeros(qe.shape, np.uint16)
    for (b, h, r0, nr), beats in zip(where, got):
        for r, beat in enumerate(beats):
            out[b, h, r0 + r] = unpack_lanes(int(beat["data"]) & ((1 << (16 * d)) - 1), 16, d)
    path.progress.add("heads", nb_ * heads, nb_ * heads * lq, path.step, "attention")
    return (out.astype(np.uint32) << np.uint32(16)).view(np.float32)
