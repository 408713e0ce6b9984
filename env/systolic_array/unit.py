"""The MX systolic array (block-scaled GEMM tile) as a verification unit: ports, schema,
encoding, prediction and coverage."""
from __future__ import annotations

from functools import cached_property

import numpy as np

from mxdv.columns import Columns
from mxdv.coverage.plan import bin_matrix
from mxdv.coverage.systolic_array import model as cov
from mxdv.env.bulk.payload import lanes_to_words, words_to_lanes
from mxdv.coverage.systolic_array.tile import MAX_KBLOCKS, Tiles
from mxdv.schema import Field, TxnSchema
from mxdv.unit import Port, Unit

#: Element codes worth drawing often: zero, +-1, the MXINT4 and MXINT8 extremes.
ACT_CORNERS = (0, 1, -1, 127, -127, -128)
WEIGHT_CORNERS = (0, 1, -1, 7, -7, -8, 127, -127, -128)
#: E8M0 codes worth drawing often: 2^-127, 2^-126, 1.0, 2^127, NaN.
SCALE_CORNERS = (0, 1, 127, 254, 255)
# `kblocks` declares no corners: the plan's k.* hints aim at one block and the maximum directly.


def _lanes_to_buses(codes: np.ndarray) -> list[int]:
    """[beats, lanes] integer codes -> one bus integer per beat, lane 0 in bits [7:0]
    (each code as its low 8 bits)."""
    raw = np.ascontiguousarray(np.asarray(codes, dtype=np.int64).astype(np.uint8))
    return [int.from_bytes(row.tobytes(), "little") for row in raw]


class SystolicArrayUnit(Unit):
    name = "systolic_array"
    toplevel = "mx_systolic_array"
    sources = ("mx_fp32_block_add.sv", "mx_pe.sv", "mx_systolic_array.sv")
    default_parameters = {"R": 4, "C": 4, "BLOCK": 32}
    regress_variants = ("systolic_array:R=8,C=8",)
    #: Tiles cost ~30 ms each in simulation, so budgets stay near what the comparison needs:
    #: the best strategy closes in well under 100 tiles, and a random budget of more than 10x
    #: that settles the closure-table target whether or not random closes.
    budgets = {"random": 1000, "corner_random": 1000, "constrained": 1000, "hypothesis": 1000, "llm": 500}
    #: The largest K (in blocks) the stimulus drives: the plan's "K = maximum".
    max_kblocks = MAX_KBLOCKS
    description = (
        "MX systolic array: one transaction is one output tile Y[R x C] = A[R x K] * W[K x C] with "
        "K = kblocks * BLOCK. A holds MXINT8 activation codes (-128..127) with one E8M0 scale code per "
        "row and K block; W holds MXINT8 or MXINT4 weight codes (wfmt 8 or 4; for MXINT4 only the low "
        "nibble of each code counts, sign-extended) with one E8M0 scale per K block and column. Per "
        "block the exact integer sum S of code products is scaled by 2^(sa + sw - 266) (MXINT8 weights) "
        "or 2^(sa + sw - 262) (MXINT4); blocks are added in K order into an FP32 accumulator starting "
        "at +0 with one round-to-nearest-even per block (subnormals kept, overflow to +-inf, an exact "
        "zero sum is +0). Any scale code 0xFF (NaN) of a row or column makes that output the NaN "
        "0x7FC00000. The output is one FP32 row of C values per beat, R beats per tile.")

    def validate_parameters(self) -> None:
        p = self.parameters
        if p["BLOCK"] not in (8, 16, 32):
            raise ValueError(f"unit systolic_array: BLOCK must be 8, 16 or 32, got {p['BLOCK']}")
        for key in ("R", "C"):
            if not 1 <= p[key] <= p["BLOCK"]:
                raise ValueError(f"unit systolic_array: {key} must be in 1..BLOCK ({p['BLOCK']}), got {p[key]}")

    @property
    def rows(self) -> int:
        return self.parameters["R"]

    @property
    def cols(self) -> int:
        return self.parameters["C"]

    @property
    def block(self) -> int:
        return self.parameters["BLOCK"]

    @cached_property
    def input_ports(self):
        r, c = self.rows, self.cols
        return (Port("in_", (("a", 8 * r), ("a_scale", 8 * r), ("w", 8 * c), ("w_scale", 8 * c),
                             ("wfmt", 1), ("last", 1))),)

    @cached_property
    def output_port(self):
        return Port("out_", (("data", 32 * self.cols), ("last", 1)))

    @cached_property
    def schema(self) -> TxnSchema:
        r, c, b = self.rows, self.cols, self.block
        return TxnSchema((
            Field("wfmt", "choice", "weight element format: 8 = MXINT8, 4 = MXINT4", choices=(8, 4)),
            Field("kblocks", "int", f"K depth of the tile in blocks of {b} (K = kblocks * {b})",
                  lo=1, hi=MAX_KBLOCKS),
            Field("a", "int", "activation codes A[row][block][k in block], MXINT8 two's complement",
                  lo=-128, hi=127, shape=(r, "kblocks", b), corners=ACT_CORNERS),
            Field("a_scale", "bits", "E8M0 scale code of each row's block (0xFF = NaN)", width=8,
                  shape=(r, "kblocks"), corners=SCALE_CORNERS),
            Field("w", "int", "weight codes W[block][k in block][column]; with wfmt 4 only the low "
                  "nibble counts, sign-extended from bit 3 (bits 7..4 are ignored by the array and "
                  "by the model)", lo=-128, hi=127, shape=("kblocks", b, c), corners=WEIGHT_CORNERS),
            Field("w_scale", "bits", "E8M0 scale code of each block's column (0xFF = NaN)", width=8,
                  shape=("kblocks", c), corners=SCALE_CORNERS),
        ))

    @cached_property
    def plan(self):
        return cov.build_plan(self.rows, self.cols, self.block)

    def encode(self, txn):
        """One ``in_`` beat per k. The scales are sampled by the RTL only on a block's last beat
        and ``wfmt`` only on the tile's first beat; on the other beats they carry the inverted
        value, so an RTL that samples them on the wrong beat computes a wrong result."""
        a = np.asarray(txn["a"], dtype=np.int64)        # [R, kb, B]
        w = np.asarray(txn["w"], dtype=np.int64)        # [kb, B, C]
        rows, kb, block = a.shape
        beats = kb * block
        a_scale = np.repeat(np.asarray(txn["a_scale"], dtype=np.int64).T, block, axis=0)  # [K, R]
        w_scale = np.repeat(np.asarray(txn["w_scale"], dtype=np.int64), block, axis=0)    # [K, C]
        sampled = (np.arange(beats) % block) == block - 1
        a_scale = np.where(sampled[:, None], a_scale, a_scale ^ 0xFF)
        w_scale = np.where(sampled[:, None], w_scale, w_scale ^ 0xFF)
        w4 = int(int(txn["wfmt"]) == 4)
        wfmt = np.full(beats, 1 - w4)
        wfmt[0] = w4
        a_bus = _lanes_to_buses(a.transpose(1, 2, 0).reshape(beats, rows))
        w_bus = _lanes_to_buses(w.reshape(beats, -1))
        as_bus, ws_bus = _lanes_to_buses(a_scale), _lanes_to_buses(w_scale)
        return {"in_": [{"a": a_bus[k], "a_scale": as_bus[k], "w": w_bus[k], "w_scale": ws_bus[k],
                         "wfmt": int(wfmt[k]), "last": int(k == beats - 1)} for k in range(beats)]}

    def decode(self, frames):
        """One ``in_`` beat per k (lane i of a bus = bits [8*i +: 8]); ``wfmt`` from the tile's
        first beat, the scales from each block's last beat, where the RTL samples them. The
        other beats must carry the inverted values :meth:`encode` puts there."""
        beats = frames["in_"]
        r, c, block = self.rows, self.cols, self.block
        if len(beats) % block:
            raise ValueError(f"a tile of {len(beats)} beats is not a whole number of {block}-beat blocks")
        kb = len(beats) // block

        def lanes(field, n, dtype):  # [beats, n] lane codes of a field, lane 0 = bits [7:0]
            raw = b"".join(int(b[field]).to_bytes(n, "little") for b in beats)
            return np.frombuffer(raw, dtype=dtype).astype(np.int64).reshape(kb, block, n)

        a, w = lanes("a", r, np.int8), lanes("w", c, np.int8)
        a_sc, w_sc = lanes("a_scale", r, np.uint8), lanes("w_scale", c, np.uint8)
        wfmt = np.array([int(b["wfmt"]) for b in beats])
        if (a_sc[:, :-1] != (a_sc[:, -1:] ^ 0xFF)).any() or (w_sc[:, :-1] != (w_sc[:, -1:] ^ 0xFF)).any():
            raise ValueError("scale lanes of non-sampled beats are not the inverted block scales")
        if (wfmt[1:] != 1 - wfmt[0]).any():
            raise ValueError("wfmt of the beats after the first is not the inverted format")
        return {"wfmt": 4 if wfmt[0] else 8, "kblocks": kb,
                "a": a.transpose(2, 0, 1).tolist(), "a_scale": a_sc[:, -1, :].T.tolist(),
                "w": w.tolist(), "w_scale": w_sc[:, -1, :].tolist()}

    def predict(self, txn):
        bits = np.ascontiguousarray(Tiles.of(txn).bits()[0].astype("<u4"))  # [R, C]
        return [{"data": int.from_bytes(bits[i].tobytes(), "little"), "last": int(i == self.rows - 1)}
                for i in range(self.rows)]

    def sample(self, txn):
        return cov.sample(txn)

    # -- the columnar path (bulk mode): bus packing, reference model, coverage model and golden
    #    error vectorised over the tiles of a batch, of any depths (``Tiles``) ------------------
    def _beat_grid(self, counts: np.ndarray) -> np.ndarray:
        """[n, MAX_KBLOCKS * BLOCK] mask of each tile's beats."""
        return np.arange(MAX_KBLOCKS * self.block)[None, :] < np.asarray(counts)[:, None]

    def encode_columns(self, cols):
        """:meth:`encode` of a batch: the same beats, bus by bus, for all tiles at once (lanes
        as bytes: every lane is 8 bits)."""
        n, r, c, b = len(cols), self.rows, self.cols, self.block
        kmax = MAX_KBLOCKS * b
        beats = cols["kblocks"] * b
        live = self._beat_grid(beats)
        k = np.arange(kmax)[None, :]
        sampled = ((k % b) == b - 1)[:, :, None]
        byte = lambda x: np.asarray(x).astype(np.uint8)  # noqa: E731  (a code's low 8 bits)
        a = byte(cols["a"]).transpose(0, 2, 3, 1).reshape(n, kmax, r)
        w = byte(cols["w"]).reshape(n, kmax, c)
        a_sc = np.repeat(byte(cols["a_scale"]).transpose(0, 2, 1), b, axis=1)
        w_sc = np.repeat(byte(cols["w_scale"]), b, axis=1)
        w4 = (cols["wfmt"] == 4).astype(np.int64)[:, None]
        return {"in_": (beats, {
            "a": lanes_to_words(a[live], 8), "a_scale": lanes_to_words(np.where(sampled, a_sc, ~a_sc)[live], 8),
            "w": lanes_to_words(w[live], 8), "w_scale": lanes_to_words(np.where(sampled, w_sc, ~w_sc)[live], 8),
            "wfmt": np.where(k == 0, w4, 1 - w4)[live], "last": (k == beats[:, None] - 1).astype(np.int64)[live]})}

    def decode_columns(self, frames, n):
        """:meth:`decode` of a batch, with its checks (scales on the non-sampled beats
        inverted, ``wfmt`` after the first beat inverted) and the ``last`` flag on each tile's
        last beat."""
        from mxdv.env.bulk.payload import field_int

        counts, f = frames["in_"]
        counts = np.asarray(counts, dtype=np.int64)
        r, c, b = self.rows, self.cols, self.block
        kmax = MAX_KBLOCKS * b
        if ((counts % b) != 0).any() or (counts < b).any() or (counts > kmax).any():
            raise ValueError(f"a tile's beat count is not 1..{MAX_KBLOCKS} whole blocks of {b}")
        live = self._beat_grid(counts)

        def grid(values: np.ndarray, shape: tuple) -> np.ndarray:
            g = np.zeros((n, kmax, *shape), dtype=np.int64)
            g[live] = values
            return g

        a = grid(words_to_lanes(f["a"], 8, r, signed=True), (r,)).reshape(n, MAX_KBLOCKS, b, r)
        w = grid(words_to_lanes(f["w"], 8, c, signed=True), (c,)).reshape(n, MAX_KBLOCKS, b, c)
        a_sc = grid(words_to_lanes(f["a_scale"], 8, r), (r,)).reshape(n, MAX_KBLOCKS, b, r)
        w_sc = grid(words_to_lanes(f["w_scale"], 8, c), (c,)).reshape(n, MAX_KBLOCKS, b, c)
        block_live = live.reshape(n, MAX_KBLOCKS, b)[:, :, :-1, None]
        for sc in (a_sc, w_sc):
            if (block_live & (sc[:, :, :-1] != (sc[:, :, -1:] ^ 0xFF))).any():
                raise ValueError("scale lanes of non-sampled beats are not the inverted block scales")
        wfmt = grid(field_int(f["wfmt"]), ())
        last = grid(field_int(f["last"]), ())
        k = np.arange(kmax)[None, :]
        if (live & (k > 0) & (wfmt != 1 - wfmt[:, :1])).any():
            raise ValueError("wfmt of the beats after the first is not the inverted format")
        if (live & (last != (k == counts[:, None] - 1))).any():
            raise ValueError("last is not set on exactly each tile's last beat")
        return Columns(self.schema, {
            "wfmt": np.where(wfmt[:, 0] == 1, 4, 8), "kblocks": counts // b, "a": a.transpose(0, 3, 1, 2),
            "a_scale": a_sc[:, :, -1, :].transpose(0, 2, 1), "w": w, "w_scale": w_sc[:, :, -1, :]})

    def predict_columns(self, cols):
        n, r = len(cols), self.rows
        data = Tiles.from_columns(cols).bits().reshape(n * r, self.cols)
        return np.full(n, r, np.int64), {"data": data, "last": np.tile((np.arange(r) == r - 1).astype(np.int64), n)}

    def sample_columns(self, cols):
        return bin_matrix(self.plan, cov.sample_tiles(Tiles.from_columns(cols)), len(cols))

    work_label = "MACs"

    @property
    def peak_work_per_cycle(self) -> float:
        return float(self.rows * self.cols)

    def work(self, txn) -> float:
        return float(self.rows * self.cols * int(txn["kblocks"]) * self.block)

    def work_columns(self, cols) -> float:
        return float(self.rows * self.cols * self.block * int(np.asarray(cols["kblocks"]).sum()))

    golden_error_label = "abs error / max(|A| @ |W|, 2^-126)"

    def golden_error(self, txn, beats):
        """Actual FP32 outputs against the float64 product of the dequantized operands, divided
        by ``P = |A| @ |W|`` (the error scales with P; absolute errors at scale 2^127 say
        nothing), floored at FP32's smallest normal so results in the subnormal range count as
        absolute errors; over outputs where NUMERICS.md's bound applies (P <= 2^127, not NaN)."""
        got = np.array([np.frombuffer(int(b["data"]).to_bytes(4 * self.cols, "little"), dtype="<f4")
                        for b in beats], dtype=np.float64)
        return self._golden(Tiles.of(txn), got[None])

    def golden_error_columns(self, cols, beats, fields):
        got = np.asarray(fields["data"], dtype=np.uint32).view("<f4").astype(np.float64)
        return self._golden(Tiles.from_columns(cols), got.reshape(len(cols), self.rows, self.cols))

    @staticmethod
    def _golden(tiles: Tiles, got: np.ndarray):
        """(error, bound) of :meth:`golden_error` over tiles, ``got`` [n, R, C] float64."""
        with np.errstate(all="ignore"):
            want, mag, bound = tiles.golden()
            scale = np.maximum(mag, 2.0 ** -126)
            ok = np.isfinite(got) & np.isfinite(want) & (mag <= 2.0 ** 127)
            return (np.abs(got - want) / scale)[ok], (bound / scale)[ok]


UNIT_CLASS = SystolicArrayUnit
