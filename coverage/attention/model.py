"""Coverage model of the attention unit: the plan (every bin explained), sampling, and hints.

A transaction is one query tile against one KV sequence: ``n_rows`` query rows (``q_codes``,
``q_scales``), ``n_keys`` keys (``k_codes``/``k_scales``, ``v_codes``/``v_scales``), ``causal``
and ``q_offset``. Sampling runs the reference model's trace (``mx_attention_trace``: scores,
logits, visibility, the running max after every tile, NaN masks) on the input and reads the
facts off it; hints are the constrained-random recipes for the ``constrained`` strategy and the
scripted LLM stand-in.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from mxdv.coverage.plan import Bin, BinGroup, CoveragePlan, any_of, env_cross_plan_group, protocol_group
from mxdv.refmodel.attention import (LOGIT_FRAC_BITS, ROUND_TIE_EVEN, ROUND_TIE_ODD, VALUE_FRAC_BITS,
                                     WEIGHT_FRAC_BITS, exp2_lut_index, mx_attention_trace)

_E8M0_NAN = 0xFF
_E8M0_MAX = 0xFE
_S_MAX, _S_MIN = (1 << 31) - 1, -(1 << 31)
_V_MAX, _V_MIN = (1 << 27) - 1, -(1 << 27)
#: m - t at or above this (xi >= 21): the key's weight 2^-(m-t) underflows to exactly 0.
UNDERFLOW = (WEIGHT_FRAC_BITS + 1) << LOGIT_FRAC_BITS
_NEG = np.iinfo(np.int64).min


def length_bins(tile: int, maxlen: int) -> list[tuple[str, int, str]]:
    """(bin name, sequence length, words) for 1, TILE-1, TILE, TILE+1 and MAXLEN, duplicates
    (small TILE or MAXLEN) dropped so every bin is reachable and distinct."""
    out, seen = [], set()
    for name, n, words in (("len.1", 1, "a single key (one partial tile)"),
                           ("len.tile_m1", tile - 1, "TILE-1 keys (one tile, one key short)"),
                           ("len.tile", tile, "exactly TILE keys (one full tile)"),
                           ("len.tile_p1", tile + 1, "TILE+1 keys (a second tile holding one key)"),
                           ("len.max", maxlen, "MAXLEN keys (the longest sequence)")):
        if 1 <= n <= maxlen and n not in seen:
            seen.add(n)
            out.append((name, n, words))
    return out


# -- transaction construction (hints) ----------------------------------------------------------
class _P:
    """The RTL parameters a hint needs, with derived sizes."""

    def __init__(self, d, block, kb, qrows, tile, maxlen):
        self.d, self.block, self.kb, self.qrows, self.tile, self.maxlen = d, block, kb, qrows, tile, maxlen
        self.nb = d // block
        self.kmax = (1 << (kb - 1)) - 1


def _draw(rng, lo, hi) -> int:
    return int(rng.integers(lo, hi + 1))


def _base(rng, p: _P, n_rows=None, n_keys=None, causal=0, q_offset=None, amp=40) -> dict:
    """Moderate random operands: codes in +-amp, scales near 2^0, no NaN, no saturation."""
    n_rows = _draw(rng, 1, p.qrows) if n_rows is None else n_rows
    n_keys = _draw(rng, 1, p.maxlen) if n_keys is None else n_keys
    kamp = min(amp, p.kmax)
    return {
        "n_rows": n_rows, "n_keys": n_keys, "causal": causal,
        "q_offset": _draw(rng, 0, p.maxlen) if q_offset is None else q_offset,
        "q_codes": rng.integers(-amp, amp + 1, (n_rows, p.d)).tolist(),
        "q_scales": rng.integers(125, 130, (n_rows, p.nb)).tolist(),
        "k_codes": rng.integers(-kamp, kamp + 1, (n_keys, p.d)).tolist(),
        "k_scales": rng.integers(125, 130, (n_keys, p.nb)).tolist(),
        "v_codes": rng.integers(-kamp, kamp + 1, (n_keys, p.d)).tolist(),
        "v_scales": rng.integers(125, 130, (n_keys, p.nb)).tolist(),
    }


def _leveled(rng, p: _P, levels: list[int]) -> dict:
    """Scores ordered by ``levels``: every Q element 64 and key n's K elements all levels[n]
    (scales 2^0), so the logit of key n grows strictly with levels[n], the same in every row."""
    t = _base(rng, p, n_keys=len(levels))
    t["q_codes"] = [[64] * p.d for _ in range(t["n_rows"])]
    t["q_scales"] = [[127] * p.nb for _ in range(t["n_rows"])]
    t["k_codes"] = [[int(lv)] * p.d for lv in levels]
    t["k_scales"] = [[127] * p.nb for _ in levels]
    return t


def _tile_levels(rng, p: _P, n_keys: int, tile_max: list[int]) -> list[int]:
    """Levels whose maximum in tile i is tile_max[i] (at a random key), the others below -kmax//2."""
    lv = []
    for i, mx in enumerate(tile_max):
        n = min(p.tile, n_keys - i * p.tile)
        chunk = [int(x) for x in rng.integers(-p.kmax, min(mx, -p.kmax // 2) + 1, n)]
        chunk[_draw(rng, 0, n - 1)] = mx
        lv += chunk
    return lv


def _n_tiles(n_keys: int, tile: int) -> int:
    return -(-n_keys // tile)


def _hint_len(n):
    return lambda rng, p: _base(rng, p, n_keys=n)


def _hint_rows(which):
    def hint(rng, p):
        n = {"decode": 1, "prefill": _draw(rng, 2, p.qrows), "full": p.qrows}[which]
        return _base(rng, p, n_rows=n)
    return hint


def _hint_max(where):
    def hint(rng, p):
        lo_keys = 2 * p.tile + 1 if where in ("middle", "every") else p.tile + 1
        top = min(p.maxlen, p.tile * (2 * p.kmax + 1))
        n_keys = _draw(rng, lo_keys, top)
        nt = _n_tiles(n_keys, p.tile)
        k = p.kmax
        if where == "first":
            maxes = [k] + [_draw(rng, 0, k - 1) for _ in range(nt - 1)]
        elif where == "middle":
            mid = _draw(rng, 1, nt - 2)
            maxes = [_draw(rng, 0, k - 2) if i < mid else (k if i == mid else _draw(rng, 0, k - 1))
                     for i in range(nt)]
        elif where == "last":
            maxes = [_draw(rng, 0, k - 1) for _ in range(nt - 1)] + [k]
        else:  # every tile raises the max
            maxes = [k - (nt - 1) + i for i in range(nt)]
        return _leveled(rng, p, _tile_levels(rng, p, n_keys, maxes))
    return hint


def _hint_all_equal(rng, p):
    t = _base(rng, p, n_keys=_draw(rng, 2, p.maxlen))
    t["k_codes"] = [list(t["k_codes"][0]) for _ in range(t["n_keys"])]
    t["k_scales"] = [list(t["k_scales"][0]) for _ in range(t["n_keys"])]
    return t


def _hint_underflow(rng, p):
    t = _base(rng, p, n_keys=_draw(rng, 2, p.maxlen))
    t["q_codes"] = [[100] * p.d for _ in range(t["n_rows"])]
    t["q_scales"] = [[128] * p.nb for _ in range(t["n_rows"])]
    big = _draw(rng, 0, t["n_keys"] - 1)
    t["k_codes"] = [[p.kmax if n == big else -p.kmax] * p.d for n in range(t["n_keys"])]
    t["k_scales"] = [[129] * p.nb for _ in range(t["n_keys"])]
    return t


def _hint_score_sat(sign):
    def hint(rng, p):
        t = _base(rng, p)
        t["q_codes"] = [[100] * p.d for _ in range(t["n_rows"])]
        t["q_scales"] = [[_E8M0_MAX] * p.nb for _ in range(t["n_rows"])]
        n = _draw(rng, 0, t["n_keys"] - 1)
        t["k_codes"][n] = [sign * p.kmax] * p.d
        t["k_scales"][n] = [_E8M0_MAX] * p.nb
        return t
    return hint


def _hint_value_sat(sign):
    def hint(rng, p):
        t = _base(rng, p)
        t["q_codes"] = [[0] * p.d for _ in range(t["n_rows"])]  # all scores 0: every weight 1.0
        n = _draw(rng, 0, t["n_keys"] - 1)
        t["v_codes"][n] = [sign * p.kmax] * p.d
        t["v_scales"][n] = [_E8M0_MAX] * p.nb
        return t
    return hint


def _hint_causal(kind):
    def hint(rng, p):
        if kind == "one":
            n_keys, off = _draw(rng, 2, p.maxlen), 0
        elif kind == "all":
            n_keys = _draw(rng, 2, p.maxlen)
            off = _draw(rng, n_keys - 1, n_keys + 3)
        elif kind == "partial":
            n_keys = _draw(rng, 3, p.maxlen)
            off = _draw(rng, 1, n_keys - 2)
        else:  # a row that sees nothing of a later tile
            n_keys = _draw(rng, p.tile + 1, p.maxlen)
            off = _draw(rng, 0, p.tile - 1)
        return _base(rng, p, n_keys=n_keys, causal=1, q_offset=off)
    return hint


def _hint_nan(kind):
    def hint(rng, p):
        if kind in ("k_masked", "v_masked"):  # the last key is after every row's position
            n_keys = _draw(rng, 2, p.maxlen)
            t = _base(rng, p, n_rows=_draw(rng, 1, min(p.qrows, n_keys - 1)), n_keys=n_keys,
                      causal=1, q_offset=0)
            key = n_keys - 1
        else:
            t = _base(rng, p)
            key = _draw(rng, 0, t["n_keys"] - 1)
        blk = _draw(rng, 0, p.nb - 1)
        if kind == "q":
            t["q_scales"][_draw(rng, 0, t["n_rows"] - 1)][blk] = _E8M0_NAN
        elif kind.startswith("k"):
            t["k_scales"][key][blk] = _E8M0_NAN
        else:
            t["v_scales"][key][blk] = _E8M0_NAN
        return t
    return hint


def _hint_k_max_scale(rng, p):
    t = _base(rng, p)
    t["k_scales"][_draw(rng, 0, t["n_keys"] - 1)][_draw(rng, 0, p.nb - 1)] = _E8M0_MAX
    return t


def _hint_zero_out(rng, p):
    t = _base(rng, p)
    t["v_codes"] = [[0] * p.d for _ in range(t["n_keys"])]
    return t


def _hint_plain(rng, p):
    return _base(rng, p)


# -- the plan ---------------------------------------------------------------------------------
def _groups(p: _P):
    lengths = [(name, f"sequence length {n}: {words}",
                "tile bookkeeping: the partial last tile, the tile boundary and the length limit "
                "(kv_last vs. the MAXLEN stop) are where key counting goes wrong", _hint_len(n))
               for name, n, words in length_bins(p.tile, p.maxlen)]
    rows = [("rows.decode", "one query row (decode)", "the single-row path: q_last on the first beat, "
             "out_last on the only result", _hint_rows("decode"))]
    if p.qrows >= 2:
        rows.append(("rows.prefill", "two or more query rows (a prefill tile)",
                     "per-row state (max, sum, accumulator) must stay separate; causal/offset come "
                     "from row 0's beat only", _hint_rows("prefill")))
    if p.qrows >= 3:
        rows.append(("rows.full", f"QROWS={p.qrows} rows (a full tile)", "the row counter's upper end",
                     _hint_rows("full")))
    tiles = [("max.first_tile_only", "a row's running max is set in the first tile and never changes "
              "in later tiles that it sees", "later tiles must be added without rescaling (factor exactly 1)",
              _hint_max("first"))]
    if p.maxlen >= 2 * p.tile + 1:
        tiles.append(("max.change_middle", "a row's running max rises in a middle tile (neither first "
                      "nor last)", "rescale of l and O, then further tiles on the new max", _hint_max("middle")))
    tiles.append(("max.change_last", "a row's running max rises in the last tile",
                  "the last tile's max update and rescale right before the division (a skipped "
                  "update on the last tile shows only here)", _hint_max("last")))
    if p.maxlen >= 2 * p.tile + 1:
        tiles.append(("max.change_every", "a row's running max rises in every tile after the first "
                      "(at least three tiles)", "rescales compound: each one must use the previous max",
                      _hint_max("every")))
    scores = [
        ("scores.all_equal", "a row sees two or more keys and all their logits are equal",
         "every weight is exactly 1.0 (2^0); ties in the max search", _hint_all_equal),
        ("scores.underflow", "some visible key's weight 2^-(m-t) underflows to exactly 0 (m - t >= 21)",
         "the 2^x shift saturates to 0 instead of wrapping its shift amount", _hint_underflow),
        ("scores.sat_pos", "a visible score saturates at +2^31-1 (the largest positive magnitude)",
         "sat32 of a block term and of the sum: the sign of the saturated value", _hint_score_sat(+1)),
        ("scores.sat_neg", "a visible score saturates at -2^31 (the largest negative magnitude)",
         "sat32 on the negative side; a swapped sign makes this key the maximum", _hint_score_sat(-1)),
        ("values.sat_pos", "a V element with non-zero weight saturates to +2^27-1 in fixed point",
         "sat28 of Vfx on the positive side", _hint_value_sat(+1)),
        ("values.sat_neg", "a V element with non-zero weight saturates to -2^27 in fixed point",
         "sat28 of Vfx on the negative side", _hint_value_sat(-1)),
        ("div.round_up_sticky", "an output division whose guard bit is 1, lsb 0 and remainder non-zero "
         "(round to nearest even must round up)", "the divider's sticky bit: without it this rounds down",
         _hint_plain),
        ("out.zero", "a non-NaN output element is exactly 0 (O = 0)", "the divider's zero path", _hint_zero_out),
        ("scale.k_max", "a visible key has a K block scale 0xFE (2^127, largest finite)",
         "the largest finite scale must not be taken for NaN (0xFF)", _hint_k_max_scale),
    ]
    causal = [
        ("causal.one_visible", "causal, and a row sees exactly one key (key 0) of a longer sequence",
         "the mask boundary at its tightest: an off-by-one hides or shows key 1", _hint_causal("one")),
        ("causal.all_visible", "causal, and a row sees every key of a sequence of two or more keys",
         "the mask must not cut the end of the sequence", _hint_causal("all")),
        ("causal.partial", "causal, and a row sees more than one key but not all of them",
         "the boundary n <= q_offset + i inside the sequence", _hint_causal("partial")),
        ("causal.row_skips_tile", "causal, and a row sees no key of some tile after the first",
         "a row with nothing visible in a tile must keep its max, sum and accumulator", _hint_causal("skip")),
    ]
    v_words = ("only its block's columns become NaN, not the whole row" if p.nb > 1
               else "its columns (here the whole row: one block) become NaN")
    nan = [
        ("nan.q", "a Q block scale is 0xFF (NaN)", "the row's output is all NaN (0x7FC0)", _hint_nan("q")),
        ("nan.k_visible", "a visible key has a K block scale 0xFF",
         "a NaN key poisons every row that sees it", _hint_nan("k")),
        ("nan.k_masked", "a K block scale 0xFF on a key that a causal row does not see, and that row is not NaN",
         "a masked NaN key must not poison the row", _hint_nan("k_masked")),
        ("nan.v_columns", "a visible key has a V block scale 0xFF in a row that is otherwise not NaN",
         v_words, _hint_nan("v")),
        ("nan.v_masked", "a V block scale 0xFF on a key that a causal row does not see, and that row has no NaN",
         "a masked NaN value must not poison the row", _hint_nan("v_masked")),
    ]
    return [
        ("length", "Sequence lengths around the tile size and the maximum.", lengths),
        ("rows", "Query tile sizes: decode and prefill.", rows),
        ("max", "Where the online softmax's running max changes, tile by tile.", tiles),
        ("numerics", "Scores, weights, values and the division at their edges.", scores),
        ("causal", "The causal mask.", causal),
        ("nan", "NaN scale codes (E8M0 0xFF) in Q, K and V, visible and masked.", nan),
    ]


# -- internal corners (from the trace), goals and the environment crosses ----------------------
#: Bins where one hit proves little: each needs this many (``Bin.at_least``).
GOALS = {"div.tie_even": 2, "div.tie_odd": 2, "div.round_up_sticky": 2,
         **{f"exp2.{w}_{i}": 3 for w in ("hi", "lo") for i in range(32)}}


def _hint_div_tie(odd: bool):
    """Two keys of equal weight (Q = 0: every score 0) whose fixed-point values are 256 and an
    odd c < 256 in every column: O / l = (256 + c) / 2 needs 9 significant bits, a tie."""
    def hint(rng, p):
        t = _base(rng, p, n_keys=2, causal=0)
        t["q_codes"] = [[0] * p.d for _ in range(t["n_rows"])]
        cs = [c for c in range(1, p.kmax + 1, 2) if (c % 4 == 3) == odd]
        c = int(rng.choice(cs))
        t["v_codes"] = [[1] * p.d, [c] * p.d]
        base = 127 - VALUE_FRAC_BITS + (p.kb - 2)          # this V scale makes Vfx = the code
        t["v_scales"] = [[base + 8] * p.nb, [base] * p.nb]
        return t
    return hint


def _hint_multi_row_skip(rng, p):
    n_keys = _draw(rng, p.tile + 1, p.maxlen)
    return _base(rng, p, n_rows=_draw(rng, 2, p.qrows), n_keys=n_keys, causal=1, q_offset=p.tile - 1)


def _extra_groups(p: _P):
    internal = [
        ("div.tie_even", "an output division O / l is an exact tie at the BF16 significand (half an ulp) with "
         "an even truncated significand: stays", "round-half-to-even at the divider: half-up rounding gets this "
         "wrong; only an exact remainder of half the divisor shows it", _hint_div_tie(False)),
        ("div.tie_odd", "an output division O / l is an exact tie with an odd truncated significand: rounds up",
         "the other half of ties-to-even in the divider", _hint_div_tie(True)),
    ]
    if p.qrows >= 2:
        internal.append(("causal.multi_row_skip", "causal, several query rows, and one row sees no key of a "
                         "tile after the first that another row of the same tile does see",
                         "per-row skip: the tile is processed for one row and must leave the other row's "
                         "max, sum and accumulator untouched", _hint_multi_row_skip))
    lut = [(f"exp2.{which}_{i}", f"a visible key with non-zero weight reads {which.upper()}-table entry {i} of "
            f"the 2^-x unit ({'f & 31' if which == 'lo' else 'f >> 5'} = {i}, f the fraction of m - t)",
            "each table entry is a constant of its own: a wrong entry only shows in outputs whose keys "
            "read it, several times over", _hint_lut)
           for which in ("hi", "lo") for i in range(32)]
    return [("internal", "Internal corners read from the reference model's trace: how the divider rounds "
             "(`AttentionTrace.div_rounding`) and per-row tile visibility.", internal),
            ("exp2_lut", "Every entry of the 2^-x unit's two 32-entry tables (rule A4: pf = LUT_HI[f >> 5] * "
             "LUT_LO[f & 31], f the fraction of m - t), read by a key with non-zero weight in a non-NaN row "
             "(`exp2_lut_index` on the trace's logits and running max).", lut)]


def _hint_lut(rng, p):
    """The longest sequences with spread scores: each key's m - t reads one entry of each table."""
    t = _base(rng, p, n_rows=p.qrows, n_keys=p.maxlen, amp=int(rng.choice([20, 40, 80])))
    t["q_scales"] = rng.integers(126, 129, (t["n_rows"], p.nb)).tolist()
    return t


ENV_CLASSES = (
    ("nan", "a NaN scale code in Q, K or V", ("nan.q", "nan.k_visible", "nan.v_columns"),
     any_of(_hint_nan("q"), _hint_nan("k"), _hint_nan("v"))),
    ("saturate", "a saturated score or value", ("scores.sat_pos", "scores.sat_neg", "values.sat_pos", "values.sat_neg"),
     any_of(_hint_score_sat(1), _hint_score_sat(-1), _hint_value_sat(1), _hint_value_sat(-1))),
    ("causal_skip", "a causal row that skips a tile", ("causal.row_skips_tile",), _hint_causal("skip")),
)


@lru_cache(maxsize=None)
def build_plan(d: int, block: int, kb: int, qrows: int, tile: int, maxlen: int) -> CoveragePlan:
    from mxdv.coverage.attention.distance import distances

    p = _P(d, block, kb, qrows, tile, maxlen)
    far = distances(p)
    groups = []
    for gname, doc, bins in _groups(p) + _extra_groups(p):
        groups.append(BinGroup(gname, doc, tuple(
            Bin(name, meaning, why, (lambda h: (lambda rng: h(rng, p)))(hint), distance=far.get(name),
                at_least=GOALS.get(name, 1))
            for name, meaning, why, hint in bins)))
    groups.append(env_cross_plan_group(
        ENV_CLASSES, p, "a NaN scale, a saturation or a skipped tile",
        "Content classes crossed with what the environment did to the transaction: "
        "its output stalled before it was accepted, or it came right after a reset (simulation only)."))
    groups.append(protocol_group())
    intro = (f"The attention unit (D={d}, BLOCK={block}, MXINT{kb} K/V, up to {qrows} query rows, "
             f"tiles of {tile} keys, sequences of up to {maxlen} keys) computes softmax attention "
             "over an MX KV cache bit for bit as refmodel/numerics/40_attention.md specifies. A "
             "transaction is one query tile and one key/value sequence. Bins are sampled from the "
             "reference model's trace (scores, logits, visibility, running max after each tile, NaN "
             "masks) of the transaction's inputs, independently of the DUT. The head dimension is an RTL "
             "parameter: the suites run this plan on D=16 (default), D=32 and D=64 with MXINT4 K/V "
             "(`Unit.regress_variants`), and the closure table has a row per variant.")
    return CoveragePlan("attention", intro, tuple(groups))


# -- sampling ---------------------------------------------------------------------------------
def scaled_quotients(acc: np.ndarray, l_sum: np.ndarray):
    """(num, div) per output with O != 0 and l != 0: |O| / (l * 2^14) as exact Python ints,
    scaled by a power of two so that 256 <= num / div < 512 (the BF16 significand and the guard bit)."""
    for a, b in zip(np.abs(acc).ravel().tolist(), l_sum.ravel().tolist()):
        if a == 0 or b == 0:
            continue
        den = b << VALUE_FRAC_BITS
        k = 8 - (a.bit_length() - den.bit_length())
        num, div = (a << k, den) if k >= 0 else (a, den << -k)
        if num // div >= 512:
            div <<= 1
        elif num // div < 256:
            num <<= 1
        yield num, div


def _sticky_round_up(acc: np.ndarray, l_sum: np.ndarray) -> bool:
    """Whether some |O| / (l * 2^14) has guard 1, lsb 0 and a non-zero remainder (exact ints)."""
    for num, div in scaled_quotients(acc, l_sum):
        q, rem = divmod(num, div)
        if q & 1 and not q & 2 and rem:
            return True
    return False


def key_gaps(tr, tile: int) -> np.ndarray:
    """The gap m - t per [row, key] (0 where the key is not visible), m the running max after
    the key's tile."""
    vis = np.asarray(tr.visible)
    tile_of = np.arange(vis.shape[1]) // tile
    m_at = np.asarray(tr.tile_max)[tile_of].T             # running max after each key's tile [rows, keys]
    return np.where(vis, m_at - np.where(vis, np.asarray(tr.logits), 0), 0)


def sample(txn: dict, q, k, v, params: dict, trace=None) -> set[str]:
    """The bins one sequence hits; ``trace``: its ``mx_attention_trace`` when the caller has
    it already (a batch's, from ``mx_attention_each``)."""
    tile, maxlen, qrows = params["TILE"], params["MAXLEN"], params["QROWS"]
    n_rows, n_keys, causal = txn["n_rows"], txn["n_keys"], bool(txn["causal"])
    tr = trace if trace is not None else mx_attention_trace(q, k, v, causal=causal, q_offset=int(txn["q_offset"]), tile=tile)
    hits: set[str] = set()
    for name, n, _ in length_bins(tile, maxlen):
        if n_keys == n:
            hits.add(name)
    hits.add("rows.decode" if n_rows == 1 else "rows.prefill")
    if n_rows == qrows >= 3:
        hits.add("rows.full")

    vis = np.asarray(tr.visible)                          # [rows, keys]
    row_nan = np.asarray(tr.row_nan)                      # [rows]
    nan = np.asarray(tr.nan)                              # [rows, d]
    ok = ~row_nan
    ok_vis = vis & ok[:, None]
    n_vis = vis.sum(axis=1)
    logits = np.asarray(tr.logits)
    tile_of = np.arange(n_keys) // tile
    gap = key_gaps(tr, tile)
    weighted = vis & (gap < UNDERFLOW)                    # keys whose weight is non-zero

    # running max, tile by tile
    tm = np.asarray(tr.tile_max)                          # [tiles, rows]
    nt = tm.shape[0]
    if nt >= 2:
        changed = (tm[:-1] != _NEG) & (tm[1:] != tm[:-1])  # [tiles-1, rows]: change at tile i+1
        later = vis[:, tile:].any(axis=1)
        if ((tm[0] != _NEG) & ~changed.any(axis=0) & later & ok).any():
            hits.add("max.first_tile_only")
        if (changed[-1] & ok).any():
            hits.add("max.change_last")
        if nt >= 3:
            if (changed[:-1].any(axis=0) & ok).any():
                hits.add("max.change_middle")
            if (changed.all(axis=0) & ok).any():
                hits.add("max.change_every")

    # numerics
    masked_logits = np.where(vis, logits, _NEG)
    row_top = masked_logits.max(axis=1)
    if ((n_vis >= 2) & ok & (np.where(vis, logits, row_top[:, None]) == row_top[:, None]).all(axis=1)).any():
        hits.add("scores.all_equal")
    if (ok_vis & ~weighted).any():
        hits.add("scores.underflow")
    scores = np.asarray(tr.scores)
    if (ok_vis & (scores == _S_MAX)).any():
        hits.add("scores.sat_pos")
    if (ok_vis & (scores == _S_MIN)).any():
        hits.add("scores.sat_neg")
    vfx = np.asarray(tr.vfx)                              # [keys, d]
    live = (weighted & ok[:, None])[:, :, None] & ~nan[:, None, :]    # [rows, keys, d]
    if (live & (vfx == _V_MAX)[None]).any():
        hits.add("values.sat_pos")
    if (live & (vfx == _V_MIN)[None]).any():
        hits.add("values.sat_neg")
    bits = np.asarray(tr.bits)
    if ((bits == 0) & ~nan).any():
        hits.add("out.zero")
    acc, l_sum = np.asarray(tr.acc), np.asarray(tr.l)
    if _sticky_round_up(np.where(nan, 0, acc), np.broadcast_to(l_sum[:, None], acc.shape)):
        hits.add("div.round_up_sticky")
    lut_hi, lut_lo = exp2_lut_index(gap[weighted & ok[:, None]])
    hits.update(f"exp2.hi_{i}" for i in np.unique(lut_hi).tolist())
    hits.update(f"exp2.lo_{i}" for i in np.unique(lut_lo).tolist())
    rounding = np.asarray(tr.div_rounding)
    if ((rounding == ROUND_TIE_EVEN) & ~nan).any():
        hits.add("div.tie_even")
    if ((rounding == ROUND_TIE_ODD) & ~nan).any():
        hits.add("div.tie_odd")
    k_scales = np.asarray(txn["k_scales"])
    if (ok_vis & (k_scales == _E8M0_MAX).any(axis=1)[None]).any():
        hits.add("scale.k_max")

    # causal mask
    if causal and n_keys >= 2:
        if (n_vis == 1).any():
            hits.add("causal.one_visible")
        if (n_vis == n_keys).any():
            hits.add("causal.all_visible")
        if ((n_vis > 1) & (n_vis < n_keys)).any():
            hits.add("causal.partial")
        if nt >= 2:
            seen = np.zeros((n_rows, nt), dtype=bool)
            np.logical_or.at(seen.T, tile_of, vis.T)
            if (~seen[:, 1:]).any():
                hits.add("causal.row_skips_tile")
            if n_rows >= 2 and ((~seen[:, 1:]).any(axis=0) & seen[:, 1:].any(axis=0)).any():
                hits.add("causal.multi_row_skip")

    # NaN scale codes
    if (np.asarray(txn["q_scales"]) == _E8M0_NAN).any():
        hits.add("nan.q")
    k_nan = (k_scales == _E8M0_NAN).any(axis=1)
    v_nan = (np.asarray(txn["v_scales"]) == _E8M0_NAN).any(axis=1)
    if (vis & k_nan[None]).any():
        hits.add("nan.k_visible")
    if (((~vis & k_nan[None]).any(axis=1)) & ok).any():
        hits.add("nan.k_masked")
    v_cols = nan.any(axis=1) & (~nan.all(axis=1) if nan.shape[1] > q.block_size else True)
    if ((vis & v_nan[None]).any(axis=1) & ok & v_cols).any():
        hits.add("nan.v_columns")
    if (((~vis & v_nan[None]).any(axis=1)) & ok & ~nan.any(axis=1)).any():
        hits.add("nan.v_masked")
    return hits
