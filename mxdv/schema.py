"""Transaction schemas: what a unit's stimulus looks like, independent of any strategy.

A transaction is a plain JSON-compatible dict ``{field name: value}``; array fields are
(nested) lists of ints. Every generic strategy works only through this module:

* ``random``: :meth:`TxnSchema.random` (uniform over each field's domain);
* ``hypothesis``: :meth:`TxnSchema.hypothesis_strategy`;
* ``llm``: :meth:`TxnSchema.json_schema` for the reply format and
  :meth:`TxnSchema.normalize` to turn a model's (possibly compact) answer into a transaction
  or a :class:`TxnError` that names the offending field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import ml_dtypes
import numpy as np

Txn = dict[str, Any]


class TxnError(ValueError):
    """A transaction that does not fit its schema; the message names the field."""


def _float_to_bf16(value: float) -> int:
    """Nearest BF16 code (RNE) of a Python float; NaN maps to the canonical 0x7FC0."""
    if math.isnan(value):
        return 0x7FC0
    return int(np.array([value], dtype=np.float32).astype(ml_dtypes.bfloat16).view(np.uint16)[0])


def bf16_to_float(code: int) -> float:
    return float(np.array([code], dtype=np.uint16).view(ml_dtypes.bfloat16)[0])


def parse_bf16(value: Any, where: str) -> int:
    """Accept a raw code (int), a float, or a string: "nan", "inf", "-inf", "0x7f80", "1e-40"."""
    if isinstance(value, bool):
        raise TxnError(f"{where}: expected a number, got a boolean")
    if isinstance(value, int):
        if not 0 <= value <= 0xFFFF:
            raise TxnError(f"{where}: raw BF16 code {value} is outside 0..0xFFFF")
        return value
    if isinstance(value, float):
        return _float_to_bf16(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text.startswith(("0x", "-0x")):
            try:
                code = int(text, 16)
            except ValueError as exc:
                raise TxnError(f"{where}: {value!r} is not a hex BF16 code") from exc
            return parse_bf16(code, where)
        try:
            return _float_to_bf16(float(text))
        except ValueError as exc:
            raise TxnError(f"{where}: {value!r} is not a number") from exc
    raise TxnError(f"{where}: expected a number or string, got {type(value).__name__}")


@dataclass(frozen=True)
class Field:
    """One field of a transaction.

    kind: ``"int"`` (``lo``..``hi``), ``"bits"`` (raw ``width``-bit code), ``"bf16"`` (raw
    16-bit BF16 code; the LLM may write floats or strings) or ``"choice"`` (one of ``choices``).
    shape: ``()`` for a scalar; otherwise a tuple of ints, or of names of earlier int fields
    whose value gives the length (for example the number of keys).
    corners: values worth drawing more often (used by ``hypothesis`` and ``constrained``).
    """

    name: str
    kind: str
    doc: str
    lo: int = 0
    hi: int = 0
    width: int = 0
    choices: tuple = ()
    shape: tuple = ()
    corners: tuple = ()

    def __post_init__(self) -> None:
        if self.kind == "bits":
            object.__setattr__(self, "lo", 0)
            object.__setattr__(self, "hi", (1 << self.width) - 1)
        elif self.kind == "bf16":
            object.__setattr__(self, "lo", 0)
            object.__setattr__(self, "hi", 0xFFFF)
        elif self.kind == "choice":
            if not self.choices:
                raise ValueError(f"field {self.name}: a choice field needs choices")
        elif self.kind != "int":
            raise ValueError(f"field {self.name}: unknown kind {self.kind!r}")

    def dims(self, txn: Txn) -> tuple[int, ...]:
        return tuple(txn[d] if isinstance(d, str) else d for d in self.shape)

    def draw_scalar(self, rng: np.random.Generator) -> int:
        if self.kind == "choice":
            return self.choices[int(rng.integers(len(self.choices)))]
        return int(rng.integers(self.lo, self.hi + 1))

    def in_domain(self, value: int) -> bool:
        if self.kind == "choice":
            return value in self.choices
        return self.lo <= value <= self.hi

    def describe(self) -> str:
        if self.kind == "choice":
            dom = "one of " + ", ".join(map(str, self.choices))
        elif self.kind == "bf16":
            dom = 'BF16 value: a number, "nan", "inf", "-inf" or a raw code "0xHHHH"'
        elif self.kind == "bits":
            dom = f"{self.width}-bit code 0..{self.hi}"
        else:
            dom = f"integer {self.lo}..{self.hi}"
        shape = "" if not self.shape else " array of shape [" + ", ".join(map(str, self.shape)) + "] of"
        return f"- `{self.name}`:{shape} {dom}. {self.doc}"


@dataclass(frozen=True)
class TxnSchema:
    """An ordered list of fields; a field's shape may name an earlier scalar int field."""

    fields: tuple[Field, ...]
    #: Optional cross-field check run after per-field checks; raises TxnError.
    check: Callable[[Txn], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for f in self.fields:
            for d in f.shape:
                if isinstance(d, str) and d not in seen:
                    raise ValueError(f"field {f.name}: shape names {d!r}, which is not an earlier field")
            seen.add(f.name)

    def by_name(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    # -- generation -------------------------------------------------------------------
    def random(self, rng: np.random.Generator, **fixed: Any) -> Txn:
        """A uniformly random transaction; keyword arguments pin fields."""
        txn: Txn = {}
        for f in self.fields:
            if f.name in fixed:
                txn[f.name] = fixed[f.name]
                continue
            if not f.shape:
                txn[f.name] = f.draw_scalar(rng)
            elif f.kind == "choice":
                idx = rng.integers(len(f.choices), size=f.dims(txn))
                txn[f.name] = np.asarray(f.choices)[idx].tolist()
            else:
                txn[f.name] = rng.integers(f.lo, f.hi + 1, size=f.dims(txn), dtype=np.int64).tolist()
        return txn

    def hypothesis_strategy(self):
        """A Hypothesis strategy drawing transactions, corner values drawn more often."""
        from hypothesis import strategies as st

        def scalar(f: Field):
            if f.kind == "choice":
                return st.sampled_from(f.choices)
            base = st.integers(f.lo, f.hi)
            if f.corners:
                return st.one_of(st.sampled_from(f.corners), base)
            return base

        def array(f: Field, dims: tuple[int, ...]):
            s = scalar(f)
            for n in reversed(dims):
                s = st.lists(s, min_size=n, max_size=n)
            return s

        @st.composite
        def draw(draw_fn):
            txn: Txn = {}
            for f in self.fields:
                if not f.shape:
                    txn[f.name] = draw_fn(scalar(f))
                else:
                    txn[f.name] = draw_fn(array(f, f.dims(txn)))
            return txn

        return draw()

    # -- validation ---------------------------------------------------------------------
    def normalize(self, raw: Any) -> Txn:
        """Check and canonicalize a transaction (from a user, a file or an LLM).

        Array fields accept a full (nested) list, or a compact form
        ``{"fill": v, "set": {"i": v, ...}}`` (indices into the flattened array).
        """
        if not isinstance(raw, dict):
            raise TxnError(f"transaction must be a JSON object, got {type(raw).__name__}")
        unknown = set(raw) - {f.name for f in self.fields}
        if unknown:
            raise TxnError(f"unknown field(s) {sorted(unknown)}; expected {[f.name for f in self.fields]}")
        txn: Txn = {}
        for f in self.fields:
            if f.name not in raw:
                raise TxnError(f"missing field `{f.name}`")
            if not f.shape:
                txn[f.name] = self._scalar(f, raw[f.name], f.name)
            else:
                txn[f.name] = self._array(f, raw[f.name], f.dims(txn))
        if self.check is not None:
            self.check(txn)
        return txn

    def _scalar(self, f: Field, value: Any, where: str) -> int:
        if f.kind == "bf16":
            return parse_bf16(value, where)
        if isinstance(value, str):
            try:
                value = int(value, 0)
            except ValueError as exc:
                raise TxnError(f"{where}: {value!r} is not an integer") from exc
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TxnError(f"{where}: expected an integer, got {value!r}")
        if not f.in_domain(value):
            raise TxnError(f"{where}: {value} is out of range ({f.describe().split(': ', 1)[1].split('.')[0]})")
        return value

    def _array(self, f: Field, value: Any, dims: tuple[int, ...]) -> list:
        total = int(np.prod(dims)) if dims else 1
        if isinstance(value, dict):
            extra = set(value) - {"fill", "set"}
            if extra or "fill" not in value:
                raise TxnError(f"{f.name}: compact form is {{\"fill\": v, \"set\": {{index: v}}}}, got keys {sorted(value)}")
            flat = [self._scalar(f, value["fill"], f"{f.name}.fill")] * total
            for key, v in (value.get("set") or {}).items():
                try:
                    idx = int(key)
                except (TypeError, ValueError) as exc:
                    raise TxnError(f"{f.name}.set: index {key!r} is not an integer") from exc
                if not 0 <= idx < total:
                    raise TxnError(f"{f.name}.set: index {idx} outside 0..{total - 1}")
                flat[idx] = self._scalar(f, v, f"{f.name}[{idx}]")
            return np.asarray(flat, dtype=object).reshape(dims).tolist()
        fast = _integer_array(f, value, dims)
        if fast is not None:
            return fast
        arr = value
        flat_in = _flatten(arr, dims, f.name)
        flat = [self._scalar(f, v, f"{f.name}[{i}]") for i, v in enumerate(flat_in)]
        return np.asarray(flat, dtype=object).reshape(dims).tolist()

    # -- description ------------------------------------------------------------------------
    def describe(self) -> str:
        return "\n".join(f.describe() for f in self.fields)

    def json_schema(self, count: int) -> dict:
        """JSON schema of an LLM reply: ``{"transactions": [txn, ...]}`` with ``count`` items.

        An array field of fixed shape is nested arrays with ``minItems == maxItems`` at every
        level: endpoints that constrain decoding with the schema (llama.cpp turns it into a
        grammar) then keep a small model from stopping a 32-element block after 9 values
        (measured with Qwen2.5-Coder-0.5B: every transaction of 3 batches was rejected for that
        before). A shape that names another field is a plain array (JSON schema cannot say "as
        many as field n"); :meth:`normalize` checks it. Either may use the compact form.
        """
        props = {}
        for f in self.fields:
            if f.kind == "choice":
                item: dict = {"enum": list(f.choices)}
            elif f.kind == "bf16":
                item = {"type": ["number", "string"]}
            else:
                item = {"type": "integer", "minimum": f.lo, "maximum": f.hi}
            if f.shape:
                compact = {"type": "object",
                           "properties": {"fill": item, "set": {"type": "object", "additionalProperties": item}},
                           "required": ["fill"], "additionalProperties": False}
                if all(isinstance(d, int) for d in f.shape):
                    full = item
                    for n in reversed(f.shape):
                        full = {"type": "array", "items": full, "minItems": n, "maxItems": n}
                else:
                    full = {"type": "array"}
                item = {"anyOf": [full, compact]}
            props[f.name] = item
        txn = {"type": "object", "properties": props, "required": [f.name for f in self.fields],
               "additionalProperties": False}
        return {"type": "object", "properties": {"transactions": {
            "type": "array", "items": txn, "minItems": count, "maxItems": count}},
            "required": ["transactions"], "additionalProperties": False}


def _integer_array(f: Field, value: Any, dims: Sequence[int]) -> list | None:
    """The common case checked with numpy at once: a nested list (or integer array) of the
    field's shape whose integers are all in range; None for anything else, which the
    element-by-element path then accepts or rejects with its precise message."""
    if f.kind == "choice" or not isinstance(value, (list, np.ndarray)):
        return None
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        return None
    if arr.shape != tuple(dims) or arr.dtype.kind not in "iu":
        return None
    lo, hi = (0, 0xFFFF) if f.kind == "bf16" else (f.lo, f.hi)
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        return None
    return arr.tolist()


def _flatten(value: Any, dims: Sequence[int], name: str) -> list:
    if not dims:
        return [value]
    if not isinstance(value, list):
        raise TxnError(f"{name}: expected a list of length {dims[0]}, got {type(value).__name__}")
    if len(value) != dims[0]:
        raise TxnError(f"{name}: expected {dims[0]} items, got {len(value)}")
    out: list = []
    for i, v in enumerate(value):
        out.extend(_flatten(v, dims[1:], f"{name}[{i}]"))
    return out


def pack_lanes(values: Sequence[int], width: int) -> int:
    """Pack lane values (two's complement allowed) into one bus integer, lane 0 in the LSBs."""
    mask = (1 << width) - 1
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & mask) << (width * i)
    return out


def unpack_lanes(bus: int, width: int, count: int, signed: bool = False) -> list[int]:
    mask = (1 << width) - 1
    lanes = [(bus >> (width * i)) & mask for i in range(count)]
    if signed:
        half = 1 << (width - 1)
        lanes = [v - (1 << width) if v >= half else v for v in lanes]
    return lanes


__all__ = ["Field", "TxnSchema", "TxnError", "Txn", "parse_bf16", "bf16_to_float",
           "pack_lanes", "unpack_lanes"]
