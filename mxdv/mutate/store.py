"""Where a finished mutation campaign goes besides ``runs/``: the results store.

:func:`publish` hands a campaign to the regression results store (``mxdv.results_db``, the
SQLite file ``mxdv regress`` writes, default ``runs/results.db``): tables ``mutate_campaigns``,
``mutate_scores`` and ``mutants``. Nothing else in ``mxdv.mutate`` knows about the store.
"""
from __future__ import annotations

from pathlib import Path

from mxdv.results_db import DEFAULT_DB, ResultsDB


def publish(summary: dict, campaign: dict, db_path: str | Path | None = None) -> str:
    """Record the campaign in the results store at ``db_path`` (default ``runs/results.db``);
    returns what happened. A file that is not a results database raises
    :class:`mxdv.results_db.ResultsDBError` naming it."""
    path = Path(db_path) if db_path is not None else DEFAULT_DB
    db = ResultsDB(path)
    try:
        cid = db.add_mutation_campaign(summary, campaign)
    finally:
        db.close()
    return f"recorded in the results store {path} as mutation campaign {cid}"
