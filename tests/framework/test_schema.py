"""TxnSchema: generation, validation (compact forms, clear errors), JSON schema."""
import numpy as np
import pytest
from hypothesis import given, settings

from mxdv.schema import Field, TxnError, TxnSchema, bf16_to_float, pack_lanes, parse_bf16, unpack_lanes

SCHEMA = TxnSchema((
    Field("width", "choice", "element width", choices=(8, 4)),
    Field("n", "int", "length", lo=1, hi=4),
    Field("vals", "bf16", "values", shape=("n",), corners=(0x7F80,)),
    Field("codes", "bits", "codes", width=8, shape=(2, 3)),
))


def test_random_respects_domains_and_dependent_shapes():
    rng = np.random.default_rng(0)
    for _ in range(200):
        t = SCHEMA.random(rng)
        assert t["width"] in (8, 4)
        assert len(t["vals"]) == t["n"]
        assert all(0 <= v <= 0xFFFF for v in t["vals"])
        assert np.asarray(t["codes"]).shape == (2, 3)
        assert SCHEMA.normalize(t) == t


def test_compact_fill_and_set_forms():
    t = SCHEMA.normalize({"width": 4, "n": 3, "vals": {"fill": "1.5", "set": {"2": "-inf"}},
                          "codes": {"fill": 7}})
    assert t["vals"] == [0x3FC0, 0x3FC0, 0xFF80]
    assert t["codes"] == [[7, 7, 7], [7, 7, 7]]


@pytest.mark.parametrize("raw, needle", [
    ({"width": 5, "n": 1, "vals": [0], "codes": [[0] * 3] * 2}, "width"),
    ({"width": 8, "n": 2, "vals": [0], "codes": [[0] * 3] * 2}, "vals: expected 2 items"),
    ({"width": 8, "n": 1, "vals": ["abc"], "codes": [[0] * 3] * 2}, "vals[0]"),
    ({"width": 8, "n": 1, "vals": [0], "codes": [[0] * 3, [0, 0, 256]]}, "codes[5]"),
    ({"width": 8, "n": 1, "vals": [0]}, "missing field `codes`"),
    ({"width": 8, "n": 1, "vals": [0], "codes": [[0] * 3] * 2, "x": 1}, "unknown field"),
    ({"width": 8, "n": 1, "vals": {"fill": 0, "set": {"9": 1}}, "codes": [[0] * 3] * 2}, "index 9"),
    ([1, 2], "JSON object"),
])
def test_errors_name_the_field(raw, needle):
    with pytest.raises(TxnError, match=None) as info:
        SCHEMA.normalize(raw)
    assert needle in str(info.value)


def test_bf16_parsing():
    assert parse_bf16("nan", "x") == 0x7FC0
    assert parse_bf16("0x0001", "x") == 1
    assert parse_bf16(1.0, "x") == 0x3F80
    assert bf16_to_float(parse_bf16("-2.5", "x")) == -2.5
    with pytest.raises(TxnError, match="outside"):
        parse_bf16(70000, "x")


def test_lane_packing_roundtrip():
    lanes = [-1, 5, -128, 127]
    assert unpack_lanes(pack_lanes(lanes, 8), 8, 4, signed=True) == lanes
    assert pack_lanes([1, 2], 16) == 0x0002_0001


@settings(max_examples=50, deadline=None)
@given(SCHEMA.hypothesis_strategy())
def test_hypothesis_strategy_draws_valid_transactions(txn):
    assert SCHEMA.normalize(txn) == txn


def test_json_schema_shape():
    js = SCHEMA.json_schema(3)
    items = js["properties"]["transactions"]
    assert items["minItems"] == items["maxItems"] == 3
    assert set(items["items"]["required"]) == {"width", "n", "vals", "codes"}


def test_corner_biased_keeps_shapes_when_a_sizing_scalar_has_corners():
    """A corner drawn for a scalar that sizes an array must size that array (it once overrode
    the scalar after the array was drawn)."""
    from mxdv.sequences.constrained import corner_biased

    schema = TxnSchema((Field("n", "int", "rows", lo=1, hi=9, corners=(1, 9)),
                        Field("m", "int", "one per row", lo=-8, hi=7, shape=("n", 2), corners=(-8, 7))))
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(200):
        txn = corner_biased(schema, rng)
        assert schema.normalize(txn) == txn
        seen.add(txn["n"])
    assert {1, 9} <= seen and len(seen) > 3, "corners are drawn often, other values still appear"
