"""Weights with Hugging Face tensor names: expected shapes, checks, loading, seeded random models.

A checkpoint is a flat ``dict[str, np.ndarray]``; Linear weights are ``[out_features,
in_features]`` as in PyTorch (the model transposes them for ``y = x @ W.T``).

LLaMA (``LlamaForCausalLM``; ``LlamaModel`` files without the ``model.`` prefix are accepted)::

    model.embed_tokens.weight                        [vocab_size, hidden_size]
    model.layers.{i}.input_layernorm.weight          [hidden_size]
    model.layers.{i}.self_attn.q_proj.weight         [num_attention_heads * head_dim, hidden_size]
    model.layers.{i}.self_attn.k_proj.weight         [num_key_value_heads * head_dim, hidden_size]
    model.layers.{i}.self_attn.v_proj.weight         [num_key_value_heads * head_dim, hidden_size]
    model.layers.{i}.self_attn.o_proj.weight         [hidden_size, num_attention_heads * head_dim]
    model.layers.{i}.post_attention_layernorm.weight [hidden_size]
    model.layers.{i}.mlp.gate_proj.weight            [intermediate_size, hidden_size]
    model.layers.{i}.mlp.up_proj.weight              [intermediate_size, hidden_size]
    model.layers.{i}.mlp.down_proj.weight            [hidden_size, intermediate_size]
    model.norm.weight                                [hidden_size]
    lm_head.weight                                   [vocab_size, hidden_size]  (absent when
                                                      tie_word_embeddings: embed_tokens is used)

BERT (``BertModel``; a ``bert.`` prefix as in ``BertForMaskedLM`` is stripped; the legacy
``LayerNorm.gamma`` / ``.beta`` names are accepted for ``.weight`` / ``.bias``)::

    embeddings.word_embeddings.weight                [vocab_size, hidden_size]
    embeddings.position_embeddings.weight            [max_position_embeddings, hidden_size]
    embeddings.token_type_embeddings.weight          [type_vocab_size, hidden_size]
    embeddings.LayerNorm.weight / .bias              [hidden_size]
    encoder.layer.{i}.attention.self.query.weight    [hidden_size, hidden_size]  (+ .bias [hidden_size])
    encoder.layer.{i}.attention.self.key.weight      (same)
    encoder.layer.{i}.attention.self.value.weight    (same)
    encoder.layer.{i}.attention.output.dense.weight  [hidden_size, hidden_size]  (+ .bias)
    encoder.layer.{i}.attention.output.LayerNorm.weight / .bias       [hidden_size]
    encoder.layer.{i}.intermediate.dense.weight      [intermediate_size, hidden_size] (+ .bias)
    encoder.layer.{i}.output.dense.weight            [hidden_size, intermediate_size] (+ .bias)
    encoder.layer.{i}.output.LayerNorm.weight / .bias                 [hidden_size]

Other tensors (``pooler.*``, ``cls.*``, ``rotary_emb.inv_freq`` ...) are ignored.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mxdv.refmodel.config import ModelConfig

__all__ = [
    "check_weights",
    "load_checkpoint",
    "load_safetensors",
    "random_tiny_config",
    "random_weights",
    "save_safetensors",
    "tiny_config",
    "weight_shapes",
]


def _llama_shapes(c: ModelConfig) -> dict[str, tuple[int, ...]]:
    d, hd, inter = c.hidden_size, c.head_dim, c.intermediate_size
    q_out, kv_out = c.num_attention_heads * hd, c.num_key_value_heads * hd
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (c.vocab_size, d)}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (d,),
            p + "self_attn.q_proj.weight": (q_out, d),
            p + "self_attn.k_proj.weight": (kv_out, d),
            p + "self_attn.v_proj.weight": (kv_out, d),
            p + "self_attn.o_proj.weight": (d, q_out),
            p + "post_attention_layernorm.weight": (d,),
            p + "mlp.gate_proj.weight": (inter, d),
            p + "mlp.up_proj.weight": (inter, d),
            p + "mlp.down_proj.weight": (d, inter),
        })
    shapes["model.norm.weight"] = (d,)
    if not c.tie_word_embeddings:
        shapes["lm_head.weight"] = (c.vocab_size, d)
    return shapes


def _bert_shapes(c: ModelConfig) -> dict[str, tuple[int, ...]]:
    d, inter = c.hidden_size, c.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (c.vocab_size, d),
        "embeddings.position_embeddings.weight": (c.max_position_embeddings, d),
        "embeddings.token_type_embeddings.weight": (c.type_vocab_size, d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
    }
    for i in range(c.num_hidden_layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            shapes[p + name + ".weight"] = (d, d)
            shapes[p + name + ".bias"] = (d,)
        shapes[p + "intermediate.dense.weight"] = (inter, d)
        shapes[p + "intermediate.dense.bias"] = (inter,)
        shapes[p + "output.dense.weight"] = (d, inter)
        shapes[p + "output.dense.bias"] = (d,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + norm + ".weight"] = (d,)
            shapes[p + norm + ".bias"] = (d,)
    return shapes


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the model needs, by Hugging Face name, with its expected shape."""
    return _llama_shapes(config) if config.is_decoder else _bert_shapes(config)


def _canonical_names(config: ModelConfig, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Strip/add the prefixes of the HF model classes and map legacy LayerNorm names."""
    out: dict[str, np.ndarray] = {}
    for name, value in weights.items():
        if config.is_decoder:
            if not name.startswith(("model.", "lm_head.")):
                name = "model." + name
        else:
            if name.startswith("bert."):
                name = name[len("bert."):]
            if ".LayerNorm.gamma" in name or ".LayerNorm.beta" in name:
                name = name.replace(".LayerNorm.gamma", ".LayerNorm.weight").replace(
                    ".LayerNorm.beta", ".LayerNorm.bias")
        out[name] = value
    if config.is_decoder and config.tie_word_embeddings and "model.embed_tokens.weight" in out:
        out["lm_head.weight"] = out["model.embed_tokens.weight"]
    return out


def check_weights(config: ModelConfig, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors of ``weight_shapes(config)`` taken from ``weights`` (names canonicalized).

    Raises ``KeyError`` naming the first missing tensor, ``ValueError`` naming a tensor whose
    shape differs from the config's or whose dtype is not floating point.  With
    ``tie_word_embeddings`` the result also holds ``lm_head.weight`` (the embedding table).
    """
    named = _canonical_names(config, weights)
    shapes = weight_shapes(config)
    checked: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if name not in named:
            raise KeyError(f"missing tensor {name!r} (expected shape {shape}) for {config.model_type} "
                           f"with {config.num_hidden_layers} layers")
        value = np.asarray(named[name])
        if value.shape != shape:
            raise ValueError(f"tensor {name!r} has shape {value.shape}, expected {shape}")
        if value.dtype.kind != "f" and value.dtype.name != "bfloat16":
            raise ValueError(f"tensor {name!r} must be floating point, got dtype {value.dtype}")
        checked[name] = value
    if config.is_decoder and config.tie_word_embeddings:
        checked["lm_head.weight"] = checked["model.embed_tokens.weight"]
    return checked


def random_weights(config: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random float32 weights with HF names.

    Linear weights and embeddings ~ N(0, 1/in_features) and N(0, 1) so activations stay O(1);
    norm weights 1 + N(0, 0.1^2); biases N(0, 0.02^2).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in weight_shapes(config).items():
        if "embed" in name:
            value = rng.standard_normal(shape)
        elif name.endswith(".bias"):
            value = 0.02 * rng.standard_normal(shape)
        elif len(shape) == 1:
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) / np.sqrt(shape[1])
        out[name] = value.astype(np.float32)
    if config.is_decoder and config.tie_word_embeddings:
        out.pop("lm_head.weight", None)
    return out


def tiny_config(model_type: str = "llama") -> ModelConfig:
    """The fixed tiny model of the tests, demo and accuracy table.

    llama: hidden 128, 4 heads of 32, 2 KV heads (GQA), intermediate 352, 2 layers, vocab 256.
    bert: hidden 128, 4 heads of 32, intermediate 512, 2 layers, vocab 256, exact (erf) GELU.
    """
    if model_type == "llama":
        return ModelConfig(model_type="llama", vocab_size=256, hidden_size=128, intermediate_size=352,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           max_position_embeddings=256, hidden_act="silu")
    if model_type == "bert":
        return ModelConfig(model_type="bert", vocab_size=256, hidden_size=128, intermediate_size=512,
                           num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=128,
                           hidden_act="gelu", type_vocab_size=2)
    raise ValueError(f"model_type must be 'llama' or 'bert', got {model_type!r}")


def random_tiny_config(model_type: str = "llama", seed: int = 0) -> ModelConfig:
    """A seeded random small config: heads, head_dim (32 or 64), layers, GQA, MLP width.

    Every feature size is a multiple of 32, so every MX block size (8, 16, 32) divides it.
    """
    if model_type not in ("llama", "bert"):
        raise ValueError(f"model_type must be 'llama' or 'bert', got {model_type!r}")
    rng = np.random.default_rng(seed)
    heads = int(rng.choice([1, 2, 4]))
    head_dim = int(rng.choice([32, 64]))
    hidden = heads * head_dim
    kv_heads = int(rng.choice([k for k in (1, 2, 4) if heads % k == 0])) if model_type == "llama" else heads
    return ModelConfig(
        model_type=model_type,
        vocab_size=int(rng.integers(32, 200)),
        hidden_size=hidden,
        intermediate_size=32 * int(rng.integers(1, 9)),
        num_hidden_layers=int(rng.integers(1, 3)),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=64,
        hidden_act="silu" if model_type == "llama" else str(rng.choice(["gelu", "gelu_pytorch_tanh"])),
        tie_word_embeddings=bool(rng.integers(0, 2)) if model_type == "llama" else False,
    )


def load_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a ``.safetensors`` file as numpy arrays (``safetensors.numpy.load_file``)."""
    from safetensors.numpy import load_file

    return load_file(str(path))


def save_safetensors(weights: dict[str, np.ndarray], path: str | Path) -> None:
    """Write ``weights`` with ``safetensors.numpy.save_file`` (arrays made contiguous)."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(path))


def load_checkpoint(directory: str | Path) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """A HF model folder: ``config.json`` and every ``*.safetensors`` file (shards merged).

    bfloat16 checkpoints need a safetensors build that maps BF16 to numpy; otherwise convert
    the file to float32 first.
    """
    directory = Path(directory)
    config_file = directory / "config.json"
    if not config_file.is_file():
        raise ValueError(f"directory {str(directory)!r} has no config.json")
    config = ModelConfig.from_dict(json.loads(config_file.read_text()))
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise ValueError(f"directory {str(directory)!r} has no .safetensors file")
    weights: dict[str, np.ndarray] = {}
    for file in files:
        weights.update(load_safetensors(file))
    return config, check_weights(config, weights)
