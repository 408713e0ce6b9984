"""Bit-exact model of FlashAttention over an MX KV cache, as the attention unit computes it.

The rules are written down in ``refmodel/numerics/40_attention.md`` (NUMERICS.md chapter
"Attention"). Everything is integer / fixed point, so the model is exact int64 arithmetic
(plus float64 BLAS matmuls whose every partial sum is an integer below 2**53):

* A1 block dot products ``I_b = sum q_code * k_code`` (exact integers);
* A2 score ``S`` (signed 32-bit, 12 fraction bits): ``sat32(sum_b sat32(floor(I_b * 2**sh_b)))``
  with ``sh_b = sq_b + sk_b - 254 - fq - fk + 12``;
* A3 base-2 logit ``t = floor(S * C_d / 2**22)`` (10 fraction bits), ``C_d = round(log2(e) / sqrt(d)
  * 2**20)`` folds 1/sqrt(d) and log2(e) into one 19-bit constant;
* A4 fixed-point 2^-x: ``x = xi * 1024 + f``; ``pf = (LUT_HI[f >> 5] * LUT_LO[f & 31] + 2**14) >> 15``
  (16 bits, Q1.15); a weight is ``p = (pf << 5) >> xi`` (Q1.20, 0 when xi >= 21);
* A5 online softmax per KV tile: running max ``m``, ``l = floor(l * pf_a / 2**(15 + xi_a)) + sum p``,
  ``O = floor(O * pf_a / 2**(15 + xi_a)) + sum p * Vfx`` with ``(pf_a, xi_a)`` the 2^-x of
  ``m_new - m_old``; ``Vfx = sat28(floor(v_code * 2**(sv - 127 - fv + 14)))``;
* A6 output ``RNE_bf16(O / (l * 2**14))``; NaN rows/blocks give ``0x7FC0``.

The public entry points are :func:`mx_attention` (float32 values of the BF16 outputs),
:func:`mx_attention_bits` (the raw BF16 codes, what the RTL scoreboard compares) and
:func:`mx_attention_trace` (every intermediate). :func:`golden_attention` runs the same tiling in
float64 on float inputs, :func:`dense_attention` is plain float64 softmax attention, and
:func:`mx_attention_error_bound` is the per-element bound of NUMERICS.md rule A8.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from mxdv.refmodel.mx import MXTensor, dequantize_mx

__all__ = [
    "mx_attention_each",
    "BF16_CANONICAL_NAN",
    "SCORE_FRAC_BITS",
    "LOGIT_FRAC_BITS",
    "CONST_FRAC_BITS",
    "WEIGHT_FRAC_BITS",
    "VALUE_FRAC_BITS",
    "MAX_KV_LEN",
    "EXP2_LUT_HI",
    "EXP2_LUT_LO",
    "EXP2_MANTISSA",
    "EXP2_REL_ERROR",
    "AttentionTrace",
    "score_constant",
    "exp2_neg",
    "rescale",
    "attention_mask",
    "mx_attention",
    "mx_attention_bits",
    "mx_attention_trace",
    "mx_attention_error_bound",
    "golden_attention",
    "dense_attention",
    "bf16_rne_ratio",
]

BF16_CANONICAL_NAN = np.uint16(0x7FC0)
SCORE_FRAC_BITS = 12      # FS: fraction bits of the score S
LOGIT_FRAC_BITS = 10      # FT: fraction bits of the base-2 logit t
CONST_FRAC_BITS = 20      # FC: fraction bits of C_d
WEIGHT_FRAC_BITS = 20     # FP: fraction bits of a softmax weight p (Q1.20) and of l
VALUE_FRAC_BITS = 14      # FV: fraction bits of a fixed-point V element (signed 28-bit)
MANTISSA_FRAC_BITS = 15   # pf is Q1.15
MAX_KV_LEN = 1 << 14      # keeps |O| < 2**62 and l < 2**35

_S_MAX = (1 << 31) - 1
_S_MIN = -(1 << 31)
_V_MAX = (1 << 27) - 1
_V_MIN = -(1 << 27)
_P_UNDERFLOW_SHIFT = WEIGHT_FRAC_BITS + 1   # xi >= 21: p == 0 (pf < 2**16)
_MATMUL_CHUNK = 32        # keys per exact float64 P @ Vfx product: 32 * 2**20 * 2**27 = 2**52
_E8M0_NAN = 0xFF
_MXINT_FMT = re.compile(r"^mxint(\d+)$")

#: LUT_HI[a] = round(2**15 * 2**(-a/32)), a = 0..31 (16-bit unsigned).
EXP2_LUT_HI = np.round(2.0 ** 15 * 2.0 ** (-np.arange(32) / 32)).astype(np.int64)
#: LUT_LO[b] = round(2**15 * 2**(-b/1024)), b = 0..31 (16-bit unsigned).
EXP2_LUT_LO = np.round(2.0 ** 15 * 2.0 ** (-np.arange(32) / 1024)).astype(np.int64)
#: pf for every 10-bit fraction f: (LUT_HI[f >> 5] * LUT_LO[f & 31] + 2**14) >> 15, in (2**14, 2**15].
EXP2_MANTISSA = ((EXP2_LUT_HI[np.arange(1024) >> 5] * EXP2_LUT_LO[np.arange(1024) & 31]
                  + (1 << 14)) >> 15).astype(np.int64)
#: max over all 1024 fractions f of |pf / 2**15 / 2**(-f/1024) - 1| (measured exhaustively).
EXP2_REL_ERROR = float(np.max(np.abs(EXP2_MANTISSA / 2.0 ** 15 / 2.0 ** (-np.arange(1024) / 1024) - 1)))


# -- parameter checks -----------------------------------------------------------------------
def _mxint_width(fmt: str, name: str) -> int:
    match = _MXINT_FMT.match(str(fmt).lower())
    width = int(match.group(1)) if match else 0
    if not 2 <= width <= 8:
        raise ValueError(f"{name}.fmt must be an MXINT format (mxint2..mxint8), got {fmt!r}")
    return width


def _check_mx(t, name: str) -> tuple[int, int]:
    """Validate an MXTensor operand; returns (element width, block size)."""
    if not isinstance(t, MXTensor):
        raise ValueError(f"{name} must be an MXTensor, got {type(t).__name__}")
    width = _mxint_width(t.fmt, name)
    ndim = np.ndim(t.elements)
    if ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions [..., L, d], got shape {np.shape(t.elements)}")
    if t.axis not in (-1, ndim - 1):
        raise ValueError(f"{name}.axis must be the last axis (head dimension), got {t.axis}")
    return width, int(t.block_size)


def _check_int(value, name: str, lo: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _kv_lengths(kv_len, lk: int, lead: tuple[int, ...]) -> np.ndarray:
    """kv_len (None, int or array broadcast over the leading dims) as an int64 array of shape lead."""
    if kv_len is None:
        return np.full(lead, lk, dtype=np.int64)
    arr = np.asarray(kv_len)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"kv_len must be an integer or an integer array, got dtype {arr.dtype}")
    try:
        arr = np.broadcast_to(arr.astype(np.int64), lead)
    except ValueError:
        raise ValueError(f"kv_len of shape {arr.shape} does not broadcast over the leading dims {lead}") from None
    if arr.size and (arr.min() < 1 or arr.max() > lk):
        raise ValueError(f"kv_len must lie in 1..{lk} (the number of keys), got {kv_len!r}")
    return arr


def _check_common(lq: int, lk: int, lead: tuple, causal, q_offset, kv_len, tile):
    if not isinstance(causal, (bool, np.bool_)):
        raise ValueError(f"causal must be a bool, got {causal!r}")
    q_offset = _check_int(q_offset, "q_offset", 0)
    tile = _check_int(tile, "tile", 1)
    if lk < 1:
        raise ValueError(f"k must hold at least one key, got Lk={lk}")
    if lq < 1:
        raise ValueError(f"q must hold at least one query row, got Lq={lq}")
    lens = _kv_lengths(kv_len, lk, lead)
    return bool(causal), q_offset, lens, tile


def attention_mask(lq: int, lk: int, *, causal: bool = False, q_offset: int = 0,
                   kv_len=None) -> np.ndarray:
    """Visibility ``[..., Lq, Lk]`` (bool): key n is visible to query row i iff ``n < kv_len``
    and, when causal, ``n <= q_offset + i``. ``kv_len`` may be an array over leading dims."""
    lens = np.asarray(lk if kv_len is None else kv_len, dtype=np.int64)
    n = np.arange(lk)
    vis = n < lens[..., None, None]
    if causal:
        vis = vis & (n[None, :] <= q_offset + np.arange(lq)[:, None])
    return np.broadcast_to(vis, lens.shape + (lq, lk))


# -- fixed-point primitives -----------------------------------------------------------------
def score_constant(d: int) -> int:
    """C_d = round(log2(e) / sqrt(d) * 2**20): 378194 (d=16), 267423 (d=32), 189097 (d=64)."""
    d = _check_int(d, "d", 1)
    return int(round(math.log2(math.e) / math.sqrt(d) * 2 ** CONST_FRAC_BITS))


def exp2_neg(x) -> tuple[np.ndarray, np.ndarray]:
    """Rule A4: 2**(-x / 1024) for integer x >= 0 as (pf, xi): pf in (2**14, 2**15] is the Q1.15
    mantissa of the fraction part, xi = x >> 10 the right shift of the integer part."""
    x = np.asarray(x, dtype=np.int64)
    if x.size and x.min() < 0:
        raise ValueError("exp2_neg: x must be >= 0")
    return np.take(EXP2_MANTISSA, x & 1023), x >> LOGIT_FRAC_BITS


def exp2_lut_index(x) -> tuple[np.ndarray, np.ndarray]:
    """Rule A4's table addresses for 2**(-x / 1024), x >= 0: (LUT_HI index f >> 5, LUT_LO index
    f & 31) of the fraction f = x & 1023 (the entries :data:`EXP2_MANTISSA` combines)."""
    f = np.asarray(x, dtype=np.int64) & ((1 << LOGIT_FRAC_BITS) - 1)
    return f >> 5, f & 31


def _weights(x: np.ndarray) -> np.ndarray:
    """p = (pf << 5) >> xi (Q1.20), 0 when xi >= 21."""
    pf, xi = exp2_neg(x)
    return np.where(xi < _P_UNDERFLOW_SHIFT,
                    (pf << (WEIGHT_FRAC_BITS - MANTISSA_FRAC_BITS)) >> np.minimum(xi, 62), 0)


def rescale(acc, pf, xi) -> np.ndarray:
    """Rule A5 rescale: floor(acc * pf / 2**(15 + xi)) exactly in int64 (|acc| < 2**62)."""
    acc = np.asarray(acc, dtype=np.int64)
    pf = np.asarray(pf, dtype=np.int64)
    hi = acc >> MANTISSA_FRAC_BITS
    lo = acc & ((1 << MANTISSA_FRAC_BITS) - 1)
    y = hi * pf + ((lo * pf) >> MANTISSA_FRAC_BITS)   # floor(acc * pf / 2**15), exact
    return y >> np.minimum(np.asarray(xi, dtype=np.int64), 63)


def bf16_rne_ratio(num, den, exp2: int) -> np.ndarray:
    """BF16 codes (uint16) of RNE(num / den * 2**exp2) for int64 num, den > 0 (exact).

    Fast path: |num| < 2**52 (and den < 2**36): the float64 quotient is correctly rounded and
    cannot land on a BF16 rounding midpoint unless the exact quotient is one (NUMERICS.md A6),
    so rounding it to 8 significant bits with RNE on its bits is exact. (ml_dtypes casts
    float64 -> bfloat16 through float32, i.e. with double rounding, so it is not used here.)
    Other elements use exact Python integer arithmetic.
    """
    num = np.asarray(num, dtype=np.int64)
    den = np.broadcast_to(np.asarray(den, dtype=np.int64), num.shape)
    q = num.astype(np.float64) / den.astype(np.float64) * 2.0 ** exp2
    bits = np.abs(q).view(np.uint64)
    drop = np.uint64(45)                                     # 52 - 7 fraction bits
    lsb = (bits >> drop) & np.uint64(1)
    bits = (bits + (np.uint64(1) << np.uint64(44)) - np.uint64(1) + lsb) >> drop << drop
    out = bits.view(np.float64).astype(np.float32).view(np.uint32) >> np.uint32(16)
    out = out.astype(np.uint16) | np.where(num < 0, np.uint16(0x8000), np.uint16(0))
    slow = np.abs(num) >= (1 << 52)
    if slow.any():
        idx = np.nonzero(slow)
        out[idx] = [_bf16_rne_ratio_exact(int(a), int(b), exp2) for a, b in zip(num[idx], den[idx])]
    return out.astype(np.uint16)


def _ratio_parts(a: int, b: int) -> tuple[int, int, int, int]:
    """For a, b > 0: (e, mant, rem, den) with a / b = (mant + rem / den) * 2**(e - 7),
    2**e <= a/b < 2**(e+1), 128 <= mant < 256: the truncated 8-bit significand and the rest."""
    e = a.bit_length() - b.bit_length()               # 2**e <= a/b < 2**(e+1) after the fix-up
    if (a << max(0, -e)) < (b << max(0, e)):
        e -= 1
    num, den = a << max(0, 7 - e), b << max(0, e - 7)
    mant, rem = divmod(num, den)                       # 128 <= mant < 256
    return e, mant, rem, den


#: How the A6 division rounds (``AttentionTrace.div_rounding``): the exact quotient is
#: representable, below half an ulp above the truncated significand, exactly half (a tie, with
#: the truncated significand even or odd), or above half.
ROUND_EXACT, ROUND_BELOW_HALF, ROUND_TIE_EVEN, ROUND_TIE_ODD, ROUND_ABOVE_HALF = range(5)


def bf16_ratio_rounding(num, den) -> np.ndarray:
    """Per element, how RNE(|num| / den) to a BF16 significand rounds (``ROUND_*``; int8;
    ``ROUND_EXACT`` where num is 0). Exact integers, the same steps as the division itself."""
    num = np.asarray(num, dtype=np.int64)
    den = np.broadcast_to(np.asarray(den, dtype=np.int64), num.shape)
    out = np.zeros(num.shape, dtype=np.int8)
    for idx in zip(*np.nonzero(num)):
        _, mant, rem, d = _ratio_parts(abs(int(num[idx])), int(den[idx]))
        if rem == 0:
            continue
        out[idx] = (ROUND_BELOW_HALF if 2 * rem < d else ROUND_ABOVE_HALF if 2 * rem > d
                    else ROUND_TIE_ODD if mant & 1 else ROUND_TIE_EVEN)
    return out


def _bf16_rne_ratio_exact(a: int, b: int, exp2: int) -> int:
    """BF16 code of RNE(a / b * 2**exp2), exact integers (normal range assumed)."""
    if a == 0:
        return 0
    sign = 0x8000 if a < 0 else 0
    a = abs(a)
    e, mant, rem, den = _ratio_parts(a, b)
    if 2 * rem > den or (2 * rem == den and mant & 1):
        mant += 1
        if mant == 256:
            mant, e = 128, e + 1
    return sign | ((e + exp2 + 127) << 7) | (mant - 128)


# -- the bit-exact model --------------------------------------------------------------------
@dataclass
class AttentionTrace:
    """Every intermediate of :func:`mx_attention_trace` (integers as int64).

    scores: S [..., Lq, Lk]; logits: t [..., Lq, Lk]; visible: mask [..., Lq, Lk];
    vfx: Vfx [..., Lk, d]; m, l: final running max and sum [..., Lq]; acc: O [..., Lq, d];
    row_nan [..., Lq]; nan: output NaN mask [..., Lq, d]; bits: BF16 codes [..., Lq, d];
    tile_max: running max after each tile [n_tiles, ..., Lq] (INT64 min before any visible key);
    div_rounding: how each output's A6 division rounds (``ROUND_*``, int8 [..., Lq, d]; computed
    from ``acc`` and ``l`` by :func:`bf16_ratio_rounding`, ``ROUND_EXACT`` where O = 0).
    """

    scores: np.ndarray
    logits: np.ndarray
    visible: np.ndarray
    vfx: np.ndarray
    m: np.ndarray
    l: np.ndarray
    acc: np.ndarray
    row_nan: np.ndarray
    nan: np.ndarray
    bits: np.ndarray
    tile_max: np.ndarray
    div_rounding: np.ndarray | None = None


def _fixed_scores(q: MXTensor, k: MXTensor, wq: int, wk: int, bs: int) -> np.ndarray:
    """Rules A1-A2: S [..., Lq, Lk] (int64) from the element codes and E8M0 scales.

    The codes are pre-scaled by powers of two (2**(sq - 127 - fq + 12) and 2**(sk - 127 - fk)),
    so one float64 BLAS matmul per block gives I_b * 2**sh_b exactly (a block's terms share one
    scale and |I_b| < 2**21). When no term can need a floor (every sh_b >= 0) and no sum can
    reach 2**31, a single matmul over all of d is exact as well (integer partial sums < 2**53).
    """
    qc = np.asarray(q.elements, dtype=np.float64)
    kc = np.asarray(k.elements, dtype=np.float64)
    sq = np.asarray(q.scales, dtype=np.int64)
    sk = np.asarray(k.scales, dtype=np.int64)
    *lead_q, lq, d = qc.shape
    *lead_k, lk, _ = kc.shape
    nb = d // bs
    qs = qc * np.repeat(np.exp2((sq - 127 - (wq - 2) + SCORE_FRAC_BITS).astype(np.float64)), bs, axis=-1)
    ks = kc * np.repeat(np.exp2((sk - 127 - (wk - 2)).astype(np.float64)), bs, axis=-1)
    off = SCORE_FRAC_BITS - 254 - (wq - 2) - (wk - 2)
    min_sh = int(sq.min()) + int(sk.min()) + off
    max_term = bs * 2.0 ** (wq - 1) * 2.0 ** (wk - 1) * 2.0 ** (int(sq.max()) + int(sk.max()) + off)
    if min_sh >= 0 and nb * max_term < 2.0 ** 31:
        return np.matmul(qs, np.swapaxes(ks, -1, -2)).astype(np.int64)
    qb = np.moveaxis(qs.reshape(*lead_q, lq, nb, bs), -2, -3)            # [..., nb, Lq, B]
    kb = np.moveaxis(ks.reshape(*lead_k, lk, nb, bs), -2, -3)            # [..., nb, Lk, B]
    terms = np.matmul(qb, np.swapaxes(kb, -1, -2))                       # [..., nb, Lq, Lk]
    if min_sh < 0:
        np.floor(terms, out=terms)
    if max_term >= 2.0 ** 31:
        np.clip(terms, _S_MIN, _S_MAX, out=terms)
    total = terms.sum(axis=-3)
    if nb * max_term >= 2.0 ** 31:
        np.clip(total, _S_MIN, _S_MAX, out=total)
    return total.astype(np.int64)


def _fixed_values(v: MXTensor, wv: int) -> np.ndarray:
    """Rule A5: Vfx [..., Lk, d] = sat28(floor(v_code * 2**(sv - 127 - (wv-2) + 14)))."""
    vc = np.asarray(v.elements, dtype=np.float64)
    bs = int(v.block_size)
    sv = np.repeat(np.asarray(v.scales, dtype=np.int64), bs, axis=-1)
    shift = sv - 127 - (wv - 2) + VALUE_FRAC_BITS
    return np.clip(np.floor(np.ldexp(vc, shift.astype(np.int32))), _V_MIN, _V_MAX).astype(np.int64)


def _exact_pv(p: np.ndarray, vfx: np.ndarray) -> np.ndarray:
    """sum_n p[..., i, n] * vfx[..., n, j] exactly: float64 BLAS over chunks of 32 keys."""
    n = p.shape[-1]
    out = None
    for c0 in range(0, n, _MATMUL_CHUNK):
        part = np.matmul(p[..., c0:c0 + _MATMUL_CHUNK].astype(np.float64),
                         vfx[..., c0:c0 + _MATMUL_CHUNK, :].astype(np.float64)).astype(np.int64)
        out = part if out is None else out + part
    return out


def _run(q, k, v, causal, q_offset, kv_len, tile, want_trace):
    wq, bq = _check_mx(q, "q")
    wk, bk = _check_mx(k, "k")
    wv, bv = _check_mx(v, "v")
    qshape, kshape, vshape = np.shape(q.elements), np.shape(k.elements), np.shape(v.elements)
    d = qshape[-1]
    if kshape[-1] != d or vshape[-1] != d:
        raise ValueError(f"head dimension d differs: q {qshape}, k {kshape}, v {vshape}")
    if kshape != vshape:
        raise ValueError(f"k and v must have the same shape, got k {kshape}, v {vshape}")
    if bq != bk:
        raise ValueError(f"q.block_size ({bq}) must equal k.block_size ({bk})")
    if d % bq or d % bv:
        raise ValueError(f"block sizes (q/k {bq}, v {bv}) must divide the head dimension d={d}")
    lq, lk = qshape[-2], kshape[-2]
    if lk > MAX_KV_LEN:
        raise ValueError(f"k holds {lk} keys, more than MAX_KV_LEN={MAX_KV_LEN}")
    try:
        lead = np.broadcast_shapes(qshape[:-2], kshape[:-2])
    except ValueError:
        raise ValueError(f"leading dims of q {qshape[:-2]} and k/v {kshape[:-2]} do not broadcast") from None
    causal, q_offset, lens, tile = _check_common(lq, lk, lead, causal, q_offset, kv_len, tile)

    scores = _fixed_scores(q, k, wq, wk, bq)                                   # A2
    c_d = score_constant(d)
    logits = np.floor(scores.astype(np.float64) * c_d
                      / 2.0 ** (SCORE_FRAC_BITS + CONST_FRAC_BITS - LOGIT_FRAC_BITS)).astype(np.int64)  # A3
    logits = np.broadcast_to(logits, lead + (lq, lk))
    vfx = np.broadcast_to(_fixed_values(v, wv), lead + (lk, d))
    vis = np.broadcast_to(attention_mask(lq, lk, causal=causal, q_offset=q_offset, kv_len=lens),
                          lead + (lq, lk))

    neg = np.iinfo(np.int64).min
    m = np.full(lead + (lq,), neg, dtype=np.int64)
    l_acc = np.zeros(lead + (lq,), dtype=np.int64)
    acc = np.zeros(lead + (lq, d), dtype=np.int64)
    tile_max = []
    n_keys = int(lens.max())
    for n0 in range(0, n_keys, tile):
        n1 = min(n0 + tile, n_keys)
        # Causal: rows i with q_offset + i < n0 see nothing in this tile; they are unchanged.
        r0 = min(lq, max(0, n0 - q_offset)) if causal else 0
        if r0 == lq:
            tile_max.append(m.copy())
            continue
        t_t = logits[..., r0:, n0:n1]
        v_t = vis[..., r0:, n0:n1]
        m_old = m[..., r0:]
        t_max = np.where(v_t, t_t, neg).max(axis=-1)
        m_new = np.maximum(m_old, t_max)                       # unchanged where nothing visible
        started = m_old != neg
        pf_a, xi_a = exp2_neg(np.where(started, m_new - np.where(started, m_old, 0), 0))
        p = np.where(v_t, _weights(np.where(v_t, m_new[..., None] - t_t, 0)), 0)
        if (xi_a == 0).all() and (pf_a == 1 << MANTISSA_FRAC_BITS).all():
            l_acc[..., r0:] += p.sum(axis=-1)                 # rescale by exactly 1.0
            acc[..., r0:, :] += _exact_pv(p, vfx[..., n0:n1, :])
        else:
            l_acc[..., r0:] = rescale(l_acc[..., r0:], pf_a, xi_a) + p.sum(axis=-1)
            acc[..., r0:, :] = rescale(acc[..., r0:, :], pf_a[..., None], xi_a[..., None]) \
                + _exact_pv(p, vfx[..., n0:n1, :])
        m[..., r0:] = m_new
        tile_max.append(m.copy())

    bits = bf16_rne_ratio(acc, l_acc[..., None], -VALUE_FRAC_BITS)          # A6
    bits = np.where(acc == 0, np.uint16(0), bits)

    # A7: NaN scale codes.
    q_nan = (np.asarray(q.scales) == _E8M0_NAN).any(axis=-1)                # [..., Lq]
    k_nan = (np.asarray(k.scales) == _E8M0_NAN).any(axis=-1)                # [..., Lk]
    v_nan = np.repeat(np.asarray(v.scales) == _E8M0_NAN, bv, axis=-1)       # [..., Lk, d]
    row_nan = q_nan | (vis & k_nan[..., None, :]).any(axis=-1) if k_nan.any() else q_nan
    nan = np.broadcast_to(row_nan[..., None], lead + (lq, d))
    if v_nan.any():
        nan = nan | (np.matmul(vis.astype(np.float32), v_nan.astype(np.float32)) > 0)
    bits = np.where(nan, BF16_CANONICAL_NAN, bits).astype(np.uint16)
    if not want_trace:
        return bits
    return AttentionTrace(scores=np.broadcast_to(scores, lead + (lq, lk)), logits=logits, visible=vis,
                          vfx=vfx, m=m, l=l_acc, acc=acc, row_nan=np.broadcast_to(row_nan, lead + (lq,)),
                          nan=np.broadcast_to(nan, lead + (lq, d)), bits=bits,
                          tile_max=np.stack(tile_max) if tile_max else np.zeros((0,) + m.shape, np.int64),
                          div_rounding=bf16_ratio_rounding(acc, np.broadcast_to(l_acc[..., None], acc.shape)))


def mx_attention_bits(q: MXTensor, k: MXTensor, v: MXTensor, *, causal: bool = False,
                      q_offset: int = 0, kv_len=None, tile: int = 16) -> np.ndarray:
    """BF16 codes (uint16, [..., Lq, d]) of the attention unit's output (NUMERICS.md A1-A7).

    q: MXINT [..., Lq, d]; k, v: MXINT [..., Lk, d] (the KV cache), all blocked along d (q and
    k with the same block size). Query row i sits at position q_offset + i; key n is visible
    iff n < kv_len and (not causal or n <= q_offset + i). kv_len: None (= Lk), an int, or an
    integer array broadcast over the leading dims. tile: keys per online-softmax step.
    """
    return _run(q, k, v, causal, q_offset, kv_len, tile, want_trace=False)


def mx_attention_trace(q: MXTensor, k: MXTensor, v: MXTensor, *, causal: bool = False,
                       q_offset: int = 0, kv_len=None, tile: int = 16) -> AttentionTrace:
    """As :func:`mx_attention_bits`, returning every intermediate (for RTL debugging)."""
    return _run(q, k, v, causal, q_offset, kv_len, tile, want_trace=True)


def mx_attention(q: MXTensor, k: MXTensor, v: MXTensor, *, causal: bool = False,
                 q_offset: int = 0, kv_len=None, tile: int = 16) -> np.ndarray:
    """The attention unit's output as float32 values (each exactly a BF16 value); see
    :func:`mx_attention_bits` for the arguments."""
    bits = mx_attention_bits(q, k, v, causal=causal, q_offset=q_offset, kv_len=kv_len, tile=tile)
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def _mx_part(t: MXTensor, index, rows: int) -> MXTensor:
    return MXTensor(scales=np.asarray(t.scales)[index, :rows], elements=np.asarray(t.elements)[index, :rows],
                    fmt=t.fmt, block_size=t.block_size, axis=-1)


def _trace_of(tr: AttentionTrace, j: int, n_keys: int, tile: int) -> AttentionTrace:
    """Sequence ``j`` of a trace over a padded group, cut to its own ``n_keys`` keys and tiles."""
    tiles = -(-n_keys // tile)
    return AttentionTrace(scores=tr.scores[j, :, :n_keys], logits=tr.logits[j, :, :n_keys],
                          visible=tr.visible[j, :, :n_keys], vfx=tr.vfx[j, :n_keys], m=tr.m[j], l=tr.l[j],
                          acc=tr.acc[j], row_nan=tr.row_nan[j], nan=tr.nan[j], bits=tr.bits[j],
                          tile_max=tr.tile_max[:tiles, j],
                          div_rounding=None if tr.div_rounding is None else tr.div_rounding[j])


def mx_attention_each(q: MXTensor, k: MXTensor, v: MXTensor, n_rows, n_keys, causal, q_offset, *,
                      tile: int = 16, trace: bool = False) -> list:
    """:func:`mx_attention_bits` (or, with ``trace``, :func:`mx_attention_trace`) of each
    sequence of a padded batch, as a list: sequence i is ``q[i, :n_rows[i]]`` against
    ``k[i, :n_keys[i]]``, ``v[i, :n_keys[i]]`` with its own ``causal[i]`` and ``q_offset[i]``
    (q: MXINT ``[n, rows, d]``, k and v ``[n, keys, d]``; padding is ignored).

    The sequences run in groups, one call per group: those sharing a row count and a mask
    (causal, and q_offset clamped to the padded key count, past which a causal mask hides
    nothing), each group's keys padded to its longest sequence and cut with ``kv_len``. The
    results equal the one-sequence calls exactly (masked keys add nothing, and every step is
    per element or an exact integer sum; ``tests/refmodel/test_attention.py`` checks it)."""
    n_rows, n_keys = np.asarray(n_rows, dtype=np.int64), np.asarray(n_keys, dtype=np.int64)
    causal, q_offset = np.asarray(causal).astype(bool), np.asarray(q_offset, dtype=np.int64)
    n = len(n_rows)
    for name, a in (("n_keys", n_keys), ("causal", causal), ("q_offset", q_offset)):
        if a.shape != (n,):
            raise ValueError(f"{name} must hold one value per sequence ({n}), got shape {a.shape}")
    if np.ndim(q.elements) != 3 or np.ndim(k.elements) != 3 or np.shape(q.elements)[0] != n or np.shape(k.elements)[0] != n:
        raise ValueError(f"q must be [n, rows, d] and k, v [n, keys, d] with n = {n} sequences, got "
                         f"q {np.shape(q.elements)}, k {np.shape(k.elements)}")
    lk = int(np.shape(k.elements)[1])
    if n and (n_rows.min() < 1 or n_rows.max() > np.shape(q.elements)[1] or n_keys.min() < 1 or n_keys.max() > lk):
        raise ValueError(f"n_rows must lie in 1..{np.shape(q.elements)[1]} and n_keys in 1..{lk}")
    if n and q_offset.min() < 0:
        raise ValueError("q_offset must be >= 0")
    offset = np.where(causal, np.minimum(q_offset, lk), 0)
    out: list = [None] * n
    keys = np.stack([n_rows, causal.astype(np.int64), offset], axis=1) if n else np.zeros((0, 3), np.int64)
    groups, inverse = np.unique(keys, axis=0, return_inverse=True)
    for g, (rows, c, off) in enumerate(groups.tolist()):
        idx = np.flatnonzero(inverse.reshape(-1) == g)
        longest = int(n_keys[idx].max())
        qs, ks, vs = _mx_part(q, idx, rows), _mx_part(k, idx, longest), _mx_part(v, idx, longest)
        res = _run(qs, ks, vs, bool(c), int(off), n_keys[idx], tile, want_trace=trace)
        for j, i in enumerate(idx.tolist()):
            out[i] = _trace_of(res, j, int(n_keys[i]), tile) if trace else res[j]
    return out


# -- float64 references ----------------------------------------------------------------------
def _float_operands(q, k, v):
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError("q, k and v must have at least 2 dimensions [..., L, d]")
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got k {k.shape}, v {v.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"head dimension d differs: q {q.shape}, k {k.shape}")
    try:
        lead = np.broadcast_shapes(q.shape[:-2], k.shape[:-2])
    except ValueError:
        raise ValueError(f"leading dims of q {q.shape[:-2]} and k/v {k.shape[:-2]} do not broadcast") from None
    return q, k, v, lead


def _masked_pv(p: np.ndarray, vis: np.ndarray, v: np.ndarray) -> np.ndarray:
    """sum over visible keys of p * v, where a NaN in a visible v gives NaN (masked keys are
    excluded, not multiplied by zero)."""
    nanv = np.isnan(v)
    out = np.matmul(np.where(vis, p, 0.0), np.where(nanv, 0.0, v))
    hit = np.matmul(vis.astype(np.float64), nanv.astype(np.float64)) > 0
    return np.where(hit, np.nan, out)


def dense_attention(q, k, v, *, causal: bool = False, q_offset: int = 0, kv_len=None) -> np.ndarray:
    """float64 softmax(Q K^T / sqrt(d)) V over the visible keys (same mask as the unit)."""
    q, k, v, lead = _float_operands(q, k, v)
    lq, lk, d = q.shape[-2], k.shape[-2], q.shape[-1]
    causal, q_offset, lens, _ = _check_common(lq, lk, lead, causal, q_offset, kv_len, 1)
    vis = attention_mask(lq, lk, causal=causal, q_offset=q_offset, kv_len=lens)
    s = np.matmul(q, np.swapaxes(k, -1, -2)) / math.sqrt(d)
    s = np.where(vis, s, -np.inf)
    mx = s.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        e = np.where(vis, np.exp(s - mx), 0.0)
        return _masked_pv(e, vis, v) / e.sum(axis=-1, keepdims=True)


def golden_attention(q, k, v, *, causal: bool = False, q_offset: int = 0, kv_len=None,
                     tile: int = 16) -> np.ndarray:
    """FlashAttention tiling with online softmax in float64 (natural exp, 1/sqrt(d) scaling):
    the algorithm of the unit without its fixed-point rounding."""
    q, k, v, lead = _float_operands(q, k, v)
    lq, lk, d = q.shape[-2], k.shape[-2], q.shape[-1]
    causal, q_offset, lens, tile = _check_common(lq, lk, lead, causal, q_offset, kv_len, tile)
    vis = np.broadcast_to(attention_mask(lq, lk, causal=causal, q_offset=q_offset, kv_len=lens),
                          lead + (lq, lk))
    s = np.broadcast_to(np.matmul(q, np.swapaxes(k, -1, -2)) / math.sqrt(d), lead + (lq, lk))
    v = np.broadcast_to(v, lead + (lk, d))
    m = np.full(lead + (lq,), -np.inf)
    l_sum = np.zeros(lead + (lq,))
    acc = np.zeros(lead + (lq, d))
    with np.errstate(invalid="ignore"):
        for n0 in range(0, int(lens.max()), tile):
            s_t, v_t = s[..., n0:n0 + tile], vis[..., n0:n0 + tile]
            m_new = np.maximum(m, np.where(v_t, s_t, -np.inf).max(axis=-1))
            alpha = np.where(np.isneginf(m), 0.0, np.exp(m - m_new))
            p = np.where(v_t, np.exp(np.where(v_t, s_t, 0.0) - m_new[..., None]), 0.0)
            l_sum = l_sum * alpha + p.sum(axis=-1)
            acc = acc * alpha[..., None] + _masked_pv(p, v_t, v[..., n0:n0 + tile, :])
            m = m_new
        return acc / l_sum[..., None]


# -- error bound -------------------------------------------------------------------------------
def mx_attention_error_bound(q: MXTensor, k: MXTensor, v: MXTensor, *, causal: bool = False,
                             q_offset: int = 0, kv_len=None, tile: int = 16) -> np.ndarray:
    """Per-element bound (NUMERICS.md A8) on |mx_attention - dense_attention(dequantized)|.

    Valid while nothing saturates: |S| < 2**31 (|score| < 2**19) and |v| < 2**13; returns
    inf where that does not hold and NaN where the output is NaN.
    """
    qd, kd, vd = (dequantize_mx(t).astype(np.float64) for t in (q, k, v))
    _, bs = _check_mx(q, "q")
    lq, lk, d = qd.shape[-2], kd.shape[-2], qd.shape[-1]
    lead = np.broadcast_shapes(qd.shape[:-2], kd.shape[:-2])
    causal, q_offset, lens, tile = _check_common(lq, lk, lead, causal, q_offset, kv_len, tile)
    vis = np.broadcast_to(attention_mask(lq, lk, causal=causal, q_offset=q_offset, kv_len=lens),
                          lead + (lq, lk))
    o = dense_attention(qd, kd, vd, causal=causal, q_offset=q_offset, kv_len=lens)
    with np.errstate(invalid="ignore"):
        s = np.matmul(qd, np.swapaxes(kd, -1, -2))                                # raw q.k
        s_abs = np.where(vis, np.abs(s), 0.0).max(axis=-1)                        # [..., Lq]
        c = score_constant(d) / 2.0 ** CONST_FRAC_BITS
        delta = (d // bs) * 2.0 ** -SCORE_FRAC_BITS * c + s_abs * 2.0 ** -(CONST_FRAC_BITS + 1) \
            + 2.0 ** -LOGIT_FRAC_BITS
        n_vis = vis.sum(axis=-1)
        # tiles holding a visible key of the row, minus one = rescales that can round
        tiles_vis = np.zeros(lead + (lq,))
        for n0 in range(0, lk, tile):
            tiles_vis += vis[..., n0:n0 + tile].any(axis=-1)
        r = tiles_vis - 1
        rho = 2.0 ** (2 * delta) * (1 + EXP2_REL_ERROR) ** (r + 1) - 1
        kappa = n_vis * 2.0 ** -WEIGHT_FRAC_BITS
        denom = 1 - rho - kappa - r * 2.0 ** -WEIGHT_FRAC_BITS
        # every row's visible keys are a prefix 0..n_vis-1: running extremes give their range
        vv = np.broadcast_to(vd, lead + (lk, d))
        last = np.broadcast_to((n_vis - 1)[..., None], lead + (lq, d))
        vmax = np.take_along_axis(np.maximum.accumulate(vv, axis=-2), last, axis=-2)
        vmin = np.take_along_axis(np.minimum.accumulate(vv, axis=-2), last, axis=-2)
        spread = np.maximum(vmax - o, o - vmin)
        pre = 2.0 ** -VALUE_FRAC_BITS * (1 + (r * 2.0 ** -WEIGHT_FRAC_BITS / denom))[..., None] \
            + ((rho + kappa)[..., None] * spread + (r * 2.0 ** -(WEIGHT_FRAC_BITS + VALUE_FRAC_BITS))[..., None]
               + np.abs(o) * (r * 2.0 ** -WEIGHT_FRAC_BITS)[..., None]) / denom[..., None]
        bound = pre * (1 + 2.0 ** -8) + 2.0 ** -8 * np.abs(o)
        sat = (s_abs >= 2.0 ** 19)[..., None] | (denom <= 0)[..., None] | (np.abs(vmax) >= 2.0 ** 13) \
            | (np.abs(vmin) >= 2.0 ** 13)
        bound = np.where(sat, np.inf, bound)
        return np.where(np.isnan(o), np.nan, bound)
