"""Sampling transactions from a validated program, through a :class:`Chooser`.

One sampler serves both compile targets of the language, so they mean the same thing:

* :class:`NumpyChooser`: a fast numpy sampler (``sample_program(schema, program, rng)``);
* :class:`HypothesisChooser`: every structural decision (a range value, a lane, a special's
  position, a sub-range) is a Hypothesis draw, so Hypothesis can shrink, store and replay it;
  bulk per-element fills of large arrays come from a numpy generator whose seed is itself
  drawn by Hypothesis (one draw instead of thousands, which would overrun its buffer).
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from mxdv.schema import Field, Txn, TxnSchema, TxnError
from mxdv.sequences.programs.language import BF16_EXP_HI, BF16_EXP_LO, Domain, ProgramError


class Chooser:
    """The source of every random decision the sampler makes."""

    def integer(self, lo: int, hi: int) -> int:  # inclusive
        raise NotImplementedError

    def index(self, n: int) -> int:
        return self.integer(0, n - 1)

    def coin(self, p: float) -> bool:
        if p <= 0:
            return False
        if p >= 1:
            return True
        return self.integer(0, 999) < int(round(p * 1000))

    def weighted(self, weights: list[float]) -> int:
        total = sum(weights)
        x = self.integer(0, 9999) / 10000 * total
        acc = 0.0
        for i, w in enumerate(weights):
            acc += w
            if x < acc:
                return i
        return len(weights) - 1

    def bulk(self) -> np.random.Generator:
        raise NotImplementedError


class NumpyChooser(Chooser):
    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def coin(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def bulk(self) -> np.random.Generator:
        return self.rng


class HypothesisChooser(Chooser):
    """Decisions drawn through Hypothesis. Hypothesis deliberately draws 0 and small values far
    more often than others (measured here: index 0 of 8 in 48 % of draws), which would make
    every program look alike; so each decision is a full 32-bit draw, scrambled by a constant
    of its position in the example and reduced to the range. The decisions are then close to
    uniform, yet every one is still a Hypothesis choice: examples replay exactly, are stored
    in the database, and shrink (fewer transactions, shorter sequences, shorter lists)."""

    def __init__(self, draw):
        from hypothesis import strategies as st

        self._draw, self._st = draw, st
        self._bulk: np.random.Generator | None = None
        self._u32 = st.integers(0, 2 ** 32 - 1)
        self._position = 0

    def _word(self) -> int:
        self._position += 1
        salt = (self._position * 0x9E3779B1) & 0xFFFFFFFF
        return int(self._draw(self._u32)) ^ salt

    def integer(self, lo: int, hi: int) -> int:
        if lo == hi:
            return lo
        span = hi - lo + 1
        if span > 2 ** 32:
            return int(self._draw(self._st.integers(lo, hi)))
        return lo + self._word() % span

    def bulk(self) -> np.random.Generator:
        if self._bulk is None:
            self._bulk = np.random.default_rng(self._word())
        return self._bulk


# -- integer specs -------------------------------------------------------------------------------
def draw_int(spec: dict, dom: Domain, ch: Chooser, txn: Txn | None = None) -> int:
    if "const" in spec:
        return int(spec["const"])
    if "range" in spec:
        return ch.integer(*spec["range"])
    if "choice" in spec:
        return int(spec["choice"][ch.index(len(spec["choice"]))])
    if "weighted" in spec:
        pairs = spec["weighted"]
        return int(pairs[ch.weighted([w for _, w in pairs])][0])
    if "ref" in spec:
        base = int(txn[spec["ref"]])
        return dom.clamp(base + draw_int(spec["add"], Domain(-(1 << 20), 1 << 20), ch))
    if "corners" in spec:
        edges = dom.edges()
        return int(edges[ch.index(len(edges))])
    if dom.choices:
        return int(dom.choices[ch.index(len(dom.choices))])
    return ch.integer(dom.lo, dom.hi)


def draw_many(spec: dict, dom: Domain, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` independent draws of an element spec (vectorized; ``ref`` is not allowed here)."""
    if "const" in spec:
        return np.full(n, int(spec["const"]), dtype=np.int64)
    if "range" in spec:
        lo, hi = spec["range"]
        return rng.integers(lo, hi + 1, size=n, dtype=np.int64)
    if "choice" in spec or "corners" in spec or ("random" in spec and dom.choices):
        vals = spec.get("choice") or (dom.edges() if "corners" in spec else dom.choices)
        return np.asarray(vals, dtype=np.int64)[rng.integers(len(vals), size=n)]
    if "weighted" in spec:
        vals = np.asarray([v for v, _ in spec["weighted"]], dtype=np.int64)
        w = np.asarray([w for _, w in spec["weighted"]], dtype=np.float64)
        return vals[rng.choice(len(vals), size=n, p=w / w.sum())]
    return rng.integers(dom.lo, dom.hi + 1, size=n, dtype=np.int64)


def _pick_index(idx, length: int, ch: Chooser):
    if idx == "*":
        return slice(None)
    if isinstance(idx, dict):
        v = draw_int(idx, Domain(0, max(0, length - 1)), ch) if "random" not in idx else ch.index(length)
        return int(v) % length
    return int(idx) % length


# -- integer arrays -------------------------------------------------------------------------------
def _int_array(f: Field, spec: dict, dims: tuple, ch: Chooser, schema: TxnSchema,
               fill: str = "uniform") -> np.ndarray:
    dom = Domain.of(f)
    total = int(np.prod(dims)) if dims else 1
    elements = spec.get("elements", {"random": True})
    per = spec.get("per", "element")
    if fill == "corner" and per == "element" and elements == {"random": True} and total:
        from mxdv.sequences.corner_random import draw_array  # corner_random's per-array fill
        arr = np.asarray(draw_array(f, dims, ch.bulk()), dtype=np.int64).reshape(dims)
    elif per == "array" or total == 0:
        arr = np.full(dims, draw_int(elements, dom, ch), dtype=np.int64)
    elif per == "row":
        rows = draw_many(elements, dom, dims[0], ch.bulk())
        arr = np.broadcast_to(rows.reshape((dims[0],) + (1,) * (len(dims) - 1)), dims).copy()
    else:
        arr = draw_many(elements, dom, total, ch.bulk()).reshape(dims)
    if spec.get("zero"):
        arr[ch.bulk().random(dims) < spec["zero"]] = dom.zero()
    signs = spec.get("signs", "any")
    if signs != "any":
        mag = np.abs(arr)
        if signs == "pos":
            arr = np.minimum(mag, dom.hi)
        elif signs == "neg":
            arr = np.maximum(-mag, dom.lo)
        elif signs == "alternate":
            parity = (np.arange(total).reshape(dims) % 2) == 0
            arr = np.where(parity, np.minimum(mag, dom.hi), np.maximum(-mag, dom.lo))
        elif signs == "mixed":
            flat = arr.reshape(-1)
            nz = np.flatnonzero(flat)
            if len(nz) >= 2 and not ((flat > 0).any() and (flat < 0).any()):
                i = nz[ch.index(len(nz))]
                flat[i] = dom.clamp(-flat[i])
            arr = flat.reshape(dims)
    if "diag" in spec:
        d = spec["diag"]
        a0, a1 = d["axes"]
        grids = np.indices(dims)
        mask = grids[a0] == grids[a1]
        fixed = np.ones(dims, dtype=bool)
        for axis, idx in d.get("fix", {}).items():
            ax = int(axis)
            sel = _pick_index(idx, dims[ax], ch)
            if not isinstance(sel, slice):
                fixed &= grids[ax] == sel
        if "off" in d:
            arr[fixed & ~mask] = draw_int(d["off"], dom, ch)
        arr[fixed & mask] = draw_int(d["value"], dom, ch)
    for entry in spec.get("set", []):
        if any(n == 0 for n in dims):
            break
        key = tuple(_pick_index(a, dims[i], ch) for i, a in enumerate(entry["at"]))
        arr[key] = draw_int(entry["value"], dom, ch)
    return arr


# -- BF16 arrays ---------------------------------------------------------------------------------
def bf16_code(sign: int, e: int, mant: int) -> int:
    """The BF16 code with floor(log2|x|) = e (-133..127): a normal for e >= -126, else a
    subnormal whose leading one is at bit e + 133; ``mant`` fills the bits below the leading one."""
    if e >= -126:
        return (sign << 15) | ((e + 127) << 7) | (mant & 0x7F)
    k = e + 133  # 0..6
    return (sign << 15) | (1 << k) | (mant & ((1 << k) - 1))


def _bf16_codes(signs: np.ndarray, exps: np.ndarray, mants: np.ndarray) -> np.ndarray:
    exps = np.asarray(exps, dtype=np.int64)
    normal = ((signs << 15) | ((np.clip(exps, -126, 127) + 127) << 7) | (mants & 0x7F))
    k = np.clip(exps + 133, 0, 6)
    sub = (signs << 15) | (np.int64(1) << k) | (mants & ((np.int64(1) << k) - 1))
    out = np.where(exps >= -126, normal, sub)
    return np.where(exps < BF16_EXP_LO, signs << 15, out)  # below the smallest subnormal: +-0


_SPECIAL_CODES = {"nan": 0x7FC0, "inf": 0x7F80, "-inf": 0xFF80, "+0": 0x0000, "-0": 0x8000,
                  "max": 0x7F7F, "-max": 0xFF7F, "min_normal": 0x0080, "min_subnormal": 0x0001,
                  "max_subnormal": 0x007F}


def _exact_bf16(value: float) -> int | None:
    """The BF16 code of ``value`` when it is exactly representable (else None)."""
    if value == 0 or not np.isfinite(value):
        return None
    code = int(np.array([value], dtype=np.float64).astype(np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)[0])
    back = float(np.array([code], dtype=np.uint16).view(ml_dtypes.bfloat16).astype(np.float64)[0])
    return code if back == value else None


def _bf16_block(spec: dict, lanes: int, ch: Chooser) -> list[int]:
    rng = ch.bulk()
    e = draw_int(spec.get("max_exp", {"random": True}), Domain(BF16_EXP_LO, BF16_EXP_HI), ch)
    mant = draw_int(spec.get("max_mant", {"random": True}), Domain(0, 127), ch)
    lane = draw_int(spec.get("max_lane", {"random": True}), Domain(0, lanes - 1), ch) % lanes
    signs = spec.get("signs", "any")
    if signs == "pos":
        sgn = np.zeros(lanes, dtype=np.int64)
    elif signs == "neg":
        sgn = np.ones(lanes, dtype=np.int64)
    elif signs == "alternate":
        sgn = np.arange(lanes, dtype=np.int64) % 2
    else:
        sgn = rng.integers(0, 2, size=lanes, dtype=np.int64)
    max_code = bf16_code(int(sgn[lane]), e, mant)
    if spec.get("all_equal"):  # every lane the max; only specials still land on their lanes
        return _with_specials(np.full(lanes, max_code, dtype=np.int64), spec, lanes, ch)
    spread = draw_int(spec.get("spread", {"const": 8}), Domain(0, 260), ch)
    if spread == 0:
        exps = np.full(lanes, e, dtype=np.int64)
        mants = rng.integers(0, mant + 1, size=lanes, dtype=np.int64)
    else:
        exps = rng.integers(e - spread, e, size=lanes, dtype=np.int64)  # strictly below the max's binade
        mants = rng.integers(0, 128, size=lanes, dtype=np.int64)
    codes = _bf16_codes(sgn, exps, mants)
    others = np.arange(lanes) != lane
    zeros = np.zeros(lanes, dtype=bool)
    if spec.get("zero"):
        zeros = rng.random(lanes) < spec["zero"]  # the max's lane too: zero 1.0 is an all-zero block
        codes[zeros & others] = sgn[zeros & others] << 15
    if spec.get("subnormal"):
        s = others & (rng.random(lanes) < spec["subnormal"])
        top = min(e - 1, -127)  # subnormal binades strictly below the max's
        if top >= BF16_EXP_LO:
            sub_e = rng.integers(BF16_EXP_LO, top + 1, size=lanes)
            codes[s] = _bf16_codes(sgn, sub_e, rng.integers(0, 128, size=lanes, dtype=np.int64))[s]
    codes[lane] = (int(sgn[lane]) << 15) if zeros[lane] else max_code
    if signs == "mixed":
        nz = [i for i in range(lanes) if codes[i] & 0x7FFF]
        neg = [i for i in nz if codes[i] & 0x8000]
        if len(nz) >= 2 and (not neg or len(neg) == len(nz)):
            i = [j for j in nz if j != lane][ch.index(len(nz) - 1)]
            codes[i] ^= 0x8000
    if "ties" in spec:
        t = spec["ties"]
        w = t["width"]
        se = max(e, -127)
        count = min(draw_int(t["lanes"], Domain(1, lanes), ch), lanes - 1)
        kmax = (1 << (w - 2)) - 1
        ks = [k for k in range(kmax + 1) if t["parity"] == "any" or (k % 2 == 1) == (t["parity"] == "odd")]
        free = [i for i in range(lanes) if i != lane]
        # a tie must stay below the block max (a subnormal max can be below 2^se)
        top = abs(float(np.array([max_code & 0x7FFF], dtype=np.uint16).view(ml_dtypes.bfloat16)[0]))
        ks = [k for k in ks if (k + 0.5) * 2.0 ** (se - (w - 2)) < top]
        for _ in range(count):
            if not free or not ks:
                break
            i = free.pop(ch.index(len(free)))
            k = ks[ch.index(len(ks))]
            code = _exact_bf16((k + 0.5) * 2.0 ** (se - (w - 2)))
            if code is not None:
                codes[i] = code | (int(sgn[i]) << 15)
    return _with_specials(codes, spec, lanes, ch)


def _with_specials(codes: np.ndarray, spec: dict, lanes: int, ch: Chooser) -> list[int]:
    for s in spec.get("specials", []):
        i = _pick_index(s["lane"], lanes, ch)
        codes[i] = _SPECIAL_CODES[s["value"]]
    return [int(c) for c in codes]


def _bf16_array(f: Field, spec: dict, dims: tuple, ch: Chooser) -> np.ndarray:
    lanes = dims[-1]
    nblocks = int(np.prod(dims[:-1])) if len(dims) > 1 else 1
    if lanes == 0 or nblocks == 0:
        return np.zeros(dims, dtype=np.int64)
    blocks = [_bf16_block(spec, lanes, ch) for _ in range(nblocks)]
    return np.asarray(blocks, dtype=np.int64).reshape(dims)


# -- transactions ----------------------------------------------------------------------------------
#: What a program leaves random: ``uniform`` (a field left out, or an integer array's elements
#: with no ``elements`` spec, is uniform over its domain; BF16 arrays uniform bit patterns, as
#: ``random`` draws them) or ``corner`` (those parts drawn as ``corner_random`` draws them: a
#: program with no fields is then exactly a ``corner_random`` transaction).
FILLS = ("uniform", "corner")


def sample_txn(schema: TxnSchema, program: dict, ch: Chooser, fill: str = "uniform") -> Txn:
    """One transaction from a validated program (see :func:`validate_program`); ``fill`` is
    one of :data:`FILLS`."""
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    specs = program.get("fields", {})
    txn: Txn = {}
    corner = None
    if fill == "corner":
        from mxdv.sequences.corner_random import CornerFill
        corner = CornerFill(ch.bulk())
    for f in schema.fields:
        spec = specs.get(f.name)
        if spec is None and corner is not None:
            txn[f.name] = corner.value(f, txn)
            continue
        if not f.shape:
            txn[f.name] = draw_int(spec or {"random": True}, Domain.of(f), ch, txn)
            continue
        dims = f.dims(txn)
        if spec and "values" in spec:
            try:
                txn[f.name] = schema._array(f, spec["values"], dims)
            except TxnError as exc:
                raise ProgramError(f"fields.{f.name}.values: {exc}") from None
            continue
        if f.kind == "bf16" and spec:
            arr = _bf16_array(f, spec, dims, ch)
        elif f.kind == "bf16":  # no spec: uniform bit patterns, as `random` draws them
            arr = ch.bulk().integers(0, 0x10000, size=dims, dtype=np.int64)
        else:
            arr = _int_array(f, spec or {}, dims, ch, schema, fill)
        txn[f.name] = arr.tolist()
    return schema.normalize(txn)


def sample_program(schema: TxnSchema, program: dict, rng: np.random.Generator, count: int | None = None,
                   fill: str = "uniform") -> list[Txn]:
    """``count`` (default the program's ``count``) transactions, numpy-sampled; ``fill`` as in
    :func:`sample_txn`."""
    ch = NumpyChooser(rng)
    return [sample_txn(schema, program, ch, fill) for _ in range(program.get("count", 8) if count is None else count)]


def hypothesis_txn(schema: TxnSchema, program: dict):
    """A Hypothesis strategy drawing one transaction from ``program``."""
    from hypothesis import strategies as st

    @st.composite
    def draw(draw_fn):
        return sample_txn(schema, program, HypothesisChooser(draw_fn))

    return draw()


__all__ = ["FILLS", "Chooser", "NumpyChooser", "HypothesisChooser", "sample_txn", "sample_program",
           "hypothesis_txn", "bf16_code", "draw_int"]
