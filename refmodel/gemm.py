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


def _dyadic(x: float) -> tuple[int, int]:
    """x == m * 2**e exactly (x finite)."""
    n, d = float(x).as_integer_ratio()
    return n, -(d.bit_length() - 1)


def fp32_sum_rounding(prev: np.ndarray, sums: np.ndarray, exps: np.ndarray) -> np.ndarray:
    """Per element, how RNE_fp32(prev + S * 2**e) rounds (``ROUND_*``), from the exact sum
    (Python integers: prev is an FP32 value, S an integer block sum)."""
    prev = np.asarray(prev, dtype=np.float64)
    out = np.full(prev.shape, ROUND_EXACT, dtype=np.int8)
    out[~np.isfinite(prev)] = ROUND_NOT_FINITE
    live = np.isfinite(prev) & ((prev != 0) | (sums != 0))
    for idx in zip(*np.nonzero(live)):
        pm, pe = _dyadic(prev[idx])
        s, e = int(sums[idx]), int(exps[idx])
        lo = min(pe, e)
        total = (pm << (pe - lo)) + (s << (e - lo))
        mag = abs(total)
        if mag == 0:
            continue
        top = lo + mag.bit_length() - 1
        shift = max(top - 23, -149) - lo
        if shift <= 0:
            continue
        mant, rem, half = mag >> shift, mag & ((1 << shift) - 1), 1 << (shift - 1)
        if rem:
            out[idx] = (ROUND_BELOW_HALF if rem < half else ROUND_ABOVE_HALF if rem > half
                        else ROUND_TIE_ODD if mant & 1 else ROUND_TIE_EVEN)
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
    row_scale, col_scale = _scale_factors(a, w, nblocks)
    values = _block_sums(a, w, nblocks, block).astype(np.float64) * row_scale.T[:, :, None] * col_scale[:, None, :]
    wa, ww = _mxint_width(a.fmt, "a"), _mxint_width(w.fmt, "w")
    e = (
        np.asarray(a.scales, dtype=np.int64).reshape(-1, nblocks).T[:, :, None]
        + np.asarray(w.scales, dtype=np.int64).reshape(nblocks, n)[:, None, :]
        + block_exponent_offset(f"mxint{wa}", f"mxint{ww}")
    )
    sums = np.rint(np.ldexp(values, -e)).astype(np.int64)
    accs = np.empty(values.shape, dtype=np.float32)
    shifts = np.full(values.shape, -1, dtype=np.int64)
    overflow = np.zeros(values.shape, dtype=bool)
    rounding = np.empty(values.shape, dtype=np.int8)
    acc = np.zeros(values.shape[1:], dtype=np.float32)
    with np.errstate(over="ignore"):
        for b in range(nblocks):
            rounding[b] = np.where(np.isfinite(values[b]), fp32_sum_rounding(acc, sums[b], e[b]), ROUND_NOT_FINITE)
            both = (acc != 0) & np.isfinite(acc) & (values[b] != 0)
            shift = np.abs(_top_exponent(acc.astype(np.float64)) - _top_exponent(values[b]))
            shifts[b] = np.where(both, shift, -1)
            new = (acc.astype(np.float64) + values[b]).astype(np.float32)
            overflow[b] = np.isinf(new) & np.isfinite(acc)
            acc = new
            accs[b] = acc
    nan = _nan_mask(a, w, nblocks)
    out = acc.view(np.uint32).copy()
    out[nan] = FP32_CANONICAL_NAN
    shape = (nblocks, *lead, n)
    return GemmTrace(
        block_sums=sums.reshape(shape),
        block_exponents=e.reshape(shape),
        acc_bits=accs.view(np.uint32).reshape(shape),
        alignment_shift=shifts.reshape(shape),
        overflow=overflow.reshape(shape),
        nan=nan.reshape(*lead, n),
        out_bits=out.reshape(*lead, n),
        rounding=rounding.reshape(shape),
    )
