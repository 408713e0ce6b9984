"""Where a finished mutation campaign goes besides ``runs/``: the results store.

The store (a SQLite database built by another part of the project) was not in this tree when
``mxdv mutate`` was written. :func:`publish` is the one place that hands a campaign over: it
looks for ``mxdv.store`` and calls its ``record_mutation(summary, campaign)`` when both exist,
and otherwise does nothing and says so. Nothing else in ``mxdv.mutate`` knows about the store.
"""
from __future__ import annotations

import importlib
import importlib.util


def publish(summary: dict, campaign: dict) -> str:
    """Record the campaign in the results store if there is one; returns what happened."""
    if importlib.util.find_spec("mxdv.store") is None:
        return "no results store in this installation (mxdv.store); report kept in runs/ only"
    store = importlib.import_module("mxdv.store")
    record = getattr(store, "record_mutation", None)
    if record is None:
        return "mxdv.store has no record_mutation(summary, campaign); report kept in runs/ only"
    return str(record(summary, campaign) or "recorded in the results store")
