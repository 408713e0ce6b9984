"""The MX quantizer as a verification unit: ports, schema, encoding, prediction, coverage."""
from __future__ import annotations

from functools import cached_property

import numpy as np

from mxdv.columns import Columns
from mxdv.coverage.quantizer import model as cov
from mxdv.refmodel import quantize_mx
from mxdv.refmodel.formats import bf16_bits_to_float32
from mxdv.schema import Field, TxnSchema, pack_lanes, unpack_lanes
from mxdv.unit import Port, Unit

#: BF16 codes worth drawing often: ±0, min/max subnormal, min normal, 1.0, max finite, ±Inf, NaN.
BF16_CORNERS = (0x0000, 0x8000, 0x0001, 0x007F, 0x0080, 0x3F80, 0x3FC0, 0x7F7F, 0xFF7F,
                0x7F80, 0xFF80, 0x7FC0)


class QuantizerUnit(Unit):
    name = "quantizer"
    toplevel = "mx_quantizer"
    sources = ("mx_exp_max.sv", "mx_int_lane.sv", "mx_quantizer.sv")
    default_parameters = {"BLOCK": 32}
    description = (
        "MX quantizer: converts one block of BF16 values into an E8M0 shared scale and MXINT8 or "
        "MXINT4 elements (OCP Microscaling). shared_exp = floor(log2(max|x|)) clamped to [-127, 127]; "
        "scale code = shared_exp + 127; element = round-half-to-even(x * 2^(w-2) / 2^shared_exp) "
        "saturated to +-(2^(w-1)-1). A block with NaN or Inf gets scale 0xFF and zero elements; an "
        "all-zero block gets scale 0. Subnormal BF16 inputs are exact values.")

    def validate_parameters(self) -> None:
        if self.parameters["BLOCK"] not in (8, 16, 32):
            raise ValueError(f"unit quantizer: BLOCK must be 8, 16 or 32, got {self.parameters['BLOCK']}")

    @property
    def block(self) -> int:
        return self.parameters["BLOCK"]

    @cached_property
    def input_ports(self):
        return (Port("in_", (("data", 16 * self.block), ("w4", 1))),)

    @cached_property
    def output_port(self):
        return Port("out_", (("scale", 8), ("elems", 8 * self.block), ("w4", 1)))

    @cached_property
    def schema(self) -> TxnSchema:
        return TxnSchema((
            Field("elem_width", "choice", "MXINT element width of this block", choices=(8, 4)),
            Field("values", "bf16", "the block's values, lane 0 first", shape=(self.block,),
                  corners=BF16_CORNERS),
        ))

    @cached_property
    def plan(self):
        return cov.build_plan(self.block)

    def encode(self, txn):
        return {"in_": [{"data": pack_lanes(txn["values"], 16), "w4": int(txn["elem_width"] == 4)}]}

    def decode(self, frames):
        """``in_data`` lane i = bits [16*i +: 16] (BF16 code), ``in_w4`` 1 = MXINT4."""
        (beat,) = frames["in_"]
        return {"elem_width": 4 if beat["w4"] else 8, "values": unpack_lanes(beat["data"], 16, self.block)}

    def predict(self, txn):
        x = bf16_bits_to_float32(np.asarray(txn["values"], dtype=np.uint16))
        fmt = "mxint4" if txn["elem_width"] == 4 else "mxint8"
        t = quantize_mx(x, fmt=fmt, block_size=self.block)
        return [{"scale": int(t.scales[0]), "elems": pack_lanes(t.elements.tolist(), 8),
                 "w4": int(txn["elem_width"] == 4)}]

    def predict_batch(self, txns):
        """:meth:`predict` of a batch in one ``quantize_mx`` call per element width."""
        out: list = [None] * len(txns)
        codes = np.asarray([t["values"] for t in txns], dtype=np.uint16).reshape(len(txns), self.block)
        widths = np.asarray([int(t["elem_width"]) for t in txns])
        for w in (8, 4):
            rows = np.flatnonzero(widths == w)
            if not rows.size:
                continue
            q = quantize_mx(bf16_bits_to_float32(codes[rows]), fmt=f"mxint{w}", block_size=self.block)
            scales = np.asarray(q.scales).reshape(rows.size).tolist()
            elems = np.ascontiguousarray(np.asarray(q.elements).reshape(rows.size, self.block).astype(np.uint8))
            for r, s, e in zip(rows.tolist(), scales, elems):
                out[r] = [{"scale": int(s), "elems": int.from_bytes(e.tobytes(), "little"), "w4": int(w == 4)}]
        return out

    # -- the columnar path (bulk mode) ------------------------------------------------------
    def encode_columns(self, cols):
        codes = np.ascontiguousarray(cols["values"], dtype="<u2")  # lane i = bits [16*i +: 16]
        n = len(cols)
        return {"in_": (np.ones(n, np.int64), {"data": codes.view("<u4").reshape(n, self.block // 2),
                                               "w4": (cols["elem_width"] == 4).astype(np.int64)})}

    def decode_columns(self, frames, n):
        beats, beat = frames["in_"]
        if len(beats) != n or (np.asarray(beats) != 1).any():
            raise ValueError("a quantizer transaction is one beat")
        codes = np.ascontiguousarray(beat["data"], dtype="<u4").view("<u2").reshape(n, self.block)
        w4 = beat["w4"][:, 0]
        return Columns(self.schema, {"elem_width": np.where(w4 == 1, 4, 8), "values": codes})

    def predict_columns(self, cols):
        n = len(cols)
        codes = np.asarray(cols["values"], dtype=np.uint16)
        widths = np.asarray(cols["elem_width"])
        scale = np.zeros(n, np.int64)
        elems = np.zeros((n, self.block), np.uint8)
        for w in (8, 4):
            rows = np.flatnonzero(widths == w)
            if rows.size:
                q = quantize_mx(bf16_bits_to_float32(codes[rows]), fmt=f"mxint{w}", block_size=self.block)
                scale[rows] = np.asarray(q.scales).reshape(rows.size)
                elems[rows] = np.asarray(q.elements).reshape(rows.size, self.block).astype(np.uint8)
        return np.ones(n, np.int64), {"scale": scale, "elems": elems.view("<u4").reshape(n, self.block // 4),
                                      "w4": (widths == 4).astype(np.int64)}

    def sample_columns(self, cols):
        return cov.sample_matrix(np.asarray(cols["values"], dtype=np.uint16), np.asarray(cols["elem_width"]))

    #: One block per transaction; the quantizer accepts one block per cycle.
    work_label = "blocks"
    peak_work_per_cycle = 1.0

    def sample(self, txn):
        return cov.sample(txn)

    def sample_batch(self, txns):
        return cov.sample_batch(txns)


UNIT_CLASS = QuantizerUnit
