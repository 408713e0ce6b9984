"""The stimulus program language: validation and normalization.

A *program* is JSON data describing how to generate transactions of one unit; it is derived
from the unit's :class:`~mxdv.schema.TxnSchema`, so it works for every unit, and it is never
executed as code. The language is documented in ``sequences/programs/README.md``;
:func:`validate_program` checks a program against a schema and returns its normalized form,
or raises :class:`ProgramError` whose message starts with the path of the wrong part
(``fields.values.ties.width: ...``). Every size, length and repeat count is bounded.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from mxdv.schema import Field, TxnError, TxnSchema, parse_bf16

#: Bounds on what a program may ask for.
MAX_COUNT = 64            # transactions sampled from one program
MAX_LIST = 64             # items of a choice / weighted list, set entries, specials
MAX_PROGRAM_CHARS = 20000  # serialized size of one program
DEFAULT_COUNT = 8

#: floor(log2 |x|) of BF16 values: -133 (smallest subnormal) .. 127 (largest finite binade).
BF16_EXP_LO, BF16_EXP_HI = -133, 127
BF16_SPECIALS = ("nan", "inf", "-inf", "+0", "-0", "max", "-max", "min_normal", "min_subnormal",
                 "max_subnormal")
SIGNS = ("any", "pos", "neg", "alternate", "mixed")
PER = ("element", "row", "array")
INT_FORMS = ("const", "range", "choice", "weighted", "ref", "random", "corners")
ARRAY_KEYS = ("elements", "per", "zero", "signs", "diag", "set", "values")
BF16_KEYS = ("max_exp", "max_mant", "max_lane", "spread", "zero", "subnormal", "signs",
             "all_equal", "specials", "ties", "values")


class ProgramError(ValueError):
    """A program that does not fit the language or the unit's schema; the message names the part."""


@dataclass(frozen=True)
class Domain:
    """The values one integer spec may produce: ``lo..hi`` or one of ``choices``."""

    lo: int
    hi: int
    choices: tuple = ()
    corners: tuple = ()
    bf16: bool = False

    @staticmethod
    def of(f: Field) -> "Domain":
        if f.kind == "choice":
            return Domain(min(f.choices), max(f.choices), tuple(f.choices), tuple(f.choices))
        return Domain(f.lo, f.hi, (), tuple(f.corners), f.kind == "bf16")

    def contains(self, v: int) -> bool:
        return v in self.choices if self.choices else self.lo <= v <= self.hi

    def clamp(self, v: int) -> int:
        if self.choices:
            return min(self.choices, key=lambda c: (abs(c - v), c))
        return max(self.lo, min(self.hi, int(v)))

    def edges(self) -> tuple:
        """Domain edges and declared corners (what a DV engineer draws often)."""
        if self.choices:
            return self.choices
        out = [self.lo, self.hi]
        if self.lo < 0 < self.hi:
            out += [0, 1, -1]
        out += [c for c in self.corners if self.contains(c)]
        return tuple(dict.fromkeys(out))

    def zero(self) -> int:
        return self.clamp(0)

    def describe(self) -> str:
        return f"one of {list(self.choices)}" if self.choices else f"{self.lo}..{self.hi}"


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _int(v: Any, path: str, dom: Domain | None = None) -> int:
    """An integer literal (BF16 fields also take floats and strings such as "nan" or "0x7f80")."""
    if dom is not None and dom.bf16 and not isinstance(v, bool):
        try:
            return parse_bf16(v, path)
        except TxnError as exc:
            raise ProgramError(str(exc)) from None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProgramError(f"{path}: expected an integer, got {_type_name(v)} {v!r}")
    if dom is not None and not dom.contains(v):
        raise ProgramError(f"{path}: {v} is outside the field's domain ({dom.describe()})")
    return v


def _prob(v: Any, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1:
        raise ProgramError(f"{path}: expected a probability between 0 and 1, got {v!r}")
    return float(v)


def _obj(v: Any, path: str, allowed: tuple) -> dict:
    if not isinstance(v, dict):
        raise ProgramError(f"{path}: expected an object, got {_type_name(v)}")
    unknown = sorted(set(v) - set(allowed))
    if unknown:
        raise ProgramError(f"{path}: unknown key(s) {unknown}; allowed: {list(allowed)}")
    return v


def _list(v: Any, path: str, lo: int = 1, hi: int = MAX_LIST) -> list:
    if not isinstance(v, list):
        raise ProgramError(f"{path}: expected a list, got {_type_name(v)}")
    if not lo <= len(v) <= hi:
        raise ProgramError(f"{path}: expected {lo}..{hi} items, got {len(v)}")
    return v


def int_spec(raw: Any, dom: Domain, path: str, scalars: dict[str, Domain] | None = None) -> dict:
    """Normalize an integer spec (a literal, or one of the :data:`INT_FORMS` objects).

    ``scalars`` names the earlier scalar fields a ``ref`` may use (None: no ``ref`` here)."""
    if raw == "random" or raw is None:
        return {"random": True}
    if raw == "corners":
        return {"corners": True}
    if not isinstance(raw, dict):
        return {"const": _int(raw, path, dom)}
    if len(raw) != 1 and not ("ref" in raw and set(raw) <= {"ref", "add"}):
        raise ProgramError(f"{path}: an integer spec has exactly one of {list(INT_FORMS)}, got keys {sorted(raw)}")
    (form,) = [k for k in raw if k != "add"] or ["add"]
    v = raw[form]
    if form == "const":
        return {"const": _int(v, f"{path}.const", dom)}
    if form == "range":
        items = _list(v, f"{path}.range", 2, 2)
        lo, hi = (_int(x, f"{path}.range[{i}]", dom) for i, x in enumerate(items))
        if dom.choices:
            raise ProgramError(f"{path}.range: this field takes {dom.describe()}; use choice")
        if lo > hi:
            raise ProgramError(f"{path}.range: low {lo} is above high {hi}")
        return {"range": [lo, hi]}
    if form == "choice":
        return {"choice": [_int(x, f"{path}.choice[{i}]", dom) for i, x in enumerate(_list(v, f"{path}.choice"))]}
    if form == "weighted":
        pairs = []
        for i, item in enumerate(_list(v, f"{path}.weighted")):
            pair = _list(item, f"{path}.weighted[{i}]", 2, 2)
            w = pair[1]
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
                raise ProgramError(f"{path}.weighted[{i}][1]: a weight must be a number > 0, got {w!r}")
            pairs.append([_int(pair[0], f"{path}.weighted[{i}][0]", dom), float(w)])
        return {"weighted": pairs}
    if form == "ref":
        if scalars is None:
            raise ProgramError(f"{path}.ref: only a scalar field's spec may refer to another field")
        if v not in scalars:
            raise ProgramError(f"{path}.ref: {v!r} is not an earlier integer field; earlier: {sorted(scalars)}")
        add = int_spec(raw.get("add", 0), Domain(-(1 << 20), 1 << 20), f"{path}.add")
        if "ref" in add:
            raise ProgramError(f"{path}.add: an offset cannot refer to a field")
        return {"ref": v, "add": add}
    if form in ("random", "corners"):
        if v is not True:
            raise ProgramError(f"{path}.{form}: expected true")
        return {form: True}
    raise ProgramError(f"{path}: unknown integer spec {form!r}; expected one of {list(INT_FORMS)}")


def _index(raw: Any, path: str) -> Any:
    """An array index: an int (negative counts from the end), "*" (every index), or a spec
    {"range": [a, b]} / {"choice": [...]} drawn per transaction (taken modulo the length)."""
    if raw == "*":
        return "*"
    if isinstance(raw, dict):
        spec = int_spec(raw, Domain(-4096, 4096), path)
        if "random" not in spec and "const" not in spec and "range" not in spec and "choice" not in spec:
            raise ProgramError(f"{path}: an index is an int, \"*\", random, a range or a choice")
        return spec
    if raw == "random":
        return {"random": True}
    return _int(raw, path, Domain(-4096, 4096))


def _array_spec(f: Field, raw: Any, path: str, schema: TxnSchema) -> dict:
    dom = Domain.of(f)
    ndim = len(f.shape)
    if isinstance(raw, list):
        raw = {"values": raw}
    if not isinstance(raw, dict):
        if raw == "random" or raw is None:
            return {}
        if f.kind == "bf16":
            raise ProgramError(f"{path}: a BF16 array takes a block spec object (or a list of values), got {raw!r}")
        if raw == "corners":
            return {"elements": {"corners": True}}
        raw = {"elements": raw}
    if f.kind == "bf16":
        return _bf16_spec(f, raw, path, schema)
    _obj(raw, path, ARRAY_KEYS)
    out: dict = {}
    if "values" in raw:
        out["values"] = _literal(f, raw["values"], f"{path}.values", schema)
        if len(raw) > 1:
            raise ProgramError(f"{path}: values gives the whole array; it cannot be combined with {sorted(set(raw) - {'values'})}")
        return out
    if "elements" in raw:
        out["elements"] = int_spec(raw["elements"], dom, f"{path}.elements")
    if "per" in raw:
        if raw["per"] not in PER:
            raise ProgramError(f"{path}.per: expected one of {list(PER)}, got {raw['per']!r}")
        out["per"] = raw["per"]
    if "zero" in raw:
        out["zero"] = _prob(raw["zero"], f"{path}.zero")
    if "signs" in raw:
        if raw["signs"] not in SIGNS:
            raise ProgramError(f"{path}.signs: expected one of {list(SIGNS)}, got {raw['signs']!r}")
        if dom.lo >= 0 and raw["signs"] != "any":
            raise ProgramError(f"{path}.signs: field {f.name} has no negative values ({dom.describe()})")
        out["signs"] = raw["signs"]
    if "diag" in raw:
        d = _obj(raw["diag"], f"{path}.diag", ("axes", "value", "off", "fix"))
        axes = [_int(a, f"{path}.diag.axes[{i}]", Domain(0, ndim - 1))
                for i, a in enumerate(_list(d.get("axes"), f"{path}.diag.axes", 2, 2))]
        if axes[0] == axes[1]:
            raise ProgramError(f"{path}.diag.axes: the two axes must differ, got {axes}")
        diag = {"axes": axes, "value": int_spec(d.get("value", 1), dom, f"{path}.diag.value")}
        if "off" in d:
            diag["off"] = int_spec(d["off"], dom, f"{path}.diag.off")
        fix = _obj(d.get("fix", {}), f"{path}.diag.fix", tuple(str(a) for a in range(ndim)))
        diag["fix"] = {str(k): _index(v, f"{path}.diag.fix.{k}") for k, v in fix.items()}
        out["diag"] = diag
    if "set" in raw:
        entries = []
        for i, e in enumerate(_list(raw["set"], f"{path}.set")):
            e = _obj(e, f"{path}.set[{i}]", ("at", "value"))
            at = _list(e.get("at"), f"{path}.set[{i}].at", ndim, ndim)
            entries.append({"at": [_index(a, f"{path}.set[{i}].at[{j}]") for j, a in enumerate(at)],
                            "value": int_spec(e.get("value", "random"), dom, f"{path}.set[{i}].value")})
        out["set"] = entries
    return out


def _bf16_spec(f: Field, raw: dict, path: str, schema: TxnSchema) -> dict:
    _obj(raw, path, BF16_KEYS)
    lanes = f.shape[-1] if isinstance(f.shape[-1], int) else 4096
    out: dict = {}
    if "values" in raw:
        if len(raw) > 1:
            raise ProgramError(f"{path}: values gives the whole array; it cannot be combined with {sorted(set(raw) - {'values'})}")
        return {"values": _literal(f, raw["values"], f"{path}.values", schema)}
    if "max_exp" in raw:
        out["max_exp"] = int_spec(raw["max_exp"], Domain(BF16_EXP_LO, BF16_EXP_HI), f"{path}.max_exp")
    if "max_mant" in raw:
        out["max_mant"] = int_spec(raw["max_mant"], Domain(0, 127), f"{path}.max_mant")
    if "max_lane" in raw:
        out["max_lane"] = int_spec(raw["max_lane"], Domain(-lanes, lanes - 1), f"{path}.max_lane")
    if "spread" in raw:
        out["spread"] = int_spec(raw["spread"], Domain(0, BF16_EXP_HI - BF16_EXP_LO), f"{path}.spread")
    for key in ("zero", "subnormal"):
        if key in raw:
            out[key] = _prob(raw[key], f"{path}.{key}")
    if "signs" in raw:
        if raw["signs"] not in SIGNS:
            raise ProgramError(f"{path}.signs: expected one of {list(SIGNS)}, got {raw['signs']!r}")
        out["signs"] = raw["signs"]
    if "all_equal" in raw:
        if not isinstance(raw["all_equal"], bool):
            raise ProgramError(f"{path}.all_equal: expected true or false, got {raw['all_equal']!r}")
        out["all_equal"] = raw["all_equal"]
    if "specials" in raw:
        specials = []
        for i, s in enumerate(_list(raw["specials"], f"{path}.specials")):
            s = _obj(s, f"{path}.specials[{i}]", ("lane", "value"))
            if s.get("value") not in BF16_SPECIALS:
                raise ProgramError(f"{path}.specials[{i}].value: expected one of {list(BF16_SPECIALS)}, got {s.get('value')!r}")
            specials.append({"lane": _index(s.get("lane", "random"), f"{path}.specials[{i}].lane"),
                             "value": s["value"]})
        out["specials"] = specials
    if "ties" in raw:
        t = _obj(raw["ties"], f"{path}.ties", ("width", "lanes", "parity"))
        width = _int(t.get("width"), f"{path}.ties.width", Domain(2, 8))
        parity = t.get("parity", "any")
        if parity not in ("odd", "even", "any"):
            raise ProgramError(f"{path}.ties.parity: expected odd, even or any, got {parity!r}")
        out["ties"] = {"width": width, "parity": parity,
                       "lanes": int_spec(t.get("lanes", 1), Domain(1, lanes), f"{path}.ties.lanes")}
    return out


def _literal(f: Field, value: Any, path: str, schema: TxnSchema) -> Any:
    """A whole array written out (checked when sampled, since its shape may depend on a size field)."""
    if len(json.dumps(value)) > MAX_PROGRAM_CHARS:
        raise ProgramError(f"{path}: the literal array is too large")
    return value


def validate_program(schema: TxnSchema, raw: Any, plan_bins: list[str] | None = None) -> dict:
    """Check ``raw`` against the language and ``schema``; return the normalized program.

    ``plan_bins``: when given, ``targets`` must name bins of the plan."""
    if not isinstance(raw, dict):
        raise ProgramError(f"program: expected an object, got {_type_name(raw)}")
    try:
        size = len(json.dumps(raw))
    except (TypeError, ValueError) as exc:
        raise ProgramError(f"program: not JSON data ({exc})") from None
    if size > MAX_PROGRAM_CHARS:
        raise ProgramError(f"program: {size} characters, more than the limit of {MAX_PROGRAM_CHARS}")
    _obj(raw, "program", ("name", "targets", "count", "fields"))
    out: dict = {}
    if "name" in raw:
        if not isinstance(raw["name"], str) or len(raw["name"]) > 200:
            raise ProgramError("name: expected a string of at most 200 characters")
        out["name"] = raw["name"]
    targets = raw.get("targets", [])
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets) or len(targets) > MAX_LIST:
        raise ProgramError(f"targets: expected a list of at most {MAX_LIST} bin names")
    if plan_bins is not None:
        unknown = [t for t in targets if t not in plan_bins]
        if unknown:
            raise ProgramError(f"targets: unknown bin(s) {unknown[:5]}")
    out["targets"] = list(targets)
    out["count"] = _int(raw.get("count", DEFAULT_COUNT), "count", Domain(1, MAX_COUNT))
    fields_raw = raw.get("fields", {})
    names = [f.name for f in schema.fields]
    _obj(fields_raw, "fields", tuple(names))
    specs: dict = {}
    scalars: dict[str, Domain] = {}
    for f in schema.fields:
        path = f"fields.{f.name}"
        if f.shape:
            if f.name in fields_raw:
                spec = _array_spec(f, fields_raw[f.name], path, schema)
                if spec:
                    specs[f.name] = spec
            continue
        dom = Domain.of(f)
        if f.name in fields_raw:
            spec = int_spec(fields_raw[f.name], dom, path, scalars)
            if spec != {"random": True}:
                specs[f.name] = spec
        if f.kind == "int" or f.kind == "bits":
            scalars[f.name] = dom
    out["fields"] = specs
    return out


__all__ = ["ProgramError", "Domain", "validate_program", "int_spec", "MAX_COUNT", "MAX_LIST",
           "MAX_PROGRAM_CHARS", "DEFAULT_COUNT", "BF16_SPECIALS", "SIGNS", "PER"]
