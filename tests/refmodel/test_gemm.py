"""Block-scaled MX GEMM model (refmodel/gemm.py) against NUMERICS.md "Block-scaled GEMM".

Exact hand-computed bit examples for every rule, an exact rational-arithmetic oracle for the FP32
accumulation (rule G3), and Hypothesis properties against float64 within the stated bound.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxdv.refmodel import gemm
from mxdv.refmodel.gemm import (
    block_exponent_offset,
    gemm_error_bound,
    golden_matmul,
    mx_matmul,
    mx_matmul_bits,
    mx_matmul_trace,
)
from mxdv.refmodel.mx import MXTensor, dequantize_mx, quantize_mx


def _mx(elements, scales, fmt: str, block: int, axis: int) -> MXTensor:
    return MXTensor(
        scales=np.asarray(scales, dtype=np.uint8),
        elements=np.asarray(elements, dtype=np.int8),
        fmt=fmt,
        block_size=block,
        axis=axis,
    )


def _one_output(a_blocks, w_blocks, sa, sw, w_fmt="mxint8", block=8):
    """A [1, K] x W [K, 1] from per-block code lists (padded with zeros to the block size)."""
    def pad(blocks):
        return np.concatenate([np.pad(np.asarray(b), (0, block - len(b))) for b in blocks])

    a = _mx(pad(a_blocks)[None, :], np.asarray(sa)[None, :], "mxint8", block, -1)
    w = _mx(pad(w_blocks)[:, None], np.asarray(sw)[:, None], w_fmt, block, 0)
    return a, w


def _bits(a, w) -> int:
    return int(mx_matmul_bits(a, w)[0, 0])


# --------------------------------------------------------------------------- exact examples


def test_worked_example_of_numerics_chapter():
    a, w = _one_output(
        [[-127, 64, 0, 0, 0, 0, 0, 1], [100, -128, 3], [1, 0, 0, 0, 0, 0, 0, -2]],
        [[-7, 3, 0, 0, 0, 0, 0, 5], [7, -8], [-1, 0, 0, 0, 0, 0, 0, 6]],
        sa=[127, 150, 100],
        sw=[127, 120, 140],
        w_fmt="mxint4",
    )
    trace = mx_matmul_trace(a, w)
    assert trace.block_sums[:, 0, 0].tolist() == [1086, 1724, -13]
    assert trace.block_exponents[:, 0, 0].tolist() == [-8, 8, -22]
    assert [hex(v) for v in trace.acc_bits[:, 0, 0]] == ["0x4087c000", "0x48d78088", "0x48d78088"]
    assert trace.alignment_shift[:, 0, 0].tolist() == [-1, 16, 37]
    assert _bits(a, w) == 0x48D78088
    assert abs(float(mx_matmul(a, w)[0, 0]) - float(golden_matmul(a, w)[0, 0])) == pytest.approx(
        441348.25 - 441348.2421844, abs=1e-6
    )


@pytest.mark.parametrize(
    "name, a_blocks, w_blocks, sa, sw, w_fmt, expected",
    [
        ("smallest scales underflow to +0", [[1]], [[1]], [0], [0], "mxint8", 0x00000000),
        ("negative underflow keeps the sign", [[-1]], [[1]], [0], [0], "mxint8", 0x80000000),
        ("exact cancellation is +0", [[5], [-5]], [[1], [1]], [127, 127], [127, 127], "mxint8", 0x00000000),
        ("subnormal RNE", [[25]], [[41]], [53], [54], "mxint8", 0x00000001),
        ("subnormal exact", [[3]], [[1]], [0], [117], "mxint8", 0x00000003),
        ("largest scales overflow", [[1]], [[1]], [254], [254], "mxint8", 0x7F800000),
        ("negative overflow then finite stays -inf", [[-1], [1]], [[1], [1]], [254, 227], [254, 227], "mxint8", 0xFF800000),
        ("largest int8 product", [[-127]], [[-127]], [127], [127], "mxint8", 0x407C0400),
        ("int4 -7*-7", [[-7]], [[-7]], [127], [127], "mxint4", 0x3E440000),
        ("int4 -7*7", [[-7]], [[7]], [127], [127], "mxint4", 0xBE440000),
        ("int4 code -8 sign", [[1]], [[-8]], [127], [127], "mxint4", 0xBD000000),
        ("tie to even stays even", [[-128, 0], [1]], [[-128, 0], [1]], [138, 133], [138, 133], "mxint8", 0x4B800000),
        ("tie to even rounds up", [[-128], [2], [1]], [[-128], [1], [1]], [138, 133, 133], [138, 133, 133], "mxint8", 0x4B800002),
        ("scale 0 and 254 combine", [[1]], [[1]], [0], [254], "mxint8", 0x39800000),
    ],
)
def test_corner_bits(name, a_blocks, w_blocks, sa, sw, w_fmt, expected):
    a, w = _one_output(a_blocks, w_blocks, sa, sw, w_fmt)
    assert _bits(a, w) == expected, name


def test_full_block_of_most_negative_int8_codes_is_exact():
    block = 32
    a = _mx(np.full((1, block), -128), [[127]], "mxint8", block, -1)
    w = _mx(np.full((block, 1), -128), [[127]], "mxint8", block, 0)
    assert mx_matmul_trace(a, w).block_sums[0, 0, 0] == 2**19
    assert float(mx_matmul(a, w)[0, 0]) == 2.0**19 * 2.0**-12


@pytest.mark.parametrize("where", ["a_first", "a_last", "w_first", "w_last", "both"])
def test_nan_scale_gives_canonical_nan_only_where_it_takes_part(where):
    rng = np.random.default_rng(3)
    a = _mx(rng.integers(-127, 128, (3, 24)), np.full((3, 3), 127), "mxint8", 8, -1)
    w = _mx(rng.integers(-7, 8, (24, 2)), np.full((3, 2), 127), "mxint4", 8, 0)
    if where in ("a_first", "both"):
        a.scales[1, 0] = 0xFF
    if where == "a_last":
        a.scales[1, 2] = 0xFF
    if where in ("w_first", "both"):
        w.scales[0, 1] = 0xFF
    if where == "w_last":
        w.scales[2, 1] = 0xFF
    bits = mx_matmul_bits(a, w)
    nan = np.zeros((3, 2), dtype=bool)
    if where.startswith("a") or where == "both":
        nan[1, :] = True
    if where.startswith("w") or where == "both":
        nan[:, 1] = True
    assert (bits[nan] == 0x7FC00000).all()
    assert not np.isnan(mx_matmul(a, w)[~nan]).any()


def test_alignment_shifts_zero_small_and_large():
    # block values 1, 1 (shift 0), 8 (acc 2 -> shift 2), 2^-40 (acc 10 -> shift 43)
    a, w = _one_output([[1], [1], [1], [1]], [[1], [1], [1], [1]], [133] * 4, [133, 133, 136, 93])
    trace = mx_matmul_trace(a, w)
    assert trace.alignment_shift[:, 0, 0].tolist() == [-1, 0, 2, 43]
    assert float(mx_matmul(a, w)[0, 0]) == 10.0  # 2^-40 is far below the LSB of 10


def test_overflow_flag_in_trace():
    a, w = _one_output([[127], [127]], [[127], [127]], [254, 254], [253, 127], "mxint8")
    trace = mx_matmul_trace(a, w)
    assert trace.overflow[:, 0, 0].tolist() == [True, False]
    assert int(trace.out_bits[0, 0]) == 0x7F800000


def test_block_exponent_offsets():
    assert block_exponent_offset("mxint8", "mxint8") == -266
    assert block_exponent_offset("mxint8", "mxint4") == -262


# --------------------------------------------------------------------------- shapes and errors


def test_leading_batch_dims_are_independent_gemms():
    rng = np.random.default_rng(5)
    a = _mx(rng.integers(-127, 128, (2, 3, 4, 64)), rng.integers(110, 140, (2, 3, 4, 2)), "mxint8", 32, -1)
    w = _mx(rng.integers(-7, 8, (64, 5)), rng.integers(110, 140, (2, 5)), "mxint4", 32, 0)
    out = mx_matmul(a, w)
    assert out.shape == (2, 3, 4, 5) and out.dtype == np.float32
    for i in range(2):
        for j in range(3):
            sub = _mx(a.elements[i, j], a.scales[i, j], "mxint8", 32, -1)
            assert (mx_matmul_bits(sub, w) == out[i, j].view(np.uint32)).all()


def test_quantized_operands_work_end_to_end():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 64)).astype(np.float32)
    wt = rng.standard_normal((64, 3)).astype(np.float32)
    a = quantize_mx(x, fmt="mxint8", block_size=16, axis=-1)
    w = quantize_mx(wt, fmt="mxint4", block_size=16, axis=0)
    out = mx_matmul(a, w).astype(np.float64)
    assert (np.abs(out - golden_matmul(a, w)) <= gemm_error_bound(a, w)).all()


def _pair(k_a=32, k_w=32, block_a=8, block_w=8, axis_a=-1, axis_w=0, fmt_a="mxint8", fmt_w="mxint8"):
    a_el = np.zeros((2, k_a), dtype=np.int8) if axis_a in (-1, 1) else np.zeros((k_a, 2), dtype=np.int8)
    a_sc_shape = (2, k_a // block_a) if axis_a in (-1, 1) else (k_a // block_a, 2)
    w_el = np.zeros((k_w, 3), dtype=np.int8) if axis_w == 0 else np.zeros((3, k_w), dtype=np.int8)
    w_sc_shape = (k_w // block_w, 3) if axis_w == 0 else (3, k_w // block_w)
    return (
        _mx(a_el, np.full(a_sc_shape, 127), fmt_a, block_a, axis_a),
        _mx(w_el, np.full(w_sc_shape, 127), fmt_w, block_w, axis_w),
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"block_w": 16}, "block_size"),
        ({"k_w": 40}, "K differs"),
        ({"axis_a": 0}, "a.axis"),
        ({"axis_w": 1}, "w.axis"),
        ({"fmt_a": "mxfp8_e4m3"}, "a.fmt"),
        ({"fmt_w": "mxfp4_e2m1"}, "w.fmt"),
    ],
)
def test_bad_operands_raise_value_error_naming_the_parameter(kwargs, match):
    a, w = _pair(**kwargs)
    with pytest.raises(ValueError, match=match):
        mx_matmul(a, w)


def test_non_mxtensor_operand_is_rejected():
    a, w = _pair()
    with pytest.raises(ValueError, match="w must be an MXTensor"):
        mx_matmul(a, np.zeros((32, 3)))


# --------------------------------------------------------------------------- exact G3 oracle


def _round_fp32_exact(value: Fraction) -> int:
    """RNE of an exact dyadic rational to an FP32 code (gradual underflow, overflow to inf)."""
    if value == 0:
        return 0
    sign = 1 << 31 if value < 0 else 0
    mag = abs(value)
    top = mag.numerator.bit_length() - mag.denominator.bit_length()
    if Fraction(2) ** top > mag:
        top -= 1
    lsb = max(top - 23, -149)
    scaled = mag / Fraction(2) ** lsb
    q, r = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * r
    if twice > scaled.denominator or (twice == scaled.denominator and q & 1):
        q += 1
    if q >= 1 << 24:
        q, lsb = q >> 1, lsb + 1
    if lsb > 104:
        return sign | 0x7F800000
    if q < 1 << 23:
        return sign | q
    return sign | ((lsb + 150) << 23) | (q - (1 << 23))


def _fp32_value(bits: int) -> Fraction:
    sign = -1 if bits >> 31 else 1
    exp, frac = (bits >> 23) & 0xFF, bits & 0x7FFFFF
    if exp == 0:
        return sign * Fraction(frac) * Fraction(2) ** -149
    return sign * Fraction(frac | 1 << 23) * Fraction(2) ** (exp - 150)


def _exact_accumulate(sums, exps) -> int:
    acc = 0
    for s, e in zip(sums, exps):
        if (acc & 0x7F800000) == 0x7F800000:
            continue
        acc = _round_fp32_exact(_fp32_value(acc) + Fraction(int(s)) * Fraction(2) ** int(e))
    return acc


def test_fast_accumulation_matches_exact_rounding_on_adversarial_sums():
    """Rule G3 via float64 (double rounding) == single RNE of the exact sum, incl. near-ties."""
    rng = np.random.default_rng(2024)
    rows, nb = 3000, 4
    sums = rng.integers(-(2**19), 2**19 + 1, (nb, rows))
    sums[:, rows // 2 :] = rng.choice([1, -1, 3, -3, 2**19, -(2**19) + 1, 2**18 + 1], (nb, rows - rows // 2))
    base = rng.integers(-200, 200, rows)
    # later blocks land near the accumulator's LSB (ties, sticky, borrow) or far below/above it
    offsets = rng.choice([0, -4, -19, -20, -23, -24, -25, -43, -44, -60, 5, 30], (nb, rows))
    offsets[0] = 0
    exps = np.clip(base[None, :] + offsets, -266, 244)
    values = np.ldexp(sums.astype(np.float64), exps)[:, :, None]
    fast = gemm._accumulate_fp32(values, np.ones((rows, nb)), np.ones((nb, 1))).view(np.uint32)
    for i in range(rows):
        assert int(fast[i, 0]) == _exact_accumulate(sums[:, i], exps[:, i]), (sums[:, i], exps[:, i])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-(2**19), 2**19), st.integers(-266, 244)), min_size=1, max_size=5)
)
def test_fast_accumulation_matches_exact_rounding_property(blocks):
    sums = np.array([s for s, _ in blocks], dtype=np.int64)
    exps = np.array([e for _, e in blocks], dtype=np.int64)
    values = np.ldexp(sums.astype(np.float64), exps)[:, None, None]
    fast = gemm._accumulate_fp32(values, np.ones((1, len(blocks))), np.ones((len(blocks), 1)))
    assert int(fast.view(np.uint32)[0, 0]) == _exact_accumulate(sums, exps)


# --------------------------------------------------------------------------- against float64


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lead=st.lists(st.integers(1, 3), max_size=2),
    m=st.integers(1, 6),
    n=st.integers(1, 6),
    nblocks=st.integers(1, 6),
    block=st.sampled_from([8, 16, 32]),
    w_fmt=st.sampled_from(["mxint8", "mxint4"]),
    scale_lo=st.integers(0, 254),
    scale_span=st.integers(0, 254),
    nan_rate=st.sampled_from([0.0, 0.0, 0.05]),
)
def test_within_error_bound_of_float64(seed, lead, m, n, nblocks, block, w_fmt, scale_lo, scale_span, nan_rate):
    rng = np.random.default_rng(seed)
    k = nblocks * block
    w_max = 127 if w_fmt == "mxint8" else 7
    hi = min(254, scale_lo + scale_span)
    a_scales = rng.integers(scale_lo, hi + 1, (*lead, m, nblocks))
    w_scales = rng.integers(scale_lo, hi + 1, (nblocks, n))
    a_scales[rng.random(a_scales.shape) < nan_rate] = 0xFF
    w_scales[rng.random(w_scales.shape) < nan_rate] = 0xFF
    a = _mx(rng.integers(-127, 128, (*lead, m, k)), a_scales, "mxint8", block, -1)
    w = _mx(rng.integers(-w_max, w_max + 1, (k, n)), w_scales, w_fmt, block, 0)
    out = mx_matmul(a, w).astype(np.float64)
    bits = mx_matmul_bits(a, w)
    assert out.shape == (*lead, m, n)
    nan = (a.scales == 0xFF).any(axis=-1)[..., :, None] | (w.scales == 0xFF).any(axis=0)[None, :]
    assert (bits[nan] == 0x7FC00000).all()
    assert not np.isnan(out[~nan]).any()
    golden = golden_matmul(a, w)
    bound = gemm_error_bound(a, w)
    with np.errstate(invalid="ignore"):
        p = np.abs(dequantize_mx(a).astype(np.float64)) @ np.abs(dequantize_mx(w).astype(np.float64))
    check = ~nan & (np.nan_to_num(p, nan=np.inf) <= 2.0**127)
    assert (np.abs(out - golden)[check] <= bound[check]).all()


# --------------------------------------------------------------------------- many tiles at once


def _rounding_oracle(prev: float, s: int, e: int) -> int:
    """How RNE_fp32(prev + s * 2**e) rounds, with Python's unbounded integers."""
    if not np.isfinite(prev):
        return gemm.ROUND_NOT_FINITE
    num, den = float(prev).as_integer_ratio()
    pe = -(den.bit_length() - 1)
    lo = min(pe, e)
    mag = abs((num << (pe - lo)) + (s << (e - lo)))
    if mag == 0:
        return gemm.ROUND_EXACT
    shift = max(lo + mag.bit_length() - 1 - 23, -149) - lo
    if shift <= 0:
        return gemm.ROUND_EXACT
    mant, rem, half = mag >> shift, mag & ((1 << shift) - 1), 1 << (shift - 1)
    if rem == 0:
        return gemm.ROUND_EXACT
    if rem != half:
        return gemm.ROUND_BELOW_HALF if rem < half else gemm.ROUND_ABOVE_HALF
    return gemm.ROUND_TIE_ODD if mant & 1 else gemm.ROUND_TIE_EVEN


@pytest.mark.parametrize("case", ["any", "near", "cancel", "subnormal"])
def test_vectorised_sum_rounding_matches_exact_integers(case):
    """The int64 window-and-sticky classification against unbounded integers, over random
    FP32 accumulators and block sums: anywhere, close below the accumulator (ties and sticky
    bits), cancelling it, and in the subnormal range."""
    rng = np.random.default_rng(["any", "near", "cancel", "subnormal"].index(case))
    n = 20000
    if case == "subnormal":
        prev = np.ldexp(rng.integers(-2**10, 2**10, n).astype(np.float64), -149).astype(np.float32)
        sums, exps = rng.integers(-2**12, 2**12, n), rng.integers(-165, -140, n)
    else:
        prev = np.ldexp(rng.integers(-2**24 + 1, 2**24, n).astype(np.float64), rng.integers(-172, 104, n)).astype(np.float32)
        prev[rng.random(n) < 0.1] = 0.0
        prev[rng.random(n) < 0.02] = np.inf
        sums = rng.integers(-2**20, 2**20, n)
        sums[rng.random(n) < 0.1] = 0
        top = np.frexp(np.nan_to_num(prev.astype(np.float64), posinf=1.0))[1]
        width = np.frexp(np.abs(sums).astype(np.float64))[1]
        if case == "any":
            exps = rng.integers(-300, 280, n)
        elif case == "near":
            exps = top - width - rng.integers(-4, 70, n)
        else:
            sums = -np.sign(prev.astype(np.float64)).astype(np.int64) * np.abs(sums)
            exps = top - width + rng.integers(-2, 2, n)
    got = gemm.fp32_sum_rounding(prev, sums, exps)
    want = np.array([_rounding_oracle(float(p), int(s), int(e)) for p, s, e in zip(prev, sums, exps)])
    assert (got == want).all(), np.flatnonzero(got != want)[:5]
    assert len(set(want.tolist())) >= 3  # the case reaches several kinds of rounding


def _random_tiles(rng, n, rows, cols, block, kmax):
    kb = rng.integers(1, kmax + 1, n)
    w_width = rng.choice([8, 4], n)
    a = rng.integers(-128, 128, (n, rows, kmax, block))
    w = rng.integers(-128, 128, (n, kmax, block, cols))
    w = np.where((w_width == 4)[:, None, None, None], ((w & 0xF) ^ 0x8) - 0x8, w)
    a_sc = rng.choice([0, 1, 100, 127, 140, 254, 255], (n, rows, kmax))
    w_sc = rng.integers(0, 256, (n, kmax, cols))
    a[rng.random(n) < 0.2, :, :, 4:] = 0
    pad = np.arange(kmax)[None, :] >= kb[:, None]
    a[pad[:, None, :, None].repeat(rows, 1).repeat(block, 3)] = 7      # padding: garbage, ignored
    a_sc[pad[:, None, :].repeat(rows, 1)] = 0xFF
    return a, a_sc, w, w_sc, w_width, kb


def test_tiles_agree_with_one_gemm_per_tile():
    """``mx_matmul_tiles``, its trace and ``golden_matmul_tiles`` over tiles of different
    depths and formats, with garbage (NaN scales included) in the padding blocks, against
    ``mx_matmul_bits``/``mx_matmul_trace``/``golden_matmul`` of each tile alone."""
    rng = np.random.default_rng(11)
    a, a_sc, w, w_sc, ww, kb = _random_tiles(rng, 120, 3, 5, 8, 4)
    bits = gemm.mx_matmul_tiles(a, a_sc, w, w_sc, w_width=ww, nblocks=kb)
    tr = gemm.mx_matmul_tiles_trace(a, a_sc, w, w_sc, w_width=ww, nblocks=kb)
    golden, mag, bound = gemm.golden_matmul_tiles(a, a_sc, w, w_sc, w_width=ww, nblocks=kb)
    for i in range(len(kb)):
        k = int(kb[i])
        one_a = _mx(a[i, :, :k].reshape(3, k * 8), a_sc[i, :, :k], "mxint8", 8, -1)
        one_w = _mx(w[i, :k].reshape(k * 8, 5), w_sc[i, :k], f"mxint{ww[i]}", 8, 0)
        assert (bits[i] == mx_matmul_bits(one_a, one_w)).all()
        one = mx_matmul_trace(one_a, one_w)
        assert (tr.out_bits[i] == one.out_bits).all() and (tr.nan[i] == one.nan).all()
        for key in ("block_sums", "acc_bits", "alignment_shift", "overflow", "rounding"):
            assert (getattr(tr, key)[i, :k] == getattr(one, key)).all(), (i, key)
        assert (tr.block_sums[i, k:] == 0).all() and (tr.rounding[i, k:] == gemm.ROUND_EXACT).all()
        assert (tr.acc_bits[i, k:] == tr.acc_bits[i, k - 1]).all()
        with np.errstate(invalid="ignore", over="ignore"):
            want = golden_matmul(one_a, one_w)
            want_bound = gemm_error_bound(one_a, one_w)
        fin = np.isfinite(want)  # the float32 dequantization overflows -128 * 2^127; the tiles' does not
        assert np.allclose(golden[i][fin], want[fin], rtol=1e-12, atol=0)  # BLAS may group sums otherwise
        assert np.allclose(bound[i][fin], want_bound[fin], rtol=1e-12, atol=0)


@pytest.mark.parametrize("kwargs,message", [
    ({"a_scales": np.zeros((2, 3, 1))}, "a_scales must have shape"),
    ({"w_width": 9}, "w_width and a_width"),
    ({"nblocks": [0, 2]}, "nblocks must be in 1..2"),
])
def test_tiles_reject_bad_operands_by_name(kwargs, message):
    args = {"a_codes": np.zeros((2, 3, 2, 8)), "a_scales": np.zeros((2, 3, 2)), "w_codes": np.zeros((2, 2, 8, 4)),
            "w_scales": np.zeros((2, 2, 4))}
    args.update({k: v for k, v in kwargs.items() if k in args})
    options = {k: v for k, v in kwargs.items() if k not in args}
    with pytest.raises(ValueError, match=message):
        gemm.mx_matmul_tiles(*args.values(), **options)
