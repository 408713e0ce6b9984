"""The inference stack: a LLaMA-style decoder and a BERT-style encoder over one graph.

The graph (which op follows which) is written once, in :class:`LlamaDecoder` and
:class:`BertEncoder`; HOW each op is computed comes from a *numeric path*:

* :class:`QuantizedPath` -- the bit-exact quantized stack: every GEMM input is MX-quantized
  to the activation format (blocks along features, i.e. per token) and every Linear weight to
  the weight format (blocks along in_features), multiplied by ``gemm.mx_matmul``; attention is
  ``attention.mx_attention`` with queries quantized to the activation format and K/V read from
  an :class:`~mxdv.refmodel.kv_cache.MXKVCache` (per-token blocks along head_dim).  Everything
  between GEMMs is float32 (``layers`` documents each op).
* :class:`GoldenPath` -- the same graph in float64 without quantization (float64 BLAS
  matmuls, ``attention.golden_attention``).
* :class:`Float32Path` -- the same graph in plain float32 numpy without quantization (the
  baseline of ``python -m mxdv.bench refmodel``).

Decoding: ``forward(ids, cache)`` appends ``ids`` to ``cache`` (prefill = many tokens at once,
decode = one); :meth:`LlamaDecoder.prefill_then_decode` runs a prompt prefill followed by
token-by-token decoding of given tokens.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mxdv.refmodel import layers
from mxdv.refmodel.attention import golden_attention, mx_attention
from mxdv.refmodel.config import ModelConfig, QuantConfig
from mxdv.refmodel.gemm import mx_matmul
from mxdv.refmodel.kv_cache import FloatKVCache, MXKVCache, to_bf16
from mxdv.refmodel.mx import MXTensor, quantize_mx
from mxdv.refmodel.weights import check_weights

__all__ = [
    "BertEncoder",
    "DecoderCache",
    "DecoderOutput",
    "Float32Path",
    "GoldenPath",
    "LlamaDecoder",
    "QuantizedPath",
    "build_model",
]

#: K/V tile of the attention unit (rows of K and V per online-softmax step).
DEFAULT_TILE = 16


def _repeat_heads(x, group: int):
    """Repeat each KV head ``group`` times along axis 1 (GQA); works on arrays and MXTensors."""
    if group == 1:
        return x
    if isinstance(x, MXTensor):
        return MXTensor(scales=np.repeat(x.scales, group, axis=1),
                        elements=np.repeat(x.elements, group, axis=1),
                        fmt=x.fmt, block_size=x.block_size, axis=x.axis)
    return np.repeat(x, group, axis=1)


class GoldenPath:
    """float64, no quantization: the reference the quantized stack is measured against."""

    name = "golden"
    dtype = np.dtype(np.float64)

    def __init__(self, tile: int = DEFAULT_TILE) -> None:
        self.tile = int(tile)

    def weight(self, w_out_in: np.ndarray) -> np.ndarray:
        """HF Linear weight ``[out, in]`` -> the GEMM's right operand ``[in, out]`` (float64)."""
        return np.ascontiguousarray(np.asarray(w_out_in, dtype=np.float64).T)

    def activation(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def matmul(self, a: np.ndarray, w: np.ndarray) -> np.ndarray:
        return np.matmul(a, w)

    def new_kv_cache(self) -> FloatKVCache:
        return FloatKVCache(np.float64)

    def attention(self, q, cache, *, causal: bool, q_offset: int, kv_len, group: int) -> np.ndarray:
        return golden_attention(np.asarray(q, np.float64), _repeat_heads(cache.keys(), group),
                                _repeat_heads(cache.values(), group), causal=causal,
                                q_offset=q_offset, kv_len=kv_len, tile=self.tile)


class QuantizedPath:
    """The bit-exact quantized stack for a :class:`~mxdv.refmodel.config.QuantConfig`."""

    dtype = np.dtype(np.float32)

    def __init__(self, quant: QuantConfig, tile: int = DEFAULT_TILE) -> None:
        if not isinstance(quant, QuantConfig):
            raise ValueError(f"quant must be a QuantConfig, got {type(quant).__name__}")
        self.quant = quant
        self.tile = int(tile)
        self.name = quant.name

    def weight(self, w_out_in: np.ndarray) -> MXTensor:
        """HF ``[out, in]`` -> float32 ``[in, out]`` quantized along ``in`` (axis 0)."""
        w = np.ascontiguousarray(np.asarray(w_out_in, dtype=np.float32).T)
        q = self.quant.weights
        return quantize_mx(w, fmt=q.fmt, block_size=q.block_size, axis=0)

    def activation(self, x: np.ndarray) -> MXTensor:
        """float32 ``[..., features]`` rounded to BF16 (RNE; the quantizer's input format), then
        quantized along features (one block row per token). NUMERICS.md rule S0."""
        q = self.quant.activations
        return quantize_mx(to_bf16(x), fmt=q.fmt, block_size=q.block_size, axis=-1)

    def matmul(self, a: MXTensor, w: MXTensor) -> np.ndarray:
        return mx_matmul(a, w)

    def new_kv_cache(self) -> MXKVCache:
        return MXKVCache(self.quant.kv.fmt, self.quant.kv.block_size)

    def attention(self, q, cache, *, causal: bool, q_offset: int, kv_len, group: int) -> np.ndarray:
        qq = self.activation(q)
        return mx_attention(qq, _repeat_heads(cache.keys(), group), _repeat_heads(cache.values(), group),
                            causal=causal, q_offset=q_offset, kv_len=kv_len, tile=self.tile)


def _float32_attention(q, k, v, *, causal: bool, q_offset: int, kv_len) -> np.ndarray:
    """Dense float32 ``softmax(q k^T / sqrt(d) + mask) v`` (numpy's own reduction orders)."""
    d = q.shape[-1]
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * np.float32(1.0 / math.sqrt(d))
    lq, lk = s.shape[-2], s.shape[-1]
    cols = np.arange(lk)
    visible = np.ones((lq, lk), dtype=bool)
    if causal:
        visible = cols[None, :] <= (q_offset + np.arange(lq))[:, None]
    if kv_len is not None:
        lens = np.asarray(kv_len).reshape(-1, *([1] * (s.ndim - 1)))
        visible = visible & (cols < lens)
    s = np.where(visible, s, np.float32(-np.inf))
    s = np.exp(s - s.max(axis=-1, keepdims=True))
    s /= s.sum(axis=-1, keepdims=True)
    return np.matmul(s, v)


class Float32Path(GoldenPath):
    """Plain float32 numpy (BLAS sgemm, dense float32 softmax), no quantization."""

    name = "float32"
    dtype = np.dtype(np.float32)

    def weight(self, w_out_in: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(w_out_in, dtype=np.float32).T)

    def activation(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    def new_kv_cache(self) -> FloatKVCache:
        return FloatKVCache(np.float32)

    def attention(self, q, cache, *, causal: bool, q_offset: int, kv_len, group: int) -> np.ndarray:
        return _float32_attention(np.asarray(q, np.float32), _repeat_heads(cache.keys(), group),
                                  _repeat_heads(cache.values(), group), causal=causal,
                                  q_offset=q_offset, kv_len=kv_len)


def _split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """``[B, T, heads * hd]`` -> ``[B, heads, T, hd]``."""
    b, t, width = x.shape
    return x.reshape(b, t, heads, width // heads).transpose(0, 2, 1, 3)


def _merge_heads(x: np.ndarray) -> np.ndarray:
    """``[B, heads, T, hd]`` -> ``[B, T, heads * hd]`` (contiguous)."""
    b, h, t, hd = x.shape
    return np.ascontiguousarray(x.transpose(0, 2, 1, 3)).reshape(b, t, h * hd)


def _as_ids(ids, name: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"{name} must have shape [batch, tokens] with tokens >= 1, got {ids.shape}")
    return ids


@dataclass
class DecoderCache:
    """One KV cache per layer, all of the same length (the number of tokens seen)."""

    layers: list = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.layers[0].length if self.layers else 0


@dataclass(frozen=True)
class DecoderOutput:
    """``hidden``: final-norm output ``[B, T, hidden_size]``; ``logits``: ``[B, T, vocab]``."""

    hidden: np.ndarray
    logits: np.ndarray


class LlamaDecoder:
    """Pre-norm decoder: embedding, N x (RMSNorm, attention, residual, RMSNorm, SwiGLU MLP,
    residual), final RMSNorm, LM head.  Weights are prepared (transposed, quantized) once."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray], path=None) -> None:
        if not config.is_decoder:
            raise ValueError(f"config.model_type must be 'llama' for LlamaDecoder, got {config.model_type!r}")
        self.config = config
        self.path = path if path is not None else GoldenPath()
        w = check_weights(config, weights)
        dt = self.path.dtype
        self.embed = np.asarray(w["model.embed_tokens.weight"])
        self.blocks = []
        for i in range(config.num_hidden_layers):
            p = f"model.layers.{i}."
            qkv = np.concatenate([w[p + f"self_attn.{n}_proj.weight"] for n in "qkv"], axis=0)
            gate_up = np.concatenate([w[p + "mlp.gate_proj.weight"], w[p + "mlp.up_proj.weight"]], axis=0)
            self.blocks.append({
                "input_norm": np.asarray(w[p + "input_layernorm.weight"], dt),
                "qkv": self.path.weight(qkv),
                "o": self.path.weight(w[p + "self_attn.o_proj.weight"]),
                "post_norm": np.asarray(w[p + "post_attention_layernorm.weight"], dt),
                "gate_up": self.path.weight(gate_up),
                "down": self.path.weight(w[p + "mlp.down_proj.weight"]),
            })
        self.norm = np.asarray(w["model.norm.weight"], dt)
        self.lm_head = self.path.weight(w["lm_head.weight"])

    def new_cache(self) -> DecoderCache:
        return DecoderCache([self.path.new_kv_cache() for _ in range(self.config.num_hidden_layers)])

    def _attention(self, block, x, cache_layer, q_offset: int, rope) -> np.ndarray:
        c, path = self.config, self.path
        hd, heads, kv_heads = c.head_dim, c.num_attention_heads, c.num_key_value_heads
        qkv = path.matmul(path.activation(x), block["qkv"])
        q_width, kv_width = heads * hd, kv_heads * hd
        q = _split_heads(qkv[..., :q_width], heads)
        k = _split_heads(qkv[..., q_width:q_width + kv_width], kv_heads)
        v = _split_heads(qkv[..., q_width + kv_width:], kv_heads)
        cos, sin = rope
        q = layers.apply_rope(q, cos, sin, path.dtype)
        k = layers.apply_rope(k, cos, sin, path.dtype)
        cache_layer.append(k, v)
        att = path.attention(q, cache_layer, causal=True, q_offset=q_offset, kv_len=None,
                             group=heads // kv_heads)
        return path.matmul(path.activation(_merge_heads(np.asarray(att, path.dtype))), block["o"])

    def forward_block(self, index: int, h: np.ndarray, cache_layer, start: int, rope) -> np.ndarray:
        """Decoder block ``index`` on hidden states ``h`` ``[B, T, hidden]`` at positions
        ``start .. start + T - 1`` (``rope`` = their ``rope_cos_sin`` tables); appends K/V to
        ``cache_layer``."""
        c, path, dt = self.config, self.path, self.path.dtype
        block = self.blocks[index]
        x = layers.rms_norm(h, block["input_norm"], c.rms_norm_eps, dt)
        h = layers.residual_add(h, self._attention(block, x, cache_layer, start, rope), dt)
        x = layers.rms_norm(h, block["post_norm"], c.rms_norm_eps, dt)
        gate_up = path.matmul(path.activation(x), block["gate_up"])
        inter = c.intermediate_size
        m = layers.swiglu(gate_up[..., :inter], gate_up[..., inter:], dt)
        return layers.residual_add(h, path.matmul(path.activation(m), block["down"]), dt)

    def forward(self, input_ids, cache: DecoderCache | None = None) -> DecoderOutput:
        """Run ``input_ids`` ``[B, T]`` at positions ``cache.length ..`` and append them to
        ``cache`` (a new cache when None: a prefill from position 0)."""
        c, path, dt = self.config, self.path, self.path.dtype
        ids = _as_ids(input_ids, "input_ids")
        cache = cache if cache is not None else self.new_cache()
        start = cache.length
        if start + ids.shape[1] > c.max_position_embeddings:
            raise ValueError(f"input_ids reach position {start + ids.shape[1]} > "
                             f"max_position_embeddings {c.max_position_embeddings}")
        rope = layers.rope_cos_sin(np.arange(start, start + ids.shape[1]), c.head_dim, c.rope_theta, dt)
        h = layers.embedding_lookup(self.embed, ids, dt)
        for index, cache_layer in enumerate(cache.layers):
            h = self.forward_block(index, h, cache_layer, start, rope)
        hidden = layers.rms_norm(h, self.norm, c.rms_norm_eps, dt)
        logits = path.matmul(path.activation(hidden), self.lm_head)
        return DecoderOutput(hidden=hidden, logits=np.asarray(logits, dt))

    def prefill_then_decode(self, input_ids, prefill_len: int) -> DecoderOutput:
        """Prefill ``input_ids[:, :prefill_len]``, then decode the remaining tokens one at a
        time (teacher forcing); outputs of all positions, concatenated along T."""
        ids = _as_ids(input_ids, "input_ids")
        if not 1 <= prefill_len <= ids.shape[1]:
            raise ValueError(f"prefill_len must lie in [1, {ids.shape[1]}], got {prefill_len!r}")
        cache = self.new_cache()
        outs = [self.forward(ids[:, :prefill_len], cache)]
        for t in range(prefill_len, ids.shape[1]):
            outs.append(self.forward(ids[:, t:t + 1], cache))
        return DecoderOutput(hidden=np.concatenate([o.hidden for o in outs], axis=1),
                             logits=np.concatenate([o.logits for o in outs], axis=1))

    def generate(self, prompt_ids, max_new_tokens: int) -> np.ndarray:
        """Greedy decoding (first index of the largest logit); returns ``[B, T0 + n]`` tokens."""
        ids = _as_ids(prompt_ids, "prompt_ids")
        cache = self.new_cache()
        out = self.forward(ids, cache)
        tokens = [ids]
        for _ in range(max_new_tokens):
            nxt = np.argmax(out.logits[:, -1], axis=-1)[:, None]
            tokens.append(nxt)
            out = self.forward(nxt, cache)
        return np.concatenate(tokens, axis=1)


class BertEncoder:
    """Post-norm encoder: word + token-type + position embeddings, embedding LayerNorm, then
    N x (attention, residual, LayerNorm, GELU MLP, residual, LayerNorm).  The last block's
    LayerNorm is the final norm (HF BERT has no other); the pooler is not modelled."""

    def __init__(self, config: ModelConfig, weights: dict[str, np.ndarray], path=None) -> None:
        if config.is_decoder:
            raise ValueError(f"config.model_type must be 'bert' for BertEncoder, got {config.model_type!r}")
        self.config = config
        self.path = path if path is not None else GoldenPath()
        w = check_weights(config, weights)
        dt = self.path.dtype
        self.word = np.asarray(w["embeddings.word_embeddings.weight"])
        self.position = np.asarray(w["embeddings.position_embeddings.weight"])
        self.token_type = np.asarray(w["embeddings.token_type_embeddings.weight"])
        self.emb_norm = (np.asarray(w["embeddings.LayerNorm.weight"], dt),
                         np.asarray(w["embeddings.LayerNorm.bias"], dt))
        self.blocks = []
        for i in range(config.num_hidden_layers):
            p = f"encoder.layer.{i}."
            names = [p + f"attention.self.{n}" for n in ("query", "key", "value")]
            self.blocks.append({
                "qkv": self.path.weight(np.concatenate([w[n + ".weight"] for n in names], axis=0)),
                "qkv_bias": np.concatenate([np.asarray(w[n + ".bias"], dt) for n in names]),
                "o": self.path.weight(w[p + "attention.output.dense.weight"]),
                "o_bias": np.asarray(w[p + "attention.output.dense.bias"], dt),
                "attn_norm": (np.asarray(w[p + "attention.output.LayerNorm.weight"], dt),
                              np.asarray(w[p + "attention.output.LayerNorm.bias"], dt)),
                "up": self.path.weight(w[p + "intermediate.dense.weight"]),
                "up_bias": np.asarray(w[p + "intermediate.dense.bias"], dt),
                "down": self.path.weight(w[p + "output.dense.weight"]),
                "down_bias": np.asarray(w[p + "output.dense.bias"], dt),
                "out_norm": (np.asarray(w[p + "output.LayerNorm.weight"], dt),
                             np.asarray(w[p + "output.LayerNorm.bias"], dt)),
            })

    def _gelu(self, x: np.ndarray) -> np.ndarray:
        if self.config.hidden_act == "gelu":
            return layers.gelu(x, self.path.dtype)
        return layers.gelu_tanh(x, self.path.dtype)

    def _linear(self, x, w, bias) -> np.ndarray:
        """GEMM (path numerics) then ``+ bias``: one add in the path dtype."""
        return np.asarray(self.path.matmul(self.path.activation(x), w), self.path.dtype) + bias

    def _layer_norm(self, x, norm) -> np.ndarray:
        return layers.layer_norm(x, norm[0], norm[1], self.config.layer_norm_eps, self.path.dtype)

    def forward(self, input_ids, token_type_ids=None, lengths=None) -> np.ndarray:
        """Final hidden states ``[B, T, hidden_size]`` of ``input_ids`` ``[B, T]``.

        ``lengths`` ``[B]``: row b holds ``lengths[b]`` real tokens followed by padding; keys
        at positions ``>= lengths[b]`` are masked out of every query of row b (padded query
        rows are computed too, and are meaningless).  None: no padding.
        """
        c, path, dt = self.config, self.path, self.path.dtype
        ids = _as_ids(input_ids, "input_ids")
        b, t = ids.shape
        if t > c.max_position_embeddings:
            raise ValueError(f"input_ids has {t} tokens > max_position_embeddings {c.max_position_embeddings}")
        types = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids)
        if types.shape != ids.shape:
            raise ValueError(f"token_type_ids must have shape {ids.shape}, got {types.shape}")
        kv_len = None
        if lengths is not None:
            kv_len = np.asarray(lengths)
            if kv_len.shape != (b,) or not np.issubdtype(kv_len.dtype, np.integer) \
                    or kv_len.min() < 1 or kv_len.max() > t:
                raise ValueError(f"lengths must be {b} ints in [1, {t}], got {lengths!r}")
            kv_len = kv_len[:, None]  # broadcast over heads: [B, 1]
        h = self.embed(ids, types)
        for index in range(len(self.blocks)):
            h = self.forward_block(index, h, kv_len)
        return h

    def embed(self, ids: np.ndarray, types: np.ndarray) -> np.ndarray:
        """Embedding sum (word + token type + position) and the embedding LayerNorm."""
        dt = self.path.dtype
        t = ids.shape[1]
        emb = layers.residual_add(layers.embedding_lookup(self.word, ids, dt),
                                  layers.embedding_lookup(self.token_type, types, dt, "token_type_ids"), dt)
        emb = layers.residual_add(emb, layers.embedding_lookup(self.position, np.arange(t), dt)[None], dt)
        return self._layer_norm(emb, self.emb_norm)

    def forward_block(self, index: int, h: np.ndarray, kv_len=None) -> np.ndarray:
        """Encoder block ``index`` on hidden states ``h`` ``[B, T, hidden]``; ``kv_len`` ``[B, 1]``
        (keys at positions >= kv_len are masked) or None."""
        path, dt = self.path, self.path.dtype
        block = self.blocks[index]
        heads = self.config.num_attention_heads
        qkv = self._linear(h, block["qkv"], block["qkv_bias"])
        q, k, v = (_split_heads(part, heads) for part in np.split(qkv, 3, axis=-1))
        kv = path.new_kv_cache()
        kv.append(k, v)
        att = path.attention(q, kv, causal=False, q_offset=0, kv_len=kv_len, group=1)
        o = self._linear(_merge_heads(np.asarray(att, dt)), block["o"], block["o_bias"])
        h = self._layer_norm(layers.residual_add(o, h, dt), block["attn_norm"])
        inter = self._gelu(self._linear(h, block["up"], block["up_bias"]))
        out = self._linear(inter, block["down"], block["down_bias"])
        return self._layer_norm(layers.residual_add(out, h, dt), block["out_norm"])


def build_model(config: ModelConfig, weights: dict[str, np.ndarray], path=None):
    """:class:`LlamaDecoder` or :class:`BertEncoder` for ``config.model_type``."""
    cls = LlamaDecoder if config.is_decoder else BertEncoder
    return cls(config, weights, path)
