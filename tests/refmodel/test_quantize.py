"""quantize_mx / dequantize_mx against the quantization contract (NUMERICS.md chapter 2)."""
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mxdv.refmodel import FORMATS, dequantize_mx, quantize_mx
from mxdv.refmodel.formats import get_format

INT_FMTS = ["mxint8", "mxint6", "mxint4"]
FP_FMTS = [f for f in FORMATS if f.startswith("mxfp")]
FINITE_F32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


def blocks(n_blocks=st.integers(1, 3)):
    return st.tuples(st.sampled_from([8, 16, 32]), n_blocks).flatmap(
        lambda bn: st.tuples(st.just(bn[0]), hnp.arrays(np.float32, bn[0] * bn[1], elements=FINITE_F32)))


@settings(max_examples=150, deadline=None)
@given(blocks(), st.sampled_from(list(FORMATS)))
def test_quantize_of_dequantize_is_idempotent(data, fmt):
    block, x = data
    t = quantize_mx(x, fmt, block)
    y = dequantize_mx(t)
    if not np.isfinite(y).all():  # only possible when x is huge and the element saturates to inf
        return
    t2 = quantize_mx(y, fmt, block)
    assert np.array_equal(t2.scales, t.scales)
    assert np.array_equal(t2.elements, t.elements)


@settings(max_examples=150, deadline=None)
@given(blocks(), st.sampled_from(INT_FMTS))
def test_mxint_error_bound_for_unsaturated_elements(data, fmt):
    block, x = data
    w = get_format(fmt).bits
    t = quantize_mx(x, fmt, block)
    se = np.repeat(t.shared_exp, block)
    err = np.abs(x.astype(np.float64) - dequantize_mx(t).astype(np.float64))
    unsat = np.abs(t.elements.astype(int)) < (1 << (w - 1)) - 1
    bound = np.ldexp(1.0, se - (w - 2) - 1)
    assert (err[unsat] <= bound[unsat]).all()


@settings(max_examples=150, deadline=None)
@given(blocks(), st.sampled_from(FP_FMTS))
def test_mxfp_elements_agree_with_ml_dtypes(data, fmt):
    block, x = data
    f = get_format(fmt)
    t = quantize_mx(x, fmt, block)
    se = np.repeat(t.shared_exp, block).astype(np.int64)
    scaled = np.ldexp(x.astype(np.float64), -se)
    expect = np.clip(scaled, -f.max_value, f.max_value).astype(f.dtype).view(np.uint8)
    zero = np.repeat(t.scales == 0, block) & (np.repeat(np.abs(x.reshape(-1, block)).max(1), block) == 0)
    expect = np.where(zero, 0, expect)
    assert np.array_equal(t.elements, expect)


# -- hand-computed bit examples (not derived from the implementation) -----------------------------
def bf(*vals):
    return np.array(vals, dtype=np.float32)


def block8(*head):
    return np.concatenate([bf(*head), np.zeros(8 - len(head), np.float32)])


def test_worked_example_mxint8():
    # max 3.0 = 1.5 * 2^1 -> shared_exp 1 -> scale 128 (0x80); elements x * 2^6 / 2
    t = quantize_mx(block8(3.0, -1.0, 0.5, 0.015625), "mxint8", 8)
    assert t.scales.tolist() == [0x80]
    assert t.elements[:4].tolist() == [96, -32, 16, 0]  # 0.015625*32 = 0.5 -> tie -> 0 (even)


def test_ties_round_to_even_up_and_down():
    # shared_exp 0 (max 1.0): element = x * 64. 1.5/64 -> 1.5 -> 2 (up), 2.5/64 -> 2.5 -> 2 (down)
    t = quantize_mx(block8(1.0, 1.5 / 64, 2.5 / 64, -1.5 / 64, -2.5 / 64), "mxint8", 8)
    assert t.elements[:5].tolist() == [64, 2, 2, -2, -2]
    # MXINT4: element = x * 4. 0.375 -> 1.5 -> 2 ; 0.625 -> 2.5 -> 2
    t4 = quantize_mx(block8(1.0, 0.375, 0.625), "mxint4", 8)
    assert t4.elements[:3].tolist() == [4, 2, 2]


def test_saturation_is_symmetric():
    # max 1.9921875 = 0x3FFF (bf16) -> shared 0; 1.9921875*64 = 127.5 -> 128 -> saturates to 127
    t = quantize_mx(block8(1.9921875, -1.9921875), "mxint8", 8)
    assert t.elements[:2].tolist() == [127, -127]
    t4 = quantize_mx(block8(1.9921875, -1.9921875, 1.875), "mxint4", 8)  # 7.97 -> 8 -> 7; 7.5 -> 8 -> 7
    assert t4.elements[:3].tolist() == [7, -7, 7]
    assert quantize_mx(bf(*([-1.99] * 32)), "mxint8").elements.min() == -127


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_blocks(special):
    x = np.concatenate([block8(1.0, special), block8(2.0)])
    t = quantize_mx(x, "mxint8", 8)
    assert t.scales.tolist() == [0xFF, 0x80]
    assert (t.elements[:8] == 0).all()
    assert np.isnan(dequantize_mx(t)[:8]).all()


def test_zero_block_and_negative_zero():
    t = quantize_mx(bf(*([0.0, -0.0] * 4)), "mxint8", 8)
    assert t.scales.tolist() == [0] and (t.elements == 0).all()


def test_subnormals_are_exact_and_the_exponent_clamps_at_minus_127():
    tiny = np.float32(2.0 ** -140)  # float32 subnormal: floor(log2) = -140 -> clamped to -127
    t = quantize_mx(block8(tiny, 2 * tiny), "mxint8", 8)
    assert t.scales.tolist() == [0]
    # element = x * 2^6 / 2^-127 = 2^-140 * 2^133 = 2^-7 -> rounds to 0; 2^-6 -> 0 (tie? no: 0.015)
    assert t.elements[:2].tolist() == [0, 0]
    sub = np.float32(2.0 ** -127)  # bf16-representable subnormal, exactly the clamp edge
    t = quantize_mx(block8(sub, sub / 2), "mxint8", 8)
    assert t.scales.tolist() == [0] and t.elements[:2].tolist() == [64, 32]


def test_bfloat16_input_and_axis():
    x = (np.arange(64, dtype=np.float32).reshape(2, 32) - 20.25).astype(ml_dtypes.bfloat16)
    along_rows = quantize_mx(x, "mxint8", 32, axis=1)
    along_cols = quantize_mx(x.T.copy(), "mxint8", 32, axis=0)
    assert along_cols.scales.shape == (1, 2) and along_cols.elements.shape == (32, 2)
    assert np.array_equal(along_cols.elements, along_rows.elements.T)
    assert np.array_equal(along_cols.scales, along_rows.scales.T)
    assert np.array_equal(along_rows.elements, quantize_mx(x.astype(np.float32), "mxint8", 32).elements)


@pytest.mark.parametrize("kwargs, needle", [
    ({"x": np.zeros(32, np.float64)}, "x:"),
    ({"x": [1.0] * 32}, "x:"),
    ({"x": np.zeros(32, np.float32), "fmt": "mxint3"}, "fmt:"),
    ({"x": np.zeros(36, np.float32), "block_size": 12}, "block_size:"),
    ({"x": np.zeros(32, np.float32), "axis": 2}, "axis:"),
    ({"x": np.zeros(40, np.float32)}, "not a multiple of block_size"),
])
def test_errors_name_the_parameter(kwargs, needle):
    with pytest.raises(ValueError) as info:
        quantize_mx(**kwargs)
    assert needle in str(info.value)
