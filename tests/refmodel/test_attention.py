"""Properties of the attention model (NUMERICS.md chapter "Attention", rules A1-A8)."""
from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxdv.refmodel import attention as A
from mxdv.refmodel.mx import dequantize_mx, quantize_mx

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bf16(x) -> np.ndarray:
    return np.asarray(x, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


@st.composite
def attention_case(draw, max_lq=6, max_lk=24):
    """Random shapes, magnitudes, mask options and tile (1, 2, 3, 8, 16, len, > len)."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    d = draw(st.sampled_from([16, 32, 64]))
    bs = draw(st.sampled_from([b for b in (8, 16, 32) if d % b == 0]))
    lead = draw(st.sampled_from([(), (2,), (2, 1)]))
    lq = draw(st.integers(1, max_lq))
    lk = draw(st.integers(1, max_lk))
    causal = draw(st.booleans())
    q_offset = draw(st.integers(0, lk))
    kv_len = draw(st.one_of(st.none(), st.integers(1, lk),
                            st.lists(st.integers(1, lk), min_size=2, max_size=2).map(
                                lambda x: np.array(x).reshape((2,) + (1,) * (len(lead) - 1))
                                if lead else x[0])))
    tile = draw(st.sampled_from([1, 2, 3, 8, 16, lk, lk + 3]))
    scale = 2.0 ** draw(st.integers(-4, 3))
    q = (rng.standard_normal(lead + (lq, d)) * scale).astype(np.float32)
    k = (rng.standard_normal(lead + (lk, d)) * scale).astype(np.float32)
    v = (rng.standard_normal(lead + (lk, d)) * 2.0 ** draw(st.integers(-6, 4))).astype(np.float32)
    kv_fmt = draw(st.sampled_from(["mxint8", "mxint4"]))
    return dict(q=q, k=k, v=v, bs=bs, kv_fmt=kv_fmt,
                opts=dict(causal=causal, q_offset=q_offset, kv_len=kv_len), tile=tile)


def _quantize(case):
    return (quantize_mx(case["q"], "mxint8", case["bs"]),
            quantize_mx(case["k"], case["kv_fmt"], case["bs"]),
            quantize_mx(case["v"], case["kv_fmt"], case["bs"]))


# -- golden (float64 FlashAttention) ---------------------------------------------------------
@SETTINGS
@given(attention_case())
def test_golden_equals_dense_for_every_tile(case):
    q, k, v = case["q"], case["k"], case["v"]
    dense = A.dense_attention(q, k, v, **case["opts"])
    golden = A.golden_attention(q, k, v, tile=case["tile"], **case["opts"])
    np.testing.assert_allclose(golden, dense, rtol=1e-12, atol=1e-12 * np.abs(v).max())


# -- bit-exact model against float64 ---------------------------------------------------------
@SETTINGS
@given(attention_case())
def test_mx_attention_within_stated_bound(case):
    qm, km, vm = _quantize(case)
    out = A.mx_attention(qm, km, vm, tile=case["tile"], **case["opts"])
    ref = A.dense_attention(*(dequantize_mx(t) for t in (qm, km, vm)), **case["opts"])
    bound = A.mx_attention_error_bound(qm, km, vm, tile=case["tile"], **case["opts"])
    assert np.isfinite(bound).all()
    assert (np.abs(out - ref) <= bound).all(), float(np.max(np.abs(out - ref) - bound))


@SETTINGS
@given(attention_case(max_lq=4, max_lk=12))
def test_batched_call_equals_per_item_calls(case):
    qm, km, vm = _quantize(case)
    if not case["q"].shape[:-2]:
        return
    bits = A.mx_attention_bits(qm, km, vm, tile=case["tile"], **case["opts"])
    kv_len = np.broadcast_to(np.asarray(case["opts"]["kv_len"] if case["opts"]["kv_len"] is not None
                                        else case["k"].shape[-2]), case["q"].shape[:-2])
    for idx in np.ndindex(*case["q"].shape[:-2]):
        one = [quantize_mx(x[idx], f, case["bs"]) for x, f in
               ((case["q"], "mxint8"), (case["k"], case["kv_fmt"]), (case["v"], case["kv_fmt"]))]
        opts = dict(case["opts"], kv_len=int(kv_len[idx]))
        np.testing.assert_array_equal(A.mx_attention_bits(*one, tile=case["tile"], **opts), bits[idx])


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(2, 40), st.sampled_from([1, 3, 8, 16]))
def test_decode_step_equals_prefill_row(seed, length, tile):
    """A decode step (one row at q_offset = n) gives the same bits as row n of the prefill."""
    rng = np.random.default_rng(seed)
    q, k, v = (quantize_mx(rng.standard_normal((length, 32)).astype(np.float32), "mxint8", 16)
               for _ in range(3))
    full = A.mx_attention_bits(q, k, v, causal=True, tile=tile)
    n = int(rng.integers(0, length))
    row = quantize_mx(dequantize_mx(q)[n:n + 1], "mxint8", 16)
    step = A.mx_attention_bits(row, k, v, causal=True, q_offset=n, tile=tile)
    np.testing.assert_array_equal(step[0], full[n])


def _case_with_scores(scores_row: np.ndarray, d=16, seed=0):
    """q = e_0, k[n] = scores[n] * e_0 (so q.k = scores), v random; MXINT8 blocks of 16."""
    lk = scores_row.size
    q = np.zeros((1, d), np.float32)
    q[0, 0] = 1.0
    k = np.zeros((lk, d), np.float32)
    k[:, 0] = scores_row
    v = np.random.default_rng(seed).standard_normal((lk, d)).astype(np.float32)
    return [quantize_mx(x, "mxint8", 16) for x in (q, k, v)]


@pytest.mark.parametrize("where", ["first", "middle", "last", "every"])
@pytest.mark.parametrize("tile", [4, 5])
def test_running_max_changes(where, tile):
    lk = 13
    scores = np.full(lk, 2.0, np.float32)
    pos = {"first": [1], "middle": [6], "last": [12], "every": list(range(lk))}[where]
    if where == "every":
        scores = np.linspace(1.0, 30.0, lk).astype(np.float32)
    else:
        scores[pos] = 20.0
    qm, km, vm = _case_with_scores(scores)
    tr = A.mx_attention_trace(qm, km, vm, tile=tile)
    changes = np.nonzero(np.diff(tr.tile_max[:, 0]))[0] + 1
    expect = sorted({p // tile for p in pos} - {0})
    assert list(changes) == expect
    ref = A.dense_attention(*(dequantize_mx(t) for t in (qm, km, vm)))
    assert (np.abs(A.mx_attention(qm, km, vm, tile=tile) - ref)
            <= A.mx_attention_error_bound(qm, km, vm, tile=tile)).all()


def test_single_key_returns_v_exactly():
    """kv_len = 1: p = 1.0, l = 2**20, O = 2**20 * Vfx, so the output is V (bf16-exact values)."""
    qm, km, vm = _case_with_scores(np.array([3.0, 5.0, -1.0], np.float32), seed=3)
    out = A.mx_attention(qm, km, vm, kv_len=1)
    np.testing.assert_array_equal(out[0], _bf16(dequantize_mx(vm)[0]))


def test_all_equal_scores_give_the_mean():
    lk = 24
    qm, km, vm = _case_with_scores(np.full(lk, 7.0, np.float32), seed=5)
    tr = A.mx_attention_trace(qm, km, vm, tile=8)
    assert tr.l[0] == lk << 20                      # every weight is exactly 1.0 (Q1.20)
    mean = dequantize_mx(vm).astype(np.float64).mean(axis=0)
    assert np.abs(A.mx_attention(qm, km, vm, tile=8)[0] - mean).max() <= 2.0 ** -8 * np.abs(mean).max() + 2.0 ** -14


def test_exp_underflow_to_zero():
    """Keys ~100 score units below the max (2**-36 after the 1/sqrt(16) scaling) get p = 0."""
    scores = np.array([0.0, 100.0, 1.0, 100.0], np.float32)
    qm, km, vm = _case_with_scores(scores, seed=7)
    tr = A.mx_attention_trace(qm, km, vm, tile=2)
    x = tr.m[0] - tr.logits[0]
    assert (x[[0, 2]] >> A.LOGIT_FRAC_BITS >= 21).all()
    assert tr.l[0] == 2 << 20                       # only the two max keys count
    vals = dequantize_mx(vm).astype(np.float64)
    np.testing.assert_array_equal(A.mx_attention(qm, km, vm, tile=2)[0], _bf16((vals[1] + vals[3]) / 2))


def test_exp2_table():
    pf, xi = A.exp2_neg(np.arange(4096))
    assert pf[0] == 1 << 15 and (np.diff(pf[:1024]) <= 0).all() and (pf > 1 << 14).all()
    assert (xi == np.arange(4096) >> 10).all()
    exact = 2.0 ** (-np.arange(1024) / 1024)
    assert np.max(np.abs(pf[:1024] / 2.0 ** 15 / exact - 1)) == A.EXP2_REL_ERROR < 6e-5
    assert [A.score_constant(d) for d in (16, 32, 64)] == [378194, 267423, 189097]


@SETTINGS
@given(st.lists(st.integers(-(2**62) + 1, 2**62 - 1), min_size=1, max_size=20),
       st.integers(1 << 14, 1 << 15), st.integers(0, 80))
def test_rescale_is_exact_floor(values, pf, xi):
    got = A.rescale(np.array(values, np.int64), pf, xi)
    assert [int(g) for g in got] == [(x * pf) >> (15 + xi) for x in values]


@SETTINGS
@given(st.lists(st.tuples(st.integers(1, 2**62), st.integers(1 << 20, 1 << 34), st.booleans()),
                min_size=1, max_size=30))
def test_bf16_division_is_exact_rne(pairs):
    num = np.array([a if neg else -a for a, _, neg in pairs], np.int64)
    # make some quotients exact BF16 midpoints and near-midpoints
    den = np.array([b for _, b, _ in pairs], np.int64)
    num[::3] = np.clip(den[::3] * (257 + 2 * (np.arange(num[::3].size) % 50)) // 2, 1, 2**62)
    num[1::3] = np.clip(num[1::3] // 2**30 * 2**30 + 1, 1, 2**62)
    got = A.bf16_rne_ratio(num, den, -14)
    for a, b, g in zip(num, den, got):
        exact = Fraction(int(a), int(b) << 14)
        want = _exact_bf16(exact)
        assert int(g) == want, (int(a), int(b), hex(int(g)), hex(want))


def _exact_bf16(x: Fraction) -> int:
    """BF16 code of RNE(x) from exact rational arithmetic (normal range)."""
    sign = 0x8000 if x < 0 else 0
    x = abs(x)
    e = math.floor(math.log2(x))
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    m = x / Fraction(2) ** (e - 7)
    fl = math.floor(m)
    r = m - fl
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and fl & 1):
        fl += 1
    if fl == 256:
        fl, e = 128, e + 1
    return sign | ((e + 127) << 7) | (fl - 128)


def test_nan_scales():
    rng = np.random.default_rng(11)
    lq, lk, d = 3, 6, 32
    q, k, v = (rng.standard_normal((n, d)).astype(np.float32) for n in (lq, lk, lk))
    q[0, 3] = np.nan            # row 0 NaN
    k[4, 20] = np.inf           # key 4: seen by row 2 (q_offset 2 + 2 = 4) only
    v[3, 17] = np.nan           # key 3, block 1 (cols 16..31): rows 1 and 2
    qm, km, vm = (quantize_mx(x, "mxint8", 16) for x in (q, k, v))
    bits = A.mx_attention_bits(qm, km, vm, causal=True, q_offset=2)
    nan = bits == A.BF16_CANONICAL_NAN
    assert nan[0].all() and nan[2].all()
    assert not nan[1, :16].any() and nan[1, 16:].all()
    ref = A.dense_attention(*(dequantize_mx(t) for t in (qm, km, vm)), causal=True, q_offset=2)
    np.testing.assert_array_equal(np.isnan(ref), nan)
    # without the causal mask key 4 is visible to every row
    assert (A.mx_attention_bits(qm, km, vm) == A.BF16_CANONICAL_NAN).all()


@pytest.mark.parametrize("kwargs, name", [
    (dict(tile=0), "tile"), (dict(q_offset=-1), "q_offset"), (dict(kv_len=0), "kv_len"),
    (dict(kv_len=9), "kv_len"), (dict(kv_len=np.array([1, 2, 3])), "kv_len"),
    (dict(causal=1), "causal"), (dict(tile=2.5), "tile"),
])
def test_bad_parameters_are_named(kwargs, name):
    rng = np.random.default_rng(0)
    q, k, v = (quantize_mx(rng.standard_normal((2, 4, 16)).astype(np.float32), "mxint8", 8)
               for _ in range(3))
    with pytest.raises(ValueError, match=name):
        A.mx_attention(q, k, v, **kwargs)
    with pytest.raises(ValueError, match=name):
        A.golden_attention(*(dequantize_mx(t) for t in (q, k, v)), **kwargs)


def test_bad_operands_are_named():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 32)).astype(np.float32)
    q8, k16 = quantize_mx(x, "mxint8", 8), quantize_mx(x, "mxint8", 16)
    with pytest.raises(ValueError, match="block_size"):
        A.mx_attention(q8, k16, k16)
    with pytest.raises(ValueError, match="fmt"):
        A.mx_attention(quantize_mx(x, "mxfp8_e4m3", 8), q8, q8)
    with pytest.raises(ValueError, match="q must be an MXTensor"):
        A.mx_attention(x, q8, q8)
    with pytest.raises(ValueError, match="head dimension"):
        A.mx_attention(q8, quantize_mx(x[:, :16], "mxint8", 8), quantize_mx(x[:, :16], "mxint8", 8))


def _padded_batch(rng, n, rows, keys, d, block, kb):
    """Random padded sequences (codes, scales with some NaN and extreme codes, masks)."""
    def mx(shape, fmt, width):
        lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
        codes = rng.integers(lo, hi + 1, size=shape).astype(np.int8)
        scales = rng.choice(np.array([0, 1, 100, 120, 127, 130, 200, 254, 255], np.uint8),
                            size=shape[:-1] + (shape[-1] // block,),
                            p=[.05, .05, .1, .3, .2, .1, .1, .05, .05])
        return A.MXTensor(scales=scales, elements=codes, fmt=fmt, block_size=block, axis=-1)

    q = mx((n, rows, d), "mxint8", 8)
    k, v = mx((n, keys, d), f"mxint{kb}", kb), mx((n, keys, d), f"mxint{kb}", kb)
    n_rows = rng.integers(1, rows + 1, size=n)
    n_keys = rng.integers(1, keys + 1, size=n)
    causal = rng.random(n) < 0.6
    q_offset = np.where(rng.random(n) < 0.7, rng.integers(0, keys + 2, size=n), rng.integers(0, 65536, size=n))
    return q, k, v, n_rows, n_keys, causal, q_offset


@pytest.mark.parametrize("d,block,kb,rows,keys,tile", [(16, 8, 8, 2, 12, 4), (32, 16, 4, 3, 9, 2), (64, 32, 4, 2, 20, 16)])
def test_mx_attention_each_equals_one_sequence_at_a_time(d, block, kb, rows, keys, tile):
    """The grouped batch runner gives each sequence exactly its own bits and trace."""
    rng = np.random.default_rng(d + keys)
    n = 120
    q, k, v, n_rows, n_keys, causal, q_offset = _padded_batch(rng, n, rows, keys, d, block, kb)
    bits = A.mx_attention_each(q, k, v, n_rows, n_keys, causal, q_offset, tile=tile)
    traces = A.mx_attention_each(q, k, v, n_rows, n_keys, causal, q_offset, tile=tile, trace=True)
    for i in range(n):
        part = lambda t, m: A.MXTensor(scales=t.scales[i, :m], elements=t.elements[i, :m],  # noqa: E731
                                       fmt=t.fmt, block_size=block, axis=-1)
        args = (part(q, n_rows[i]), part(k, n_keys[i]), part(v, n_keys[i]))
        kw = dict(causal=bool(causal[i]), q_offset=int(q_offset[i]), tile=tile)
        np.testing.assert_array_equal(bits[i], A.mx_attention_bits(*args, **kw))
        want = A.mx_attention_trace(*args, **kw)
        for name in ("scores", "logits", "visible", "vfx", "m", "l", "acc", "row_nan", "nan", "bits",
                     "tile_max", "div_rounding"):
            np.testing.assert_array_equal(getattr(traces[i], name), getattr(want, name), err_msg=f"{name} of sequence {i}")


def test_mx_attention_each_names_bad_arguments():
    rng = np.random.default_rng(0)
    q, k, v, n_rows, n_keys, causal, q_offset = _padded_batch(rng, 4, 2, 6, 16, 8, 8)
    with pytest.raises(ValueError, match="causal must hold one value per sequence"):
        A.mx_attention_each(q, k, v, n_rows, n_keys, causal[:3], q_offset)
    with pytest.raises(ValueError, match="n_keys in 1..6"):
        A.mx_attention_each(q, k, v, n_rows, n_keys + 6, causal, q_offset)
