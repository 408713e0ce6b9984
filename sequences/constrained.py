"""``constrained``: constrained-random biased toward the coverage plan's corners.

Each transaction targets one still-uncovered bin: the bin's hint (a constrained-random
recipe the unit's plan declares) builds it. Bins without a hint, and a share of the batch
(``explore``, default 0.25), get corner-biased random transactions: every scalar or array
element is drawn from the field's declared corner values with probability 1/2.
"""
from __future__ import annotations

import numpy as np

from mxdv.schema import TxnSchema
from mxdv.sequences.registry import BatchStrategy, register_strategy


def corner_biased(schema: TxnSchema, rng: np.random.Generator) -> dict:
    """A random transaction with each scalar and each array element drawn from its field's
    corner values with probability 1/2. A scalar that sizes an array (``n_keys`` in
    ``shape=("n_keys", d)``) is decided before the arrays are drawn, so shapes stay right."""
    sizing = {d for f in schema.fields for d in f.shape if isinstance(d, str)}
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


@register_strategy("constrained")
class ConstrainedStrategy(BatchStrategy):
    summary = "constrained-random: each transaction aims at an uncovered bin of the plan"
    reads_hints = True

    def propose(self, ctx, n):
        explore = float(self.options.get("explore", 0.25))
        targets = [b for b in ctx.uncovered() if b.hint is not None]
        out = []
        for _ in range(n):
            if targets and ctx.rng.random() >= explore:
                out.append(targets[int(ctx.rng.integers(len(targets)))].hint(ctx.rng))
            else:
                out.append(corner_biased(ctx.unit.schema, ctx.rng))
        return out
