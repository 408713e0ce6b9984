"""Performance benchmarks: ``python -m mxdv.bench refmodel`` (``all`` runs every benchmark).

``refmodel``: one LLaMA decoder block (hidden 512, 8 heads of 64, no GQA, SwiGLU intermediate
1376 = 43 x 32, batch 1, 512-token prefill from an empty cache), timed in ONE process on the
same weights and input through

* the bit-exact quantized path (``QuantizedPath``, W8A8KV8, block 32, attention tile 16), and
* a plain float32 numpy path of the same graph (``Float32Path``: sgemm, dense float32 softmax).

Each is run ``--repeats`` times after one warm-up, the two paths alternating; the best time of
each is reported and the ratio quantized / float32 (target: <= 10).  ``--profile`` adds a
cProfile summary of one quantized run (where the time goes).

BLAS threads: ``--blas-threads 1`` (the default) pins OpenBLAS/OpenMP/MKL to one thread for both
paths, which makes the ratio a stable measure of work on a shared machine (multi-threaded BLAS
on busy cores spin-waits and varies run to run); ``--blas-threads 0`` keeps the library
default.  The setting is applied through environment variables before numpy is imported, so it
only takes effect when this module is run as a program.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

__all__ = ["BENCHMARKS", "bench_refmodel", "main"]

BLOCK_HIDDEN = 512
BLOCK_HEADS = 8
BLOCK_INTERMEDIATE = 1376
PREFILL_TOKENS = 512
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _block_config():
    from mxdv.refmodel.config import ModelConfig

    return ModelConfig(model_type="llama", vocab_size=32, hidden_size=BLOCK_HIDDEN,
                       intermediate_size=BLOCK_INTERMEDIATE, num_hidden_layers=1,
                       num_attention_heads=BLOCK_HEADS, max_position_embeddings=PREFILL_TOKENS)


def _block_runner(model, h):
    """A callable running ``forward_block(0, h)`` from position 0 on a fresh cache; returns
    its wall time in seconds."""
    import numpy as np

    from mxdv.refmodel import layers

    c = model.config
    rope = layers.rope_cos_sin(np.arange(h.shape[1]), c.head_dim, c.rope_theta, model.path.dtype)
    x = np.asarray(h, model.path.dtype)

    def run() -> float:
        cache = model.new_cache().layers[0]
        t0 = time.perf_counter()
        model.forward_block(0, x, cache, 0, rope)
        return time.perf_counter() - t0

    return run


def _best_times(runners: dict, repeats: int) -> dict[str, float]:
    """Best time of each runner; one warm-up each, then the runners alternate, so a change of
    machine load during the benchmark hits both paths alike."""
    for run in runners.values():
        run()
    best = {name: float("inf") for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            best[name] = min(best[name], run())
    return best


def _blas_threads_text() -> str:
    values = {v: os.environ.get(v) for v in _THREAD_VARIABLES}
    set_values = {k: v for k, v in values.items() if v is not None}
    return ", ".join(f"{k}={v}" for k, v in set_values.items()) if set_values else "library default"


def bench_refmodel(repeats: int = 3, profile: bool = False, out=sys.stdout) -> dict[str, float]:
    """Time the quantized and the float32 decoder block; returns the measured numbers."""
    import numpy as np

    from mxdv.refmodel import layers
    from mxdv.refmodel.config import QuantConfig
    from mxdv.refmodel.model import Float32Path, LlamaDecoder, QuantizedPath
    from mxdv.refmodel.weights import random_weights

    config = _block_config()
    weights = random_weights(config, seed=0)
    h = np.random.default_rng(1).standard_normal((1, PREFILL_TOKENS, BLOCK_HIDDEN)).astype(np.float32)
    quant = QuantConfig.preset("W8A8KV8")
    t_setup = time.perf_counter()
    quantized = LlamaDecoder(config, weights, QuantizedPath(quant))
    t_setup = time.perf_counter() - t_setup
    plain = LlamaDecoder(config, weights, Float32Path())
    best = _best_times({"quantized": _block_runner(quantized, h), "float32": _block_runner(plain, h)}, repeats)
    t_quant, t_f32 = best["quantized"], best["float32"]
    ratio = t_quant / t_f32
    print(f"refmodel decoder block: hidden {BLOCK_HIDDEN}, {BLOCK_HEADS} heads, intermediate "
          f"{BLOCK_INTERMEDIATE}, {PREFILL_TOKENS}-token prefill, batch 1; best of {repeats}; "
          f"BLAS threads: {_blas_threads_text()}", file=out)
    print(f"  bit-exact quantized path ({quant.name}, block 32): {t_quant * 1e3:9.1f} ms "
          f"(weight quantization at load, not timed: {t_setup * 1e3:.1f} ms)", file=out)
    print(f"  float32 numpy path:                              {t_f32 * 1e3:9.1f} ms", file=out)
    print(f"  ratio quantized / float32: {ratio:.2f} (target <= 10)", file=out)
    if profile:
        c = quantized.config
        rope = layers.rope_cos_sin(np.arange(PREFILL_TOKENS), c.head_dim, c.rope_theta, np.float32)
        prof = cProfile.Profile()
        prof.enable()
        quantized.forward_block(0, h, quantized.new_cache().layers[0], 0, rope)
        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(18)
        print(text.getvalue(), file=out)
    return {"quantized_s": t_quant, "float32_s": t_f32, "ratio": ratio}


BENCHMARKS = {"refmodel": bench_refmodel}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mxdv.bench", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=[*BENCHMARKS, "all"], help="benchmark to run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path (best is reported)")
    parser.add_argument("--profile", action="store_true", help="cProfile summary of the quantized path")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads for both paths (default 1; 0 keeps the library default)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.blas_threads < 0:
        parser.error("--blas-threads must be >= 0")
    if args.blas_threads:
        wanted = str(args.blas_threads)
        if "numpy" in sys.modules and any(os.environ.get(v) != wanted for v in _THREAD_VARIABLES):
            print("note: numpy is already imported, --blas-threads has no effect", file=sys.stderr)
        for variable in _THREAD_VARIABLES:
            os.environ[variable] = wanted
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    for name in names:
        BENCHMARKS[name](repeats=args.repeats, profile=args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
