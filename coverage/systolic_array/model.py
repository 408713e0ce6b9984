"""Coverage model of the systolic array (block-scaled MX GEMM): the plan, sampling and hints.

A transaction is one tile: ``kblocks`` K blocks of ``BLOCK`` elements, ``a`` [R][kblocks][BLOCK]
with ``a_scale`` [R][kblocks], ``w`` [kblocks][BLOCK][C] with ``w_scale`` [kblocks][C] and
``wfmt`` (8 or 4). Sampling recomputes every fact from the transaction with the reference
model's trace (``mxdv.refmodel.gemm.mx_matmul_trace``: exact block sums, accumulator after each
block, alignment shifts, overflow, NaN), never from the DUT's output. Accumulation bins count
only outputs that are not NaN (a NaN output hides its accumulator).

Hints build a tile whose output ``(i, j)`` (a random row and column) is designed block by
block: each designed block is an exact integer sum ``S`` (a few products, the other lanes of
row ``i`` zero) and a pair of scale codes ``(sa, sw)``; everything else in the tile is random
(NaN-free, so the designed output stays observable).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mxdv.coverage.plan import Bin, BinGroup, CoveragePlan, any_of, env_cross_plan_group, protocol_group
from mxdv.coverage.systolic_array.tile import MAX_KBLOCKS, Tiles
from mxdv.refmodel.gemm import (ROUND_ABOVE_HALF, ROUND_BELOW_HALF, ROUND_TIE_EVEN, ROUND_TIE_ODD,
                                block_exponent_offset)

#: Alignment-shift bins (inclusive ranges of |top(acc) - top(T_b)|); the RTL's adder keeps 27
#: bits of the smaller operand (24-bit significand + guard, round, sticky).
SHIFT_RANGES = ((0, 0), (1, 1), (2, 23), (24, 26), (27, 10_000))

#: (bin, weight format, activation code, weight code, what the product is)
PRODUCTS = (
    ("prod8.m127_m127", 8, -127, -127, "-127 x -127 = 16129, the largest product of quantizer-range MXINT8 codes"),
    ("prod8.m127_p127", 8, -127, 127, "-127 x 127 = -16129, the most negative quantizer-range MXINT8 product"),
    ("prod8.m128_m128", 8, -128, -128, "-128 x -128 = 16384, the largest product of any MXINT8 codes (-128 is legal input)"),
    ("prod4.m7_m7", 4, -7, -7, "-7 x -7 = 49 with an MXINT4 weight (the NUMERICS corner case)"),
    ("prod4.m7_p7", 4, -7, 7, "-7 x 7 = -49 with an MXINT4 weight"),
    ("prod4.m127_m7", 4, -127, -7, "-127 x -7 = 889, the largest quantizer-range product with an MXINT4 weight"),
    ("prod4.m127_p7", 4, -127, 7, "-127 x 7 = -889, the most negative quantizer-range product with an MXINT4 weight"),
    ("prod4.m128_m8", 4, -128, -8, "-128 x -8 = 1024, the largest product of any MXINT8 x MXINT4 codes"),
)

SIGNS = (("pp", 1, 1, "+ x +"), ("pn", 1, -1, "+ x -"), ("np", -1, 1, "- x +"), ("nn", -1, -1, "- x -"))

FP32_NEG_ZERO = 0x80000000


@dataclass(frozen=True)
class Geometry:
    rows: int
    cols: int
    block: int


# -- hint construction ------------------------------------------------------------------------
def _garble_high_nibble(rng, codes: np.ndarray) -> np.ndarray:
    """MXINT4 weight codes with random (ignored) bits 7..4, as signed bytes."""
    raw = (np.asarray(codes, dtype=np.int64) & 0xF) | (rng.integers(0, 16, size=np.shape(codes)) << 4)
    return np.where(raw >= 128, raw - 256, raw)


def _filler(rng, g: Geometry, kblocks: int, wfmt: int) -> dict:
    """A random NaN-free tile (numpy arrays; converted to lists by :func:`_finish`)."""
    wmax = 127 if wfmt == 8 else 7
    w = rng.integers(-wmax, wmax + 1, size=(kblocks, g.block, g.cols))
    return {"wfmt": wfmt, "kblocks": kblocks,
            "a": rng.integers(-127, 128, size=(g.rows, kblocks, g.block)),
            "a_scale": rng.integers(100, 155, size=(g.rows, kblocks)),
            "w": w, "w_scale": rng.integers(100, 155, size=(kblocks, g.cols))}


def _finish(rng, t: dict) -> dict:
    out = dict(t)
    if t["wfmt"] == 4:
        out["w"] = _garble_high_nibble(rng, t["w"])
    for key in ("a", "a_scale", "w", "w_scale"):
        out[key] = np.asarray(out[key], dtype=np.int64).tolist()
    return out


def _products_for(total: int, wfmt: int, block: int) -> list[tuple[int, int]]:
    """Lanes ``(a, w)`` whose products sum to ``total`` exactly (at most ``block`` lanes)."""
    wmax = 127 if wfmt == 8 else 7
    sign = -1 if total < 0 else 1
    n_big, rest = divmod(abs(total), 127 * wmax)
    q, t = divmod(rest, wmax)
    lanes = [(127, wmax)] * n_big + ([(q, wmax)] if q else []) + ([(t, 1)] if t else [])
    if len(lanes) > block:
        raise ValueError(f"block sum {total} needs {len(lanes)} lanes, BLOCK is {block}")
    return [(sign * a, w) for a, w in lanes]


def _scales_for(rng, exponent: int, wfmt: int) -> tuple[int, int]:
    """Finite scale codes ``(sa, sw)`` with ``sa + sw + offset == exponent``."""
    total = exponent - block_exponent_offset("mxint8", f"mxint{wfmt}")
    if not 0 <= total <= 508:
        raise ValueError(f"block exponent {exponent} is out of reach of finite scales")
    sa = int(rng.integers(max(0, total - 254), min(254, total) + 1))
    return sa, total - sa


def _design(rng, g: Geometry, blocks: list[tuple[int, int]], wfmt: int | None = None,
            kblocks: int | None = None) -> tuple[dict, int, int]:
    """A tile where output (i, j) gets the block values ``S_b * 2**e_b`` for the given
    ``(S_b, e_b)`` (then random blocks up to ``kblocks``). Returns (tile, i, j)."""
    formats = [wfmt] if wfmt else [int(f) for f in rng.permutation([8, 4])]
    for n, fmt in enumerate(formats):
        try:  # MXINT4 weights reach smaller block sums and other exponents than MXINT8
            lanes = [_products_for(total, fmt, g.block) for total, _ in blocks]
            scales = [_scales_for(rng, exponent, fmt) for _, exponent in blocks]
            break
        except ValueError:
            if n == len(formats) - 1:
                raise
    kb = kblocks or int(rng.integers(len(blocks), MAX_KBLOCKS + 1))
    t = _filler(rng, g, kb, fmt)
    i, j = int(rng.integers(g.rows)), int(rng.integers(g.cols))
    for b in range(len(blocks)):
        t["a"][i, b, :] = 0
        for lane, (a, w) in zip(rng.permutation(g.block), lanes[b]):
            t["a"][i, b, lane] = a
            t["w"][b, lane, j] = w
        t["a_scale"][i, b], t["w_scale"][b, j] = scales[b]
    return t, i, j


def _top(total: int, exponent: int) -> int:
    """floor(log2 |S * 2**e|)."""
    return exponent + abs(total).bit_length() - 1


def _rand_sum(rng, lo_bits: int = 1, hi_bits: int = 14) -> int:
    bits = int(rng.integers(lo_bits, hi_bits + 1))
    mag = int(rng.integers(1 << (bits - 1), 1 << bits))
    return mag if rng.random() < 0.5 else -mag


# hints: each returns fn(rng, g) -> txn
def _h_kblocks(which: str):
    def hint(rng, g):
        kb = {"one": 1, "max": MAX_KBLOCKS}.get(which) or int(rng.integers(2, MAX_KBLOCKS))
        return _finish(rng, _filler(rng, g, kb, int(rng.choice([8, 4]))))
    return hint


def _h_fmt(wfmt: int):
    return lambda rng, g: _finish(rng, _filler(rng, g, int(rng.integers(1, MAX_KBLOCKS + 1)), wfmt))


def _h_scale(operand: str, code: int):
    """Output (i, j) has a nonzero block whose A (or W, or both) scale code is ``code``."""
    def hint(rng, g):
        t, i, j = _design(rng, g, [(_rand_sum(rng), 0)])
        b = 0
        if code == 0xFF:
            b = int(rng.integers(t["kblocks"]))
            if operand == "a":
                t["a_scale"][i, b] = 0xFF
            else:
                t["w_scale"][b, j] = 0xFF
            return _finish(rng, t)
        if operand == "both":
            t["a_scale"][i, b] = t["w_scale"][b, j] = code
        elif operand == "a":
            t["a_scale"][i, b] = code
            t["w_scale"][b, j] = int(rng.integers(0, 255))
        else:
            t["w_scale"][b, j] = code
            t["a_scale"][i, b] = int(rng.integers(0, 255))
        return _finish(rng, t)
    return hint


def _h_nan_later(rng, g):
    t = _filler(rng, g, int(rng.integers(2, MAX_KBLOCKS + 1)), int(rng.choice([8, 4])))
    b = int(rng.integers(1, t["kblocks"]))
    if rng.random() < 0.5:
        t["a_scale"][int(rng.integers(g.rows)), b] = 0xFF
    else:
        t["w_scale"][b, int(rng.integers(g.cols))] = 0xFF
    return _finish(rng, t)


def _h_product(wfmt: int, a: int, w: int):
    def hint(rng, g):
        t = _filler(rng, g, int(rng.integers(1, MAX_KBLOCKS + 1)), wfmt)
        i, j = int(rng.integers(g.rows)), int(rng.integers(g.cols))
        b, k = int(rng.integers(t["kblocks"])), int(rng.integers(g.block))
        t["a"][i, b, k], t["w"][b, k, j] = a, w
        return _finish(rng, t)
    return hint


def _h_full_sum(w_code: int):
    def hint(rng, g):
        t = _filler(rng, g, int(rng.integers(1, MAX_KBLOCKS + 1)), 8)
        i, j, b = int(rng.integers(g.rows)), int(rng.integers(g.cols)), int(rng.integers(t["kblocks"]))
        t["a"][i, b, :] = -128
        t["w"][b, :, j] = w_code
        return _finish(rng, t)
    return hint


def _h_sign(sa: int, sw: int):
    def hint(rng, g):
        t = _filler(rng, g, int(rng.integers(1, MAX_KBLOCKS + 1)), int(rng.choice([8, 4])))
        wmax = 127 if t["wfmt"] == 8 else 7
        t["a"] = sa * rng.integers(1, 128, size=t["a"].shape)
        t["w"] = sw * rng.integers(1, wmax + 1, size=t["w"].shape)
        return _finish(rng, t)
    return hint


def _h_tile(kind: str):
    def hint(rng, g):
        t = _filler(rng, g, int(rng.integers(1, MAX_KBLOCKS + 1)), int(rng.choice([8, 4])))
        if kind == "zero_a":
            t["a"][...] = 0
        elif kind == "zero_w":
            t["w"][...] = 0
        elif kind == "identity_w":
            t["w"][...] = 0
            t["w"][0, np.arange(g.cols), np.arange(g.cols)] = 1
        elif kind == "identity_a":
            t["a"][...] = 0
            t["a"][np.arange(g.rows), 0, np.arange(g.rows)] = 1
        return _finish(rng, t)
    return hint


def _h_shift(lo: int, hi: int):
    """Block 0 sets acc; block 1's top exponent is ``d`` above or below acc's (d in lo..hi)."""
    def hint(rng, g):
        s0, e0 = _rand_sum(rng), int(rng.integers(-40, 40))
        d = int(rng.integers(lo, min(hi, 60) + 1)) * (1 if rng.random() < 0.5 else -1)
        s1 = _rand_sum(rng)
        e1 = _top(s0, e0) + d - (abs(s1).bit_length() - 1)
        t, _, _ = _design(rng, g, [(s0, e0), (s1, e1)])
        return _finish(rng, t)
    return hint


def _h_cancel(exact: bool):
    def hint(rng, g):
        s0, e = _rand_sum(rng, 10, 14), int(rng.integers(-40, 40))
        delta = 0 if exact else int(rng.integers(1, 4)) * (1 if rng.random() < 0.5 else -1)
        t, _, _ = _design(rng, g, [(s0, e), (-(s0 + delta), e)])
        return _finish(rng, t)
    return hint


def _h_round(kind: str):
    """Block 0: a small exact acc; block 1: a big T whose 24-bit window ends where acc's bits
    make the exact sum a tie (even or odd) or a sticky-decided round-up."""
    def hint(rng, g):
        e0 = int(rng.integers(-40, 40))
        if kind == "tie_even":
            s0, below = 1, 0          # the bit at ulp/2 only: a tie, truncated lsb even
        elif kind == "tie_odd":
            s0, below = 3, 0          # bits at ulp and ulp/2: a tie, truncated lsb odd
        else:
            p = int(rng.integers(3, 13))
            s0, below = (1 << p) + 1, p  # ulp/2 and a bit p places below: sticky decides
        s1 = _rand_sum(rng, 8, 14)
        s0 = s0 if s1 > 0 else -s0
        top1 = e0 + below + 24        # T1's top is 24 bits above the ulp/2 bit (at e0 + below)
        e1 = top1 - (abs(s1).bit_length() - 1)
        t, _, _ = _design(rng, g, [(s0, e0), (s1, e1)])
        return _finish(rng, t)
    return hint


def _h_overflow(sign: int):
    def hint(rng, g):
        s = abs(_rand_sum(rng)) * sign
        e = int(rng.integers(129 - abs(s).bit_length() + 1, 243))
        t, _, _ = _design(rng, g, [(s, e)])
        return _finish(rng, t)
    return hint


def _h_inf_absorbs(rng, g):
    s0 = _rand_sum(rng)
    t, _, _ = _design(rng, g, [(s0, 242), (_rand_sum(rng), int(rng.integers(-40, 40)))], wfmt=8)
    return _finish(rng, t)


def _h_subnormal(rng, g):
    s = _rand_sum(rng)
    top = int(rng.integers(-149, -127))
    t, _, _ = _design(rng, g, [(s, top - (abs(s).bit_length() - 1))])
    return _finish(rng, t)


def _neg_tiny(rng) -> tuple[int, int]:
    s = -abs(_rand_sum(rng, 1, 8))
    return s, int(rng.integers(-266, -152 - abs(s).bit_length() + 1))


def _h_neg_zero(rng, g):
    t, _, _ = _design(rng, g, [_neg_tiny(rng)])
    return _finish(rng, t)


def _h_zero_block(after_neg_zero: bool):
    def hint(rng, g):
        first = _neg_tiny(rng) if after_neg_zero else (_rand_sum(rng), int(rng.integers(-40, 40)))
        t, i, j = _design(rng, g, [first, (_rand_sum(rng), 0)])
        t["a"][i, 1, :] = 0
        return _finish(rng, t)
    return hint


# -- the plan ----------------------------------------------------------------------------------
def _groups():
    k = [
        ("k.one_block", "kblocks = 1: K is a single MX block",
         "first block = last block: the accumulator starts and ends on the same block", _h_kblocks("one")),
        ("k.between", f"1 < kblocks < {MAX_KBLOCKS}", "a block that is neither the first nor the last of its tile", _h_kblocks("mid")),
        ("k.max", f"kblocks = {MAX_KBLOCKS}, the environment's maximum K",
         "the longest accumulation chain the plan drives", _h_kblocks("max")),
        ("fmt.int8", "a tile with MXINT8 weights", "runtime weight format select, 8-bit path (exponent offset -266)", _h_fmt(8)),
        ("fmt.int4", "a tile with MXINT4 weights (upper nibble of each weight lane ignored)",
         "runtime weight format select, 4-bit path: sign extension from bit 3, exponent offset -262", _h_fmt(4)),
    ]
    scales = [
        ("scale.a_0", "a block with A scale code 0 (2^-127) and a nonzero block sum in a non-NaN output",
         "bottom of the E8M0 range: the smallest block exponents", _h_scale("a", 0)),
        ("scale.a_254", "a block with A scale code 254 (2^127) and a nonzero block sum in a non-NaN output",
         "top of the finite E8M0 range; one more is NaN", _h_scale("a", 254)),
        ("scale.a_nan", "an A scale code 0xFF (NaN) anywhere in the tile",
         "rule G4: the whole row of outputs must be the canonical NaN", _h_scale("a", 0xFF)),
        ("scale.w_0", "a block with W scale code 0 and a nonzero block sum in a non-NaN output",
         "bottom of the E8M0 range on the weight operand", _h_scale("w", 0)),
        ("scale.w_254", "a block with W scale code 254 and a nonzero block sum in a non-NaN output",
         "top of the finite E8M0 range on the weight operand", _h_scale("w", 254)),
        ("scale.w_nan", "a W scale code 0xFF (NaN) anywhere in the tile",
         "rule G4: the whole column of outputs must be NaN (the W-side check)", _h_scale("w", 0xFF)),
        ("scale.both_0", "sa = sw = 0 on a nonzero block (T = S * 2^-266)",
         "the smallest block exponent: the value underflows to a signed zero or subnormal", _h_scale("both", 0)),
        ("scale.both_254", "sa = sw = 254 on a nonzero block (T = S * 2^242)",
         "the largest block exponent: the value overflows FP32 to infinity", _h_scale("both", 254)),
        ("nan.later_block", "an output is NaN only through a block after the first",
         "the NaN flag must be ORed across blocks, not only taken from the first or the last", _h_nan_later),
    ]
    products = [(name, f"MXINT{f} weights: {what}, in a non-NaN output", "extreme codes exercise the signed multiplier's full range"
                 + (" and the sign extension of the 4-bit weight" if f == 4 else ""), _h_product(f, a, w))
                for name, f, a, w, what in PRODUCTS]
    products += [
        ("sum.full_pos", "a whole block of -128 x -128 products: S = BLOCK * 2^14, the largest block sum",
         "the block-sum register needs 16 + log2(BLOCK) bits; one bit short wraps here", _h_full_sum(-128)),
        ("sum.full_neg", "a whole block of -128 x 127 products: S = -BLOCK * 16256, the most negative block sum",
         "the negative end of the block-sum register", _h_full_sum(127)),
    ]
    products += [(f"sign.{tag}", f"a nonzero product {pat} (activation x weight) in a non-NaN output",
                  "signed multiply and accumulate for every sign combination", _h_sign(sa, sw))
                 for tag, sa, sw, pat in SIGNS]
    tiles = [
        ("tile.zero_a", "every activation code is 0 (scales finite somewhere): outputs are +0",
         "an all-zero block must give +0, not -0 or garbage, and must not disturb the accumulator", _h_tile("zero_a")),
        ("tile.zero_w", "every (decoded) weight code is 0: outputs are +0",
         "same for the weight side; in MXINT4 mode only the low nibbles are zero", _h_tile("zero_w")),
        ("tile.identity_w", "W is the identity in its first block (W[k][j] = 1 iff k = j), 0 elsewhere",
         "Y = A[:, 0:C] scaled: each output is one product, so a lane or column swap is visible", _h_tile("identity_w")),
        ("tile.identity_a", "A is the identity in its first block (A[i][k] = 1 iff k = i), 0 elsewhere",
         "Y = W[0:R, :] scaled: a row swap or a skew error is visible", _h_tile("identity_a")),
    ]
    acc = []
    for lo, hi in SHIFT_RANGES:
        name = f"acc.shift_{lo}" if lo == hi else (f"acc.shift_{lo}_{hi}" if hi < 1000 else f"acc.shift_ge{lo}")
        span = f"{lo}" if lo == hi else (f"{lo}..{hi}" if hi < 1000 else f">= {lo}")
        why = {0: "equal top exponents: no alignment, the carry-out / cancellation case",
               1: "one bit of alignment: the only shift where the guard bit alone decides and left normalization by 1 is possible",
               2: "a normal alignment inside the 24-bit window",
               24: "the smaller operand lands only in guard/round/sticky",
               27: "the smaller operand is entirely sticky (shift clamped to 27)"}[lo]
        acc.append((name, f"rule G3 alignment shift {span} between acc and T_b (both nonzero)", why, _h_shift(lo, hi)))
    acc += [
        ("acc.cancel_exact", "acc + T_b is exactly zero (acc nonzero): the result must be +0",
         "rule G3 sign of zero: an exact zero sum is +0.0 whatever the signs", _h_cancel(True)),
        ("acc.cancel_partial", "opposite signs cancel several leading bits (result top exponent at least 2 below both operands')",
         "massive cancellation: left normalization by more than one bit", _h_cancel(False)),
        ("acc.tie_even", "the exact sum is a tie (exactly half an ulp) and the truncated significand is even: RNE rounds toward zero",
         "round-half-to-even vs half-up differ only here", _h_round("tie_even")),
        ("acc.tie_odd", "the exact sum is a tie and the truncated significand is odd: RNE rounds away from zero",
         "the other half of ties-to-even", _h_round("tie_odd")),
        ("acc.sticky_up", "guard bit 1, the next two bits 0 and a nonzero bit further below, truncated significand even: only the sticky bit rounds up",
         "a dropped or misplaced sticky bit turns this into a tie and rounds down", _h_round("sticky")),
        ("acc.overflow_pos", "the accumulator overflows FP32 to +inf", "rule G3 overflow: RNE of a huge sum is +inf", _h_overflow(1)),
        ("acc.overflow_neg", "the accumulator overflows FP32 to -inf", "overflow keeps the sign", _h_overflow(-1)),
        ("acc.inf_absorbs", "a nonzero finite block is added to an infinite accumulator",
         "inf + finite = inf: the infinity is sticky across later blocks", _h_inf_absorbs),
        ("acc.subnormal", "an accumulator result is an FP32 subnormal", "gradual underflow: nothing is flushed to zero", _h_subnormal),
        ("acc.neg_zero", "a nonzero negative sum rounds to -0.0 (0x80000000)",
         "underflow keeps the sign of a nonzero sum (the NUMERICS corner case)", _h_neg_zero),
        ("acc.zero_block", "a block with S_b = 0 after a nonzero accumulator",
         "a zero block must leave the accumulator unchanged", _h_zero_block(False)),
        ("acc.neg_zero_plus_zero", "a block with S_b = 0 added to an accumulator of -0.0: the result is +0.0",
         "the special case of the RTL's zero handling: -0 + 0 = +0 under RNE", _h_zero_block(True)),
    ]
    return [
        ("shape", "K depth and weight format of the tile.", k),
        ("scales", "E8M0 scale codes at the edges of their range and NaN, on either operand (rules G2, G4).", scales),
        ("products", "Extreme element-code products and block sums, and every sign combination (rule G1).", products),
        ("tiles", "Whole-tile patterns: zero and identity-like operands.", tiles),
        ("accumulation", "The FP32 accumulation across blocks, one RNE rounding per block (rule G3), from the "
         "reference model's trace; only outputs that are not NaN count.", acc),
    ]


# -- internal corners of the FP32 accumulator (from the trace's rounding), crosses, goals -------
#: Bins where one hit proves little: each needs this many (``Bin.at_least``).
GOALS = {"acc.tie_even": 3, "acc.tie_odd": 3, "acc.sticky_up": 2, "acc.sub_tie": 2}


def _h_sub_round(kind: str):
    """One block whose value S * 2^e lands in the subnormal range with the bits below the
    2^-149 ulp chosen: a tie (S odd at 2^-150), guard and sticky (..101 at 2^-152) or sticky
    only (..001 at 2^-152, guard 0)."""
    def hint(rng, g):
        k = int(rng.integers(1, 1 << 10))
        if kind == "tie":
            s, e = 2 * k + 1, -150
        elif kind == "sticky_up":
            s, e = 8 * k + 5, -152
        else:
            s, e = 8 * k + 1, -152
        t, _, _ = _design(rng, g, [(s if rng.random() < 0.5 else -s, e)])
        return _finish(rng, t)
    return hint


def _h_far_opposite(rng, g):
    """acc, then a block of the opposite sign whose top is 27..60 bits below: entirely sticky."""
    s0, e0 = _rand_sum(rng, 6, 14), int(rng.integers(-40, 40))
    d = int(rng.integers(27, 61))
    s1 = -abs(_rand_sum(rng)) if s0 > 0 else abs(_rand_sum(rng))
    e1 = _top(s0, e0) - d - (abs(s1).bit_length() - 1)
    t, _, _ = _design(rng, g, [(s0, e0), (s1, e1)])
    return _finish(rng, t)


def _with_fmt(hint, wfmt: int, tries: int = 64):
    """A hint's tile with ``wfmt`` weights (hints choose the format that reaches their sums);
    after ``tries`` draws without one (a small BLOCK may leave a sum out of MXINT4's reach) the
    last tile is returned: the bin then stays open, which the closure tests would show."""
    def h(rng, g):
        for _ in range(tries):
            t = hint(rng, g)
            if int(t["wfmt"]) == wfmt:
                return t
        return t
    return h


#: Accumulator corners crossed with the weight format: (class, words, defining bins, hint).
FMT_CLASSES = (
    ("tie", "an exact rounding tie of the accumulator", ("acc.tie_even", "acc.tie_odd"),
     any_of(_h_round("tie_even"), _h_round("tie_odd"))),
    ("sticky_up", "a sticky-decided round-up of the accumulator", ("acc.sticky_up",), _h_round("sticky")),
    ("subnormal", "a subnormal accumulator result", ("acc.subnormal",), _h_subnormal),
    ("overflow", "an accumulator overflow to infinity", ("acc.overflow_pos", "acc.overflow_neg"),
     any_of(_h_overflow(1), _h_overflow(-1))),
)


def _extra_groups():
    internal = [
        ("acc.sub_tie", "an accumulator sum in the subnormal range is an exact tie (half of 2^-149)",
         "gradual underflow rounds at a fixed position; round-half-to-even there needs the guard bit "
         "and a zero sticky", _h_sub_round("tie")),
        ("acc.sub_sticky_up", "a subnormal-range sum with guard bit 1 and a non-zero sticky: rounds up",
         "the sticky bits of the subnormal path: without them this looks like a tie", _h_sub_round("sticky_up")),
        ("acc.sub_sticky_down", "a subnormal-range sum with guard bit 0 and a non-zero sticky: rounds down",
         "sticky bits set below a zero guard bit must not round up", _h_sub_round("sticky_down")),
        ("acc.far_shift_opposite", "the alignment shift is >= 27 and the operands have opposite signs: the "
         "smaller is entirely sticky and the result rounds back up to the larger",
         "the sign of a very large right shift: a shifted-out negative operand borrows one ulp, and only "
         "the sticky bit brings the result back", _h_far_opposite),
    ]
    crosses = []
    for klass, words, _, hint in FMT_CLASSES:
        for f in (8, 4):
            crosses.append((f"xw.{klass}.int{f}", f"{words}, in a tile with MXINT{f} weights",
                            "block sums and exponents reach the accumulator differently from each weight "
                            "format (exponent offset, sum range)", _with_fmt(hint, f)))
    return [
        ("internal", "Internal corners of the FP32 accumulator, read from the reference model's rounding "
         "trace (`GemmTrace.rounding`: how each block's exact sum rounds); only non-NaN outputs count.", internal),
        ("fmt_cross", "Accumulator corners crossed with the weight format.", crosses),
    ]


ENV_CLASSES = (
    ("rounding", "an accumulator tie or sticky-decided rounding", ("acc.tie_even", "acc.tie_odd", "acc.sticky_up"),
     any_of(_h_round("tie_even"), _h_round("tie_odd"), _h_round("sticky"))),
    ("overflow", "an accumulator overflow", ("acc.overflow_pos", "acc.overflow_neg"),
     any_of(_h_overflow(1), _h_overflow(-1))),
    ("nan", "a NaN scale in the tile", ("scale.a_nan", "scale.w_nan"), any_of(_h_scale("a", 0xFF), _h_scale("w", 0xFF))),
)


@lru_cache(maxsize=None)
def build_plan(rows: int, cols: int, block: int) -> CoveragePlan:
    from mxdv.coverage.systolic_array.distance import distances

    g = Geometry(rows, cols, block)
    far = distances()
    groups = []
    for gname, doc, bins in _groups() + _extra_groups():
        groups.append(BinGroup(gname, doc, tuple(
            Bin(name, meaning, why, (lambda h: (lambda rng: h(rng, g)))(hint), distance=far.get(name),
                at_least=GOALS.get(name, 1))
            for name, meaning, why, hint in bins)))
    groups.append(env_cross_plan_group(
        ENV_CLASSES, g, "an accumulator rounding corner, an overflow or a NaN scale",
        "Content classes crossed with what the environment did to the tile: its "
        "output stalled before it was accepted, or it came right after a reset (simulation only)."))
    groups.append(protocol_group())
    intro = (f"The {rows} x {cols} systolic array computes Y = A @ W for one tile of MXINT8 activations and "
             "MXINT8/MXINT4 weights, K streamed in MX blocks of "
             f"{block} (refmodel/numerics/30_gemm.md, rules G1..G5). A transaction is one tile "
             f"(`kblocks` = 1..{MAX_KBLOCKS} blocks). Bins are sampled from the transaction with the "
             "reference model's trace (`mx_matmul_trace`), independently of the DUT's output. The suites "
             "run this plan on the 4 x 4 (default) and 8 x 8 arrays (`Unit.regress_variants`).")
    return CoveragePlan("systolic_array", intro, tuple(groups))


# -- sampling ----------------------------------------------------------------------------------
def _shift_bin(lo: int, hi: int) -> str:
    if lo == hi:
        return f"acc.shift_{lo}"
    return f"acc.shift_{lo}_{hi}" if hi < 1000 else f"acc.shift_ge{lo}"


def sample(txn: dict) -> set[str]:
    """The bins one tile hits (:func:`sample_tiles` of one)."""
    return {name for name, hit in sample_tiles(Tiles.of(txn)).items() if hit[0]}


def sample_tiles(t: Tiles) -> dict[str, np.ndarray]:
    """The bins each of ``n`` tiles hits: {bin name: bool [n]} (bins no tile can hit in this
    sampling may be absent). Every fact comes from the batched reference-model trace
    (:meth:`Tiles.trace`) over the tiles' own blocks, padding ignored."""
    n = len(t)
    if n == 0:
        return {}
    tr = t.trace()
    ok = ~tr.nan                                  # [n, R, C]
    blocks = t.live_blocks                        # [n, KB]
    okb = ok[:, None] & blocks[:, :, None, None]  # [n, KB, R, C]
    hits: dict[str, np.ndarray] = {}

    def any_in(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        return x.reshape(n, int(np.prod(x.shape[1:]))).any(axis=1)

    kb, wfmt = t.kblocks, t.wfmt
    hits["k.one_block"], hits["k.max"] = kb == 1, kb == MAX_KBLOCKS
    hits["k.between"] = (kb > 1) & (kb < MAX_KBLOCKS)
    hits["fmt.int8"], hits["fmt.int4"] = wfmt == 8, wfmt == 4

    # scales (rules G2, G4)
    s = tr.block_sums                             # [n, KB, R, C], 0 in padding
    live = (s != 0) & ok[:, None]
    sa3, sw3 = t.a_scale.transpose(0, 2, 1)[:, :, :, None], t.w_scale[:, :, None, :]
    for code, tag in ((0, "0"), (254, "254")):
        hits[f"scale.a_{tag}"] = any_in(live & (sa3 == code))
        hits[f"scale.w_{tag}"] = any_in(live & (sw3 == code))
        hits[f"scale.both_{tag}"] = any_in(live & (sa3 == code) & (sw3 == code))
    hits["scale.a_nan"] = any_in((t.a_scale == 0xFF) & blocks[:, None, :])
    hits["scale.w_nan"] = any_in((t.w_scale == 0xFF) & blocks[:, :, None])
    hits["nan.later_block"] = any_in(tr.nan & (t.a_scale[:, :, 0] != 0xFF)[:, :, None]
                                     & (t.w_scale[:, 0] != 0xFF)[:, None, :])

    # products (rule G1), in non-NaN outputs; padding codes are 0 and meet nothing
    rows, cols = t.a.shape[1], t.w.shape[3]
    a2, w2 = t.a.reshape(n, rows, -1), t.w.reshape(n, -1, cols)

    def meet(amask, wmask) -> np.ndarray:
        return any_in((np.matmul(amask.astype(np.float32), wmask.astype(np.float32)) > 0) & ok)

    for name, fmt, ac, wc, _ in PRODUCTS:
        hits[name] = (wfmt == fmt) & meet(a2 == ac, w2 == wc)
    block = t.a.shape[3]
    hits["sum.full_pos"] = (wfmt == 8) & any_in(live & (s == block * 16384))
    hits["sum.full_neg"] = (wfmt == 8) & any_in(live & (s == -block * 16256))
    sa2, sw2 = np.sign(a2), np.sign(w2)
    for tag, sa, sw, _ in SIGNS:
        hits[f"sign.{tag}"] = meet(sa2 == sa, sw2 == sw)

    # whole-tile patterns (the identity over the padded K equals the identity over the tile's K)
    observable = any_in(ok)
    hits["tile.zero_a"] = observable & ~any_in(a2)
    hits["tile.zero_w"] = observable & ~any_in(w2)
    eye_w = np.zeros(w2.shape[1:], dtype=np.int64)
    eye_w[np.arange(cols), np.arange(cols)] = 1
    hits["tile.identity_w"] = observable & (w2 == eye_w).all(axis=(1, 2))
    eye_a = np.zeros(a2.shape[1:], dtype=np.int64)
    eye_a[np.arange(rows), np.arange(rows)] = 1
    hits["tile.identity_a"] = observable & (a2 == eye_a).all(axis=(1, 2))

    hits.update(_accumulation_bins(tr, okb, any_in))
    hits.update(_internal_bins(tr, okb, any_in))
    for klass, _, members, _ in FMT_CLASSES:
        member_hit = np.logical_or.reduce([hits[m] for m in members])
        for f in (8, 4):
            hits[f"xw.{klass}.int{f}"] = member_hit & (wfmt == f)
    return hits


def _block_values(tr) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(acc after each block, acc before it, their FP32 codes before it, exact T_b), over
    ``[n, KB, R, C]``."""
    acc = tr.acc_bits.view(np.float32).astype(np.float64)
    prev = np.concatenate([np.zeros_like(acc[:, :1]), acc[:, :-1]], axis=1)
    acc_bits = tr.acc_bits.astype(np.uint64)
    prev_bits = np.concatenate([np.zeros_like(acc_bits[:, :1]), acc_bits[:, :-1]], axis=1)
    return acc, prev, prev_bits, np.ldexp(tr.block_sums.astype(np.float64), tr.block_exponents)


def _internal_bins(tr, okb: np.ndarray, any_in) -> dict[str, np.ndarray]:
    """Subnormal-path rounding and far opposite-sign shifts, from ``GemmTrace.rounding``."""
    _, prev, _, t = _block_values(tr)
    with np.errstate(invalid="ignore", over="ignore"):
        exact = prev + t          # only its magnitude range is read: subnormal or not
        sub = okb & np.isfinite(prev) & (np.abs(exact) < 2.0 ** -126)
    r = tr.rounding
    far = okb & (tr.alignment_shift >= 27) & (np.sign(prev) != np.sign(t)) & (r == ROUND_ABOVE_HALF)
    return {"acc.sub_tie": any_in(sub & ((r == ROUND_TIE_EVEN) | (r == ROUND_TIE_ODD))),
            "acc.sub_sticky_up": any_in(sub & (r == ROUND_ABOVE_HALF)),
            "acc.sub_sticky_down": any_in(sub & (r == ROUND_BELOW_HALF)),
            "acc.far_shift_opposite": any_in(far)}


def _accumulation_bins(tr, okb: np.ndarray, any_in) -> dict[str, np.ndarray]:
    """Rule G3 facts per (tile, block, output) from the trace; outputs that are NaN and
    padding blocks do not count."""
    hits: dict[str, np.ndarray] = {}
    acc, prev, prev_bits, t = _block_values(tr)
    acc_bits = tr.acc_bits.astype(np.uint64)

    shift = np.where(okb, tr.alignment_shift, -1)
    for lo, hi in SHIFT_RANGES:
        hits[_shift_bin(lo, hi)] = any_in((shift >= lo) & (shift <= hi))

    finite_prev = np.isfinite(prev)
    both = okb & finite_prev & (prev != 0) & (t != 0)
    hits["acc.cancel_exact"] = any_in(both & (acc_bits == 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        top = lambda x: np.frexp(np.abs(x))[1] - 1  # noqa: E731  (floor(log2|x|); 0 -> -1)
        opposite = np.sign(prev) != np.sign(t)
        partial = both & opposite & (acc != 0) & np.isfinite(acc) & (top(acc) < np.minimum(top(prev), top(t)) - 1)
    hits["acc.cancel_partial"] = any_in(partial)

    over = tr.overflow & okb
    hits["acc.overflow_pos"] = any_in(over & (acc > 0))
    hits["acc.overflow_neg"] = any_in(over & (acc < 0))
    hits["acc.inf_absorbs"] = any_in(okb & np.isinf(prev) & (t != 0))
    exp_field = (acc_bits >> np.uint64(23)) & np.uint64(0xFF)
    mant = acc_bits & np.uint64(0x7FFFFF)
    hits["acc.subnormal"] = any_in(okb & (exp_field == 0) & (mant != 0))
    hits["acc.neg_zero"] = any_in(okb & (acc_bits == FP32_NEG_ZERO))
    later = (np.arange(acc.shape[1]) >= 1)[None, :, None, None]
    zero_block = okb & later & (tr.block_sums == 0)
    hits["acc.zero_block"] = any_in(zero_block & finite_prev & (prev != 0))
    hits["acc.neg_zero_plus_zero"] = any_in(zero_block & (prev_bits == FP32_NEG_ZERO))

    # rounding of the exact sum prev + T_b (where float64 holds it exactly)
    x = prev + t
    with np.errstate(invalid="ignore", over="ignore"):
        exact = okb & finite_prev & (t != 0) & ((x - prev) == t) & ((x - t) == prev) & (x != 0)
        ax = np.abs(np.where(exact, x, 1.0))
        ulp_exp = np.maximum(np.frexp(ax)[1] - 1 - 23, -149)
        q = np.ldexp(ax, -ulp_exp)
        m = np.floor(q)
        rem = q - m
        even = (m % 2) == 0
        exact &= (np.frexp(ax)[1] - 1) <= 127                      # not an overflow
    hits["acc.tie_even"] = any_in(exact & (rem == 0.5) & even)
    hits["acc.tie_odd"] = any_in(exact & (rem == 0.5) & ~even)
    hits["acc.sticky_up"] = any_in(exact & (rem > 0.5) & (rem < 0.625) & even)
    return hits
