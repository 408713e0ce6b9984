"""Model and quantization configuration of the reference inference stack.

:class:`ModelConfig` uses the Hugging Face ``config.json`` field names, so
``ModelConfig.from_dict(json.load(open("config.json")))`` reads a real LLaMA or BERT config
(unknown fields are ignored).  :class:`QuantConfig` gives each tensor class (weights,
activations, KV cache) its own MX format and block size; the named presets are in
:data:`QUANT_PRESETS`.  NUMERICS.md chapter "The rest of the stack" documents every field.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "ACTIVATIONS",
    "MODEL_TYPES",
    "QUANT_PRESETS",
    "ModelConfig",
    "QuantConfig",
    "TensorQuant",
]

#: ``model_type`` values: a LLaMA-style decoder and a BERT-style encoder.
MODEL_TYPES = ("llama", "bert")
#: ``hidden_act`` values.  "silu" feeds SwiGLU (decoders); "gelu" is the exact erf GELU
#: (HF BERT's default); "gelu_new" / "gelu_pytorch_tanh" are the tanh approximation.
ACTIVATIONS = ("silu", "gelu", "gelu_new", "gelu_pytorch_tanh")
_BLOCK_SIZES = (8, 16, 32)
#: Formats the block-scaled GEMM (``gemm.mx_matmul``) and the attention unit
#: (``attention.mx_attention``) take: weights, activations and the KV cache.
_GEMM_FORMATS = ("mxint8", "mxint6", "mxint4")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters with Hugging Face field names.

    ``model_type`` "llama": pre-norm decoder (RMSNorm, RoPE, causal attention, SwiGLU MLP,
    final RMSNorm, LM head).  ``model_type`` "bert": post-norm encoder (absolute position and
    token-type embeddings, embedding LayerNorm, bidirectional attention with a padding mask,
    GELU MLP, LayerNorm after every residual add).
    """

    model_type: str = "llama"
    vocab_size: int = 256
    hidden_size: int = 128
    intermediate_size: int = 352
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int | None = None  # None: same as num_attention_heads (no GQA)
    max_position_embeddings: int = 256
    hidden_act: str = "silu"
    rms_norm_eps: float = 1e-6  # llama
    layer_norm_eps: float = 1e-12  # bert
    rope_theta: float = 10000.0  # llama
    type_vocab_size: int = 2  # bert
    tie_word_embeddings: bool = False  # llama: lm_head.weight = model.embed_tokens.weight

    def __post_init__(self) -> None:
        if self.num_key_value_heads is None:
            object.__setattr__(self, "num_key_value_heads", self.num_attention_heads)
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {ACTIVATIONS}, got {self.hidden_act!r}")
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
                     "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )
        if self.model_type == "llama" and self.head_dim % 2:
            raise ValueError(f"head_dim {self.head_dim} must be even for RoPE (hidden_size / heads)")
        if self.model_type == "bert" and self.num_key_value_heads != self.num_attention_heads:
            raise ValueError("num_key_value_heads must equal num_attention_heads for bert")
        for name in ("rms_norm_eps", "layer_norm_eps", "rope_theta"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def is_decoder(self) -> bool:
        return self.model_type == "llama"

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> "ModelConfig":
        """Build from a Hugging Face ``config.json`` dict; unknown keys are ignored.

        A BERT config without ``hidden_act`` gets "gelu"; a LLaMA config gets "silu".
        """
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in config.items() if k in names}
        model_type = kwargs.get("model_type", "llama")
        kwargs.setdefault("hidden_act", "gelu" if model_type == "bert" else "silu")
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TensorQuant:
    """MX format and block size of one tensor class."""

    fmt: str
    block_size: int = 32

    def __post_init__(self) -> None:
        if self.block_size not in _BLOCK_SIZES:
            raise ValueError(f"block_size must be one of {_BLOCK_SIZES}, got {self.block_size!r}")


def _check_gemm_format(name: str, tq: TensorQuant) -> None:
    if tq.fmt not in _GEMM_FORMATS:
        raise ValueError(f"{name}.fmt must be one of {_GEMM_FORMATS} (MXINT operands of the GEMM "
                         f"and the attention unit), got {tq.fmt!r}")


@dataclass(frozen=True)
class QuantConfig:
    """Per tensor class quantization: ``weights`` (every Linear weight, LM head included),
    ``activations`` (every GEMM input and the attention queries) and ``kv`` (the KV cache).

    Weights are quantized along the reduction axis (``in_features``), activations along the
    feature axis, K and V per token along the head dimension.  ``name`` is informational.
    """

    weights: TensorQuant = field(default_factory=lambda: TensorQuant("mxint8"))
    activations: TensorQuant = field(default_factory=lambda: TensorQuant("mxint8"))
    kv: TensorQuant = field(default_factory=lambda: TensorQuant("mxint8"))
    name: str = "custom"

    def __post_init__(self) -> None:
        _check_gemm_format("weights", self.weights)
        _check_gemm_format("activations", self.activations)
        _check_gemm_format("kv", self.kv)  # the attention unit takes MXINT K/V as well
        if self.kv.block_size != self.activations.block_size:
            raise ValueError(
                f"kv.block_size {self.kv.block_size} must equal activations.block_size "
                f"{self.activations.block_size} (Q and K share the head_dim blocks in Q K^T)"
            )
        if self.weights.block_size != self.activations.block_size:
            raise ValueError(
                f"weights.block_size {self.weights.block_size} must equal activations.block_size "
                f"{self.activations.block_size} (both sides of a GEMM share the K blocks)"
            )

    @classmethod
    def preset(cls, preset: str) -> "QuantConfig":
        """One of :data:`QUANT_PRESETS` ("W8A8KV8", "W4A8KV8", "W4A8KV4"), block size 32."""
        try:
            w, a, kv = QUANT_PRESETS[preset]
        except (KeyError, TypeError):
            raise ValueError(f"preset must be one of {sorted(QUANT_PRESETS)}, got {preset!r}") from None
        return cls(TensorQuant(w), TensorQuant(a), TensorQuant(kv), name=preset)


#: Named presets: (weights, activations, kv) formats, all with block size 32.
QUANT_PRESETS: dict[str, tuple[str, str, str]] = {
    "W8A8KV8": ("mxint8", "mxint8", "mxint8"),
    "W4A8KV8": ("mxint4", "mxint8", "mxint8"),
    "W4A8KV4": ("mxint4", "mxint8", "mxint4"),
}
