"""The language as JSON Schema (for constrained decoding) and as a short text (for prompts),
both generated from a unit's transaction schema, so they fit any unit."""
from __future__ import annotations

from mxdv.schema import Field, TxnSchema
from mxdv.sequences.programs.language import (BF16_EXP_HI, BF16_EXP_LO, BF16_SPECIALS, MAX_COUNT,
                                              MAX_LIST, PER, SIGNS, Domain)


#: Schema profiles: "full" (every form of the language) or "compact" (integer specs are literals
#: only; the one alternative left is an index's int-or-"*": a small grammar, which llama.cpp decodes fast enough on
#: a CPU; with the full schema's alternatives one reply took over 10 minutes here).
PROFILES = ("compact", "full")
#: The probabilities a compact schema offers: llama.cpp's grammar for a JSON Schema number ignores
#: its bounds (measured: Qwen2.5-Coder-0.5B wrote `"zero": 127` three calls running, each
#: rejected), so the compact profile lists the values instead.
COMPACT_PROBABILITIES = (0, 0.1, 0.25, 0.5, 0.75, 0.9, 1)


#: An integer range of at most this many values is an ``enum`` in the compact profile:
#: llama-cpp-python's schema-to-grammar converter ignores ``minimum``/``maximum`` (measured: the
#: 0.5B model wrote ``"max_exp": 133`` and ``134`` for the domain -133..127, every repair too).
COMPACT_ENUM_MAX = 300


def _range_schema(lo: int, hi: int, compact: bool) -> dict:
    if compact and hi - lo + 1 <= COMPACT_ENUM_MAX:
        return {"enum": list(range(lo, hi + 1))}
    return {"type": "integer", "minimum": lo, "maximum": hi}


def _probability_schema(compact: bool) -> dict:
    if compact:
        return {"enum": list(COMPACT_PROBABILITIES)}
    return {"type": "number", "minimum": 0, "maximum": 1}


def _int_schema(dom: Domain, refs: list[str] | None = None, compact: bool = False) -> dict:
    if dom.choices:
        lit = {"enum": list(dom.choices)}
    elif dom.bf16:
        lit = {"type": ["integer", "number", "string"]}
    else:
        lit = _range_schema(dom.lo, dom.hi, compact)
    if compact:
        return lit
    forms = [lit, {"enum": ["random", "corners"]},
             {"type": "object", "properties": {"choice": {"type": "array", "items": lit, "minItems": 1, "maxItems": 8}},
              "required": ["choice"], "additionalProperties": False}]
    if not dom.choices:
        forms.append({"type": "object", "properties": {"range": {"type": "array", "items": lit, "minItems": 2, "maxItems": 2}},
                      "required": ["range"], "additionalProperties": False})
    if refs:
        forms.append({"type": "object", "properties": {"ref": {"enum": refs}, "add": {"type": "integer"}},
                      "required": ["ref"], "additionalProperties": False})
    return {"anyOf": forms}


def _array_schema(f: Field, compact: bool = False) -> dict:
    dom = Domain.of(f)
    if f.kind == "bf16":
        lanes = f.shape[-1] if isinstance(f.shape[-1], int) else 64
        props = {
            "max_exp": _int_schema(Domain(BF16_EXP_LO, BF16_EXP_HI), compact=compact),
            "max_mant": _int_schema(Domain(0, 127), compact=compact),
            "max_lane": _int_schema(Domain(-lanes, lanes - 1), compact=compact),
            "spread": _int_schema(Domain(0, 260), compact=compact),
            "zero": _probability_schema(compact),
            "subnormal": _probability_schema(compact),
            "signs": {"enum": list(SIGNS)},
            "all_equal": {"type": "boolean"},
            "specials": {"type": "array", "minItems": 1, "maxItems": 4, "items": {
                "type": "object", "properties": {"lane": _range_schema(-lanes, lanes - 1, compact),
                                                 "value": {"enum": list(BF16_SPECIALS)}},
                "required": ["lane", "value"], "additionalProperties": False}},
            "ties": {"type": "object", "properties": {"width": {"enum": [8, 4]},
                                                      "lanes": _range_schema(1, lanes, compact),
                                                      "parity": {"enum": ["odd", "even", "any"]}},
                     "required": ["width"], "additionalProperties": False},
        }
        if compact:
            # a small model given an all-optional object answers `{}` (measured: Qwen2.5-Coder-0.5B
            # wrote `"values": {}` for every program); the block's binade must be chosen
            return {"type": "object", "properties": props, "required": ["max_exp"], "additionalProperties": False}
    else:
        ndim = len(f.shape)
        index = {"anyOf": [{"type": "integer", "minimum": -4096, "maximum": 4096}, {"enum": ["*", "random"]}]}
        props = {
            "elements": _int_schema(dom, compact=compact),
            "per": {"enum": list(PER)},
            "zero": _probability_schema(compact),
            "diag": {"type": "object", "properties": {
                "axes": {"type": "array", "items": _range_schema(0, ndim - 1, compact),
                         "minItems": 2, "maxItems": 2},
                "value": _int_schema(dom, compact=compact), "off": _int_schema(dom, compact=compact)},
                "required": ["axes", "value"], "additionalProperties": False},
            "set": {"type": "array", "minItems": 1, "maxItems": 8, "items": {
                "type": "object", "properties": {"at": {"type": "array", "items": index, "minItems": ndim, "maxItems": ndim},
                                                 "value": _int_schema(dom, compact=compact)},
                "required": ["at", "value"], "additionalProperties": False}},
        }
        if dom.lo < 0:
            props["signs"] = {"enum": list(SIGNS)}
    return {"type": "object", "properties": props, "additionalProperties": False}


def program_schema(schema: TxnSchema, bin_names: list[str] | None = None, compact: bool = False,
                   require_arrays: bool | None = None) -> dict:
    """JSON Schema of one program for ``schema`` (targets limited to ``bin_names`` when given).
    ``require_arrays`` (default: ``compact``): every array field must get a spec."""
    fields: dict = {}
    refs: list[str] = []
    for f in schema.fields:
        if f.shape:
            fields[f.name] = _array_schema(f, compact)
        else:
            fields[f.name] = _int_schema(Domain.of(f), list(refs), compact)
            if f.kind in ("int", "bits"):
                refs.append(f.name)
    target = {"enum": bin_names} if bin_names else {"type": "string"}
    spec = {"type": "object", "properties": fields, "additionalProperties": False}
    if compact if require_arrays is None else require_arrays:
        # measured: given optional fields, Qwen2.5-Coder-0.5B wrote only the scalar ones, so every
        # program was the default (uniform) block; with a uniform fill the array fields (the
        # content) must get a spec
        spec["required"] = [f.name for f in schema.fields if f.shape]
    return {"type": "object", "properties": {
        "targets": {"type": "array", "items": target, "minItems": 1, "maxItems": 4},
        "count": _range_schema(1, MAX_COUNT, compact),
        "fields": spec},
        "required": ["targets", "fields"], "additionalProperties": False}


def reply_schema(schema: TxnSchema, programs: int, bin_names: list[str] | None = None,
                 profile: str = "compact", assigned: list[str] | None = None,
                 require_arrays: bool | None = None) -> dict:
    """JSON Schema of an LLM reply ``{"programs": [program, ...]}`` (1..``programs`` items), in
    the given profile (see :data:`PROFILES`). With ``assigned`` (one bin name per program), the
    reply is exactly that many programs, program i targeting ``assigned[i]`` first: the model
    then writes each program's fields right after the bin it aims at. ``require_arrays`` as in
    :func:`program_schema`."""
    if profile not in PROFILES:
        raise ValueError(f"schema profile must be one of {PROFILES}, got {profile!r}")
    item = program_schema(schema, bin_names, compact=profile == "compact", require_arrays=require_arrays)
    if assigned:
        tuple_items = []
        for name in assigned:
            one = dict(item, properties=dict(item["properties"], targets={
                "type": "array", "prefixItems": [{"const": name}], "items": False,
                "minItems": 1, "maxItems": 1}))
            tuple_items.append(one)
        array = {"type": "array", "prefixItems": tuple_items, "items": False,
                 "minItems": len(assigned), "maxItems": len(assigned)}
    else:
        array = {"type": "array", "items": item, "minItems": 1, "maxItems": programs}
    return {"type": "object", "properties": {"programs": array},
            "required": ["programs"], "additionalProperties": False}


#: What the prompt says a program leaves random, per fill (``sample.FILLS``).
FILL_TEXT = {
    "uniform": "a field left out is uniformly random.",
    "corner": ("a field left out (and an integer array spec without \"elements\") is drawn by the "
               "test bench's default corner-biased random generator (domain edges, special values, "
               "sparse, constant and identity-like fills), so write only the parts your target needs."),
}


def describe_language(schema: TxnSchema, fill: str = "uniform") -> str:
    """The language in a few lines, with the unit's own field names (for prompts); ``fill`` says
    what a program leaves random (see :data:`FILL_TEXT`)."""
    scalars = [f.name for f in schema.fields if not f.shape]
    arrays = [f for f in schema.fields if f.shape]
    lines = [
        "Answer with stimulus PROGRAMS, not raw values: a program says how to generate transactions, "
        "and the test bench samples `count` transactions from it.",
        'A program is {"targets": [bin names it aims at], "count": N (1..64), "fields": {field: spec}}; '
        + FILL_TEXT[fill],
        "Integer spec (any scalar field, and the elements of integer arrays): a number (constant), "
        '{"range": [lo, hi]}, {"choice": [a, b, ...]}, "random", or "corners" (domain edges and special values)'
        + (', or for a scalar {"ref": "<earlier field>", "add": k} (that field\'s value plus k)' if len(scalars) > 1 else "")
        + ".",
    ]
    if any(f.kind != "bf16" for f in arrays):
        lines.append(
            'Integer array spec: {"elements": integer spec (drawn per element), "per": "element"|"row"|"array" '
            '(one draw per element, per first-axis row, or one for the whole array), "zero": p (share of elements '
            'forced to 0), "signs": "pos"|"neg"|"alternate"|"mixed", "diag": {"axes": [i, j], "value": v, "off": w} '
            '(elements whose indices on axes i and j are equal get v, the others w), '
            '"set": [{"at": [index per axis; -1 = last, "*" = all], "value": v}]}.')
    if any(f.kind == "bf16" for f in arrays):
        lines.append(
            'BF16 block spec (one block per array): {"max_exp": integer spec (floor(log2 of the largest magnitude), '
            f'{BF16_EXP_LO}..{BF16_EXP_HI}; below -126 is subnormal), "max_mant": 0..127, "max_lane": lane of the largest value, '
            '"spread": how many binades below the max the other lanes go (0 = same binade), "zero": p, "subnormal": p '
            '(share of lanes, 0..1, that are 0 / subnormal; default 0), "signs": "pos"|"neg"|"alternate"|"mixed", '
            '"all_equal": true|false (true: every lane the same value; default false), '
            f'"specials": [{{"lane": i, "value": one of {list(BF16_SPECIALS)}}}], '
            '"ties": {"width": 8 or 4, "lanes": n, "parity": "odd"|"even"} (n lanes exactly half-way between two '
            'MXINT codes of that width, relative to the block max)}. Leave out any key the program '
            'does not need.')
    lines.append("Fields: " + ", ".join(
        f"{f.name} ({'array ' + 'x'.join(map(str, f.shape)) if f.shape else 'scalar'})" for f in schema.fields) + ".")
    return "\n".join(lines)


__all__ = ["program_schema", "reply_schema", "describe_language"]
