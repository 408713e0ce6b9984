"""The quantized stack with every accelerator op recorded, and the op names of a layer.

:class:`TracedPath` is :class:`~mxdv.refmodel.model.QuantizedPath` split into the three ops
the accelerator runs (``quantize`` = quantizer unit, ``gemm`` = systolic array, ``attend`` =
attention unit); every call appends a :class:`Record` (what ran, on which unit, its output).
Run on the host it is the reference trace; :class:`~mxdv.env.layer.rtl_path.RTLPath`
overrides the three ops with the RTL and records the same sequence, so the first record that
differs names the op that went wrong. The graph itself stays the refmodel's
(``LlamaDecoder.forward_block`` / ``BertEncoder.forward_block``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mxdv.refmodel.attention import mx_attention
from mxdv.refmodel.gemm import mx_matmul
from mxdv.refmodel.kv_cache import MXKVCache, _check_rows, to_bf16
from mxdv.refmodel.model import QuantizedPath, _repeat_heads
from mxdv.refmodel.mx import MXTensor, quantize_mx

UNIT_OF = {"quantize": "quantizer", "gemm": "systolic_array", "attention": "attention"}


@dataclass
class Record:
    kind: str                 # "quantize", "gemm" or "attention"
    op: str                   # e.g. "q_proj/k_proj/v_proj input", "o_proj", "k_cache"
    value: object             # MXTensor (quantize) or float32 array
    step: str = ""
    #: gemm: the column ranges of the fused GEMM's ops [(name, start, end)]
    columns: list = field(default_factory=list)
    #: gemm: the reduction length K
    k: int = 0

    @property
    def unit(self) -> str:
        return UNIT_OF[self.kind]


def gemm_ops(key: str, config) -> list[tuple[str, int, int]]:
    """The HF ops a fused GEMM of the stack computes, by output column range."""
    hd = config.head_dim
    if key == "qkv":
        q = config.num_attention_heads * hd
        kv = config.num_key_value_heads * hd
        return [("q_proj", 0, q), ("k_proj", q, q + kv), ("v_proj", q + kv, q + 2 * kv)]
    if key == "gate_up":
        i = config.intermediate_size
        return [("gate_proj", 0, i), ("up_proj", i, 2 * i)]
    names = {"o": "o_proj", "down": "down_proj", "up": "up_proj", "lm_head": "lm_head"}
    return [(names.get(key, key), 0, 1 << 62)]


def op_at(columns: list, col: int) -> str:
    for name, a, b in columns:
        if a <= col < b:
            return name
    return "gemm"


class TracedPath(QuantizedPath):
    """QuantizedPath with named, recorded accelerator ops (host implementation)."""

    def __init__(self, quant, tile: int, config) -> None:
        super().__init__(quant, tile)
        self.config = config
        self.records: list[Record] = []
        self.step = ""
        self._gemm_names: dict[int, str] = {}

    def name_weights(self, model, layer: int) -> None:
        """Learn which prepared weight is which op (layer ``layer`` of ``model``)."""
        for key, w in model.blocks[layer].items():
            if isinstance(w, MXTensor):
                self._gemm_names[id(w)] = key

    # -- the three accelerator ops (overridden by RTLPath) -----------------------------
    def quantize(self, x: np.ndarray, fmt: str, what: str) -> MXTensor:
        return quantize_mx(to_bf16(x), fmt=fmt, block_size=self.quant.activations.block_size, axis=-1)

    def gemm(self, a: MXTensor, w: MXTensor, columns: list) -> np.ndarray:
        return mx_matmul(a, w)

    def attend(self, q: MXTensor, k: MXTensor, v: MXTensor, *, causal, q_offset, kv_len, group) -> np.ndarray:
        return mx_attention(q, _repeat_heads(k, group), _repeat_heads(v, group), causal=causal,
                            q_offset=q_offset, kv_len=kv_len, tile=self.tile)

    # -- QuantizedPath's interface, recorded ------------------------------------------------
    def _record(self, kind: str, op: str, value, columns=()) -> Record:
        rec = Record(kind, op, value, self.step, list(columns))
        self.records.append(rec)
        self.after_record(rec)
        return rec

    def after_record(self, rec: Record) -> None:
        """Called after each op is recorded (RTLPath stops here on a mismatch)."""

    def activation(self, x: np.ndarray) -> MXTensor:
        t = self.quantize(x, self.quant.activations.fmt, "activation")
        self._record("quantize", "activation", t)
        return t

    def matmul(self, a: MXTensor, w: MXTensor) -> np.ndarray:
        columns = gemm_ops(self._gemm_names.get(id(w), "gemm"), self.config)
        name = "/".join(c[0] for c in columns)
        last = self.records[-1] if self.records else None
        if last is not None and last.kind == "quantize" and last.value is a:
            last.op = f"{name} input"
        y = self.gemm(a, w, columns)
        rec = Record("gemm", name, y, self.step, list(columns), int(a.elements.shape[-1]))
        self.records.append(rec)
        self.after_record(rec)
        return y

    def attention(self, q, cache, *, causal: bool, q_offset: int, kv_len, group: int) -> np.ndarray:
        qq = self.quantize(q, self.quant.activations.fmt, "attention q")
        self._record("quantize", "attention q", qq)
        out = self.attend(qq, cache.keys(), cache.values(), causal=causal, q_offset=q_offset,
                          kv_len=kv_len, group=group)
        self._record("attention", "attention", out)
        return out

    def new_kv_cache(self) -> "TracedKVCache":
        return TracedKVCache(self)


class TracedKVCache(MXKVCache):
    """The MX KV cache, filled by the path's ``quantize`` (the quantizer unit on the RTL)."""

    def __init__(self, path: TracedPath) -> None:
        super().__init__(path.quant.kv.fmt, path.quant.kv.block_size)
        self.path = path

    def append(self, k: np.ndarray, v: np.ndarray) -> None:
        _check_rows(k, v)
        kq = self.path.quantize(k, self.fmt, "k_cache")
        self.path._record("quantize", "k_cache", kq)
        vq = self.path.quantize(v, self.fmt, "v_cache")
        self.path._record("quantize", "v_cache", vq)
        self._store.append({"k_codes": kq.elements, "k_scales": kq.scales,
                            "v_codes": vq.elements, "v_scales": vq.scales})
