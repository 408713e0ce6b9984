"""Columnar transaction batches: many transactions as one numpy array per field (``[n]`` for
a scalar field, ``[n, *shape]`` for an array field).

An array whose length another field gives (``shape=("kblocks", 32)``) is stored padded to the
sizing field's largest value (:func:`padded_shape`), with zeros past each transaction's own
length; :meth:`Columns.rows` cuts them back.

Bulk mode's columnar path (``mxdv.env.bulk``, README "Bulk mode") carries a batch this way end
to end (strategy, encode, the harness's memories, decode, predict, compare, coverage) instead
of one dict per transaction; the per-transaction dicts of :mod:`mxdv.schema` are built only
where a report or a strategy's feedback needs one (:meth:`Columns.rows`).

A schema qualifies unless it has a cross-field ``check`` hook or its padded arrays would be
too large (:func:`is_columnar`). Values are checked at once (:func:`check`), with the message
naming the field and the first bad transaction, as :meth:`TxnSchema.normalize` does for one.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from mxdv.schema import Txn, TxnError, TxnSchema


#: The most elements one transaction may hold, padded, for the columnar form.
MAX_ELEMENTS = 1 << 16


def padded_shape(schema: TxnSchema, f) -> tuple[int, ...]:
    """``f``'s shape with every length named by a field replaced by that field's largest value."""
    return tuple(d if isinstance(d, int) else int(schema.by_name(d).hi) for d in f.shape)


def is_columnar(schema: TxnSchema) -> bool:
    """Whether ``schema``'s transactions have a columnar form: no cross-field ``check`` hook
    (it sees one transaction at a time), lengths named only by ``int`` fields, and at most
    :data:`MAX_ELEMENTS` elements per transaction, padded."""
    if schema.check is not None:
        return False
    total = 0
    for f in schema.fields:
        for d in f.shape:
            if not isinstance(d, int) and schema.by_name(d).kind != "int":
                return False
        total += int(np.prod(padded_shape(schema, f))) if f.shape else 1
    return total <= MAX_ELEMENTS


def _live(schema: TxnSchema, f, arrays: Mapping[str, np.ndarray], n: int) -> np.ndarray | None:
    """[n, *padded shape] mask of the elements inside each transaction's lengths (None: the
    field has a fixed shape)."""
    shape = padded_shape(schema, f)
    if all(isinstance(d, int) for d in f.shape):
        return None
    mask = np.ones((n, *shape), dtype=bool)
    for axis, d in enumerate(f.shape):
        if isinstance(d, int):
            continue
        sizes = np.asarray(arrays[d], dtype=np.int64).reshape(n, *([1] * len(shape)))
        index = np.arange(shape[axis]).reshape([1] + [shape[axis] if k == axis else 1 for k in range(len(shape))])
        mask &= index < sizes
    return mask


class Columns:
    """A batch of ``n`` transactions of ``schema``, one int64 array per field."""

    __slots__ = ("schema", "arrays", "n", "_rows")

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
            if self.arrays[f.name].shape[1:] != padded_shape(schema, f):
                raise TxnError(f"columns: field `{f.name}` has shape {self.arrays[f.name].shape[1:]} per "
                               f"transaction, expected {padded_shape(schema, f)}")
        self.n = int(n)
        self._rows: list[Txn] | None = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def take(self, index) -> "Columns":
        """The transactions at ``index`` (a slice, an index array or a boolean mask)."""
        return Columns(self.schema, {k: v[index] for k, v in self.arrays.items()})

    def rows(self, index=None) -> list[Txn]:
        """The transactions as :mod:`mxdv.schema` dicts (all of them, or those at ``index``;
        all of them are built once and kept: a batch is not changed after it is made)."""
        if index is None:
            if self._rows is None:
                self._rows = self._make_rows(self.arrays)
            return [dict(t) for t in self._rows]
        return self._make_rows({k: v[index] for k, v in self.arrays.items()})

    def views(self) -> list[Txn]:
        """The transactions as dicts whose array fields are numpy views cut to their lengths,
        not lists: for a reference or coverage model that works on arrays anyway (cheap;
        never for reports or files, which want plain lists: :meth:`rows`)."""
        scalars = {f.name: self.arrays[f.name].tolist() for f in self.schema.fields if not f.shape}
        out = [{k: v[i] for k, v in scalars.items()} for i in range(self.n)]
        for f in self.schema.fields:
            if not f.shape:
                continue
            a = self.arrays[f.name]
            named = [(axis, d) for axis, d in enumerate(f.shape) if not isinstance(d, int)]
            cut = [slice(None)] * len(f.shape)
            for i, txn in enumerate(out):
                for axis, d in named:
                    cut[axis] = slice(0, txn[d])
                txn[f.name] = a[i][tuple(cut)]
        return out

    def _make_rows(self, arrays: Mapping[str, np.ndarray]) -> list[Txn]:
        n = len(next(iter(arrays.values())))
        sized = [f for f in self.schema.fields if not all(isinstance(d, int) for d in f.shape)]
        lists = {k: v.tolist() for k, v in arrays.items() if k not in {f.name for f in sized}}
        out = [{k: lists[k][i] for k in lists} for i in range(n)]
        for f in sized:
            a = arrays[f.name]
            named = [(axis, d) for axis, d in enumerate(f.shape) if not isinstance(d, int)]
            cut = [slice(None)] * len(f.shape)
            for i, txn in enumerate(out):
                for axis, d in named:
                    cut[axis] = slice(0, txn[d])
                txn[f.name] = a[i][tuple(cut)].tolist()
        names = [f.name for f in self.schema.fields]
        return [{k: t[k] for k in names} for t in out] if sized else out

    @classmethod
    def from_rows(cls, schema: TxnSchema, txns: list[Txn]) -> "Columns":
        """Checked transactions (as :meth:`TxnSchema.normalize` returns them) into columns;
        a ValueError when one does not have its field's shape."""
        arrays = {}
        n = len(txns)
        for f in schema.fields:
            shape = padded_shape(schema, f)
            if all(isinstance(d, int) for d in f.shape):
                arrays[f.name] = np.asarray([t[f.name] for t in txns], dtype=np.int64).reshape(n, *shape)
                continue
            a = np.zeros((n, *shape), dtype=np.int64)
            for i, t in enumerate(txns):
                v = np.asarray(t[f.name], dtype=np.int64)
                dims = f.dims(t)
                if v.shape != tuple(dims) or any(x > m for x, m in zip(dims, shape)):
                    raise ValueError(f"transaction {i}: field `{f.name}` has shape {v.shape}, expected {tuple(dims)}")
                a[i][tuple(slice(0, x) for x in dims)] = v
            arrays[f.name] = a
        return cls(schema, arrays)


def random_columns(schema: TxnSchema, rng: np.random.Generator, n: int, **fixed: Any) -> Columns:
    """``n`` uniformly random transactions (:meth:`TxnSchema.random`'s distribution, drawn a
    field at a time); keyword arguments pin fields (checked like any transaction)."""
    if not is_columnar(schema):
        raise TxnError("random_columns: the schema has no columnar form (mxdv.columns.is_columnar)")
    arrays: dict[str, np.ndarray] = {}
    for f in schema.fields:
        size = (n, *padded_shape(schema, f))
        if f.name in fixed:
            if not all(isinstance(d, int) for d in f.shape):
                raise TxnError(f"random_columns: field `{f.name}` has a variable length and cannot be pinned")
            one = schema._scalar(f, fixed[f.name], f.name) if not f.shape else schema._array(f, fixed[f.name], f.shape)
            arrays[f.name] = np.broadcast_to(np.asarray(one, dtype=np.int64), size).copy()
        elif f.kind == "choice":
            arrays[f.name] = np.asarray(f.choices, dtype=np.int64)[rng.integers(len(f.choices), size=size)]
        else:
            arrays[f.name] = rng.integers(f.lo, f.hi + 1, size=size, dtype=np.int64)
        live = _live(schema, f, arrays, n)
        if live is not None:
            arrays[f.name] = np.where(live, arrays[f.name], 0)
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
        live = _live(cols.schema, f, cols.arrays, cols.n)
        if live is not None:
            padding = ~live & (a != 0)
            if padding.any():
                i = int(np.argwhere(padding)[0][0])
                raise TxnError(f"transaction {i} of the batch: field `{f.name}` holds non-zero values past its length")
            bad &= live
        if bad.any():
            where = np.argwhere(bad)[0]
            index = "".join(f"[{int(i)}]" for i in where[1:])
            value = int(a[tuple(where)])
            dom = f"one of {list(f.choices)}" if f.kind == "choice" else f"{f.lo}..{f.hi}"
            raise TxnError(f"transaction {int(where[0])} of the batch: {f.name}{index} = {value} is out of range ({dom})")
    return cols
