"""``random``: uniformly random transactions over the schema (for BF16, uniform bit patterns).
The baseline every other strategy is measured against.

Option ``pin`` (a JSON object ``{field: value}``) fixes fields and draws the rest, e.g.
``--option 'pin={"n_rows": 1, "n_keys": 64, "causal": 0}'`` for a throughput measurement on
long decode sequences; values are checked like any transaction's.
"""
from __future__ import annotations

from mxdv.sequences.registry import BatchStrategy, register_strategy


@register_strategy("random")
class RandomStrategy(BatchStrategy):
    summary = "uniform random transactions (uniform bit patterns); the baseline"

    def propose(self, ctx, n):
        return [ctx.unit.schema.random(ctx.rng, **self._pin(ctx)) for _ in range(n)]

    def propose_columns(self, ctx, n):
        """The same distribution drawn a field at a time (bulk mode's columnar path; the draws
        differ from :meth:`propose`'s for the same seed)."""
        from mxdv.columns import is_columnar, random_columns

        if not is_columnar(ctx.unit.schema):
            return None
        return random_columns(ctx.unit.schema, ctx.rng, n, **self._pin(ctx))

    def _pin(self, ctx) -> dict:
        pin = self.options.get("pin") or {}
        if not isinstance(pin, dict):
            raise ValueError(f"random strategy: option pin must be a JSON object {{field: value}}, got {pin!r}")
        names = [f.name for f in ctx.unit.schema.fields]
        unknown = sorted(set(pin) - set(names))
        if unknown:
            raise ValueError(f"random strategy: option pin names unknown field(s) {unknown}; "
                             f"{ctx.unit.name} has {names}")
        return pin
