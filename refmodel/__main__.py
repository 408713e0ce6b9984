"""``python -m mxdv.refmodel demo | accuracy``.

* ``demo``: the seeded tiny decoder greedily generates a few tokens after a prompt (prefill,
  then decode with the KV cache) in the float64 golden path and in two quantization configs,
  and prints each config's tokens and its error against the golden path.
* ``accuracy``: the markdown table of NUMERICS.md "The rest of the stack": the tiny decoder
  and encoder, quantized vs float64 golden, for every preset.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from mxdv.refmodel.config import QUANT_PRESETS, QuantConfig
from mxdv.refmodel.model import BertEncoder, GoldenPath, LlamaDecoder, QuantizedPath
from mxdv.refmodel.weights import random_weights, tiny_config

__all__ = ["accuracy_rows", "accuracy_table", "compare", "demo", "main"]

WEIGHT_SEED = 0
INPUT_SEED = 1
# decoder workload of the accuracy table: 4 sequences of 32 tokens, 16 prefilled, 16 decoded
DEC_BATCH, DEC_TOKENS, DEC_PREFILL = 4, 32, 16
# encoder workload: 4 sequences padded to 32 tokens with these real lengths
ENC_LENGTHS = (32, 27, 20, 9)


def compare(quantized_hidden, golden_hidden, quantized_logits=None, golden_logits=None) -> dict[str, float]:
    """Cosine similarity (all values flattened, float64), max abs error, and the fraction of
    positions whose logits' argmax (first index of the max) agrees."""
    q = np.asarray(quantized_hidden, np.float64).ravel()
    g = np.asarray(golden_hidden, np.float64).ravel()
    out = {
        "cosine": float(q @ g / (np.linalg.norm(q) * np.linalg.norm(g))),
        "max_abs_err": float(np.max(np.abs(q - g))),
        "max_abs_golden": float(np.max(np.abs(g))),
    }
    if quantized_logits is not None:
        out["top1"] = float(np.mean(np.argmax(quantized_logits, -1) == np.argmax(golden_logits, -1)))
    return out


def _decoder_inputs(config):
    return np.random.default_rng(INPUT_SEED).integers(0, config.vocab_size, (DEC_BATCH, DEC_TOKENS))


def _encoder_inputs(config):
    rng = np.random.default_rng(INPUT_SEED)
    ids = rng.integers(0, config.vocab_size, (len(ENC_LENGTHS), max(ENC_LENGTHS)))
    types = (np.arange(ids.shape[1]) >= ids.shape[1] // 2).astype(np.int64)[None].repeat(len(ENC_LENGTHS), 0)
    return ids, types, np.asarray(ENC_LENGTHS)


def accuracy_rows(presets=tuple(QUANT_PRESETS)) -> list[dict]:
    """One row per (model, preset): the :func:`compare` numbers on the fixed workloads."""
    rows = []
    dec_cfg = tiny_config("llama")
    dec_w = random_weights(dec_cfg, WEIGHT_SEED)
    ids = _decoder_inputs(dec_cfg)
    golden = LlamaDecoder(dec_cfg, dec_w, GoldenPath()).prefill_then_decode(ids, DEC_PREFILL)
    for name in presets:
        out = LlamaDecoder(dec_cfg, dec_w, QuantizedPath(QuantConfig.preset(name))).prefill_then_decode(
            ids, DEC_PREFILL)
        rows.append({"model": "decoder", "preset": name,
                     **compare(out.hidden, golden.hidden, out.logits, golden.logits)})
    enc_cfg = tiny_config("bert")
    enc_w = random_weights(enc_cfg, WEIGHT_SEED)
    ids, types, lengths = _encoder_inputs(enc_cfg)
    real = np.arange(ids.shape[1])[None, :] < lengths[:, None]  # unpadded positions only
    golden_h = BertEncoder(enc_cfg, enc_w, GoldenPath()).forward(ids, types, lengths)
    for name in presets:
        h = BertEncoder(enc_cfg, enc_w, QuantizedPath(QuantConfig.preset(name))).forward(ids, types, lengths)
        rows.append({"model": "encoder", "preset": name, **compare(h[real], golden_h[real])})
    return rows


def accuracy_table(rows=None) -> str:
    rows = accuracy_rows() if rows is None else rows
    lines = [
        "| model | preset (W / A / KV) | cosine (final hidden) | max abs err (final hidden) "
        "| max abs golden | top-1 agreement |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        w, a, kv = QUANT_PRESETS[r["preset"]]
        top1 = f"{100 * r['top1']:.1f} %" if "top1" in r else "n/a"
        lines.append(f"| {r['model']} | {r['preset']} ({w} / {a} / {kv}) | {r['cosine']:.6f} "
                     f"| {r['max_abs_err']:.4g} | {r['max_abs_golden']:.4g} | {top1} |")
    return "\n".join(lines)


def demo(presets=("W8A8KV8", "W4A8KV4"), prompt_len: int = 8, new_tokens: int = 8, out=sys.stdout) -> None:
    config = tiny_config("llama")
    weights = random_weights(config, WEIGHT_SEED)
    prompt = np.random.default_rng(INPUT_SEED).integers(0, config.vocab_size, (1, prompt_len))
    print(f"tiny decoder: hidden {config.hidden_size}, {config.num_hidden_layers} layers, "
          f"{config.num_attention_heads} heads / {config.num_key_value_heads} KV heads, vocab "
          f"{config.vocab_size}; prompt {prompt_len} tokens, then {new_tokens} greedy tokens", file=out)
    golden_model = LlamaDecoder(config, weights, GoldenPath())
    golden_tokens = golden_model.generate(prompt, new_tokens)
    golden = golden_model.prefill_then_decode(golden_tokens, prompt_len)
    print(f"  golden float64 tokens : {golden_tokens[0, prompt_len:].tolist()}", file=out)
    for name in presets:
        model = LlamaDecoder(config, weights, QuantizedPath(QuantConfig.preset(name)))
        tokens = model.generate(prompt, new_tokens)
        # teacher-forced on the golden tokens, so every step sees the same context
        forced = model.prefill_then_decode(golden_tokens, prompt_len)
        stats = compare(forced.hidden, golden.hidden, forced.logits, golden.logits)
        step_err = np.max(np.abs(forced.logits[0] - golden.logits[0]), axis=-1)
        print(f"  {name:8s} tokens       : {tokens[0, prompt_len:].tolist()} "
              f"({int(np.sum(tokens == golden_tokens)) - prompt_len}/{new_tokens} equal to golden)", file=out)
        print(f"    vs golden (teacher-forced): hidden cosine {stats['cosine']:.6f}, hidden max abs err "
              f"{stats['max_abs_err']:.4g}, logits top-1 agreement {100 * stats['top1']:.1f} %", file=out)
        print("    max abs logit error per position (prefill | decode steps): "
              + " ".join(f"{e:.3g}" for e in step_err[:prompt_len]) + " | "
              + " ".join(f"{e:.3g}" for e in step_err[prompt_len:]), file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mxdv.refmodel", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["demo", "accuracy"])
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo()
    else:
        print(accuracy_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
