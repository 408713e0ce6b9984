"""Columnar transaction batches: many transactions of a fixed-shape schema as one numpy array
per field (``[n]`` for a scalar field, ``[n, *shape]`` for an array field).

Bulk mode's columnar path (``mxdv.env.bulk``, README "Bulk mode") carries a batch this way end
to end (strategy, encode, the harness's memories, decode, predict, compare, coverage) instead
of one dict per transaction; the per-transaction dicts of :mod:`mxdv.schema` are built only
where a report or a strategy's feedback needs one (:meth:`Columns.rows`).

A schema qualifies when every array field has a fixed shape (no shape named by another field):
:func:`is_columnar`. Values are checked at once (:func:`check`), with the message naming the
field and the first bad transaction, as :meth:`TxnSchema.normalize` does for one.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from mxdv.schema import Txn, TxnError, TxnSchema


def is_columnar(schema: TxnSchema) -> bool:
    """Whether every field of ``schema`` has a fixed shape (no cross-field check either: a
    ``check`` hook sees one transaction at a time)."""
    return schema.check is None and all(isinstance(d, int) for f in schema.fields for d in f.shape)


class Columns:
    """A batch of ``n`` transactions of ``schema``, one int64 array per field."""

    __slots__ = ("schema", "arrays", "n")

    def __init__(self, schema: TxnSchema, arrays: Mapping[str, Any]):
        names = [f.name for f in schema.fields]
        missing, unknown = sorted(set(names) - set(arrays)), sorted(set(arrays) - set(names))
        if missing or unknown:
            raise TxnError(f"columns: missing field(s) {missing}, unknown field(s) {unknown}; expected {names}")
        self.schema = schema
        self.arrays = {name: np.asarray(arrays[name], dtype=np.int64) for name in names}
        lengths = {name: (a.shape[0] if a.ndim else -1) for name, a in self.arrays.items()}
        n = next(iter(lengths.values()), 0)
        if any(v != n for v in lengths.values()) or n < 0:
            raise TxnError(f"columns: every field needs the same number of transactions, got {lengths}")
        for f in schema.fields:
            if self.arrays[f.name].shape[1:] != tuple(f.shape):
                raise TxnError(f"columns: field `{f.name}` has shape {self.arrays[f.name].shape[1:]} per "
                               f"transaction, expected {tuple(f.shape)}")
        self.n = int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def take(self, index) -> "Columns":
        """The transactions at ``index`` (a slice, an index array or a boolean mask)."""
        return Columns(self.schema, {k: v[index] for k, v in self.arrays.items()})

    def rows(self, index=None) -> list[Txn]:
        """The transactions as :mod:`mxdv.schema` dicts (all of them, or those at ``index``)."""
        arrays = self.arrays if index is None else {k: v[index] for k, v in self.arrays.items()}
        lists = {k: v.tolist() for k, v in arrays.items()}
        n = len(next(iter(lists.values()), []))
        return [{k: lists[k][i] for k in lists} for i in range(n)]

    @classmethod
    def from_rows(cls, schema: TxnSchema, txns: list[Txn]) -> "Columns":
        """Checked transactions (as :meth:`TxnSchema.normalize` returns them) into columns."""
        arrays = {}
        for f in schema.fields:
            a = np.asarray([t[f.name] for t in txns], dtype=np.int64)
            arrays[f.name] = a.reshape(len(txns), *f.shape)
        return cls(schema, arrays)


def random_columns(schema: TxnSchema, rng: np.random.Generator, n: int, **fixed: Any) -> Columns:
    """``n`` uniformly random transactions (:meth:`TxnSchema.random`'s distribution, drawn a
    field at a time); keyword arguments pin fields (checked like any transaction)."""
    if not is_columnar(schema):
        raise TxnError("random_columns: the schema has variable-shape fields")
    arrays = {}
    for f in schema.fields:
        size = (n, *f.shape)
        if f.name in fixed:
            one = schema._scalar(f, fixed[f.name], f.name) if not f.shape else schema._array(f, fixed[f.name], f.shape)
            arrays[f.name] = np.broadcast_to(np.asarray(one, dtype=np.int64), size).copy()
        elif f.kind == "choice":
            arrays[f.name] = np.asarray(f.choices, dtype=np.int64)[rng.integers(len(f.choices), size=size)]
        else:
            arrays[f.name] = rng.integers(f.lo, f.hi + 1, size=size, dtype=np.int64)
    return Columns(schema, arrays)


def check(cols: Columns) -> Columns:
    """Every value in its field's domain; a :class:`TxnError` names the field, the first bad
    transaction and its value otherwise."""
    for f in cols.schema.fields:
        a = cols[f.name]
        if f.kind == "choice":
            bad = ~(a[..., None] == np.asarray(f.choices, dtype=np.int64)).any(axis=-1)
        else:
            bad = (a < f.lo) | (a > f.hi)
        if bad.any():
            where = np.argwhere(bad)[0]
            index = "".join(f"[{int(i)}]" for i in where[1:])
            value = int(a[tuple(where)])
            dom = f"one of {list(f.choices)}" if f.kind == "choice" else f"{f.lo}..{f.hi}"
            raise TxnError(f"transaction {int(where[0])} of the batch: {f.name}{index} = {value} is out of range ({dom})")
    return cols
