"""``replay``: drive transactions saved in a JSON-lines file (a ``mismatches.jsonl`` of an
earlier run, or hand-written ``{"txn": {...}}`` lines). Option ``file`` (``--option file=...``)."""
from __future__ import annotations

import json
from pathlib import Path

from mxdv.sequences.registry import BatchStrategy, register_strategy


@register_strategy("replay")
class ReplayStrategy(BatchStrategy):
    summary = "replay transactions from a JSON-lines file (option file=PATH)"

    def propose(self, ctx, n):
        if not hasattr(self, "_queue"):
            path = self.options.get("file")
            if not path:
                raise ValueError("strategy replay needs --option file=PATH")
            lines = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
            self._queue = [x["txn"] if "txn" in x else x for x in lines if x.get("txn", x)]
        batch, self._queue = self._queue[:n], self._queue[n:]
        if not self._queue and not batch:
            ctx.cfg.budget = ctx.submitted  # nothing left: end the run
        return batch
