"""quantize_mx / dequantize_mx against the quantization contract (NUMERICS.md chapters 1-2).

Three independent oracles check the implementation:

* hand-computed bit codes (ties, saturation, NaN/Inf/zero blocks, subnormals, clamping);
* ``_hw_quantize_bf16``: the integer-only algorithm of NUMERICS.md 2.2-2.4 (what the RTL does),
  run over every finite BF16 code at many scale offsets and over random BF16 blocks;
* scalar float64 / ml_dtypes computations in the Hypothesis properties.

The worked-example table of the numerics chapter is re-checked, so the document cannot drift.
"""
import dataclasses
import re
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mxdv.refmodel as refmodel
from mxdv.refmodel import (FORMATS, MXTensor, bf16_bits_to_float32, dequantize_mx, e8m0_to_exp,
                           element_values, float32_to_bf16_bits, get_format, quantize_mx)

INT_FMTS = ["mxint8", "mxint6", "mxint4"]
FP_FMTS = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4_e2m1"]
ALL_FMTS = INT_FMTS + FP_FMTS
CHAPTER = Path(refmodel.__file__).parent / "numerics" / "10_formats_quantization.md"
FINITE_F32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
# magnitudes across the whole float32 range, subnormals included, so blocks mix binades
WIDE_F32 = st.one_of(FINITE_F32, st.sampled_from([0.0, -0.0, 2.0 ** -149, -(2.0 ** -140), 2.0 ** -127,
                                                  3.4028234663852886e38, 1.5, -0.75]))


def test_format_table():
    assert sorted(FORMATS) == sorted(ALL_FMTS)
    for name in INT_FMTS:
        assert get_format(name).emax == 0
    emax = {"mxfp8_e4m3": 8, "mxfp8_e5m2": 15, "mxfp6_e3m2": 4, "mxfp6_e2m3": 2, "mxfp4_e2m1": 2}
    for name, e in emax.items():
        f = get_format(name)
        assert f.emax == e == int(np.floor(np.log2(f.max_value)))  # emax is the largest binade
    assert get_format("MXINT8").name == "mxint8"


# -- the integer-only algorithm of NUMERICS.md 2.2-2.4 (BF16 lanes in, codes out) ---------------------
def _rne_shift(v: np.ndarray, s: np.ndarray) -> np.ndarray:
    """round-half-to-even(v / 2^s) for non-negative int64 v; s < 0 is an exact left shift."""
    s = np.minimum(s, 40)
    left = v << np.clip(-s, 0, 40)
    sp = np.maximum(s, 1)
    kept = v >> sp
    guard = (v >> (sp - 1)) & 1
    sticky = (v & ((np.int64(1) << (sp - 1)) - 1)) != 0
    rounded = kept + (guard & (sticky | (kept & 1)))
    return np.where(s <= 0, left, rounded)


def _hw_quantize_bf16(lanes: np.ndarray, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """Scale codes [N] and w-bit element codes [N, B] (int64) of BF16 blocks lanes [N, B]."""
    f = get_format(fmt)
    w = f.bits
    lanes = lanes.astype(np.int64)
    sign, e, m = lanes >> 15, (lanes >> 7) & 0xFF, lanes & 0x7F
    sig = np.where(e != 0, 128 | m, m)
    ee = np.maximum(e, 1)
    emax_field = e.max(axis=1)
    special = emax_field == 255
    scale = np.where(special, 255, np.maximum(emax_field - f.emax, 0))
    if f.kind == "int":
        mag = np.minimum(_rne_shift(sig, scale[:, None] - ee + 9 - w), f.max_int)
        codes = np.where(sign == 1, -mag, mag) & ((1 << w) - 1)
    else:
        mbits, emin = f.man_bits, 1 - f.exp_bias
        se = scale[:, None] - 127
        msb = np.frexp(np.maximum(sig, 1))[1] - 1  # leading-one position of sig
        ehat = np.maximum(ee - 134 + msb - se, emin)
        n = _rne_shift(sig, ehat - mbits + 134 + se - ee)
        mag = np.where(sig == 0, 0, (ehat - emin) * (1 << mbits) + n)
        max_code = int(np.float64(f.max_value).astype(f.dtype).view(np.uint8))
        codes = (sign << (w - 1)) | np.minimum(mag, max_code)
    codes = np.where(special[:, None], 0, codes)
    return scale, codes


def _codes_wbits(t: MXTensor) -> np.ndarray:
    return t.elements.astype(np.int64) & ((1 << get_format(t.fmt).bits) - 1)


def _every_finite_bf16_blocks(offsets=(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 16, 40)) -> np.ndarray:
    """Blocks of 8 lanes: lane 0 sets the block maximum (exponent field k above the others'),
    lanes 1-7 run through every finite non-negative BF16 code, once positive and once negative."""
    codes = np.arange(0x7F80, dtype=np.int64)  # +0 ... largest finite
    codes = np.concatenate([codes, np.zeros((-len(codes)) % 7, np.int64)]).reshape(-1, 7)
    rng = np.random.default_rng(7)
    blocks = []
    for k in offsets:
        e_top = np.minimum(((codes >> 7) & 0xFF).max(axis=1) + k, 254)
        setter = (e_top << 7) | 0x7F
        for neg in (0, 1):
            signs = rng.integers(0, 2, codes.shape) ^ neg
            blocks.append(np.concatenate([(setter | (rng.integers(0, 2, len(codes)) << 15))[:, None],
                                          codes | (signs << 15)], axis=1))
    return np.concatenate(blocks).astype(np.uint16)


@pytest.mark.parametrize("fmt", ALL_FMTS)
def test_every_finite_bf16_code_matches_the_hardware_algorithm(fmt):
    lanes = _every_finite_bf16_blocks()
    t = quantize_mx(lanes.view(ml_dtypes.bfloat16), fmt, 8)
    scale, codes = _hw_quantize_bf16(lanes, fmt)
    assert np.array_equal(t.scales[:, 0], scale)
    assert np.array_equal(_codes_wbits(t), codes)


@pytest.mark.parametrize("fmt", ALL_FMTS)
def test_random_bf16_blocks_match_the_hardware_algorithm(fmt):
    rng = np.random.default_rng(sum(map(ord, fmt)))
    lanes = rng.integers(0, 1 << 16, (4000, 32), dtype=np.uint16)
    lanes[:2000, 8:] &= 0x80FF  # half the blocks mostly tiny, so one lane sets a large scale
    t = quantize_mx(lanes.view(ml_dtypes.bfloat16), fmt, 32)
    scale, codes = _hw_quantize_bf16(lanes, fmt)
    assert (scale == 0xFF).any() and (scale != 0xFF).any()
    assert np.array_equal(t.scales[:, 0], scale)
    assert np.array_equal(_codes_wbits(t), codes)


# -- Hypothesis properties ------------------------------------------------------------------------
def blocked_arrays(elements=WIDE_F32):
    """(block_size, axis, float32 array) with the blocked axis a multiple of block_size."""
    return st.tuples(st.sampled_from([8, 16, 32]), st.integers(1, 2), st.integers(1, 3),
                     st.integers(0, 1)).flatmap(
        lambda p: st.tuples(st.just(p[0]), st.just(p[3]),
                            hnp.arrays(np.float32, (p[1], p[0] * p[2]) if p[3] else (p[0] * p[2], p[1]),
                                       elements=elements)))


def _block_max_exponent(x: np.ndarray, block: int, axis: int) -> np.ndarray:
    """floor(log2(max|x|)) per block from the float32 bit fields (not frexp), per element."""
    bits = x.view(np.uint32).astype(np.int64)
    e, m = (bits >> 23) & 0xFF, bits & 0x7FFFFF
    sub_log2 = np.array([int(v).bit_length() for v in m.ravel()]).reshape(m.shape) - 1 - 149
    log2 = np.where(e > 0, e - 127, np.where(m > 0, sub_log2, -1000))
    moved = np.moveaxis(log2, axis, -1)
    per_block = moved.reshape(*moved.shape[:-1], -1, block).max(axis=-1)
    return np.moveaxis(np.repeat(per_block, block, axis=-1), -1, axis)


@settings(max_examples=150, deadline=None)
@given(blocked_arrays(), st.sampled_from(ALL_FMTS))
def test_quantize_of_dequantize_is_idempotent(data, fmt):
    block, axis, x = data
    t = quantize_mx(x, fmt, block, axis)
    y = dequantize_mx(t)
    assert y.dtype == np.float32 and y.shape == x.shape and np.isfinite(y).all()
    t2 = quantize_mx(y, fmt, block, axis)
    assert np.array_equal(t2.scales, t.scales)
    # The one exception (NUMERICS.md 2.1): an MXFP block whose elements all rounded to +-0 keeps
    # its negative-zero codes in t but dequantizes to zeros, which requantize as a zero block.
    expect = t.elements
    if get_format(fmt).kind == "fp":
        magnitude = np.moveaxis(t.elements & ((1 << (get_format(fmt).bits - 1)) - 1), axis, -1)
        all_zero = (magnitude.reshape(*magnitude.shape[:-1], -1, block) == 0).all(axis=-1)
        all_zero = np.moveaxis(np.repeat(all_zero, block, axis=-1), -1, axis)
        expect = np.where(all_zero, 0, t.elements)
    assert np.array_equal(t2.elements, expect)
    assert np.array_equal(dequantize_mx(t2), y)


@settings(max_examples=150, deadline=None)
@given(blocked_arrays(), st.sampled_from(ALL_FMTS))
def test_scale_is_floor_log2_of_block_max_minus_emax(data, fmt):
    block, axis, x = data
    t = quantize_mx(x, fmt, block, axis)
    log2 = _block_max_exponent(x, block, axis)
    expect = np.where(log2 == -1000, 0, np.clip(log2 - get_format(fmt).emax, -127, 127) + 127)
    assert np.array_equal(np.repeat(t.scales, block, axis=axis), expect)
    assert np.array_equal(t.shared_exp, t.scales.astype(int) - 127)


@settings(max_examples=150, deadline=None)
@given(blocked_arrays(), st.sampled_from(INT_FMTS))
def test_mxint_error_bound_for_unsaturated_elements(data, fmt):
    block, axis, x = data
    w = get_format(fmt).bits
    t = quantize_mx(x, fmt, block, axis)
    se = np.repeat(t.shared_exp, block, axis=axis)
    err = np.abs(x.astype(np.float64) - dequantize_mx(t).astype(np.float64))
    unsat = np.abs(t.elements.astype(int)) < (1 << (w - 1)) - 1
    assert (err[unsat] <= np.ldexp(1.0, se - (w - 2) - 1)[unsat]).all()
    assert t.elements.min() >= -((1 << (w - 1)) - 1)  # symmetric: -2^(w-1) never produced


@settings(max_examples=150, deadline=None)
@given(blocked_arrays(), st.sampled_from(FP_FMTS))
def test_mxfp_elements_agree_with_an_ml_dtypes_cast(data, fmt):
    block, axis, x = data
    f = get_format(fmt)
    t = quantize_mx(x, fmt, block, axis)
    log2 = _block_max_exponent(x, block, axis)
    se = np.where(log2 == -1000, 0, np.clip(log2 - f.emax, -127, 127))
    y = x.astype(np.float64) * np.exp2(-se.astype(np.float64))  # exact: powers of two in float64
    cast = y.astype(f.dtype).view(np.uint8)  # plain ml_dtypes cast, RNE; may overflow to Inf/NaN
    max_code = np.float64(f.max_value).astype(f.dtype).view(np.uint8)
    sign = np.signbit(y).astype(np.uint8) << (f.bits - 1)
    expect = np.where(np.abs(y) > f.max_value, sign | max_code, cast)
    expect = np.where(np.repeat(t.scales == 0, block, axis=axis) & (log2 == -1000), 0, expect)
    assert np.array_equal(t.elements, expect)
    assert t.elements.dtype == np.uint8 and not np.isnan(element_values(t)).any()


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint16, (2, 32)), st.sampled_from(ALL_FMTS))
def test_bfloat16_input_equals_its_exact_float32(codes, fmt):
    x = codes.view(ml_dtypes.bfloat16)
    t_bf, t_f32 = quantize_mx(x, fmt, 16), quantize_mx(bf16_bits_to_float32(codes), fmt, 16)
    assert np.array_equal(t_bf.scales, t_f32.scales) and np.array_equal(t_bf.elements, t_f32.elements)


# -- hand-computed bit codes (not derived from the implementation) ------------------------------------
def block8(*head):
    return np.concatenate([np.array(head, np.float32), np.zeros(8 - len(head), np.float32)])


def bf16_block8(*codes):
    lanes = np.zeros(8, np.uint16)
    lanes[:len(codes)] = codes
    return lanes.view(ml_dtypes.bfloat16)


def test_mxint8_block_from_bf16_codes():
    # 0x4040 = 3.0 = 1.1b*2^1 sets the block exponent 1 -> scale 127+1 = 0x80; elements x*2^6/2^1
    t = quantize_mx(bf16_block8(0x4040, 0xBF80, 0x3F00, 0x3C80), "mxint8", 8)
    assert t.scales.tolist() == [0x80]
    assert t.elements[:4].view(np.uint8).tolist() == [0x60, 0xE0, 0x10, 0x00]  # 96, -32, 16, 0.5 -> 0


def test_mxint_ties_round_to_even_up_and_down():
    # scale 0x7F (max 1.0), element = x*64: 1.5 -> 2 (up), 2.5 -> 2 (down), 3.5 -> 4, 0.5 -> 0
    t = quantize_mx(block8(1.0, 1.5 / 64, 2.5 / 64, 3.5 / 64, 0.5 / 64, -1.5 / 64, -2.5 / 64), "mxint8", 8)
    assert t.elements[:7].tolist() == [64, 2, 2, 4, 0, -2, -2]
    t4 = quantize_mx(block8(1.0, 0.375, 0.625, -0.125), "mxint4", 8)  # x*4: 1.5, 2.5, -0.5
    assert t4.elements[:4].tolist() == [4, 2, 2, 0]
    t6 = quantize_mx(block8(1.0, 1.5 / 16, 2.5 / 16), "mxint6", 8)  # x*16
    assert t6.elements[:3].tolist() == [16, 2, 2]


def test_mxint_saturation_is_symmetric():
    # 0x3FFF = 1.9921875 -> scale 0x7F; *64 = 127.5 -> tie -> 128 -> saturates to 127
    t = quantize_mx(bf16_block8(0x3FFF, 0xBFFF, 0x3FFE), "mxint8", 8)
    assert t.elements[:3].view(np.uint8).tolist() == [0x7F, 0x81, 0x7F]
    t4 = quantize_mx(bf16_block8(0x3FF0, 0xBFF0, 0x3FFF), "mxint4", 8)  # 1.875*4 = 7.5 -> 8 -> 7
    assert (t4.elements[:3] & 0xF).tolist() == [0x7, 0x9, 0x7]
    t6 = quantize_mx(block8(-1.99, 1.99), "mxint6", 8)  # 31.84 -> 32 -> 31
    assert t6.elements[:2].tolist() == [-31, 31]
    for fmt in INT_FMTS:
        assert quantize_mx(np.full(32, -1.999, np.float32), fmt).elements.min() == -((1 << (get_format(fmt).bits - 1)) - 1)


def test_mxfp_ties_saturation_and_negative_zero():
    # E2M1, scale 0x7F (max 6.5): 6.5 -> 6 (0x7, saturated), 2.5 -> 2 (0x4, down), 3.5 -> 4
    # (0x6, up), 0.25 -> 0 (tie with 0.5), -0.75 -> -1 (0xA), -0.125 -> -0 (0x8)
    t = quantize_mx(block8(6.5, 2.5, 3.5, 0.25, -0.75, -0.125), "mxfp4_e2m1", 8)
    assert t.scales.tolist() == [0x7F]
    assert t.elements[:6].tolist() == [0x7, 0x4, 0x6, 0x0, 0xA, 0x8]
    # E4M3 (max 480 -> binade 8 = emax -> scale 0x7F): 480 -> 448 (0x7E), 272 -> 256 (0x78, tie
    # down), 304 -> 320 (0x7A, tie up), -1 -> 0xB8
    t = quantize_mx(block8(480.0, 272.0, 304.0, -1.0), "mxfp8_e4m3", 8)
    assert t.scales.tolist() == [0x7F] and t.elements[:4].tolist() == [0x7E, 0x78, 0x7A, 0xB8]
    # E5M2 saturation: max 65504 is binade 15 -> scale 0x7F; 61440 = 1.875*2^15 -> 57344 (0x7B)
    t = quantize_mx(block8(-61440.0, 61440.0), "mxfp8_e5m2", 8)
    assert t.elements[:2].tolist() == [0xFB, 0x7B]


def test_all_underflow_mxfp_block_is_the_one_idempotence_exception():
    # -2^-140 alone: floor(log2) - 8 clamps to -127, y = -2^-13 underflows E4M3 -> -0 (0x80) in
    # lane 0, +0 lanes give 0x00. Dequantized it is all zeros: a zero block, codes all 0x00.
    t = quantize_mx(block8(-(2.0 ** -140)), "mxfp8_e4m3", 8)
    assert t.scales.tolist() == [0] and t.elements.tolist() == [0x80] + [0] * 7
    again = quantize_mx(dequantize_mx(t), "mxfp8_e4m3", 8)
    assert again.scales.tolist() == [0] and again.elements.tolist() == [0] * 8


@pytest.mark.parametrize("special", [0x7FC0, 0xFFC1, 0x7F80, 0xFF80])  # NaN, -NaN, +Inf, -Inf
@pytest.mark.parametrize("fmt", ["mxint8", "mxint4", "mxfp8_e4m3", "mxfp4_e2m1"])
def test_nan_and_inf_blocks(special, fmt):
    lanes = np.zeros(16, np.uint16)
    lanes[:3] = [0x3F80, special, 0x4000]
    lanes[8:10] = [0x4000, 0x3F80]
    t = quantize_mx(lanes.view(ml_dtypes.bfloat16), fmt, 8)
    assert t.scales[0] == 0xFF and (t.elements[:8] == 0).all()
    assert t.scales[1] != 0xFF
    y = dequantize_mx(t)
    assert np.isnan(y[:8]).all() and np.isfinite(y[8:]).all()


def test_zero_block_including_negative_zero():
    for fmt in ALL_FMTS:
        t = quantize_mx(np.array([0.0, -0.0] * 4, np.float32), fmt, 8)
        assert t.scales.tolist() == [0] and (t.elements == 0).all()


def test_subnormals_are_exact_and_the_exponent_clamps_at_minus_127():
    # bf16 0x0008 = 2^-130: floor(log2) -130 -> clamped to -127 (scale 0x00); element
    # 2^-130 * 2^6 * 2^127 = 8; 0x0001 = 2^-133 -> 1; 0x8002 = -2^-132 -> -2 (0xFE)
    t = quantize_mx(bf16_block8(0x0008, 0x0001, 0x8002), "mxint8", 8)
    assert t.scales.tolist() == [0x00] and t.elements[:3].view(np.uint8).tolist() == [0x08, 0x01, 0xFE]
    assert dequantize_mx(t)[:3].tolist() == [2.0 ** -130, 2.0 ** -133, -(2.0 ** -132)]
    # 0x0040 = 2^-127: exactly the clamp edge, elements 2^-127 * 2^6 * 2^127 = 64
    t = quantize_mx(bf16_block8(0x0040, 0x0020), "mxint8", 8)
    assert t.scales.tolist() == [0x00] and t.elements[:2].tolist() == [64, 32]
    # float32 subnormals far below: 2^-140 * 2^133 = 2^-7 -> 0 (not a tie)
    t = quantize_mx(block8(2.0 ** -140), "mxint8", 8)
    assert t.scales.tolist() == [0x00] and t.elements[0] == 0
    # a small normal value in a block clamped at -127 for MXFP: E2M1 2^-126 -> -127-2 clamped;
    # y = 2^-126 * 2^127 = 2 (0x4)
    t = quantize_mx(block8(2.0 ** -126, -(2.0 ** -128)), "mxfp4_e2m1", 8)
    assert t.scales.tolist() == [0x00] and t.elements[:2].tolist() == [0x4, 0x9]


def test_largest_finite_input_uses_scale_0xfe():
    t = quantize_mx(block8(np.finfo(np.float32).max), "mxint8", 8)  # 1.99999988 * 2^127
    assert t.scales.tolist() == [0xFE] and t.elements[0] == 127


def test_axis_and_shapes():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 64, 2)).astype(ml_dtypes.bfloat16)
    t = quantize_mx(x, "mxint8", 16, axis=1)
    assert t.axis == 1 and t.shape == (3, 64, 2) and t.scales.shape == (3, 4, 2)
    assert t.elements.dtype == np.int8 and t.scales.dtype == np.uint8
    moved = quantize_mx(np.ascontiguousarray(np.moveaxis(x, 1, -1)), "mxint8", 16)
    assert np.array_equal(np.moveaxis(moved.elements, -1, 1), t.elements)
    assert np.array_equal(np.moveaxis(moved.scales, -1, 1), t.scales)
    assert quantize_mx(x, "mxint8", 16, axis=-2).axis == 1
    assert quantize_mx(np.zeros((2, 32), np.float32), "mxfp8_e5m2").elements.dtype == np.uint8


def test_mxtensor_is_frozen_and_validated():
    t = quantize_mx(np.ones(32, np.float32), "mxint8")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.axis = 0
    with pytest.raises(ValueError, match="^scales:"):
        MXTensor(scales=np.zeros(2, np.uint8), elements=np.zeros(32, np.int8), fmt="mxint8",
                 block_size=32, axis=0)
    assert MXTensor(scales=np.zeros((2, 1), np.uint8), elements=np.zeros((2, 8), np.int8),
                    fmt="MXINT4", block_size=8, axis=-1).fmt == "mxint4"


def test_conversion_helpers():
    # FP32 -> BF16 RNE: exact tie rounds to the even code in both directions
    f32 = np.array([0x3F808000, 0x3F818000, 0x3F808001, 0x7F7FFFFF], np.uint32).view(np.float32)
    assert float32_to_bf16_bits(f32).tolist() == [0x3F80, 0x3F82, 0x3F81, 0x7F80]
    assert bf16_bits_to_float32(np.array([0x3F80, 0xC020, 0x0001], np.uint16)).tolist() == [1.0, -2.5, 2.0 ** -133]
    assert e8m0_to_exp(np.array([0, 0x7F, 0xFE], np.uint8)).tolist() == [-127, 0, 127]


@pytest.mark.parametrize("kwargs, name", [
    ({"x": np.zeros(32, np.float64)}, "x"),
    ({"x": np.zeros(32, np.float16)}, "x"),
    ({"x": [1.0] * 32}, "x"),
    ({"x": np.float32(1.0)}, "x"),
    ({"x": np.zeros(32, np.float32), "fmt": "mxint3"}, "fmt"),
    ({"x": np.zeros(32, np.float32), "fmt": None}, "fmt"),
    ({"x": np.zeros(36, np.float32), "block_size": 12}, "block_size"),
    ({"x": np.zeros(64, np.float32), "block_size": 64}, "block_size"),
    ({"x": np.zeros(32, np.float32), "block_size": 32.0}, "block_size"),
    ({"x": np.zeros(32, np.float32), "axis": 1}, "axis"),
    ({"x": np.zeros(32, np.float32), "axis": -2}, "axis"),
    ({"x": np.zeros(32, np.float32), "axis": None}, "axis"),
    ({"x": np.zeros(40, np.float32)}, "x"),
])
def test_errors_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        quantize_mx(**kwargs)


def test_length_error_names_block_size_too():
    with pytest.raises(ValueError, match="block_size 32"):
        quantize_mx(np.zeros((40, 2), np.float32), axis=0)


# -- the numerics chapter's worked examples are what the model computes --------------------------------
def _worked_example_rows():
    text = CHAPTER.read_text()
    table = text.split("<!-- worked-examples:begin -->")[1].split("<!-- worked-examples:end -->")[0]
    rows = [line.split("|")[1:5] for line in table.strip().splitlines()[2:]]
    return [(fmt.strip(), [int(c, 16) for c in lanes.split()], int(scale, 16), [int(c, 16) for c in el.split()])
            for fmt, lanes, scale, el in rows]


def test_numerics_chapter_worked_examples():
    rows = _worked_example_rows()
    assert len(rows) >= 20 and {r[0] for r in rows} == set(ALL_FMTS)
    for fmt, lanes, scale, elems in rows:
        t = quantize_mx(bf16_block8(*lanes), fmt, 8)
        assert int(t.scales[0]) == scale, (fmt, lanes)
        assert _codes_wbits(t)[:len(lanes)].tolist() == elems, (fmt, lanes)
        assert (t.elements[len(lanes):] == 0).all()
        assert _hw_quantize_bf16(np.asarray(bf16_block8(*lanes)).view(np.uint16)[None], fmt)[1][0].tolist() == \
            _codes_wbits(t).tolist()


def test_numerics_chapter_traces_match_the_model():
    """Every 'MXINT:' / 'MXFP:' trace table row ends in the code the model produces."""
    text = CHAPTER.read_text()
    traces = re.findall(r"^(MXINT|MXFP): `(\w+)`.*?lanes ((?:0x[0-9A-F]{4} ?)+).*?\n\n((?:\|.*\n)+)", text, re.M)
    assert len(traces) >= 6
    for _, fmt, lanes, table in traces:
        lanes = [int(c, 16) for c in lanes.split()]
        codes = _codes_wbits(quantize_mx(bf16_block8(*lanes), fmt, 8))
        for line in table.strip().splitlines()[2:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert int(cells[-1].split()[0], 16) == codes[int(cells[0])], (fmt, line)
