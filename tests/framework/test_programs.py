"""The stimulus program language (mxdv.sequences.programs): validation names the wrong part,
bounds hold, sampling means what the README says, swarm programs of every unit are valid, the
Hypothesis compile target draws valid transactions, and the generated JSON Schema is well
formed and only admits programs the language accepts (checked by a small validator/generator
here: the ``jsonschema`` package is not a dependency)."""
import json
import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from mxdv.refmodel.mx import quantize_mx
from mxdv.sequences.programs import (ProgramError, hypothesis_txn, random_program, sample_program,
                                     validate_program)
from mxdv.sequences.programs.json_schema import PROFILES, describe_language, program_schema, reply_schema
from mxdv.sequences.programs.language import MAX_COUNT, MAX_LIST, MAX_PROGRAM_CHARS
from mxdv.sequences.programs.sample import NumpyChooser
from mxdv.unit import get_unit

UNITS = ("quantizer", "systolic_array", "attention")
Q = get_unit("quantizer").schema
SA = get_unit("systolic_array").schema
ATT = get_unit("attention").schema


def sample(schema, raw, n=20, seed=0):
    return sample_program(schema, validate_program(schema, raw), np.random.default_rng(seed), count=n)


def floats(codes):
    return np.asarray(codes, dtype=np.uint16).view(ml_dtypes.bfloat16).astype(np.float64)


def floor_log2_max(codes) -> int:
    m = np.max(np.abs(floats(codes)))
    return math.frexp(m)[1] - 1


# -- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize("schema, raw, message", [
    (Q, {"fields": {"bogus": 1}}, "fields: unknown key(s) ['bogus']"),
    (Q, {"bogus": 1}, "program: unknown key(s) ['bogus']"),
    (Q, {"fields": {"values": {"max_exp": 3, "colour": "red"}}}, "fields.values: unknown key(s) ['colour']"),
    (Q, [1, 2], "program: expected an object, got list"),
    (ATT, {"fields": {"n_keys": "x"}}, "fields.n_keys: expected an integer, got str 'x'"),
    (Q, {"fields": {"elem_width": True}}, "fields.elem_width: expected an integer, got bool True"),
    (Q, {"fields": {"values": {"all_equal": 1}}}, "fields.values.all_equal: expected true or false"),
    (ATT, {"fields": {"n_keys": 99}}, "fields.n_keys: 99 is outside the field's domain (1..12)"),
    (Q, {"fields": {"elem_width": 5}}, "fields.elem_width: 5 is outside the field's domain (one of [8, 4])"),
    (SA, {"fields": {"a": {"elements": 300}}}, "fields.a.elements: 300 is outside the field's domain (-128..127)"),
    (Q, {"fields": {"values": {"max_exp": 128}}}, "fields.values.max_exp: 128 is outside the field's domain (-133..127)"),
    (ATT, {"fields": {"n_keys": {"range": [5, 2]}}}, "fields.n_keys.range: low 5 is above high 2"),
    (Q, {"fields": {"elem_width": {"range": [4, 8]}}}, "fields.elem_width.range: this field takes one of [8, 4]; use choice"),
    (ATT, {"fields": {"q_offset": {"ref": "nope"}}}, "fields.q_offset.ref: 'nope' is not an earlier integer field"),
    (ATT, {"fields": {"n_keys": {"ref": "q_offset"}}}, "fields.n_keys.ref: 'q_offset' is not an earlier integer field; earlier: ['n_rows']"),
    (ATT, {"fields": {"q_offset": {"ref": "n_keys", "add": {"ref": "n_rows"}}}}, "fields.q_offset.add.ref: only a scalar"),
    (SA, {"fields": {"a": {"elements": {"ref": "kblocks"}}}}, "fields.a.elements.ref: only a scalar field's spec may refer"),
    (Q, {"count": MAX_COUNT + 1}, f"count: {MAX_COUNT + 1} is outside the field's domain (1..{MAX_COUNT})"),
    (Q, {"count": 0}, "count: 0 is outside the field's domain"),
    (Q, {"fields": {"values": {"specials": [{"lane": 0, "value": "nan"}] * (MAX_LIST + 1)}}},
     f"fields.values.specials: expected 1..{MAX_LIST} items, got {MAX_LIST + 1}"),
    (SA, {"fields": {"a": {"set": [{"at": [0, 0, 0], "value": 0}] * (MAX_LIST + 1)}}},
     f"fields.a.set: expected 1..{MAX_LIST} items, got {MAX_LIST + 1}"),
    (SA, {"fields": {"a": {"set": [{"at": [0, 0], "value": 0}]}}}, "fields.a.set[0].at: expected 3..3 items, got 2"),
    (SA, {"fields": {"a": {"set": [{"at": [0, 0, 9999], "value": 0}]}}}, "fields.a.set[0].at[2]: 9999 is outside"),
    (Q, {"fields": {"values": {"zero": 1.5}}}, "fields.values.zero: expected a probability between 0 and 1, got 1.5"),
    (SA, {"fields": {"a": {"zero": -0.1}}}, "fields.a.zero: expected a probability between 0 and 1"),
    (Q, {"fields": {"values": {"subnormal": "often"}}}, "fields.values.subnormal: expected a probability"),
    (SA, {"fields": {"a": {"signs": "sideways"}}}, "fields.a.signs: expected one of ['any', 'pos', 'neg', 'alternate', 'mixed'], got 'sideways'"),
    (Q, {"fields": {"values": {"signs": "up"}}}, "fields.values.signs: expected one of"),
    (SA, {"fields": {"a_scale": {"signs": "neg"}}}, "fields.a_scale.signs: field a_scale has no negative values (0..255)"),
    (Q, {"fields": {"values": {"ties": {"width": 9}}}}, "fields.values.ties.width: 9 is outside the field's domain (2..8)"),
    (Q, {"fields": {"values": {"ties": {"width": 1}}}}, "fields.values.ties.width: 1 is outside"),
    (Q, {"fields": {"values": {"ties": {"lanes": 2}}}}, "fields.values.ties.width: expected an integer, got null"),
    (Q, {"fields": {"values": {"ties": {"width": 8, "parity": "prime"}}}}, "fields.values.ties.parity: expected odd, even or any"),
    (Q, {"fields": {"values": {"ties": {"width": 8, "lanes": 33}}}}, "fields.values.ties.lanes: 33 is outside the field's domain (1..32)"),
    (Q, {"fields": {"values": {"specials": [{"lane": 0, "value": "huge"}]}}}, "fields.values.specials[0].value: expected one of"),
    (Q, {"fields": {"values": {"max_lane": 32}}}, "fields.values.max_lane: 32 is outside the field's domain (-32..31)"),
    (SA, {"fields": {"a": {"per": "col"}}}, "fields.a.per: expected one of ['element', 'row', 'array'], got 'col'"),
    (SA, {"fields": {"a": {"diag": {"axes": [0, 0]}}}}, "fields.a.diag.axes: the two axes must differ, got [0, 0]"),
    (SA, {"fields": {"a": {"diag": {"axes": [0, 3]}}}}, "fields.a.diag.axes[1]: 3 is outside the field's domain (0..2)"),
    (SA, {"fields": {"a": {"elements": {"range": [0, 1], "choice": [1]}}}}, "fields.a.elements: an integer spec has exactly one of"),
    (SA, {"fields": {"a": {"elements": {"weighted": [[1, 0]]}}}}, "fields.a.elements.weighted[0][1]: a weight must be a number > 0, got 0"),
    (SA, {"fields": {"a": {"elements": {"cubic": 1}}}}, "fields.a.elements: unknown integer spec 'cubic'"),
    (SA, {"fields": {"a": {"values": [0], "zero": 0.5}}}, "fields.a: values gives the whole array; it cannot be combined with ['zero']"),
    (Q, {"name": 7}, "name: expected a string"),
    (Q, {"targets": "exp.p127"}, "targets: expected a list"),
])
def test_every_error_names_its_path(schema, raw, message):
    with pytest.raises(ProgramError) as err:
        validate_program(schema, raw)
    assert str(err.value).startswith(message), str(err.value)


def test_unknown_targets_are_named_when_the_plan_is_given():
    plan = get_unit("quantizer").plan.bin_names
    assert validate_program(Q, {"targets": ["exp.p127", "x"]})["targets"] == ["exp.p127", "x"]
    with pytest.raises(ProgramError, match=r"^targets: unknown bin\(s\) \['x'\]"):
        validate_program(Q, {"targets": ["exp.p127", "x"]}, plan)


def test_oversized_programs_are_refused():
    big = {"fields": {"values": {"values": [0] * (MAX_PROGRAM_CHARS // 3 + 10)}}}
    assert len(json.dumps(big)) > MAX_PROGRAM_CHARS
    with pytest.raises(ProgramError, match=f"^program: [0-9]+ characters, more than the limit of {MAX_PROGRAM_CHARS}"):
        validate_program(Q, big)
    with pytest.raises(ProgramError, match="^program: not JSON data"):
        validate_program(Q, {"fields": {"values": {"values": [float("nan"), object()]}}})


def test_literal_arrays_are_checked_when_sampled():
    prog = validate_program(Q, {"fields": {"values": {"values": [1, 2, 3]}}})
    with pytest.raises(ProgramError, match=r"^fields\.values\.values: values: expected 32 items, got 3"):
        sample_program(Q, prog, np.random.default_rng(0), count=1)
    (t,) = sample(Q, {"fields": {"values": {"values": ["nan"] + [1.0] * 31}}}, n=1)
    assert t["values"][0] == 0x7FC0 and t["values"][1:] == [0x3F80] * 31


def test_normal_form():
    prog = validate_program(ATT, {"fields": {"n_keys": 4, "causal": "random", "q_offset": {"ref": "n_keys"},
                                             "k_codes": "corners", "v_codes": [[0] * 16] * 4}})
    assert prog == {"targets": [], "count": 8, "fields": {
        "n_keys": {"const": 4}, "q_offset": {"ref": "n_keys", "add": {"const": 0}},
        "k_codes": {"elements": {"corners": True}}, "v_codes": {"values": [[0] * 16] * 4}}}
    assert validate_program(Q, {"fields": {"values": "random"}})["fields"] == {}


# -- sampling ------------------------------------------------------------------------------------
def test_const_range_choice_weighted():
    txns = sample(ATT, {"fields": {"n_keys": 5, "q_offset": {"range": [100, 110]}, "n_rows": {"choice": [2]},
                                   "causal": {"weighted": [[0, 1], [1, 1000]]}}}, n=60)
    assert all(t["n_keys"] == 5 and len(t["k_codes"]) == 5 and len(t["v_scales"]) == 5 for t in txns)
    assert all(100 <= t["q_offset"] <= 110 for t in txns)
    assert len({t["q_offset"] for t in txns}) > 5, "a range is drawn, not fixed"
    assert all(t["n_rows"] == 2 and len(t["q_codes"]) == 2 for t in txns)
    assert sum(t["causal"] for t in txns) >= 55
    arrs = np.concatenate([np.ravel(t["a"]) for t in sample(SA, {"fields": {"a": {"elements": {"range": [-3, 2]}}}}, n=10)])
    assert arrs.min() == -3 and arrs.max() == 2
    chosen = np.concatenate([np.ravel(t["w"]) for t in sample(SA, {"fields": {"w": {"elements": {"choice": [7, -8]}}}}, n=5)])
    assert set(chosen.tolist()) == {7, -8}


def test_corners_draw_domain_edges_and_declared_corners():
    vals = {v for t in sample(ATT, {"fields": {"q_offset": "corners"}}, n=150) for v in [t["q_offset"]]}
    assert vals == {0, 1, 3, 4, 11, 65535}
    codes = {v for t in sample(SA, {"fields": {"a_scale": {"elements": "corners"}}}, n=20) for row in t["a_scale"] for v in row}
    assert codes == {0, 1, 127, 254, 255}


@pytest.mark.parametrize("e", [-133, -131, -128, -127, -126, -125, -64, -1, 0, 1, 126, 127])
@pytest.mark.parametrize("extra", [{}, {"spread": 0}, {"spread": 260}, {"spread": 1, "subnormal": 1.0},
                                   {"signs": "neg", "max_lane": -1}])
def test_bf16_max_exp_sets_the_block_exponent(e, extra):
    txns = sample(Q, {"fields": {"values": {"max_exp": e, **extra}}}, n=12, seed=e + 1000)
    for t in txns:
        assert floor_log2_max(t["values"]) == e
        assert all(not np.isnan(x) and not np.isinf(x) for x in floats(t["values"]))
    if "max_lane" in extra:
        for t in txns:
            mags = np.abs(floats(t["values"]))
            assert mags[31] == mags.max() and (mags[:31] < mags[31]).all(), "the max is only in the last lane"
            assert all(c & 0x8000 for c in t["values"] if c & 0x7FFF), "signs: neg"


def test_bf16_max_exp_range_and_all_equal():
    exps = {floor_log2_max(t["values"]) for t in sample(Q, {"fields": {"values": {"max_exp": {"range": [-3, 2]}}}}, n=80)}
    assert exps == set(range(-3, 3))
    for t in sample(Q, {"fields": {"values": {"max_exp": 5, "max_mant": 0, "all_equal": True}}}, n=5):
        assert len({c & 0x7FFF for c in t["values"]}) == 1 and floats(t["values"])[0] in (32.0, -32.0)
    for t in sample(Q, {"fields": {"values": {"max_exp": 5, "max_mant": 0, "all_equal": True,
                                              "specials": [{"lane": 3, "value": "inf"}]}}}, n=5):
        assert t["values"][3] == 0x7F80, "a special still lands on its lane of an all-equal block"
        assert len({c for i, c in enumerate(t["values"]) if i != 3}) == 1


@pytest.mark.parametrize("width", [8, 4])
@pytest.mark.parametrize("parity", ["odd", "even", "any"])
@pytest.mark.parametrize("e", [-126, -100, -1, 0, 40, 127])
def test_ties_are_exact_half_way_points(width, parity, e):
    """With the other lanes at exactly 2^e (spread 0, max_mant 0) no lane is a tie by chance, so
    the lanes half-way between two MXINT codes (per the refmodel's shared exponent) are exactly
    the `lanes` tie lanes asked for."""
    fmt = f"mxint{width}"
    raw = {"fields": {"elem_width": width, "values": {"max_exp": e, "max_mant": 0, "spread": 0,
                                                      "ties": {"width": width, "lanes": 3, "parity": parity}}}}
    for t in sample(Q, raw, n=10, seed=width * 1000 + e + 200):
        x = floats(t["values"]).astype(np.float32)
        mx = quantize_mx(x, fmt, 32)
        se = int(mx.shared_exp[0])
        assert se == max(e, -127)
        scaled = x.astype(np.float64) * 2.0 ** (width - 2) / 2.0 ** se
        frac = scaled - np.floor(scaled)
        ties = np.flatnonzero(frac == 0.5)
        assert len(ties) == 3, (scaled, ties)
        k = np.floor(np.abs(scaled[ties])).astype(int)
        if parity != "any":
            assert all((k % 2 == 1) == (parity == "odd")), k
        # RNE: a tie goes to the even code
        assert all(abs(int(c)) % 2 == 0 for c in mx.elements[ties])


def test_ties_keep_a_subnormal_block_max():
    for t in sample(Q, {"fields": {"values": {"max_exp": -131, "ties": {"width": 4, "lanes": 2}}}}, n=10):
        assert floor_log2_max(t["values"]) == -131


def test_specials_zero_subnormal_and_signs():
    raw = {"fields": {"values": {"max_exp": 10, "specials": [{"lane": 5, "value": "nan"}, {"lane": -1, "value": "-inf"},
                                                             {"lane": 0, "value": "min_subnormal"}]}}}
    for t in sample(Q, raw, n=5):
        assert t["values"][5] == 0x7FC0 and t["values"][31] == 0xFF80 and t["values"][0] == 0x0001
    for t in sample(Q, {"fields": {"values": {"max_exp": 3, "zero": 1.0}}}, n=10):
        assert all(c & 0x7FFF == 0 for c in t["values"]), "zero 1.0 is an all-zero block"
    for t in sample(Q, {"fields": {"values": {"max_exp": 0, "subnormal": 1.0, "spread": 3}}}, n=10):
        others = [c for i, c in enumerate(t["values"]) if floats([c])[0] != 0 and abs(floats([c])[0]) < 1]
        assert len(others) == 31 and all((c & 0x7F80) == 0 for c in others), "every other lane is subnormal"
    for t in sample(Q, {"fields": {"values": {"max_exp": 0, "signs": "alternate"}}}, n=5):
        assert [c >> 15 for c in t["values"]] == [i % 2 for i in range(32)]
    for t in sample(Q, {"fields": {"values": {"max_exp": 0, "signs": "mixed", "spread": 2}}}, n=20):
        signs = {c >> 15 for c in t["values"] if c & 0x7FFF}
        assert signs == {0, 1}


def test_integer_array_zero_signs_per_and_set():
    for t in sample(SA, {"fields": {"a": {"zero": 1.0}, "w": {"signs": "neg"}, "w_scale": {"per": "array"}}}, n=5):
        assert np.all(np.asarray(t["a"]) == 0)
        assert np.all(np.asarray(t["w"]) <= 0)
        ws = np.asarray(t["w_scale"])
        assert np.all(ws == ws.flat[0]), "per: array gives a constant array"
    consts = {np.asarray(t["w_scale"]).flat[0] for t in sample(SA, {"fields": {"w_scale": {"per": "array"}}}, n=30)}
    assert len(consts) > 10, "per array: one draw per transaction, not one per program"
    for t in sample(ATT, {"fields": {"n_keys": 6, "k_codes": {"per": "row", "elements": {"range": [-50, 50]}}}}, n=5):
        k = np.asarray(t["k_codes"])
        assert np.all(k == k[:, :1]), "per: row gives one value per first-axis row"
    for t in sample(ATT, {"fields": {"q_codes": {"signs": "alternate", "elements": {"range": [1, 9]}}}}, n=5):
        q = np.asarray(t["q_codes"])
        assert np.all((q[:, 0::2] > 0)) and np.all(q[:, 1::2] < 0)
    raw = {"fields": {"kblocks": 2, "a": {"elements": 0, "set": [{"at": [-1, "*", 3], "value": 127}]}}}
    for t in sample(SA, raw, n=3):
        a = np.asarray(t["a"])
        assert np.all(a[3, :, 3] == 127) and a.sum() == 127 * 2


def test_diag_gives_an_identity():
    raw = {"fields": {"n_keys": 12, "k_codes": {"elements": {"range": [-9, 9]}, "diag": {"axes": [0, 1], "value": 1, "off": 0}}}}
    for t in sample(ATT, raw, n=5):
        assert np.array_equal(np.asarray(t["k_codes"]), np.eye(12, 16, dtype=int))
    raw = {"fields": {"kblocks": 1, "w": {"diag": {"axes": [1, 2], "value": 64, "off": 0}}}}
    for t in sample(SA, raw, n=3):
        assert np.array_equal(np.asarray(t["w"])[0], 64 * np.eye(32, 4, dtype=int))


def test_ref_relation_q_offset_follows_n_keys():
    txns = sample(ATT, {"fields": {"q_offset": {"ref": "n_keys", "add": 3}}}, n=50)
    assert all(t["q_offset"] == t["n_keys"] + 3 for t in txns) and len({t["n_keys"] for t in txns}) > 3
    txns = sample(ATT, {"fields": {"q_offset": {"ref": "n_keys", "add": {"range": [-20, -1]}}}}, n=50)
    assert all(max(0, t["n_keys"] - 20) <= t["q_offset"] <= t["n_keys"] - 1 for t in txns)
    assert any(t["q_offset"] == 0 for t in txns), "clamped to the field's domain"


def test_sampling_is_reproducible():
    raw = random_program(SA, NumpyChooser(np.random.default_rng(5)))
    assert sample(SA, raw, n=3, seed=9) == sample(SA, raw, n=3, seed=9)


# -- swarm programs ------------------------------------------------------------------------------
@pytest.mark.parametrize("unit_name", UNITS)
def test_random_programs_validate_and_sample(unit_name):
    schema = get_unit(unit_name).schema
    rng = np.random.default_rng(len(unit_name))
    forms = set()
    for i in range(200):
        raw = random_program(schema, NumpyChooser(rng), count=1 + i % MAX_COUNT)
        prog = validate_program(schema, json.loads(json.dumps(raw)))  # plain JSON data
        assert prog["count"] == 1 + i % MAX_COUNT
        forms |= {k for spec in prog["fields"].values() for k in spec}
        for t in sample_program(schema, prog, rng, count=1):
            assert schema.normalize(t) == t
    assert len(forms) >= 5, forms


def test_mutated_programs_stay_valid():
    from mxdv.sequences.programs.swarm import mutate_program

    for schema in (Q, SA, ATT):
        ch = NumpyChooser(np.random.default_rng(11))
        prog = random_program(schema, ch)
        for _ in range(40):
            prog = mutate_program(schema, prog, ch)
            norm = validate_program(schema, prog)
            (t,) = sample_program(schema, norm, ch.rng, count=1)
            assert schema.normalize(t) == t


# -- the Hypothesis compile target ----------------------------------------------------------------
@pytest.mark.parametrize("unit_name", UNITS)
def test_hypothesis_txn_draws_valid_transactions(unit_name):
    schema = get_unit(unit_name).schema
    programs = [validate_program(schema, random_program(schema, NumpyChooser(np.random.default_rng(s)))) for s in range(3)]
    programs.append(validate_program(schema, {"fields": {}}))
    seen = []

    for prog in programs:
        @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(hypothesis_txn(schema, prog))
        def check(txn):
            assert schema.normalize(txn) == txn
            seen.append(txn)

        check()
    assert len(seen) >= 4 * 4


def test_hypothesis_txn_honours_the_program():
    prog = validate_program(ATT, {"fields": {"n_keys": {"range": [2, 4]}, "q_offset": {"ref": "n_keys", "add": 1},
                                             "k_codes": {"per": "array", "elements": 7}}})

    @settings(max_examples=15, deadline=None, database=None)
    @given(hypothesis_txn(ATT, prog))
    def check(txn):
        assert 2 <= txn["n_keys"] <= 4 and txn["q_offset"] == txn["n_keys"] + 1
        assert np.all(np.asarray(txn["k_codes"]) == 7)

    check()


# -- JSON Schema ----------------------------------------------------------------------------------
KEYWORDS = {"type", "enum", "properties", "required", "additionalProperties", "items", "minItems", "maxItems",
            "minimum", "maximum", "anyOf"}
TYPES = {"object", "array", "integer", "number", "string", "boolean", "null"}


def check_schema_shape(node, path="$"):
    """Every node is a JSON Schema object using only known keywords with well-formed values."""
    assert isinstance(node, dict) and node, path
    assert set(node) <= KEYWORDS, (path, set(node) - KEYWORDS)
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        assert types and set(types) <= TYPES, path
    if "enum" in node:
        assert isinstance(node["enum"], list) and node["enum"], path
    if "properties" in node:
        for k, v in node["properties"].items():
            check_schema_shape(v, f"{path}.{k}")
    if "required" in node:
        assert set(node["required"]) <= set(node.get("properties", {})), path
    if isinstance(node.get("additionalProperties"), dict):
        check_schema_shape(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        check_schema_shape(node["items"], f"{path}[]")
    if "anyOf" in node:
        assert isinstance(node["anyOf"], list) and node["anyOf"], path
        for i, alt in enumerate(node["anyOf"]):
            check_schema_shape(alt, f"{path}|{i}")
    for lo, hi in (("minItems", "maxItems"), ("minimum", "maximum")):
        if lo in node and hi in node:
            assert node[lo] <= node[hi], path


def instance(node, rng, key="", empty_lists=False):
    """A random instance of a schema node (small values where the schema leaves them open).
    Two constraints JSON Schema cannot state are respected as the README says: a range is
    low <= high, and the two diag axes differ. Arrays without minItems get at least one item
    unless ``empty_lists`` (see test_reply_schema_admits_empty_lists)."""
    if "anyOf" in node:
        return instance(node["anyOf"][rng.integers(len(node["anyOf"]))], rng, key, empty_lists)
    if "enum" in node:
        return node["enum"][rng.integers(len(node["enum"]))]
    t = node.get("type")
    t = t[rng.integers(len(t))] if isinstance(t, list) else t
    if t == "integer":
        lo, hi = node.get("minimum", -3), node.get("maximum", 3)
        return int(rng.integers(lo, hi + 1))
    if t == "number":
        return float(rng.uniform(node.get("minimum", -4.0), node.get("maximum", 4.0)))
    if t == "boolean":
        return bool(rng.integers(2))
    if t == "string":
        return ["nan", "1.5", "-inf", "0x3f80"][rng.integers(4)]
    if t == "array":
        least = node.get("minItems", 0 if empty_lists else 1)
        n = int(rng.integers(least, max(least, min(node.get("maxItems", 3), 3)) + 1))
        if key == "axes":
            hi = node["items"]["maximum"] if "maximum" in node["items"] else max(node["items"]["enum"])
            return [int(x) for x in rng.choice(hi + 1, size=2, replace=False)]
        items = [instance(node["items"], rng, "", empty_lists) for _ in range(n)]
        return sorted(items) if key == "range" else items
    if t == "object":
        props = node.get("properties", {})
        keys = [k for k in props if k in node.get("required", []) or rng.random() < 0.5]
        return {k: instance(props[k], rng, k, empty_lists) for k in keys}
    raise AssertionError(f"no instance for {node}")


def conforms(value, node) -> bool:
    """A small JSON Schema validator for the keywords above."""
    if "anyOf" in node:
        return any(conforms(value, alt) for alt in node["anyOf"])
    if "enum" in node and value not in node["enum"]:
        return False
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        ok = {"integer": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, (int, float)) and not isinstance(value, bool),
              "string": isinstance(value, str), "boolean": isinstance(value, bool),
              "object": isinstance(value, dict), "array": isinstance(value, list), "null": value is None}
        if not any(ok[t] for t in types):
            return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < node.get("minimum", -math.inf) or value > node.get("maximum", math.inf):
            return False
    if isinstance(value, list):
        if not node.get("minItems", 0) <= len(value) <= node.get("maxItems", 10 ** 9):
            return False
        if "items" in node and not all(conforms(v, node["items"]) for v in value):
            return False
    if isinstance(value, dict):
        props = node.get("properties", {})
        if any(k not in value for k in node.get("required", [])):
            return False
        for k, v in value.items():
            if k in props:
                if not conforms(v, props[k]):
                    return False
            elif node.get("additionalProperties") is False:
                return False
    return True


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("unit_name", UNITS)
def test_reply_schema_is_well_formed_and_admits_only_valid_programs(unit_name, profile):
    unit = get_unit(unit_name)
    bins = unit.plan.bin_names
    schema = reply_schema(unit.schema, 3, bins, profile)
    json.dumps(schema)
    check_schema_shape(schema)
    items = schema["properties"]["programs"]
    assert (items["minItems"], items["maxItems"]) == (1, 3) and schema["required"] == ["programs"]
    fields = items["items"]["properties"]["fields"]["properties"]
    assert set(fields) == {f.name for f in unit.schema.fields}
    assert items["items"]["properties"]["targets"]["items"] == {"enum": bins}
    rng = np.random.default_rng(hash((unit_name, profile)) % 2 ** 32)
    for _ in range(40):
        reply = instance(schema, rng)
        assert conforms(reply, schema)
        for raw in reply["programs"]:
            prog = validate_program(unit.schema, raw, bins)
            for t in sample_program(unit.schema, prog, rng, count=1):
                assert unit.schema.normalize(t) == t


def _walk(node, path=""):
    """(path, node) for every object node of a schema; a key adds ``.key`` to the path, a list
    element keeps its list's path."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v, path)


def _any_ofs(node) -> list[str]:
    """Paths of the anyOf nodes of a schema."""
    return [p for p, n in _walk(node) if "anyOf" in n]


def _int_bounds(node) -> list[tuple[int, int]]:
    """(minimum, maximum) of every bounded integer node of a schema."""
    return [(n["minimum"], n["maximum"]) for _, n in _walk(node) if n.get("type") == "integer" and "minimum" in n]


def _number_nodes(node) -> list[str]:
    """Paths of the nodes typed as a JSON number (a grammar may not enforce their bounds)."""
    return [p for p, n in _walk(node)
            if "number" in (n.get("type") if isinstance(n.get("type"), list) else [n.get("type")])]


def test_compact_profile_has_literal_integer_specs_only():
    from mxdv.sequences.programs.json_schema import COMPACT_ENUM_MAX

    for name in UNITS:
        schema = get_unit(name).schema
        compact, full = (reply_schema(schema, 3, None, p) for p in ("compact", "full"))
        # a bounded integer is a list of its values (llama-cpp-python's grammar ignores bounds)
        assert all(hi - lo + 1 > COMPACT_ENUM_MAX for lo, hi in _int_bounds(compact)), "only wide ranges keep bounds"
        assert any(hi - lo + 1 <= COMPACT_ENUM_MAX for lo, hi in _int_bounds(full))
        # the only alternatives left in the compact profile are set indices (int, "*" or "random")
        assert all(p.endswith(".set.items.properties.at.items") for p in _any_ofs(compact)), _any_ofs(compact)
        assert '"range"' not in json.dumps(compact) and '"choice"' not in json.dumps(compact)
        assert '"range"' in json.dumps(full) and '"choice"' in json.dumps(full)
    with pytest.raises(ValueError, match="schema profile must be one of"):
        reply_schema(Q, 3, None, "tiny")
    assert conforms({"programs": [{"targets": ["x"], "fields": {"elem_width": 4, "values": {"max_exp": 3}}}]}, reply_schema(Q, 1))
    # compact: the array fields need a spec, and a BF16 block its max_exp (a small model left them out)
    assert not conforms({"programs": [{"targets": ["x"], "fields": {"elem_width": 4}}]}, reply_schema(Q, 1))
    assert not conforms({"programs": [{"targets": ["x"], "fields": {"values": {}}}]}, reply_schema(Q, 1))
    assert not conforms({"programs": [{"targets": ["x"], "fields": {"elem_width": {"range": [4, 8]}}}]},
                        reply_schema(Q, 1))
    assert not conforms({"programs": []}, reply_schema(Q, 1)), "at least one program"
    assert program_schema(Q)["properties"]["targets"]["items"] == {"type": "string"}


def test_compact_profile_lists_its_probabilities():
    """llama.cpp turns a JSON Schema number into a grammar without its bounds, so the compact
    profile offers probabilities as an enum; each of them is a valid probability."""
    from mxdv.sequences.programs.json_schema import COMPACT_PROBABILITIES

    for name in UNITS:
        schema = get_unit(name).schema
        compact, full = (reply_schema(schema, 1, None, p) for p in ("compact", "full"))
        bounded = [p for p in _number_nodes(compact) if not p.endswith((".values", ".max_exp", ".max_mant"))]
        assert not [p for p in bounded if ".zero" in p or ".subnormal" in p], bounded
        assert any(p.endswith(".zero") for p in _number_nodes(full)), "the full profile keeps numbers"
    assert all(0 <= v <= 1 for v in COMPACT_PROBABILITIES) and {0, 1} <= set(COMPACT_PROBABILITIES)
    block = reply_schema(Q, 1)["properties"]["programs"]["items"]["properties"]["fields"]["properties"]["values"]
    assert block["properties"]["zero"] == {"enum": list(COMPACT_PROBABILITIES)}
    assert not conforms({"programs": [{"targets": ["x"], "fields": {"elem_width": 8, "values": {"max_exp": 0, "zero": 127}}}]},
                        reply_schema(Q, 1)), "the reply that failed three calls running is outside the compact schema"
    prog = validate_program(Q, {"fields": {"elem_width": 8, "values": {"max_exp": 0, "zero": 0.9, "subnormal": 0.1}}})
    assert prog["fields"]["values"]["zero"] == 0.9


def test_reply_schema_admits_only_programs_the_language_accepts_even_empty_lists():
    for name in UNITS:
        unit = get_unit(name)
        schema = reply_schema(unit.schema, 3, None, "full")
        rng = np.random.default_rng(0)
        for _ in range(40):
            for raw in instance(schema, rng, empty_lists=True)["programs"]:
                validate_program(unit.schema, raw)


def test_describe_language_uses_the_units_field_names():
    for name in UNITS:
        schema = get_unit(name).schema
        text = describe_language(schema)
        assert all(f.name in text for f in schema.fields)
        assert ("BF16 block spec" in text) == any(f.kind == "bf16" for f in schema.fields)
        assert ("Integer array spec" in text) == any(f.shape and f.kind != "bf16" for f in schema.fields)
    assert '"ref"' in describe_language(ATT) and '"ref"' not in describe_language(Q)


def test_readme_examples_validate_and_sample():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "sequences" / "programs" / "README.md").read_text()
    examples = text.split("\n## Examples\n", 1)[1]
    count = 0
    for section in examples.split("\n### ")[1:]:
        unit = get_unit(section.split("\n", 1)[0].strip())
        for block in section.split("```json\n")[1:]:
            raw = json.loads(block.split("```", 1)[0])
            prog = validate_program(unit.schema, raw, unit.plan.bin_names)
            for t in sample_program(unit.schema, prog, np.random.default_rng(count), count=2):
                assert unit.schema.normalize(t) == t
            count += 1
    assert count >= 9


def test_corners_for_a_bf16_array_is_refused_or_means_corners():
    field = Q.fields[1]
    try:
        prog = validate_program(Q, {"fields": {"values": "corners"}})
    except ProgramError as exc:
        assert str(exc).startswith("fields.values")
        return
    for t in sample_program(Q, prog, np.random.default_rng(0), count=3):
        assert set(t["values"]) <= set(field.corners)


@pytest.mark.parametrize("unit_name", ["quantizer", "systolic_array", "attention"])
def test_corner_fill_leaves_the_written_parts_and_fills_the_rest(unit_name):
    """fill="corner": a program with no fields is exactly corner_random's transaction from the
    same generator; a field the program sets keeps its spec."""
    from mxdv.sequences.corner_random import draw_transaction

    unit = get_unit(unit_name)
    rng = np.random.default_rng(11)
    expected = [unit.schema.normalize(draw_transaction(unit.schema, rng)) for _ in range(30)]
    assert sample_program(unit.schema, {"fields": {}}, np.random.default_rng(11), count=30, fill="corner") == expected
    assert sample_program(unit.schema, {"fields": {}}, np.random.default_rng(11), count=30) != expected
    scalar = next(f for f in unit.schema.fields if not f.shape)
    value = scalar.choices[-1] if scalar.choices else scalar.lo
    prog = validate_program(unit.schema, {"fields": {scalar.name: value}})
    txns = sample_program(unit.schema, prog, np.random.default_rng(2), count=30, fill="corner")
    assert {t[scalar.name] for t in txns} == {value}


def test_corner_fill_of_an_integer_array_keeps_the_specs_on_top():
    """An integer array spec without elements gets corner_random's fill, then its zero/set parts."""
    unit = get_unit("systolic_array")
    prog = validate_program(unit.schema, {"fields": {"kblocks": 1, "a": {"set": [{"at": [0, 0, 0], "value": 77}]}}})
    txns = sample_program(unit.schema, prog, np.random.default_rng(4), count=40, fill="corner")
    assert all(t["a"][0][0][0] == 77 for t in txns)
    # the rest is corner-biased: constant / corner-only fills show up, unlike uniform draws
    flat = [np.asarray(t["a"]).reshape(-1)[1:] for t in txns]
    assert any(len(set(x.tolist())) <= 6 for x in flat)
    uniform = sample_program(unit.schema, prog, np.random.default_rng(4), count=40)
    assert not any(len(set(np.asarray(t["a"]).reshape(-1)[1:].tolist())) <= 6 for t in uniform)
    with pytest.raises(ValueError, match="fill must be one of"):
        sample_program(unit.schema, prog, np.random.default_rng(4), count=1, fill="zeros")


def test_require_arrays_follows_the_fill():
    unit = get_unit("systolic_array")
    arrays = {f.name for f in unit.schema.fields if f.shape}
    spec = program_schema(unit.schema, compact=True)["properties"]["fields"]
    assert set(spec["required"]) == arrays
    assert "required" not in program_schema(unit.schema, compact=True, require_arrays=False)["properties"]["fields"]
    text = describe_language(unit.schema, "corner")
    assert "corner-biased" in text and "uniformly random" not in text
