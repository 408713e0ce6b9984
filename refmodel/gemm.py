"""Bit-exact model of the block-scaled MX GEMM computed by the systolic array.

The rules are written down in ``refmodel/numerics/30_gemm.md`` (NUMERICS.md chapter
"Block-scaled GEMM"); in short, for every output element:

* per K block ``b``: ``S_b = sum(a_code * w_code)`` exactly (integers), and the block value is
  ``T_b = S_b * 2**e_b`` with ``e_b = sa + sw - 254 - (wa - 2) - (ww - 2)`` (exact);
* across blocks, in K order, an FP32 accumulator starting at +0.0 is updated with ONE
  round-to-nearest-even per block: ``acc = RNE_fp32(acc + T_b)`` (the exact sum, gradual
  underflow, overflow to +-inf, an exact zero sum is +0.0);
* if a scale code of either operand is 0xFF (NaN) in any block of the reduction, the output is
  the canonical quiet NaN ``0x7FC00000``.

Speed: the exact integer block sums come from ONE batched float32 BLAS matmul over all K blocks
(every partial sum is an integer below 2**24, exact in any summation order), then a loop over K
blocks only, vectorized over the output, applies the two power-of-two scale factors (exact, in
float64) and performs the FP32 accumulation.  ``acc + T_b`` is formed in float64 and cast to float32;
that double rounding equals the single RNE rounding because both operands have at most 24
significant bits and float64 has 53 >= 2*24 + 2 (Figueroa, "When is double rounding
innocuous?", 1995); ``tests/refmodel/test_gemm.py`` checks it against exact rational arithmetic.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from mxdv.refmodel.mx import MXTensor, dequantize_mx

__all__ = [
    "FP32_CANONICAL_NAN",
    "GemmTrace",
    "block_exponent_offset",
    "golden_matmul",
    "gemm_error_bound",
    "mx_matmul",
    "mx_matmul_bits",
    "mx_matmul_trace",
    "mx_matmul_tiles",
    "mx_matmul_tiles_trace",
    "golden_matmul_tiles",
]

#: The output code of every NaN result (sign 0, exponent 0xFF, quiet bit set, payload 0).
FP32_CANONICAL_NAN = np.uint32(0x7FC00000)
_E8M0_NAN = 0xFF
_MXINT_FMT = re.compile(r"^mxint(\d+)$")


def _mxint_width(fmt: str, name: str) -> int:
    """Element width w of an MXINT format name such as ``"mxint8"``."""
    match = _MXINT_FMT.match(str(fmt).lower())
    if match is None:
        raise ValueError(f"{name}.fmt must be an MXINT format (mxint2..mxint8), got {fmt!r}")
    width = int(match.group(1))
    if not 2 <= width <= 8:
        raise ValueError(f"{name}.fmt must be an MXINT format (mxint2..mxint8), got {fmt!r}")
    return width


def block_exponent_offset(a_fmt: str = "mxint8", w_fmt: str = "mxint8") -> int:
    """The constant in ``e_b = sa + sw + offset``: ``-254 - (wa - 2) - (ww - 2)``.

    -266 for MXINT8 x MXINT8, -262 for MXINT8 x MXINT4.
    """
    return -254 - (_mxint_width(a_fmt, "a") - 2) - (_mxint_width(w_fmt, "w") - 2)


def _normalized_axis(t: MXTensor, name: str) -> int:
    ndim = np.ndim(t.elements)
    axis = int(t.axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}.axis {t.axis} is out of range for {ndim} dimensions")
    return axis % ndim


def _check_operands(a: MXTensor, w: MXTensor) -> tuple[int, int, int]:
    """Validate the operands; returns (K, number of K blocks, block size)."""
    for name, t in (("a", a), ("w", w)):
        if not isinstance(t, MXTensor):
            raise ValueError(f"{name} must be an MXTensor, got {type(t).__name__}")
    _mxint_width(a.fmt, "a")
    _mxint_width(w.fmt, "w")
    if np.ndim(a.elements) < 2:
        raise ValueError(f"a must have shape [..., M, K], got shape {np.shape(a.elements)}")
    if np.ndim(w.elements) != 2:
        raise ValueError(f"w must have shape [K, N], got shape {np.shape(w.elements)}")
    if _normalized_axis(a, "a") != np.ndim(a.elements) - 1:
        raise ValueError(f"a.axis must be the last axis (K), got {a.axis}")
    if _normalized_axis(w, "w") != 0:
        raise ValueError(f"w.axis must be 0 (K), got {w.axis}")
    if a.block_size != w.block_size:
        raise ValueError(f"block_size differs: a.block_size={a.block_size}, w.block_size={w.block_size}")
    k = np.shape(a.elements)[-1]
    if np.shape(w.elements)[0] != k:
        raise ValueError(f"K differs: a has K={k}, w has K={np.shape(w.elements)[0]}")
    block = int(a.block_size)
    if block <= 0 or k % block:
        raise ValueError(f"block_size {block} does not divide K={k}")
    nblocks = k // block
    exp_a = (*np.shape(a.elements)[:-1], nblocks)
    exp_w = (nblocks, np.shape(w.elements)[1])
    if np.shape(a.scales) != exp_a:
        raise ValueError(f"a.scales must have shape {exp_a}, got {np.shape(a.scales)}")
    if np.shape(w.scales) != exp_w:
        raise ValueError(f"w.scales must have shape {exp_w}, got {np.shape(w.scales)}")
    return k, nblocks, block


def _block_sums(a: MXTensor, w: MXTensor, nblocks: int, block: int) -> np.ndarray:
    """Exact integer block sums S_b [nblocks, M_total, N] from one batched BLAS matmul.

    float32 when every partial sum is an integer below 2**24 (MXINT8 x MXINT8 at B = 32:
    |S_b| <= 2**19), which float32 holds exactly in any summation order; float64 otherwise.
    """
    wa = _mxint_width(a.fmt, "a")
    ww = _mxint_width(w.fmt, "w")
    dtype = np.float32 if block * 2 ** (wa - 1) * 2 ** (ww - 1) <= 2**24 else np.float64
    n = np.shape(w.elements)[1]
    a_codes = np.asarray(a.elements).reshape(-1, nblocks, block).transpose(1, 0, 2).astype(dtype)
    w_codes = np.asarray(w.elements).reshape(nblocks, block, n).astype(dtype)
    return np.matmul(a_codes, w_codes)


def _scale_factors(a: MXTensor, w: MXTensor, nblocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Row factors 2**(sa - 127 - (wa - 2)) [M_total, nblocks] and column factors
    2**(sw - 127 - (ww - 2)) [nblocks, N], float64 (exact powers of two); their product with
    S_b is T_b = S_b * 2**e_b exactly (magnitudes stay within [2**-266, 2**275])."""
    wa = _mxint_width(a.fmt, "a")
    ww = _mxint_width(w.fmt, "w")
    n = np.shape(w.elements)[1]
    a_exp = np.asarray(a.scales, dtype=np.int64).reshape(-1, nblocks) - 127 - (wa - 2)
    w_exp = np.asarray(w.scales, dtype=np.int64).reshape(nblocks, n) - 127 - (ww - 2)
    return np.ldexp(1.0, a_exp), np.ldexp(1.0, w_exp)


def _nan_mask(a: MXTensor, w: MXTensor, nblocks: int) -> np.ndarray:
    n = np.shape(w.elements)[1]
    a_nan = (np.asarray(a.scales).reshape(-1, nblocks) == _E8M0_NAN).any(axis=1)
    w_nan = (np.asarray(w.scales).reshape(nblocks, n) == _E8M0_NAN).any(axis=0)
    return a_nan[:, None] | w_nan[None, :]


def _accumulate_fp32(sums: np.ndarray, row_scale: np.ndarray, col_scale: np.ndarray) -> np.ndarray:
    """acc = +0.0; for b in K order: acc = RNE_fp32(acc + sums[b] * row_scale[:, b] * col_scale[b])

    ``sums`` [nb, M, N] (exact integers or exact dyadic values), ``row_scale`` [M, nb] and
    ``col_scale`` [nb, N] powers of two; returns float32 [M, N].
    """
    acc = np.zeros(sums.shape[1:], dtype=np.float32)
    wide = np.empty(sums.shape[1:], dtype=np.float64)
    with np.errstate(over="ignore"):
        for b in range(sums.shape[0]):
            np.multiply(sums[b], row_scale[:, b : b + 1], out=wide)  # exact: T_b
            np.multiply(wide, col_scale[b], out=wide)
            np.add(wide, acc, out=wide)  # exact or one float64 rounding (see module doc)
            acc[...] = wide  # float64 -> float32: RNE, gradual underflow, overflow to inf
    return acc


def mx_matmul(a: MXTensor, w: MXTensor) -> np.ndarray:
    """The systolic array's result of A[..., M, K] @ W[K, N], as float32 [..., M, N].

    ``a`` is MX-quantized along its last axis (K), ``w`` along axis 0 (K), with the same block
    size; both MXINT (the array takes MXINT8 activations and MXINT8 or MXINT4 weights; any MXINT
    width is accepted here).  NaN outputs are the canonical quiet NaN 0x7FC00000.
    """
    _, nblocks, block = _check_operands(a, w)
    out_shape = (*np.shape(a.elements)[:-1], np.shape(w.elements)[1])
    acc = _accumulate_fp32(_block_sums(a, w, nblocks, block), *_scale_factors(a, w, nblocks))
    bits = acc.view(np.uint32)
    bits[_nan_mask(a, w, nblocks)] = FP32_CANONICAL_NAN
    return acc.reshape(out_shape)


def mx_matmul_bits(a: MXTensor, w: MXTensor) -> np.ndarray:
    """Same as :func:`mx_matmul`, as the raw FP32 output codes (uint32 [..., M, N])."""
    return mx_matmul(a, w).view(np.uint32)


def golden_matmul(a: MXTensor, w: MXTensor) -> np.ndarray:
    """float64 matmul of the dequantized operands (NaN where a NaN-scale block takes part)."""
    _check_operands(a, w)
    return np.matmul(
        np.asarray(dequantize_mx(a), dtype=np.float64), np.asarray(dequantize_mx(w), dtype=np.float64)
    )


def gemm_error_bound(a: MXTensor, w: MXTensor) -> np.ndarray:
    """Bound on |mx_matmul - golden_matmul| (float64 [..., M, N]); NUMERICS "Block-scaled GEMM".

    ``(gamma32(nb) + gamma64(K)) * P + nb * 2**-149`` with ``P = |A| @ |W|`` (dequantized
    magnitudes), ``gamma_p(n) = n u / (1 - n u)``, ``u = 2**-24`` (FP32) or ``2**-53`` (the
    float64 golden's own summation).  Valid for elements that are not NaN and whose
    ``P <= 2**127`` (then no partial sum can overflow FP32).
    """
    k, nblocks, _ = _check_operands(a, w)
    mag = np.matmul(
        np.abs(np.asarray(dequantize_mx(a), dtype=np.float64)),
        np.abs(np.asarray(dequantize_mx(w), dtype=np.float64)),
    )
    return _error_bound(mag, nblocks, k)


def _error_bound(mag, nblocks, k):
    """``(gamma32(nb) + gamma64(K)) * P + nb * 2**-149`` (:func:`gemm_error_bound`); ``nblocks``
    and ``k`` may be arrays that broadcast against ``mag``."""
    u32, u64 = 2.0**-24, 2.0**-53
    gamma = nblocks * u32 / (1 - nblocks * u32) + k * u64 / (1 - k * u64)
    return gamma * mag + nblocks * 2.0**-149


@dataclass(frozen=True)
class GemmTrace:
    """Every intermediate of :func:`mx_matmul`, for worked examples, debugging and coverage.

    Arrays are indexed ``[b, ..., M, N]`` for the K block ``b`` (except ``nan``/``out_bits``).
    """

    block_sums: np.ndarray  # int64: S_b, the exact integer sum of element-code products
    block_exponents: np.ndarray  # int64: e_b = sa + sw - 254 - (wa - 2) - (ww - 2)
    acc_bits: np.ndarray  # uint32: the FP32 accumulator code after adding block b
    alignment_shift: np.ndarray  # int64: |top(acc_{b-1}) - top(T_b)|, -1 if either is 0 (b=0: -1)
    overflow: np.ndarray  # bool: acc_b is +-inf while acc_{b-1} was finite
    nan: np.ndarray  # bool [..., M, N]: a NaN scale takes part
    out_bits: np.ndarray  # uint32 [..., M, N]: == mx_matmul_bits(a, w)
    #: int8: how the FP32 RNE of the exact sum acc_{b-1} + T_b rounds (``ROUND_*``; -1 where
    #: an operand is not finite); see :func:`fp32_sum_rounding`
    rounding: np.ndarray | None = None


#: How an FP32 round-to-nearest-even of an exact value rounds (``GemmTrace.rounding``): exact,
#: the dropped part below half an ulp, exactly half (a tie, truncated significand even or
#: odd), or above half. The ulp is the FP32 ulp of the value's binade, 2^-149 in the subnormal
#: range (so subnormal results round at the same fixed position).
ROUND_NOT_FINITE, ROUND_EXACT, ROUND_BELOW_HALF, ROUND_TIE_EVEN, ROUND_TIE_ODD, ROUND_ABOVE_HALF = -1, 0, 1, 2, 3, 4


def _bit_length(x: np.ndarray) -> np.ndarray:
    """``int.bit_length`` of int64 values in 0 .. 2**62, elementwise."""
    x = np.asarray(x, dtype=np.int64)
    e = np.frexp(x.astype(np.float64))[1].astype(np.int64)  # may round up to the next power
    e = e - ((x > 0) & (x < np.left_shift(np.int64(1), np.maximum(e - 1, 0))))
    return np.where(x == 0, 0, e)


def _fp32_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FP32 values (finite) as exact ``(m, e)`` int64 with x == m * 2**e, |m| < 2**24."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.int64)
    field, frac = (bits >> 23) & 0xFF, bits & 0x7FFFFF
    mag = np.where(field > 0, frac | (1 << 23), frac)
    return np.where(bits >> 31 == 1, -mag, mag), np.where(field > 0, field - 150, -149)


def _aligned(m: np.ndarray, e: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """|m| * 2**e in units of 2**(unit - 1), the bits below 2**unit jammed into one sticky
    bit (int64; callers keep ``e + bit_length(m) <= unit + 60``)."""
    mag = np.abs(m)
    up = np.clip(e - unit, 0, 62)
    down = np.clip(unit - e, 0, 63)
    kept = np.where(e >= unit, np.left_shift(mag, up), np.right_shift(mag, np.minimum(down, 62)))
    kept = np.where(down >= 63, 0, kept)
    lost = np.where(e >= unit, 0, np.where(down >= 63, mag, mag & (np.left_shift(np.int64(1), np.minimum(down, 62)) - 1)))
    return 2 * kept + (lost != 0)


def fp32_sum_rounding(prev: np.ndarray, sums: np.ndarray, exps: np.ndarray) -> np.ndarray:
    """Per element, how RNE_fp32(prev + S * 2**e) rounds (``ROUND_*``), from the exact sum.

    ``prev`` holds FP32 values, ``sums`` integer block sums (|S| < 2**40), ``exps`` their
    exponents. Vectorised with int64 arithmetic: both operands are placed in a 61-bit window
    below the larger one's top bit, the bits of the smaller one that fall below the window
    jammed into one sticky bit. That keeps every comparison with the rounding point exact: when
    bits are jammed, the smaller operand lies wholly below the window, the result's top bit is
    at most one below the larger operand's, and the rounding point is >= 36 bits above the
    sticky bit (the guard/round/sticky argument of floating-point adders).
    """
    prev = np.asarray(prev, dtype=np.float64)
    sums = np.asarray(sums, dtype=np.int64)
    exps = np.asarray(exps, dtype=np.int64)
    prev, sums, exps = np.broadcast_arrays(prev, sums, exps)
    out = np.full(prev.shape, ROUND_EXACT, dtype=np.int8)
    finite = np.isfinite(prev)
    out[~finite] = ROUND_NOT_FINITE
    live = finite & ((prev != 0) | (sums != 0))
    if not live.any():
        return out
    pm, pe = _fp32_parts(np.where(live, prev, 0.0)[live])
    s, e = sums[live], exps[live]
    ptop = np.where(pm != 0, pe + _bit_length(np.abs(pm)) - 1, np.iinfo(np.int64).min // 4)
    stop = np.where(s != 0, e + _bit_length(np.abs(s)) - 1, np.iinfo(np.int64).min // 4)
    unit = np.maximum(ptop, stop) - 59                      # the window's lowest bit is 2**(unit-1)
    total = np.sign(pm) * _aligned(pm, pe, unit) + np.sign(s) * _aligned(s, e, unit)
    mag = np.abs(total)
    top = unit - 1 + _bit_length(mag) - 1
    shift = np.maximum(top - 23, -149) - (unit - 1)
    rounds = (mag != 0) & (shift > 0)
    sh = np.clip(shift, 1, 62)
    mant = np.right_shift(mag, sh)
    rem = mag & (np.left_shift(np.int64(1), sh) - 1)
    half = np.left_shift(np.int64(1), sh - 1)
    kind = np.where(rem < half, ROUND_BELOW_HALF,
                    np.where(rem > half, ROUND_ABOVE_HALF, np.where(mant & 1, ROUND_TIE_ODD, ROUND_TIE_EVEN)))
    kind = np.where(rounds & (rem != 0), kind, ROUND_EXACT)
    out[live] = kind.astype(np.int8)
    return out


def _top_exponent(x: np.ndarray) -> np.ndarray:
    """floor(log2|x|) for nonzero finite x (exact via frexp); -1 placeholder at 0."""
    _, exp = np.frexp(x)
    return exp.astype(np.int64) - 1


def mx_matmul_trace(a: MXTensor, w: MXTensor) -> GemmTrace:
    """:func:`mx_matmul` with all intermediates (slower; not for hot paths)."""
    _, nblocks, block = _check_operands(a, w)
    lead = np.shape(a.elements)[:-1]
    n = np.shape(w.elements)[1]
    tr = mx_matmul_tiles_trace(
        np.asarray(a.elements, dtype=np.int64).reshape(1, -1, nblocks, block),
        np.asarray(a.scales, dtype=np.int64).reshape(1, -1, nblocks),
        np.asarray(w.elements, dtype=np.int64).reshape(1, nblocks, block, n),
        np.asarray(w.scales, dtype=np.int64).reshape(1, nblocks, n),
        w_width=_mxint_width(w.fmt, "w"), a_width=_mxint_width(a.fmt, "a"))
    shape = (nblocks, *lead, n)
    return GemmTrace(**{k: (getattr(tr, k)[0].reshape((*lead, n)) if k in ("nan", "out_bits")
                            else getattr(tr, k)[0].reshape(shape))
                        for k in ("block_sums", "block_exponents", "acc_bits", "alignment_shift",
                                  "overflow", "nan", "out_bits", "rounding")})


# -- many independent tiles at once (the systolic array's transactions, bulk mode) ----------
def _tile_operands(a_codes, a_scales, w_codes, w_scales, w_width, nblocks, a_width):
    """Validated int64 operands of :func:`mx_matmul_tiles` and the per-tile widths and live
    block mask [n, KB]."""
    a_codes, a_scales = np.asarray(a_codes, dtype=np.int64), np.asarray(a_scales, dtype=np.int64)
    w_codes, w_scales = np.asarray(w_codes, dtype=np.int64), np.asarray(w_scales, dtype=np.int64)
    if a_codes.ndim != 4 or w_codes.ndim != 4:
        raise ValueError(f"a_codes must be [n, M, KB, B] and w_codes [n, KB, B, N], got shapes "
                         f"{a_codes.shape} and {w_codes.shape}")
    n, m, kb, b = a_codes.shape
    if w_codes.shape[:3] != (n, kb, b):
        raise ValueError(f"w_codes shape {w_codes.shape} does not match a_codes shape {a_codes.shape} "
                         "(n, KB and B must agree)")
    cols = w_codes.shape[3]
    if a_scales.shape != (n, m, kb):
        raise ValueError(f"a_scales must have shape {(n, m, kb)}, got {a_scales.shape}")
    if w_scales.shape != (n, kb, cols):
        raise ValueError(f"w_scales must have shape {(n, kb, cols)}, got {w_scales.shape}")
    ww = np.broadcast_to(np.asarray(w_width, dtype=np.int64), (n,))
    if ((ww < 2) | (ww > 8)).any() or not 2 <= int(a_width) <= 8:
        raise ValueError(f"w_width and a_width must be MXINT widths 2..8, got {sorted(set(ww.tolist()))} "
                         f"and {a_width}")
    live_blocks = np.broadcast_to(np.asarray(kb if nblocks is None else nblocks, dtype=np.int64), (n,))
    if ((live_blocks < 1) | (live_blocks > kb)).any():
        raise ValueError(f"nblocks must be in 1..{kb}, got {sorted(set(live_blocks.tolist()))}")
    live = np.arange(kb)[None, :] < live_blocks[:, None]
    return a_codes, a_scales, w_codes, w_scales, ww, live


def _tile_block_values(a_codes, a_scales, w_codes, w_scales, ww, live, a_width):
    """S_b [n, KB, M, N] (int64), e_b (int64) and T_b = S_b * 2**e_b (float64, exact), zero
    in blocks that are not live."""
    b = a_codes.shape[3]
    exact32 = b * 2 ** (int(a_width) - 1) * 2 ** (int(ww.max(initial=2)) - 1) <= 2**24
    dtype = np.float32 if exact32 else np.float64
    sums = np.matmul(a_codes.transpose(0, 2, 1, 3).astype(dtype), w_codes.astype(dtype)).astype(np.int64)
    sums *= live[:, :, None, None]
    offset = -254 - (int(a_width) - 2) - (ww - 2)
    e = a_scales.transpose(0, 2, 1)[:, :, :, None] + w_scales[:, :, None, :] + offset[:, None, None, None]
    return sums, e, np.ldexp(sums.astype(np.float64), e)


def _tile_nan(a_scales, w_scales, live) -> np.ndarray:
    a_nan = ((a_scales == _E8M0_NAN) & live[:, None, :]).any(axis=2)   # [n, M]
    w_nan = ((w_scales == _E8M0_NAN) & live[:, :, None]).any(axis=1)   # [n, N]
    return a_nan[:, :, None] | w_nan[:, None, :]


def mx_matmul_tiles(a_codes, a_scales, w_codes, w_scales, *, w_width=8, nblocks=None, a_width=8) -> np.ndarray:
    """:func:`mx_matmul_bits` of ``n`` independent tiles at once: uint32 [n, M, N].

    ``a_codes`` [n, M, KB, B] and ``w_codes`` [n, KB, B, N] are element codes (already the
    values the array multiplies: MXINT4 codes sign-extended), ``a_scales`` [n, M, KB] and
    ``w_scales`` [n, KB, N] E8M0 codes; ``w_width`` (scalar or [n]) the weight MXINT width;
    ``nblocks`` ([n], default KB) how many leading K blocks of each tile take part: the rest is
    padding and is ignored, whatever it holds.
    """
    a_codes, a_scales, w_codes, w_scales, ww, live = _tile_operands(
        a_codes, a_scales, w_codes, w_scales, w_width, nblocks, a_width)
    _, _, t = _tile_block_values(a_codes, a_scales, w_codes, w_scales, ww, live, a_width)
    acc = np.zeros((t.shape[0], *t.shape[2:]), dtype=np.float32)
    with np.errstate(over="ignore"):
        for k in range(t.shape[1]):
            new = (acc.astype(np.float64) + t[:, k]).astype(np.float32)
            acc = np.where(live[:, k, None, None], new, acc)
    bits = acc.view(np.uint32)
    bits[_tile_nan(a_scales, w_scales, live)] = FP32_CANONICAL_NAN
    return bits


def mx_matmul_tiles_trace(a_codes, a_scales, w_codes, w_scales, *, w_width=8, nblocks=None, a_width=8) -> GemmTrace:
    """:func:`mx_matmul_tiles` with every intermediate, as a :class:`GemmTrace` whose arrays
    carry the tile first: ``[n, KB, M, N]`` (``nan`` and ``out_bits`` ``[n, M, N]``). In the
    padding blocks of a tile the block sum is 0, the accumulator holds its last value, the
    alignment shift is -1, there is no overflow and the rounding is ``ROUND_EXACT``."""
    a_codes, a_scales, w_codes, w_scales, ww, live = _tile_operands(
        a_codes, a_scales, w_codes, w_scales, w_width, nblocks, a_width)
    sums, e, t = _tile_block_values(a_codes, a_scales, w_codes, w_scales, ww, live, a_width)
    kb = t.shape[1]
    accs = np.empty(t.shape, dtype=np.float32)
    shifts = np.full(t.shape, -1, dtype=np.int64)
    overflow = np.zeros(t.shape, dtype=bool)
    rounding = np.full(t.shape, ROUND_EXACT, dtype=np.int8)
    acc = np.zeros((t.shape[0], *t.shape[2:]), dtype=np.float32)
    with np.errstate(over="ignore"):
        for k in range(kb):
            on = live[:, k, None, None]
            rounding[:, k] = np.where(on, fp32_sum_rounding(acc, sums[:, k], e[:, k]), ROUND_EXACT)
            wide = acc.astype(np.float64)
            both = (acc != 0) & np.isfinite(acc) & (t[:, k] != 0)
            shifts[:, k] = np.where(both, np.abs(_top_exponent(wide) - _top_exponent(t[:, k])), -1)
            new = (wide + t[:, k]).astype(np.float32)
            overflow[:, k] = on & np.isinf(new) & np.isfinite(acc)
            acc = np.where(on, new, acc)
            accs[:, k] = acc
    nan = _tile_nan(a_scales, w_scales, live)
    out = acc.view(np.uint32).copy()
    out[nan] = FP32_CANONICAL_NAN
    return GemmTrace(block_sums=sums, block_exponents=e, acc_bits=accs.view(np.uint32),
                     alignment_shift=shifts, overflow=overflow, nan=nan, out_bits=out, rounding=rounding)


def golden_matmul_tiles(a_codes, a_scales, w_codes, w_scales, *, w_width=8, nblocks=None, a_width=8):
    """:func:`golden_matmul`, ``P = |A| @ |W|`` and :func:`gemm_error_bound` (float64
    [n, M, N] each) of ``n`` tiles, operands as in :func:`mx_matmul_tiles` (padding blocks
    ignored, each tile's bound with its own depth). The sums run over K in order in float64,
    elementwise rather than through BLAS, so a tile gets the same golden however it is batched
    (BLAS kernels may group a dot product differently by shape and thread count). The
    dequantized operands are float64, so a -128 code at scale 2^127 is -2^128 exactly
    (``dequantize_mx``'s float32 overflows it)."""
    a_codes, a_scales, w_codes, w_scales, ww, live = _tile_operands(
        a_codes, a_scales, w_codes, w_scales, w_width, nblocks, a_width)
    n, m, kb, b = a_codes.shape
    with np.errstate(invalid="ignore"):
        a_f = np.where(a_scales == _E8M0_NAN, np.nan, np.ldexp(1.0, a_scales - 127 - (int(a_width) - 2)))
        w_f = np.where(w_scales == _E8M0_NAN, np.nan, np.ldexp(1.0, w_scales - 127 - (ww[:, None, None] - 2)))
        a_f = np.where(live[:, None, :], a_f, 0.0)
        w_f = np.where(live[:, :, None], w_f, 0.0)
        a_val = (a_codes * a_f[..., None]).reshape(n, m, kb * b)        # [n, M, K]
        w_val = (w_codes * w_f[:, :, None, :]).reshape(n, kb * b, -1)   # [n, K, N]
        golden = np.zeros((n, m, w_val.shape[2]), dtype=np.float64)
        mag = np.zeros_like(golden)
        for k in range(kb * b):  # K in order; padding adds zeros, so batching changes no sum
            term = a_val[:, :, k, None] * w_val[:, None, k, :]
            golden += term
            mag += np.abs(term)
        nb = live.sum(axis=1).astype(np.float64)[:, None, None]
        return golden, mag, _error_bound(mag, nb, nb * b)
