"""Performance benchmarks: ``python -m mxdv.bench refmodel`` and ``python -m mxdv.bench sim``
(``all`` runs every benchmark).

``sim``: simulation throughput of every unit in bulk mode, cycle mode and a native C++
Verilator harness on the same traffic (see :func:`bench_sim`; ``--units``, ``--scale``).


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


SIM_UNITS = ("quantizer", "systolic_array", "attention")
#: Transactions per unit: (bulk mode, cycle mode); cycle mode gets fewer (same traffic, a prefix).
SIM_TXNS = {"quantizer": (20000, 500), "systolic_array": (2000, 60), "attention": (60, 6)}


def bench_sim(repeats: int = 1, profile: bool = False, out=sys.stdout, units=SIM_UNITS, scale: float = 1.0,
              native_cycles: int = 2_000_000, batch_size: int = 4096) -> dict[str, dict]:
    """Bulk mode, cycle mode and a native C++ Verilator harness (``mxdv.env.bulk.native_gen``)
    of each unit on the same random traffic (one draw per unit, replayed through the
    ``replay`` strategy; cycle mode runs a prefix of it), all in the SteadyState test (no
    gaps, no backpressure, no resets) so the three drive the same way. Checked transactions/s
    and cycles/s come from each run's own timing (``result.json`` ``wall_s``: the test's run
    phase, after simulator start-up; bulk cycles include each batch's ``bulk_idle_cycles``
    drain window); the native harness checks nothing and times its own clock loop."""
    import json
    import subprocess
    import tempfile
    from pathlib import Path

    import numpy as np

    from mxdv.columns import Columns, is_columnar
    from mxdv.env.bulk import layout as L
    from mxdv.env.bulk.driver import pack_beats
    from mxdv.sequences.replay import save_columns
    from mxdv.env.bulk.native_gen import build_native
    from mxdv.env.run_config import RunConfig
    from mxdv.runs import run_one
    from mxdv.unit import get_unit

    results: dict[str, dict] = {}
    work = Path(tempfile.mkdtemp(prefix="mxdv-bench-sim-"))
    print(f"sim throughput: bulk vs cycle mode vs native C++ Verilator harness (SteadyState, seed 1; {work})",
          file=out, flush=True)
    for name in units:
        unit = get_unit(name)
        n_bulk, n_cycle = (max(1, int(n * scale)) for n in SIM_TXNS.get(name, (2000, 50)))
        rng = np.random.default_rng([1, 0xBE7C])
        txns = [unit.schema.random(rng) for _ in range(n_bulk)]
        if is_columnar(unit.schema):  # a columnar file: the columnar path replays it as arrays
            traffic = save_columns(work / f"{name}.npz", Columns.from_rows(unit.schema, txns))
        else:
            traffic = work / f"{name}.jsonl"
            traffic.write_text("".join(json.dumps({"txn": t}) + "\n" for t in txns))
        row: dict = {}
        for mode, n in (("bulk", n_bulk), ("cycle", n_cycle)):
            cfg = RunConfig(unit=name, strategy="replay", strategy_options={"file": str(traffic)}, seed=1, budget=n,
                            mode=mode, batch_size=batch_size if mode == "bulk" else 16, stop_at_closure=False,
                            run_dir=str(work / f"{name}-{mode}"), bulk_idle_cycles=500)
            r = run_one(cfg, test="SteadyState")
            if r["error"] or r["mismatches"]:
                raise RuntimeError(f"bench sim: {name} {mode} run failed: {r['error'] or r['mismatches']}")
            row[mode] = {"txns": r["checked"], "wall_s": r["wall_s"], "cycles": r["busy_cycles"],
                         "txn_per_s": r["checked"] / r["wall_s"], "cycles_per_s": r["busy_cycles"] / r["wall_s"],
                         "peak_rss_mb": r.get("peak_rss_mb")}
        exe = build_native(unit)
        enc = [unit.encode(t) for t in txns]
        files = []
        for pl in L.Layout.of(unit).inputs:
            beats = [b for e in enc for b in e[pl.port.prefix]]
            rec = np.zeros((len(beats), pl.stim_record), np.uint32)
            rec[:, 0] = [t for t, e in enumerate(enc) for _ in e[pl.port.prefix]]
            rec[:, 1:] = pack_beats(pl, beats)
            files.append(work / f"{name}-{pl.port.prefix}.bin")
            rec.tofile(files[-1])
        nat = json.loads(subprocess.run([str(exe), str(native_cycles), *map(str, files)], check=True,
                                        capture_output=True, text=True).stdout)
        out_per_txn = len(unit.predict(txns[0]))
        row["native"] = {"txns": nat["out_beats"] // max(1, out_per_txn), "wall_s": nat["seconds"],
                         "cycles": nat["cycles"], "txn_per_s": nat["out_beats"] / max(1, out_per_txn) / nat["seconds"],
                         "cycles_per_s": nat["cycles"] / nat["seconds"]}
        results[name] = row
        print(f"\n{unit.variant}:", file=out)
        print(f"  {'harness':8} {'txns':>8} {'wall s':>8} {'checked txn/s':>14} {'cycles/s':>12} {'peak RSS MB':>12}", file=out)
        for h in ("bulk", "cycle", "native"):
            x = row[h]
            label = "txn/s (unchecked)" if h == "native" else ""
            print(f"  {h:8} {x['txns']:>8} {x['wall_s']:>8.2f} {x['txn_per_s']:>14.1f} {x['cycles_per_s']:>12.0f} "
                  f"{x.get('peak_rss_mb') or '':>12} {label}", file=out)
        print(f"  bulk / cycle, checked txn/s: {row['bulk']['txn_per_s'] / row['cycle']['txn_per_s']:.1f}x; "
              f"native / bulk, cycles/s: {row['native']['cycles_per_s'] / row['bulk']['cycles_per_s']:.1f}x", file=out,
              flush=True)
    return results


BENCHMARKS = {"refmodel": bench_refmodel, "sim": bench_sim}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mxdv.bench", description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=[*BENCHMARKS, "all"], help="benchmark to run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path (best is reported)")
    parser.add_argument("--profile", action="store_true", help="cProfile summary of the quantized path")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads for both paths (default 1; 0 keeps the library default)")
    parser.add_argument("--units", default=",".join(SIM_UNITS), help="sim: comma-separated units")
    parser.add_argument("--scale", type=float, default=1.0, help="sim: multiply the transaction counts")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be > 0")
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
        if name == "sim":
            bench_sim(units=[u.strip() for u in args.units.split(",") if u.strip()], scale=args.scale)
        else:
            BENCHMARKS[name](repeats=args.repeats, profile=args.profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
