"""A reference-model trace per transaction, computed once however many bins read it.

A coverage-directed generator asks every open bin's distance of the same transaction in turn
(the attention plan's exp2 table alone has 64 bins), and many of those distances read the same
reference-model trace. :class:`TraceCache` keeps the traces of the last few transactions, keyed
by the transaction object itself: it holds the object, so its ``id`` is not reused meanwhile,
and a new dict with equal content is a new entry (transactions are not hashable)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable


class TraceCache:
    """``cache(txn)`` is ``compute(txn)``, remembered for the ``size`` newest transactions."""

    def __init__(self, compute: Callable[[dict], Any], size: int = 16):
        if size < 1:
            raise ValueError(f"TraceCache: size must be >= 1, got {size}")
        self.compute, self.size = compute, size
        self._entries: OrderedDict[int, tuple[dict, Any]] = OrderedDict()

    def __call__(self, txn: dict):
        hit = self._entries.get(id(txn))
        if hit is not None and hit[0] is txn:
            return hit[1]
        trace = self.compute(txn)
        if len(self._entries) >= self.size:
            self._entries.popitem(last=False)
        self._entries[id(txn)] = (txn, trace)
        return trace
