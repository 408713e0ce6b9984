"""``constrained``: constrained-random biased toward the coverage plan's corners.

Each transaction targets one still-uncovered bin: the bin's hint (a constrained-random
recipe the unit's plan declares) builds it. Bins without a hint, and a share of the batch
(``explore``, default 0.25), get corner-biased random transactions: every scalar or array
element is drawn from the field's declared corner values with probability 1/2
(:func:`~mxdv.sequences.corner_random.corner_biased`).
"""
from __future__ import annotations

from mxdv.sequences.corner_random import corner_biased
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
