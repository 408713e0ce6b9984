"""Coverage model of the MX quantizer: the plan (every bin explained), sampling, and hints.

A transaction is one block: ``values`` (BF16 codes, one per lane) and ``elem_width`` (8 or
4). Sampling recomputes the quantization facts from the input alone (shared exponent before
clamping, ties, saturation), independently of the RTL's output. Hints are the
constrained-random recipes the ``constrained`` strategy (and the scripted LLM stand-in) use.
"""
from __future__ import annotations

from functools import lru_cache

import ml_dtypes
import numpy as np

from mxdv.coverage.plan import Bin, BinGroup, CoveragePlan, any_of, env_cross_plan_group, protocol_group

#: Shared-exponent ranges between the edge bins (inclusive); the edges get bins of their own.
EXP_RANGES = ((-125, -97), (-96, -65), (-64, -33), (-32, -1), (0, 31), (32, 63), (64, 95), (96, 126))


# -- BF16 construction helpers (codes, not floats, so hints are exact) -------------------------
def bf16(sign: int, exp: int, mant: int) -> int:
    """Code of a normal BF16 value (-1)^sign * 1.mant * 2^exp (exp in -126..127, mant 7 bits)."""
    return (sign << 15) | ((exp + 127) << 7) | (mant & 0x7F)


def bf16_sub(sign: int, mant: int) -> int:
    """Code of a subnormal BF16 value (-1)^sign * 0.mant * 2^-126 (mant 1..127)."""
    return (sign << 15) | (mant & 0x7F)


def values_of(codes) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # NaN payloads convert to NaN, as intended
        return np.asarray(codes, dtype=np.uint16).view(ml_dtypes.bfloat16).astype(np.float64)


def _filler(rng, block: int, max_exp: int) -> list[int]:
    """Random normal values strictly below 2^max_exp in magnitude (or zeros near the bottom)."""
    out = []
    for _ in range(block):
        e = int(rng.integers(max(-126, max_exp - 12), max_exp)) if max_exp > -126 else None
        out.append(0 if e is None else bf16(int(rng.integers(2)), e, int(rng.integers(128))))
    return out


def _block(rng, block: int, max_exp: int, max_mant: int | None = None, lane: int | None = None,
           width: int | None = None) -> dict:
    vals = _filler(rng, block, max_exp)
    lane = int(rng.integers(block)) if lane is None else lane
    mant = int(rng.integers(0, 100)) if max_mant is None else max_mant
    vals[lane] = bf16(int(rng.integers(2)), max_exp, mant)
    return {"elem_width": width or int(rng.choice([8, 4])), "values": vals}


# -- hints -------------------------------------------------------------------------------------
def _hint_exp(lo: int, hi: int):
    return lambda rng, block: _block(rng, block, int(rng.integers(lo, hi + 1)))


def _hint_exp_m127(rng, block):
    vals = [bf16_sub(int(rng.integers(2)), int(rng.integers(0, 64))) for _ in range(block)]
    vals[int(rng.integers(block))] = bf16_sub(int(rng.integers(2)), int(rng.integers(64, 128)))
    return {"elem_width": int(rng.choice([8, 4])), "values": vals}


def _hint_clamped(rng, block):
    vals = [bf16_sub(int(rng.integers(2)), int(rng.integers(0, 64))) for _ in range(block)]
    vals[int(rng.integers(block))] = bf16_sub(int(rng.integers(2)), int(rng.integers(1, 64)))
    return {"elem_width": int(rng.choice([8, 4])), "values": vals}


def _hint_saturate(width: int, sign: int):
    def hint(rng, block):
        t = _block(rng, block, int(rng.integers(-120, 120)), max_mant=127, width=width)
        lane = int(np.argmax(np.abs(values_of(t["values"]))))
        t["values"][lane] = (t["values"][lane] & 0x7FFF) | (sign << 15)
        return t
    return hint


def _hint_tie(width: int, up: bool):
    def hint(rng, block):
        se = int(rng.integers(-110, 110))
        t = _block(rng, block, se, max_mant=0, width=width)
        frac = width - 2  # element = x * 2^frac / 2^se
        k_max = (1 << (width - 1)) - 2
        ks = [k for k in range(0, k_max + 1) if (k % 2 == 1) == up]
        k = int(rng.choice(ks))
        odd = 2 * k + 1  # the value is (k + 0.5) * 2^(se - frac) = odd * 2^(se - frac - 1)
        e = odd.bit_length() - 1
        mant = (odd - (1 << e)) << (7 - e)
        lane = (int(np.argmax(np.abs(values_of(t["values"])))) + 1) % block
        t["values"][lane] = bf16(int(rng.integers(2)), se - frac - 1 + e, mant)
        return t
    return hint


def _hint_special(kind: str):
    def hint(rng, block):
        t = _block(rng, block, int(rng.integers(-100, 100)))
        lane = int(rng.integers(block))
        if kind == "nan":
            t["values"][lane] = 0x7F80 | int(rng.integers(1, 128)) | (int(rng.integers(2)) << 15)
        elif kind == "pos_inf":
            t["values"][lane] = 0x7F80
        elif kind == "neg_inf":
            t["values"][lane] = 0xFF80
        elif kind == "zero":
            t["values"] = [int(rng.choice([0x0000, 0x8000])) for _ in range(block)]
        return t
    return hint


def _hint_sub_mixed(rng, block):
    t = _block(rng, block, int(rng.integers(-126, -110)))
    t["values"][(int(np.argmax(np.abs(values_of(t["values"])))) + 1) % block] = bf16_sub(int(rng.integers(2)), int(rng.integers(1, 128)))
    return t


def _hint_all_equal(rng, block):
    code = bf16(int(rng.integers(2)), int(rng.integers(-126, 128)), int(rng.integers(128)))
    return {"elem_width": int(rng.choice([8, 4])), "values": [code] * block}


def _hint_mixed_signs(rng, block):
    t = _block(rng, block, int(rng.integers(-100, 100)))
    t["values"][0] &= 0x7FFF
    t["values"][-1] |= 0x8000
    return t


def _hint_all_negative(rng, block):
    t = _block(rng, block, int(rng.integers(-100, 100)))
    t["values"] = [v | 0x8000 for v in t["values"]]
    return t


def _hint_lane(first: bool):
    return lambda rng, block: _block(rng, block, int(rng.integers(-100, 100)), lane=0 if first else block - 1)


def _hint_flush(rng, block):
    se = int(rng.integers(-90, 90))
    t = _block(rng, block, se)
    t["values"][(int(np.argmax(np.abs(values_of(t["values"])))) + 1) % block] = bf16(int(rng.integers(2)), se - 12, int(rng.integers(128)))
    return t


def _hint_width(w: int):
    return lambda rng, block: _block(rng, block, int(rng.integers(-126, 128)), width=w)


# -- the plan ---------------------------------------------------------------------------------
def _b(name, meaning, why, hint=None):
    return (name, meaning, why, hint)


def _groups():
    exp_bins = [
        _b("exp.clamped_low", "max|x| < 2^-127 (a block of tiny subnormals): floor(log2) < -127, clamped to -127, scale 0x00",
           "the only place the lower clamp acts; RTL that skips it wraps the scale", _hint_clamped),
        _b("exp.m127", "shared exponent -127 without clamping (max|x| in [2^-127, 2^-126): subnormal)",
           "smallest unclamped exponent; BF16 subnormal leading-one detection", _hint_exp_m127),
        _b("exp.m126", "shared exponent -126 (max is the smallest normal binade)",
           "boundary between subnormal and normal exponent fields", _hint_exp(-126, -126)),
    ]
    for lo, hi in EXP_RANGES:
        exp_bins.append(_b(f"exp.{lo}_{hi}".replace("-", "m"), f"shared exponent in [{lo}, {hi}]",
                           "the exponent path over its whole range, not only near 0", _hint_exp(lo, hi)))
    exp_bins.append(_b("exp.p127", "shared exponent +127 (max|x| >= 2^127): the upper edge, scale 0xFE",
                       "largest finite scale; an off-by-one here produces the NaN code 0xFF", _hint_exp(127, 127)))
    elem_bins = []
    for w in (8, 4):
        m = (1 << (w - 1)) - 1
        for sign, word in ((0, "pos"), (1, "neg")):
            elem_bins.append(_b(f"sat{w}.{word}", f"MXINT{w}: an element rounds past {'+' if sign == 0 else '-'}{m} and saturates to {'+' if sign == 0 else '-'}{m}",
                                "symmetric saturation: -2^(w-1) must never appear, +2^(w-1) must not wrap", _hint_saturate(w, sign)))
        elem_bins.append(_b(f"tie{w}.up", f"MXINT{w}: an exact tie (.5) rounds away from zero to the even neighbour",
                            "round-half-to-even, odd case (guard=1, sticky=0, lsb=1)", _hint_tie(w, True)))
        elem_bins.append(_b(f"tie{w}.down", f"MXINT{w}: an exact tie (.5) rounds toward zero to the even neighbour",
                            "round-half-to-even, even case (guard=1, sticky=0, lsb=0): half-up rounding gets this wrong", _hint_tie(w, False)))
    elem_bins.append(_b("elem.flush_to_zero", "a non-zero input element quantizes to 0 (far below the block max)",
                        "large right shifts: all significand bits shifted out, sticky only", _hint_flush))
    special = [
        _b("special.nan", "a NaN in the block: scale 0xFF, all elements 0", "NaN must poison the block, not be quantized", _hint_special("nan")),
        _b("special.pos_inf", "+Inf in the block: scale 0xFF, all elements 0", "Inf is detected by exponent 0xFF with mantissa 0", _hint_special("pos_inf")),
        _b("special.neg_inf", "-Inf in the block: scale 0xFF, all elements 0", "the sign must not change the special-value rule", _hint_special("neg_inf")),
        _b("special.zero", "every element is +0 or -0: scale 0x00, elements 0", "log2(0) is undefined; the zero rule must win", _hint_special("zero")),
    ]
    shape = [
        _b("sub.mixed", "subnormal inputs in a block whose max is normal", "subnormals have no implicit one; exact, not flushed", _hint_sub_mixed),
        _b("shape.all_equal", "all lanes hold the same non-zero value", "every lane is the max at once; ties in the max search", _hint_all_equal),
        _b("shape.mixed_signs", "positive and negative non-zero values in one block", "max|x| must use magnitudes, and signs apply after rounding", _hint_mixed_signs),
        _b("shape.all_negative", "every non-zero value is negative", "a max search on signed values would pick the wrong element", _hint_all_negative),
        _b("maxlane.first", "the largest magnitude is only in lane 0", "reduction-tree edge", _hint_lane(True)),
        _b("maxlane.last", "the largest magnitude is only in the last lane", "reduction-tree edge (off-by-one on the lane count)", _hint_lane(False)),
        _b("width.int8", "a finite non-zero block quantized to MXINT8", "runtime width select, 8-bit path", _hint_width(8)),
        _b("width.int4", "a finite non-zero block quantized to MXINT4", "runtime width select, 4-bit path", _hint_width(4)),
    ]
    return [
        ("shared_exp", "The shared exponent floor(log2(max|x|)) over its whole range, including the clamp at -127 and the top at +127.", exp_bins),
        ("elements", "Element rounding and saturation, for both element widths.", elem_bins),
        ("special", "Blocks whose scale is decided by a special rule.", special),
        ("shape", "How values are arranged in the block.", shape),
    ]


# -- goals, crosses and the environment crosses ------------------------------------------------
#: Bins where one hit proves little: each needs this many (``Bin.at_least``).
GOALS = {"tie8.up": 3, "tie8.down": 3, "tie4.up": 3, "tie4.down": 3,
         "sat8.pos": 2, "sat8.neg": 2, "sat4.pos": 2, "sat4.neg": 2}

#: Content classes crossed with the element width: (class, words, defining bin, hint).
WIDTH_CLASSES = (
    ("flush", "a non-zero element flushed to zero", "elem.flush_to_zero", _hint_flush),
    ("flush_neg", "a negative non-zero element flushed to zero", "elem.flush_neg", None),
    ("sub_mixed", "subnormal inputs in a block whose max is normal", "sub.mixed", _hint_sub_mixed),
    ("clamped_low", "a block of tiny subnormals (shared exponent clamped to -127)", "exp.clamped_low", _hint_clamped),
    ("exp_p127", "shared exponent +127", "exp.p127", _hint_exp(127, 127)),
)


def _hint_flush_neg(rng, block):
    t = _hint_flush(rng, block)
    lane = (int(np.argmax(np.abs(values_of(t["values"])))) + 1) % block
    t["values"][lane] |= 0x8000
    return t


def _with_width(hint, w: int):
    def h(rng, block):
        t = hint(rng, block)
        t["elem_width"] = w
        return t
    return h


def _extra_groups():
    internal = [
        _b("elem.flush_neg", "a negative non-zero element quantizes to 0 (its magnitude is shifted out entirely)",
           "a right shift of a negative value: shifting the two's complement gives -1, not 0; the sign must "
           "be applied after the magnitude rounds", _hint_flush_neg),
    ]
    crosses = []
    for klass, words, _, hint in WIDTH_CLASSES:
        for w in (8, 4):
            crosses.append(_b(f"xw.{klass}.int{w}", f"{words}, in an MXINT{w} block",
                              f"the {w}-bit element path: its shift amounts and rounding position differ from the "
                              f"other width's", _with_width(hint or _hint_flush_neg, w)))
    return [
        ("internal", "Corners of the element datapath not visible from the output format alone.", internal),
        ("width_cross", "Content classes crossed with the element width (both datapaths see each corner).", crosses),
    ]


ENV_CLASSES = (
    ("tie", "an exact rounding tie", ("tie8.up", "tie8.down", "tie4.up", "tie4.down"),
     any_of(_hint_tie(8, True), _hint_tie(8, False), _hint_tie(4, True), _hint_tie(4, False))),
    ("saturate", "a saturating element", ("sat8.pos", "sat8.neg", "sat4.pos", "sat4.neg"),
     any_of(_hint_saturate(8, 0), _hint_saturate(8, 1), _hint_saturate(4, 0), _hint_saturate(4, 1))),
    ("special", "a NaN or Inf block", ("special.nan", "special.pos_inf", "special.neg_inf"),
     any_of(_hint_special("nan"), _hint_special("pos_inf"), _hint_special("neg_inf"))),
)


@lru_cache(maxsize=None)
def build_plan(block: int) -> CoveragePlan:
    from mxdv.coverage.quantizer.distance import distances

    far = distances()
    groups = []
    for gname, doc, bins in _groups() + _extra_groups():
        groups.append(BinGroup(gname, doc, tuple(
            Bin(name, meaning, why, (lambda h: (lambda rng: h(rng, block)))(hint) if hint else None,
                distance=far.get(name), at_least=GOALS.get(name, 1))
            for name, meaning, why, hint in bins)))
    groups.append(env_cross_plan_group(
        ENV_CLASSES, block, "a tie, a saturating element or a NaN/Inf block",
        "Content classes crossed with what the environment did to the transaction: "
        "its output stalled before it was accepted, or it came right after a reset. Hit by a "
        "checked transaction of the class that saw the condition (simulation only)."))
    groups.append(protocol_group())
    intro = (f"The MX quantizer converts one block of {block} BF16 values into an E8M0 scale and "
             "MXINT8 or MXINT4 elements (refmodel/NUMERICS.md, chapter 2). A transaction is one block "
             "(`values`, `elem_width`). Bins are sampled from the input by recomputing the rule's "
             "facts (shared exponent before clamping, ties, saturation) independently of the DUT.")
    return CoveragePlan("quantizer", intro, tuple(groups))


# -- sampling ---------------------------------------------------------------------------------
def sample(txn: dict) -> set[str]:
    codes = np.asarray(txn["values"], dtype=np.uint16)
    w = int(txn["elem_width"])
    x = values_of(codes)
    hits: set[str] = set()
    if np.isnan(x).any():
        return {"special.nan"}
    if np.isinf(x).any():
        hits.add("special.pos_inf" if (x == np.inf).any() else "special.neg_inf")
        if (x == -np.inf).any():
            hits.add("special.neg_inf")
        return hits
    mag = np.abs(x)
    amax = float(mag.max())
    if amax == 0.0:
        return {"special.zero"}
    e = int(np.frexp(amax)[1]) - 1  # floor(log2(amax)), exact
    hits.add(exp_bin(e))
    se = max(e, -127)
    scaled = np.ldexp(x, (w - 2) - se)  # exact in float64
    rounded = np.rint(scaled)  # half to even
    limit = (1 << (w - 1)) - 1
    if (rounded > limit).any():
        hits.add(f"sat{w}.pos")
    if (rounded < -limit).any():
        hits.add(f"sat{w}.neg")
    frac = np.abs(scaled - np.trunc(scaled))
    ties = frac == 0.5
    if ties.any():
        away = np.abs(rounded[ties]) > np.abs(scaled[ties])
        if away.any():
            hits.add(f"tie{w}.up")
        if (~away).any():
            hits.add(f"tie{w}.down")
    if ((x != 0) & (rounded == 0)).any():
        hits.add("elem.flush_to_zero")
    if ((x < 0) & (rounded == 0)).any():
        hits.add("elem.flush_neg")
    nonzero = mag[mag > 0]
    if (nonzero < 2.0 ** -126).any() and amax >= 2.0 ** -126:
        hits.add("sub.mixed")
    if (codes == codes[0]).all():
        hits.add("shape.all_equal")
    if (x > 0).any() and (x < 0).any():
        hits.add("shape.mixed_signs")
    if not (x > 0).any():
        hits.add("shape.all_negative")
    at_max = np.flatnonzero(mag == amax)
    if len(at_max) == 1 and at_max[0] == 0:
        hits.add("maxlane.first")
    if len(at_max) == 1 and at_max[0] == len(x) - 1:
        hits.add("maxlane.last")
    hits.add(f"width.int{w}")
    _add_width_crosses(hits, w)
    return hits


def exp_bin(e: int) -> str:
    """The ``shared_exp`` bin of a finite non-zero block whose floor(log2 max|x|) is ``e``."""
    edges = {-127: "exp.m127", -126: "exp.m126", 127: "exp.p127"}
    if e < -127:
        return "exp.clamped_low"
    if e in edges:
        return edges[e]
    lo, hi = next((lo, hi) for lo, hi in EXP_RANGES if lo <= e <= hi)
    return f"exp.{lo}_{hi}".replace("-", "m")


def _add_width_crosses(hits: set[str], w: int) -> None:
    """The element-width crosses of the classes ``hits`` holds."""
    hits.update(f"xw.{klass}.int{w}" for klass, _, member, _ in WIDTH_CLASSES if member in hits)


def sample_batch(txns: list[dict]) -> list[set[str]]:
    """:func:`sample` of many blocks at once (the sets of :func:`sample_matrix`)."""
    if not txns:
        return []
    codes = np.asarray([t["values"] for t in txns], dtype=np.uint16)
    w = np.asarray([int(t["elem_width"]) for t in txns])
    names, m = sample_matrix(codes, w)
    out: list[set[str]] = [set() for _ in range(len(txns))]
    for i, j in zip(*np.nonzero(m)):
        out[int(i)].add(names[int(j)])
    return out


def sample_matrix(codes: np.ndarray, w: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """:func:`sample` of many blocks as a boolean matrix: ``codes`` [blocks, lanes] BF16
    codes, ``w`` [blocks] element widths; returns (bin names, [blocks, bins] hits), computed
    over the whole array (bulk mode samples thousands of transactions per batch)."""
    codes = np.asarray(codes, dtype=np.uint16)
    w = np.asarray(w, dtype=np.int64)
    n, lanes = codes.shape
    x = values_of(codes)
    nan = np.isnan(x).any(axis=1)
    pinf, ninf = (x == np.inf).any(axis=1), (x == -np.inf).any(axis=1)
    mag = np.abs(x)
    with np.errstate(invalid="ignore"):
        amax = np.where(nan | pinf | ninf, 0.0, mag.max(axis=1))
    zero = ~(nan | pinf | ninf) & (amax == 0.0)
    normal = ~(nan | pinf | ninf | zero)
    e = np.frexp(np.where(normal, amax, 1.0))[1].astype(np.int64) - 1
    se = np.maximum(e, -127)
    shift = (w - 2) - se
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.ldexp(np.where(normal[:, None], x, 0.0), shift[:, None])
    rounded = np.rint(scaled)
    limit = ((1 << (w - 1)) - 1)[:, None]
    sat_pos, sat_neg = (rounded > limit).any(axis=1), (rounded < -limit).any(axis=1)
    frac = np.abs(scaled - np.trunc(scaled))
    ties = frac == 0.5
    away = ties & (np.abs(rounded) > np.abs(scaled))
    tie_up, tie_down = away.any(axis=1), (ties & ~away).any(axis=1)
    pos, neg = (x > 0).any(axis=1), (x < 0).any(axis=1)
    at_max = mag == amax[:, None]
    one_max = at_max.sum(axis=1) == 1
    cols: dict[str, np.ndarray] = {
        "special.nan": nan, "special.pos_inf": ~nan & pinf, "special.neg_inf": ~nan & ninf, "special.zero": zero,
        "exp.clamped_low": normal & (e < -127), "exp.m127": normal & (e == -127), "exp.m126": normal & (e == -126),
        "exp.p127": normal & (e == 127)}
    for lo, hi in EXP_RANGES:
        cols[f"exp.{lo}_{hi}".replace("-", "m")] = normal & (e >= lo) & (e <= hi)
    width = {wi: normal & (w == wi) for wi in (8, 4)}
    for wi, mask in width.items():
        cols[f"sat{wi}.pos"], cols[f"sat{wi}.neg"] = mask & sat_pos, mask & sat_neg
        cols[f"tie{wi}.up"], cols[f"tie{wi}.down"] = mask & tie_up, mask & tie_down
    cols["elem.flush_to_zero"] = normal & ((x != 0) & (rounded == 0)).any(axis=1)
    cols["elem.flush_neg"] = normal & ((x < 0) & (rounded == 0)).any(axis=1)
    cols["sub.mixed"] = normal & ((mag > 0) & (mag < 2.0 ** -126)).any(axis=1) & (amax >= 2.0 ** -126)
    cols["shape.all_equal"] = normal & (codes == codes[:, :1]).all(axis=1)
    cols["shape.mixed_signs"] = normal & pos & neg
    cols["shape.all_negative"] = normal & ~pos
    cols["maxlane.first"] = normal & one_max & at_max[:, 0]
    cols["maxlane.last"] = normal & one_max & at_max[:, lanes - 1]
    for wi, mask in width.items():
        cols[f"width.int{wi}"] = mask
        for klass, _, member, _ in WIDTH_CLASSES:
            cols[f"xw.{klass}.int{wi}"] = cols[member] & mask
    names = tuple(cols)
    return names, np.stack([cols[k] for k in names], axis=1) if names else np.zeros((n, 0), bool)
