"""The inference stack (refmodel config / layers / kv_cache / weights / model) against
NUMERICS.md "The rest of the stack": layers against straightforward formulas, golden decode
equal to a single prefill, quantized path against golden, encoder padding, weight loading."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mxdv.refmodel import layers
from mxdv.refmodel.config import QUANT_PRESETS, ModelConfig, QuantConfig, TensorQuant
from mxdv.refmodel.weights import (
    check_weights,
    load_safetensors,
    random_tiny_config,
    random_weights,
    save_safetensors,
    tiny_config,
    weight_shapes,
)

RNG = np.random.default_rng(1234)


def _f32(*shape, scale=1.0):
    return (scale * RNG.standard_normal(shape)).astype(np.float32)


# ---------------------------------------------------------------------------------- layers


def test_tree_sum_is_the_adjacent_pair_tree_in_float32():
    x = np.array([1.0, 2.0**-24, 2.0**-24, -1.0, 3.0], dtype=np.float32)
    f = np.float32
    expected = ((x[0] + x[1]) + (x[2] + x[3])) + ((x[4] + f(0)) + (f(0) + f(0)))
    assert layers.tree_sum(x, np.float32).view(np.uint32) == expected.view(np.uint32)
    y = _f32(7, 100)
    np.testing.assert_allclose(layers.tree_sum(y, np.float64), y.astype(np.float64).sum(-1), rtol=1e-13)


def test_tree_sum_order_differs_from_sequential_on_a_cancelling_case():
    x = np.array([2.0**24, 1.0, 1.0, -(2.0**24)], dtype=np.float32)
    # tree: (2^24 + 1) -> 2^24 (tie to even), (1 - 2^24) -> -(2^24 - 1): sum 1
    assert layers.tree_sum(x, np.float32) == np.float32(1.0)
    # left to right: 2^24 + 1 -> 2^24, + 1 -> 2^24, - 2^24 -> 0
    f = np.float32
    assert f(f(f(x[0] + x[1]) + x[2]) + x[3]) == 0.0


def test_rms_norm_matches_formula_and_float32_sequence():
    x, w = _f32(3, 5, 64), _f32(64)
    eps = 1e-6
    x64 = x.astype(np.float64)
    ref = x64 / np.sqrt(np.mean(x64 * x64, -1, keepdims=True) + eps) * w
    np.testing.assert_allclose(layers.rms_norm(x, w, eps, np.float64), ref, rtol=1e-13, atol=1e-14)
    got32 = layers.rms_norm(x, w, eps, np.float32)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, ref, rtol=3e-6, atol=1e-6)
    # the documented float32 sequence, step by step, bit for bit
    f = np.float32
    ms = layers.tree_sum(x * x, np.float32) / f(64)
    r = f(1) / np.sqrt(ms + f(eps))
    np.testing.assert_array_equal(got32.view(np.uint32), ((x * r[..., None]) * w).view(np.uint32))


def test_layer_norm_matches_formula():
    x, w, b = _f32(4, 96, scale=3.0) + 5, _f32(96), _f32(96)
    x64 = x.astype(np.float64)
    mu = x64.mean(-1, keepdims=True)
    ref = (x64 - mu) / np.sqrt(((x64 - mu) ** 2).mean(-1, keepdims=True) + 1e-12) * w + b
    np.testing.assert_allclose(layers.layer_norm(x, w, b, 1e-12, np.float64), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layers.layer_norm(x, w, b, 1e-12, np.float32), ref, rtol=1e-5, atol=1e-5)


def test_erf_against_math_erf():
    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, -0.0, 2.5, -2.5, 6.0, 40.0, -40.0]])
    ref = np.array([math.erf(v) for v in x])
    assert np.max(np.abs(layers.erf(x) - ref)) < 1e-14
    assert np.isnan(layers.erf(np.nan))


def test_activations_against_formulas():
    x = np.concatenate([_f32(2000, scale=4.0), np.array([0.0, -100.0, 100.0, -1e30], np.float32)])
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        silu_ref = x64 / (1 + np.exp(-x64))
    np.testing.assert_array_equal(layers.silu(x, np.float32), silu_ref.astype(np.float32))
    np.testing.assert_array_equal(layers.silu(x, np.float64), silu_ref)
    gelu_ref = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x64])
    np.testing.assert_allclose(layers.gelu(x, np.float64), gelu_ref, rtol=1e-13, atol=5e-14)
    tanh_ref = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
    np.testing.assert_allclose(layers.gelu_tanh(x, np.float64), tanh_ref, rtol=1e-13, atol=1e-15)
    g, u = _f32(50), _f32(50)
    np.testing.assert_array_equal(layers.swiglu(g, u, np.float32), layers.silu(g, np.float32) * u)


def test_rope_is_a_rotation_of_half_pairs_and_relative():
    hd, theta = 16, 10000.0
    pos = np.array([0, 1, 5, 77])
    cos, sin = layers.rope_cos_sin(pos, hd, theta, np.float64)
    x = RNG.standard_normal((3, len(pos), hd))
    got = layers.apply_rope(x, cos, sin, np.float64)
    half = hd // 2
    ang = pos[:, None] * theta ** (-np.arange(half) * 2 / hd)
    z = (x[..., :half] + 1j * x[..., half:]) * np.exp(1j * ang)
    np.testing.assert_allclose(got, np.concatenate([z.real, z.imag], -1), rtol=1e-12, atol=1e-12)
    assert np.all(got[:, 0] == x[:, 0])  # position 0: identity
    # <rope(q, p), rope(k, p')> depends on p - p' only
    q, k = RNG.standard_normal(hd), RNG.standard_normal(hd)
    c, s = layers.rope_cos_sin(np.array([3, 10, 103, 110]), hd, theta, np.float64)
    r = layers.apply_rope(np.stack([q, k, q, k]), c, s, np.float64)
    assert abs(r[0] @ r[1] - r[2] @ r[3]) < 1e-12


def test_embedding_and_residual():
    table = _f32(10, 4)
    np.testing.assert_array_equal(layers.embedding_lookup(table, np.array([[3, 0]]), np.float64),
                                  table[[[3, 0]]].astype(np.float64))
    with pytest.raises(ValueError, match="input_ids"):
        layers.embedding_lookup(table, np.array([10]))
    with pytest.raises(ValueError, match="input_ids"):
        layers.embedding_lookup(table, np.array([1.0]))
    a, b = _f32(5), _f32(5)
    assert layers.residual_add(a, b, np.float32).dtype == np.float32
    with pytest.raises(ValueError, match="dtype"):
        layers.rms_norm(a, a, 1e-6, np.float16)


# ---------------------------------------------------------------------------------- config


def test_quant_presets_and_errors():
    q = QuantConfig.preset("W4A8KV4")
    assert (q.weights.fmt, q.activations.fmt, q.kv.fmt) == ("mxint4", "mxint8", "mxint4")
    assert set(QUANT_PRESETS) == {"W8A8KV8", "W4A8KV8", "W4A8KV4"}
    with pytest.raises(ValueError, match="preset"):
        QuantConfig.preset("W2A2KV2")
    with pytest.raises(ValueError, match="block_size"):
        TensorQuant("mxint8", 64)
    with pytest.raises(ValueError, match="weights.fmt"):
        QuantConfig(weights=TensorQuant("mxfp4_e2m1"))
    with pytest.raises(ValueError, match="block_size"):
        QuantConfig(weights=TensorQuant("mxint8", 16), activations=TensorQuant("mxint8", 32))
    with pytest.raises(ValueError, match="kv.fmt"):
        QuantConfig(kv=TensorQuant("mxfp8_e4m3"))
    with pytest.raises(ValueError, match="kv.block_size"):
        QuantConfig(kv=TensorQuant("mxint8", 16))


def test_model_config_errors_and_hf_dict():
    with pytest.raises(ValueError, match="num_attention_heads"):
        ModelConfig(hidden_size=100, num_attention_heads=3)
    with pytest.raises(ValueError, match="num_key_value_heads"):
        ModelConfig(num_attention_heads=4, num_key_value_heads=3)
    with pytest.raises(ValueError, match="model_type"):
        ModelConfig(model_type="gpt2")
    with pytest.raises(ValueError, match="hidden_act"):
        ModelConfig(hidden_act="relu")
    with pytest.raises(ValueError, match="vocab_size"):
        ModelConfig(vocab_size=0)
    cfg = ModelConfig.from_dict({"model_type": "bert", "hidden_size": 64, "num_attention_heads": 2,
                                 "architectures": ["BertModel"], "intermediate_size": 128})
    assert cfg.hidden_act == "gelu" and cfg.head_dim == 32
    assert ModelConfig().num_key_value_heads == ModelConfig().num_attention_heads


# ---------------------------------------------------------------------------------- weights


def test_weight_names_follow_hugging_face():
    names = weight_shapes(tiny_config("llama"))
    assert names["model.layers.1.self_attn.k_proj.weight"] == (64, 128)  # 2 KV heads of 32
    assert names["model.layers.0.mlp.down_proj.weight"] == (128, 352)
    assert {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"} <= set(names)
    bert = weight_shapes(tiny_config("bert"))
    assert bert["encoder.layer.1.attention.self.query.bias"] == (128,)
    assert bert["encoder.layer.0.intermediate.dense.weight"] == (512, 128)


def test_missing_and_misshaped_tensors_are_named():
    cfg = tiny_config("llama")
    w = random_weights(cfg, 0)
    del w["model.layers.1.mlp.up_proj.weight"]
    with pytest.raises(KeyError, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
        check_weights(cfg, w)
    w = random_weights(cfg, 0)
    w["model.norm.weight"] = w["model.norm.weight"][:-1]
    with pytest.raises(ValueError, match=r"model\.norm\.weight.*\(127,\)"):
        check_weights(cfg, w)
    w = random_weights(cfg, 0)
    w["lm_head.weight"] = w["lm_head.weight"].astype(np.int32)
    with pytest.raises(ValueError, match="lm_head.weight"):
        check_weights(cfg, w)


def test_hf_prefixes_and_tied_embeddings():
    bert = tiny_config("bert")
    w = {"bert." + k.replace("LayerNorm.weight", "LayerNorm.gamma"): v for k, v in random_weights(bert, 0).items()}
    w["pooler.dense.weight"] = np.zeros((2, 2), np.float32)
    assert set(check_weights(bert, w)) == set(weight_shapes(bert))
    tied = ModelConfig(**{**tiny_config("llama").to_dict(), "tie_word_embeddings": True})
    tw = random_weights(tied, 0)
    assert "lm_head.weight" not in tw
    checked = check_weights(tied, tw)
    assert checked["lm_head.weight"] is checked["model.embed_tokens.weight"]


def test_random_tiny_config_is_seeded_and_valid():
    assert random_tiny_config("llama", 3) == random_tiny_config("llama", 3)
    for seed in range(20):
        for kind in ("llama", "bert"):
            cfg = random_tiny_config(kind, seed)
            assert cfg.hidden_size % 32 == 0 and cfg.intermediate_size % 32 == 0
            assert set(random_weights(cfg, seed)) <= set(weight_shapes(cfg))


# ---------------------------------------------------------------------------------- model

from mxdv.refmodel.kv_cache import FloatKVCache, MXKVCache, to_bf16  # noqa: E402
from mxdv.refmodel.model import (  # noqa: E402
    BertEncoder,
    Float32Path,
    GoldenPath,
    LlamaDecoder,
    QuantizedPath,
    build_model,
)
from mxdv.refmodel.mx import quantize_mx  # noqa: E402

DEC = tiny_config("llama")
DEC_W = random_weights(DEC, 0)
ENC = tiny_config("bert")
ENC_W = random_weights(ENC, 0)


def _ids(cfg, batch, tokens, seed=5):
    return np.random.default_rng(seed).integers(0, cfg.vocab_size, (batch, tokens))


def _cosine(a, b):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


@pytest.mark.parametrize("prefill_len", [1, 7, 16])
def test_golden_decode_equals_single_prefill(prefill_len):
    model = LlamaDecoder(DEC, DEC_W, GoldenPath())
    ids = _ids(DEC, 2, 21)
    whole = model.forward(ids)
    stepped = model.prefill_then_decode(ids, prefill_len)
    np.testing.assert_allclose(stepped.hidden, whole.hidden, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stepped.logits, whole.logits, rtol=1e-12, atol=1e-12)


def test_golden_path_against_float32_path():
    ids = _ids(DEC, 2, 12)
    golden = LlamaDecoder(DEC, DEC_W, GoldenPath()).forward(ids)
    f32 = LlamaDecoder(DEC, DEC_W, Float32Path()).forward(ids)
    np.testing.assert_allclose(f32.logits, golden.logits, rtol=1e-4, atol=1e-4)


def test_quantized_prefill_decode_sane_against_golden():
    ids = _ids(DEC, 2, 20)
    golden = LlamaDecoder(DEC, DEC_W, GoldenPath()).forward(ids)
    for preset, min_cos in (("W8A8KV8", 0.999), ("W4A8KV4", 0.95)):
        out = LlamaDecoder(DEC, DEC_W, QuantizedPath(QuantConfig.preset(preset))).prefill_then_decode(ids, 12)
        assert out.hidden.dtype == np.float32 and out.logits.dtype == np.float32
        assert np.all(np.isfinite(out.logits))
        assert _cosine(out.hidden, golden.hidden) > min_cos, preset
    # W8A8KV8 is much closer than W4A8KV4 (weights dominate the error)
    errs = {}
    for preset in ("W8A8KV8", "W4A8KV4"):
        out = LlamaDecoder(DEC, DEC_W, QuantizedPath(QuantConfig.preset(preset))).forward(ids)
        errs[preset] = np.max(np.abs(out.hidden - golden.hidden))
    assert errs["W8A8KV8"] < errs["W4A8KV4"] / 3


def test_mx_kv_cache_appends_without_requantizing():
    k = _f32(2, 2, 9, 64)
    v = _f32(2, 2, 9, 64)
    whole, stepped = MXKVCache("mxint4", 16), MXKVCache("mxint4", 16, capacity=2)
    whole.append(k, v)
    stepped.append(k[:, :, :4], v[:, :, :4])
    for t in range(4, 9):
        stepped.append(k[:, :, t:t + 1], v[:, :, t:t + 1])
    ref = quantize_mx(to_bf16(k), fmt="mxint4", block_size=16, axis=-1)
    for cache in (whole, stepped):
        assert cache.length == 9
        np.testing.assert_array_equal(cache.keys().elements, ref.elements)
        np.testing.assert_array_equal(cache.keys().scales, ref.scales)
        np.testing.assert_array_equal(cache.values().elements,
                                      quantize_mx(to_bf16(v), fmt="mxint4", block_size=16, axis=-1).elements)
    f = FloatKVCache(np.float64, capacity=1)
    f.append(k[:, :, :3], v[:, :, :3])
    f.append(k[:, :, 3:], v[:, :, 3:])
    np.testing.assert_array_equal(f.keys(), k.astype(np.float64))
    with pytest.raises(ValueError, match="k and v"):
        f.append(k, v[:, :, :2])


@pytest.mark.parametrize("path", [GoldenPath(), QuantizedPath(QuantConfig.preset("W4A8KV4"))],
                         ids=["golden", "W4A8KV4"])
def test_encoder_padding_does_not_change_real_tokens(path):
    model = BertEncoder(ENC, ENC_W, path)
    ids = _ids(ENC, 3, 24)
    types = np.zeros_like(ids)
    types[:, 12:] = 1
    lengths = np.array([24, 17, 5])
    out = model.forward(ids, types, lengths)
    other = ids.copy()
    other[1, 17:] = (other[1, 17:] + 1) % ENC.vocab_size  # change only padded tokens
    other[2, 5:] = 0
    out2 = model.forward(other, types, lengths)
    for b, n in enumerate(lengths):
        alone = model.forward(ids[b:b + 1, :n], types[b:b + 1, :n])
        np.testing.assert_array_equal(out2[b, :n], out[b, :n])  # padding is masked exactly
        if isinstance(path, GoldenPath):
            np.testing.assert_allclose(out[b, :n], alone[0], rtol=1e-12, atol=1e-12)
        else:  # bit for bit: per-token quantization, masked keys contribute nothing
            np.testing.assert_array_equal(out[b, :n].view(np.uint32), alone[0].view(np.uint32))
    assert not np.array_equal(out2[1, 17:], out[1, 17:])  # the padded rows themselves differ


def test_encoder_quantized_sane_and_errors():
    ids = _ids(ENC, 2, 16)
    golden = BertEncoder(ENC, ENC_W, GoldenPath()).forward(ids)
    quant = BertEncoder(ENC, ENC_W, QuantizedPath(QuantConfig.preset("W8A8KV8"))).forward(ids)
    assert quant.dtype == np.float32 and _cosine(quant, golden) > 0.999
    model = build_model(ENC, ENC_W)
    with pytest.raises(ValueError, match="lengths"):
        model.forward(ids, lengths=np.array([0, 3]))
    with pytest.raises(ValueError, match="token_type_ids"):
        model.forward(ids, token_type_ids=np.zeros((1, 16), np.int64))
    with pytest.raises(ValueError, match="model_type"):
        LlamaDecoder(ENC, ENC_W)


def test_safetensors_round_trip(tmp_path):
    file = tmp_path / "tiny.safetensors"
    save_safetensors(DEC_W, file)
    loaded = load_safetensors(file)
    assert set(loaded) == set(DEC_W)
    ids = _ids(DEC, 1, 6)
    path = QuantizedPath(QuantConfig.preset("W4A8KV8"))
    a = LlamaDecoder(DEC, DEC_W, path).forward(ids).logits
    b = LlamaDecoder(DEC, loaded, path).forward(ids).logits
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def test_decoder_input_errors():
    model = LlamaDecoder(DEC, DEC_W)
    with pytest.raises(ValueError, match="input_ids"):
        model.forward(np.zeros((3,), np.int64))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model.forward(np.zeros((1, DEC.max_position_embeddings + 1), np.int64))
    with pytest.raises(ValueError, match="prefill_len"):
        model.prefill_then_decode(np.zeros((1, 4), np.int64), 0)


def test_generate_is_greedy_on_golden_logits():
    model = LlamaDecoder(DEC, DEC_W, GoldenPath())
    prompt = _ids(DEC, 2, 5)
    tokens = model.generate(prompt, 4)
    assert tokens.shape == (2, 9) and np.array_equal(tokens[:, :5], prompt)
    logits = model.forward(tokens).logits
    np.testing.assert_array_equal(tokens[:, 5:], np.argmax(logits[:, 4:8], -1))


@pytest.mark.parametrize("seed", range(4))
def test_golden_decode_equals_prefill_on_random_configs(seed):
    cfg = random_tiny_config("llama", seed)
    model = LlamaDecoder(cfg, random_weights(cfg, seed), GoldenPath())
    ids = _ids(cfg, 1, 11, seed)
    np.testing.assert_allclose(model.prefill_then_decode(ids, 3).logits, model.forward(ids).logits,
                               rtol=1e-12, atol=1e-12)


def test_demo_prints_two_configs_against_golden():
    import io

    from mxdv.refmodel.__main__ import demo

    out = io.StringIO()
    demo(out=out)
    text = out.getvalue()
    assert "golden float64 tokens" in text
    assert text.count("vs golden (teacher-forced)") == 2 and "W8A8KV8" in text and "W4A8KV4" in text


@pytest.mark.parametrize("preset", ["W8A8KV8", "W4A8KV4"])
def test_quantized_decode_is_bit_identical_to_single_prefill(preset):
    """NUMERICS "Prefill and decode": per-token activation blocks, row-independent GEMM rows,
    per-token KV blocks and key-0-aligned attention tiles make decode == prefill, bit for bit."""
    model = LlamaDecoder(DEC, DEC_W, QuantizedPath(QuantConfig.preset(preset)))
    ids = _ids(DEC, 2, 35, seed=9)
    whole = model.forward(ids)
    for prefill_len in (1, 16, 17):
        stepped = model.prefill_then_decode(ids, prefill_len)
        np.testing.assert_array_equal(stepped.logits.view(np.uint32), whole.logits.view(np.uint32))
        np.testing.assert_array_equal(stepped.hidden.view(np.uint32), whole.hidden.view(np.uint32))


def test_accuracy_table_rows():
    from mxdv.refmodel.__main__ import accuracy_rows, accuracy_table

    rows = accuracy_rows(presets=("W8A8KV8",))
    assert [(r["model"], r["preset"]) for r in rows] == [("decoder", "W8A8KV8"), ("encoder", "W8A8KV8")]
    assert 0.999 < rows[0]["cosine"] < 1.0 and 0.0 < rows[0]["max_abs_err"] < 0.5
    assert 0.5 < rows[0]["top1"] <= 1.0 and "top1" not in rows[1]
    table = accuracy_table(rows).splitlines()
    assert len(table) == 4 and table[2].startswith("| decoder | W8A8KV8 (mxint8 / mxint8 / mxint8) |")


def test_bench_refmodel_measures_both_paths():
    import io

    from mxdv import bench

    out = io.StringIO()
    result = bench.bench_refmodel(repeats=1, out=out)
    assert result["quantized_s"] > 0 and result["float32_s"] > 0
    assert result["ratio"] == pytest.approx(result["quantized_s"] / result["float32_s"])
    assert "ratio quantized / float32" in out.getvalue()
    with pytest.raises(SystemExit):
        bench.main(["refmodel", "--repeats", "0"])


def test_activations_and_kv_enter_the_quantizer_as_bf16():
    """NUMERICS rule S0: the quantized path rounds float32 activations and K/V to BF16 (RNE)
    before MX quantization, as the quantizer unit takes BF16. 1.9999999 rounds to 2.0 in BF16,
    which moves the block's shared exponent: quantizing the float32 directly would differ."""
    x = np.full((1, 32), 0.25, dtype=np.float32)
    x[0, 0] = np.float32(1.9999999)
    path = QuantizedPath(QuantConfig.preset("W8A8KV8"))
    got = path.activation(x)
    assert got.scales[0, 0] == 128 and got.elements[0, 0] == 64          # 2.0 = 64 * 2^(1-6)
    direct = quantize_mx(x, fmt="mxint8", block_size=32, axis=-1)
    assert direct.scales[0, 0] == 127                                    # what float32 gives
    cache = path.new_kv_cache()
    cache.append(x[None, None], x[None, None])
    assert cache.keys().scales[0, 0, 0, 0] == 128
