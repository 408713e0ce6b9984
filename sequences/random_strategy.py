"""``random``: uniformly random transactions over the schema (for BF16, uniform bit patterns).
The baseline every other strategy is measured against."""
from __future__ import annotations

from mxdv.sequences.registry import BatchStrategy, register_strategy


@register_strategy("random")
class RandomStrategy(BatchStrategy):
    summary = "uniform random transactions (uniform bit patterns); the baseline"

    def propose(self, ctx, n):
        return [ctx.unit.schema.random(ctx.rng) for _ in range(n)]
