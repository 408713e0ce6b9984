"""``replay``: drive transactions saved in a JSON-lines file (a ``mismatches.jsonl`` of an
earlier run, or hand-written ``{"txn": {...}}`` lines). Option ``file`` (``--option file=...``).

A file ending in ``.npz`` holds a columnar batch instead (``mxdv.columns``: one array per
schema field, transactions along the first axis, as :func:`save_columns` writes it); bulk
mode's columnar path replays it without a dict per transaction."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mxdv.columns import Columns, check
from mxdv.sequences.registry import BatchStrategy, register_strategy


def save_columns(path: Path, cols: Columns) -> Path:
    """Write a columnar batch as an ``.npz`` replay file, each field in the narrowest integer
    type that holds its domain (a quarter of the bytes for BF16 codes)."""
    arrays = {}
    for f in cols.schema.fields:
        lo, hi = (min(f.choices), max(f.choices)) if f.kind == "choice" else (f.lo, f.hi)
        arrays[f.name] = cols[f.name].astype(np.result_type(np.min_scalar_type(lo), np.min_scalar_type(hi)))
    np.savez(path, **arrays)
    return Path(path)


def _read_npz(path: Path, schema) -> dict[str, np.ndarray]:
    """An ``.npz`` replay file's arrays as stored (narrow integer types); errors name the file."""
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"replay file {path}: {exc}") from exc
    names = {f.name for f in schema.fields}
    if set(arrays) != names:
        raise ValueError(f"replay file {path}: fields {sorted(arrays)}, the unit's schema has {sorted(names)}")
    return arrays


def _columns_of(path: Path, schema, arrays: dict[str, np.ndarray], index=slice(None)) -> Columns:
    try:
        return check(Columns(schema, {k: v[index] for k, v in arrays.items()}))
    except ValueError as exc:  # TxnError included
        raise ValueError(f"replay file {path}: {exc}") from exc


def load_columns(path: Path, schema) -> Columns:
    """An ``.npz`` replay file as a checked columnar batch; errors name the file."""
    return _columns_of(path, schema, _read_npz(path, schema))


@register_strategy("replay")
class ReplayStrategy(BatchStrategy):
    summary = "replay transactions from a JSON-lines file (option file=PATH)"

    def _file(self) -> str:
        path = self.options.get("file")
        if not path:
            raise ValueError("strategy replay needs --option file=PATH")
        return str(path)

    def _next_columns(self, ctx, n) -> Columns:
        """The next ``n`` transactions of the file. The file's arrays stay in their stored
        types; only each batch is widened and checked, so memory follows the batch size."""
        path = Path(self._file())
        if not hasattr(self, "_arrays"):
            self._arrays, self._at = _read_npz(path, ctx.unit.schema), 0
        part = _columns_of(path, ctx.unit.schema, self._arrays, slice(self._at, self._at + n))
        self._at += len(part)
        if not len(part):
            ctx.cfg.budget = ctx.submitted  # nothing left: end the run
        return part

    def propose_columns(self, ctx, n):
        if not self._file().endswith(".npz"):
            return None
        return self._next_columns(ctx, n)

    def propose(self, ctx, n):
        if self._file().endswith(".npz"):
            return self._next_columns(ctx, n).rows()
        if not hasattr(self, "_queue"):
            path = self._file()
            lines = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
            self._queue = [x["txn"] if "txn" in x else x for x in lines if x.get("txn", x)]
        batch, self._queue = self._queue[:n], self._queue[n:]
        if not self._queue and not batch:
            ctx.cfg.budget = ctx.submitted  # nothing left: end the run
        return batch
