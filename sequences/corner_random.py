"""``corner_random``: the corner-biased constrained random a DV engineer writes in an afternoon.

It knows the transaction's field types (``mxdv.schema.Field``: kind, ``lo``/``hi``, width,
choices, shape, declared corners) and nothing else: it never reads the coverage plan, its
uncovered bins or their hints. It is the honest baseline for strategies that do read the plan
(``constrained``) or learn from coverage (``hypothesis``, ``llm``); ``random`` (uniform bit
patterns) stays as the naive one.

Per transaction, each scalar is drawn at an edge of its domain (``lo``, ``hi``, ``lo + 1``,
``hi - 1``), at a declared corner, at a small distance above ``lo`` or uniformly; each array
field picks one fill mode (:data:`ARRAY_MODES`):

* ``uniform``: every element uniform over the domain (what ``random`` does);
* ``corners``: every element one of the field's corners;
* ``sparse``: a base fill (uniform, constant or zero-like) with 1..3 elements set to corners,
  at the first, the last or a random position;
* ``constant``: every element one value (a corner or a uniform draw);
* ``edge``: ``int``/``bits`` elements a small distance from ``lo``, from ``hi`` or (signed
  domains) from 0;
* ``cluster``: every element within a small window around one value;
* ``float``: ``bf16`` elements with exponents in a narrow window below a random top exponent
  (subnormals included), short mantissas (exact ties become likely) and a sign pattern
  (all positive, all negative or mixed);
* ``diagonal`` (arrays of 2 or more dimensions): identity-like, 1 where the indices of two
  axes are equal (the other axes at index 0), the zero-like value elsewhere.

A share of transactions (:data:`EXTREME_SHARE`) instead sets every array to a constant
``lo`` or ``hi`` (the all-min / all-max test).

Signed ``int`` arrays also get a sign pattern at random (all elements made non-negative or
non-positive where the domain allows). Scalars that size arrays are decided first, so every
draw has the right shape; every value stays in its field's domain.
"""
from __future__ import annotations

import numpy as np

from mxdv.schema import Field, TxnSchema
from mxdv.sequences.registry import BatchStrategy, register_strategy

ARRAY_MODES = ("uniform", "corners", "sparse", "constant", "edge", "cluster", "float", "diagonal")
#: Share of transactions whose arrays are all constant at their domain edges (all-min / all-max).
EXTREME_SHARE = 0.1


def corner_biased(schema: TxnSchema, rng: np.random.Generator) -> dict:
    """A random transaction with each scalar and each array element drawn from its field's
    corner values with probability 1/2. A scalar that sizes an array (``n_keys`` in
    ``shape=("n_keys", d)``) is decided before the arrays are drawn, so shapes stay right.
    (``constrained`` uses this for its exploring share.)"""
    sizing = _sizing_fields(schema)
    pinned = {}
    for f in schema.fields:
        if f.name in sizing and f.corners and rng.random() < 0.5:
            pinned[f.name] = int(rng.choice(np.asarray(f.corners, dtype=np.int64)))
    txn = schema.random(rng, **pinned)
    for f in schema.fields:
        if not f.corners or f.name in sizing:
            continue
        corners = np.asarray(f.corners, dtype=np.int64)
        if not f.shape:
            if rng.random() < 0.5:
                txn[f.name] = int(rng.choice(corners))
        else:
            arr = np.asarray(txn[f.name], dtype=np.int64)
            mask = rng.random(arr.shape) < 0.5
            arr[mask] = rng.choice(corners, size=int(mask.sum()))
            txn[f.name] = arr.tolist()
    return txn


def corner_biased_columns(schema: TxnSchema, rng: np.random.Generator, n: int):
    """:func:`corner_biased`'s distribution for ``n`` transactions at once, as a
    ``mxdv.columns.Columns`` batch (a field at a time: the draws differ from ``n`` calls of
    :func:`corner_biased` for the same seed). Sizing fields come first in a schema, so each
    array is cut to its transaction's lengths after they are decided."""
    from mxdv.columns import Columns, _live, padded_shape

    arrays: dict[str, np.ndarray] = {}
    for f in schema.fields:
        size = (n, *padded_shape(schema, f))
        if f.kind == "choice":
            a = np.asarray(f.choices, dtype=np.int64)[rng.integers(len(f.choices), size=size)]
        else:
            a = rng.integers(f.lo, f.hi + 1, size=size, dtype=np.int64)
        if f.corners:
            corners = np.asarray(f.corners, dtype=np.int64)
            mask = rng.random(size) < 0.5
            a[mask] = corners[rng.integers(len(corners), size=int(mask.sum()))]
        live = _live(schema, f, arrays | {f.name: a}, n)
        arrays[f.name] = a if live is None else np.where(live, a, 0)
    return Columns(schema, arrays)


def _sizing_fields(schema: TxnSchema) -> set[str]:
    return {d for f in schema.fields for d in f.shape if isinstance(d, str)}


# -- scalars ---------------------------------------------------------------------------------
def _small(rng: np.random.Generator, limit: int) -> int:
    """A small non-negative distance (0, 1, 2, ... up to ``limit``), smaller ones more likely."""
    if limit <= 0:
        return 0
    k = int(rng.integers(0, max(1, int(limit).bit_length()) + 1))
    return int(rng.integers(0, min(limit, (1 << k) - 1) + 1)) if k else 0


def draw_scalar(f: Field, rng: np.random.Generator) -> int:
    """One value of a scalar field: an edge, a corner, small above ``lo``, or uniform."""
    if f.kind == "choice":
        return f.choices[int(rng.integers(len(f.choices)))]
    u = rng.random()
    if u < 0.3:
        edges = sorted({f.lo, f.hi, min(f.lo + 1, f.hi), max(f.hi - 1, f.lo)})
        return int(edges[int(rng.integers(len(edges)))])
    if u < 0.5 and f.corners:
        return int(f.corners[int(rng.integers(len(f.corners)))])
    if u < 0.65:
        return f.lo + _small(rng, min(f.hi - f.lo, 64))
    return f.draw_scalar(rng)


# -- arrays ----------------------------------------------------------------------------------
def _corner_values(f: Field, rng: np.random.Generator) -> np.ndarray:
    if f.kind == "choice":
        return np.asarray(f.choices, dtype=np.int64)
    if f.corners:
        return np.asarray(f.corners, dtype=np.int64)
    return np.asarray(sorted({f.lo, f.hi, min(max(0, f.lo), f.hi)}), dtype=np.int64)


def _uniform(f: Field, dims: tuple, rng: np.random.Generator) -> np.ndarray:
    if f.kind == "choice":
        return np.asarray(f.choices, dtype=np.int64)[rng.integers(len(f.choices), size=dims)]
    return rng.integers(f.lo, f.hi + 1, size=dims, dtype=np.int64)


def _zero_like(f: Field) -> int:
    """The value closest to 0 in the domain (0 for bf16: +0)."""
    if f.kind == "choice":
        return int(min(f.choices, key=abs))
    return int(min(max(0, f.lo), f.hi))


def _float_block(dims: tuple, rng: np.random.Generator) -> np.ndarray:
    """BF16 codes with exponents in a narrow window, short mantissas and a sign pattern."""
    u = rng.random()
    if u < 0.15:
        top = int(rng.integers(0, 4))          # subnormals and the smallest normals
    elif u < 0.3:
        top = int(rng.integers(251, 255))      # the largest finite binades
    else:
        top = int(rng.integers(0, 255))
    spread = int(rng.choice((0, 1, 2, 4, 8, 16, 40)))
    exps = top - rng.integers(0, spread + 1, size=dims)
    exps = np.clip(exps, 0, 254)
    keep = int(rng.integers(0, 8))             # mantissa bits kept: 0 (powers of two) .. 7
    mant = rng.integers(0, 128, size=dims) & (0x7F & ~((1 << (7 - keep)) - 1))
    if rng.random() < 0.15:                    # some lanes all-ones mantissas (rounding carries)
        mant = np.where(rng.random(dims) < 0.5, 0x7F, mant)
    signs = {0: np.zeros(dims, dtype=np.int64), 1: np.ones(dims, dtype=np.int64)}.get(
        int(rng.integers(0, 3)), rng.integers(0, 2, size=dims))
    codes = (signs << 15) | (exps << 7) | mant
    if rng.random() < 0.2:                     # a few zeros in the block
        codes = np.where(rng.random(dims) < 0.25, 0, codes)
    return codes.astype(np.int64)


def _positions(total: int, rng: np.random.Generator) -> list[int]:
    """1..3 flat positions, often the first or the last one."""
    out = []
    for _ in range(int(rng.integers(1, 4))):
        u = rng.random()
        out.append(0 if u < 0.3 else total - 1 if u < 0.6 else int(rng.integers(total)))
    return out


def _diagonal(f: Field, dims: tuple, rng: np.random.Generator) -> np.ndarray:
    """Identity-like: 1 (or ``hi`` when 1 is outside the domain) where the indices of two
    randomly chosen axes are equal and every other axis is at index 0."""
    arr = np.full(dims, _zero_like(f), dtype=np.int64)
    a, b = sorted(rng.choice(len(dims), size=2, replace=False).tolist())
    one = 1 if f.lo <= 1 <= f.hi else f.hi
    for i in range(min(dims[a], dims[b])):
        idx = [0] * len(dims)
        idx[a] = idx[b] = i
        arr[tuple(idx)] = one
    return arr


def draw_array(f: Field, dims: tuple, rng: np.random.Generator, mode: str | None = None) -> list:
    """One array field's values in one of :data:`ARRAY_MODES` (random when ``mode`` is None);
    a mode that does not apply to the field's kind falls back to ``uniform``."""
    mode = mode or ARRAY_MODES[int(rng.integers(len(ARRAY_MODES)))]
    if mode not in ARRAY_MODES:
        raise ValueError(f"corner_random: unknown array mode {mode!r}; known: {', '.join(ARRAY_MODES)}")
    corners = _corner_values(f, rng)
    numeric = f.kind in ("int", "bits")
    if mode == "corners":
        arr = rng.choice(corners, size=dims)
    elif mode == "sparse":
        u = rng.random()
        base = (_uniform(f, dims, rng) if u < 0.4 else
                np.full(dims, _zero_like(f), dtype=np.int64) if u < 0.7 else
                np.full(dims, int(rng.choice(corners)), dtype=np.int64))
        flat = base.reshape(-1)
        for pos in _positions(flat.size, rng):
            flat[pos] = int(rng.choice(corners))
        arr = flat.reshape(dims)
    elif mode == "constant":
        value = int(rng.choice(corners)) if rng.random() < 0.5 else int(_uniform(f, (), rng))
        arr = np.full(dims, value, dtype=np.int64)
    elif mode == "edge" and numeric:
        limit = max(1, min(f.hi - f.lo, 16))
        scale = np.left_shift(1, rng.integers(0, limit.bit_length() + 1, size=dims))
        dist = np.minimum((rng.random(dims) * scale).astype(np.int64), limit)
        where = int(rng.integers(0, 3 if f.lo < 0 < f.hi else 2))
        if where == 0:
            arr = f.lo + dist
        elif where == 1:
            arr = f.hi - dist
        else:
            arr = np.where(rng.random(dims) < 0.5, dist, -dist)
    elif mode == "cluster" and numeric:
        width = int(rng.choice((1, 2, 4, 8)))
        center = int(_uniform(f, (), rng))
        arr = center + rng.integers(-width, width + 1, size=dims)
    elif mode == "float" and f.kind == "bf16":
        arr = _float_block(dims, rng)
    elif mode == "diagonal" and numeric and len(dims) >= 2:
        arr = _diagonal(f, dims, rng)
    else:
        arr = _uniform(f, dims, rng)
    arr = np.asarray(arr, dtype=np.int64)
    if f.kind == "int" and f.lo < 0 < f.hi and mode not in ("corners", "constant") and rng.random() < 0.25:
        arr = np.abs(arr) if rng.random() < 0.5 else -np.abs(arr)   # a sign pattern
    if f.kind != "choice":
        arr = np.clip(arr, f.lo, f.hi)
    return arr.tolist()


class CornerFill:
    """corner_random's draws, one field at a time, for one transaction: what
    :func:`draw_transaction` does, and what a stimulus program's ``fill="corner"`` uses for the
    fields it leaves out (so a program that leaves every field out *is* ``corner_random``).
    The transaction-level choice (the all-min / all-max share) is made once, at construction."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.extreme = rng.random() < EXTREME_SHARE
        self.shared_edge = int(rng.integers(0, 3))      # 0: all lo, 1: all hi, 2: per field

    def value(self, f: Field, txn: dict):
        """The field's value (``txn`` holds the fields before it, which size its arrays)."""
        rng = self.rng
        if not f.shape:
            return draw_scalar(f, rng)
        if self.extreme and f.kind != "choice":
            edge = self.shared_edge if self.shared_edge < 2 else int(rng.integers(0, 2))
            return np.full(f.dims(txn), f.hi if edge else f.lo, dtype=np.int64).tolist()
        return draw_array(f, f.dims(txn), rng)


def draw_transaction(schema: TxnSchema, rng: np.random.Generator) -> dict:
    """One corner-random transaction of ``schema`` (fields in order, so sizes come first)."""
    txn: dict = {}
    fill = CornerFill(rng)
    for f in schema.fields:
        txn[f.name] = fill.value(f, txn)
    return txn


@register_strategy("corner_random")
class CornerRandomStrategy(BatchStrategy):
    summary = ("corner-biased random from the field types only (edges, corners, sparse/constant "
               "fills, float windows); never reads the plan: the honest baseline")

    def propose(self, ctx, n):
        schema = ctx.unit.schema
        return [draw_transaction(schema, ctx.rng) for _ in range(n)]


__all__ = ["ARRAY_MODES", "CornerFill", "CornerRandomStrategy", "corner_biased", "corner_biased_columns", "draw_array", "draw_scalar",
           "draw_transaction"]
