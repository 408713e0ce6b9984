"""A user-defined strategy in under 30 lines (the README's example, run by the test suite).

It aims every transaction at an uncovered bin whose name mentions a lane edge or an
element width, and otherwise draws uniformly random transactions.
"""
from mxdv.sequences import BatchStrategy, register_strategy


@register_strategy("edge_lanes")
class EdgeLanes(BatchStrategy):
    summary = "user example: hints of lane/width bins first, then random"
    reads_hints = True  # it uses the plan's hints, so it says so

    def propose(self, ctx, n):
        wanted = [b for b in ctx.uncovered() if b.hint and ("lane" in b.name or "width" in b.name)]
        out = []
        for i in range(n):
            if wanted:
                out.append(wanted[i % len(wanted)].hint(ctx.rng))
            else:
                out.append(ctx.unit.schema.random(ctx.rng))
        return out
