"""The JSON schema sent as the reply format: ``TxnSchema.json_schema`` with array fields pinned
down to their exact lengths where the shape is fixed.

``TxnSchema.json_schema`` describes an array field as ``{"type": "array"}`` or the compact
form. An endpoint that constrains decoding with the schema (llama.cpp turns it into a grammar)
then lets a small model stop a 32-element block after 9 values -- measured with
Qwen2.5-Coder-0.5B: every transaction of 3 batches was rejected for that. Here a fixed-shape
field gets nested arrays with ``items`` and ``minItems == maxItems``, and the compact form's
``set`` values get the element type, so the grammar itself keeps lengths and types right.
Fields whose length depends on another field's value keep the loose form (JSON schema cannot
say "as many as field n"); ``TxnSchema.normalize`` checks them.
"""
from __future__ import annotations

import copy


def _nested(item: dict, dims: tuple[int, ...]) -> dict:
    out = item
    for n in reversed(dims):
        out = {"type": "array", "items": out, "minItems": n, "maxItems": n}
    return out


def reply_schema(schema, count: int) -> dict:
    """JSON schema of ``{"transactions": [...]}`` with ``count`` items, arrays sized exactly."""
    js = copy.deepcopy(schema.json_schema(count))
    props = js["properties"]["transactions"]["items"]["properties"]
    for f in schema.fields:
        if not f.shape or f.name not in props:
            continue
        loose = props[f.name]
        alternatives = loose.get("anyOf") if isinstance(loose, dict) else None
        compact = next((a for a in alternatives or [] if a.get("type") == "object"), None)
        if compact is None:
            continue
        item = copy.deepcopy(compact["properties"]["fill"])
        compact = {"type": "object",
                   "properties": {"fill": item, "set": {"type": "object", "additionalProperties": item}},
                   "required": ["fill"], "additionalProperties": False}
        if all(isinstance(d, int) for d in f.shape):
            props[f.name] = {"anyOf": [_nested(item, tuple(f.shape)), compact]}
        else:
            props[f.name] = {"anyOf": [{"type": "array"}, compact]}
    return js
