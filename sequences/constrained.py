"""``constrained``: constrained-random biased toward the coverage plan's corners.

Each transaction targets one still-uncovered bin: the bin's hint (a constrained-random
recipe the unit's plan declares) builds it. Bins without a hint, and a share of the batch
(``explore``, default 0.25), get corner-biased random transactions: every scalar or array
element is drawn from the field's declared corner values with probability 1/2
(:func:`~mxdv.sequences.corner_random.corner_biased`). On bulk mode's columnar path the
corner-biased share is drawn as columns and only the hinted transactions as dicts.
"""
from __future__ import annotations

import numpy as np

from mxdv.sequences.corner_random import corner_biased, corner_biased_columns
from mxdv.sequences.registry import BatchStrategy, register_strategy


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

    def propose_columns(self, ctx, n):
        """The same mix for bulk mode's columnar path: which transactions follow a hint is
        drawn first, the corner-biased ones come as columns at once, the hinted ones as dicts
        put in their places (the draws differ from :meth:`propose`'s for the same seed)."""
        from mxdv.columns import Columns, is_columnar

        schema = ctx.unit.schema
        if not is_columnar(schema):
            return None
        explore = float(self.options.get("explore", 0.25))
        targets = [b for b in ctx.uncovered() if b.hint is not None]
        hinted = ctx.rng.random(n) >= explore if targets else np.zeros(n, dtype=bool)
        cols = corner_biased_columns(schema, ctx.rng, n)
        k = int(hinted.sum())
        if k:
            picks = ctx.rng.integers(len(targets), size=k)
            rows = Columns.from_rows(schema, [schema.normalize(targets[int(i)].hint(ctx.rng)) for i in picks])
            for name, a in cols.arrays.items():
                a[hinted] = rows.arrays[name]
        return cols
