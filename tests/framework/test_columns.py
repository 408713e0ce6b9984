"""The columnar path's pieces without a simulator: columnar batches, vectorised payload
packing, the quantizer's columnar hooks against its per-transaction methods, batch coverage
sampling, and the encode bug planted in the columnar encoding."""
from __future__ import annotations

import numpy as np
import pytest

from mxdv.bugs import ENCODE_BUG_VAR, install_encode_bug
from mxdv.columns import Columns, check, is_columnar, random_columns
from mxdv.coverage.collector import CoverageCollector
from mxdv.env.bulk import layout as L
from mxdv.env.bulk import payload as P
from mxdv.env.bulk.driver import pack_beats
from mxdv.env.bulk.monitor import unpack
from mxdv.schema import TxnError
from mxdv.unit import get_unit


@pytest.mark.parametrize("name", ["quantizer", "systolic_array", "attention"])
def test_payload_pack_and_unpack_match_the_per_beat_packing(name):
    unit = get_unit(name)
    rng = np.random.default_rng(7)
    lay = L.Layout.of(unit)
    for pl in (*lay.inputs, lay.output):
        beats = [{f: int(rng.integers(0, 2 ** min(w, 62))) | (int(rng.integers(0, 2)) << (w - 1))
                  for f, _, w in pl.offsets()} for _ in range(40)]
        words = {f: np.array([[(b[f] >> (32 * k)) & 0xFFFFFFFF for k in range(L.words_for(w))] for b in beats],
                             np.uint32) for f, _, w in pl.offsets()}
        ints = {f: (np.array([b[f] for b in beats], np.int64) if w <= 63 else words[f]) for f, _, w in pl.offsets()}
        ref = pack_beats(pl, beats)
        assert (P.pack(pl, words, 40) == ref).all()
        assert (P.pack(pl, ints, 40) == ref).all()
        assert P.beat_dicts(pl, ref) == unpack(pl, ref) == beats
        back = P.unpack(pl, ref)
        for f, _, w in pl.offsets():
            assert (back[f] == words[f]).all()
            if w <= 63:
                assert (P.field_int(back[f]) == ints[f]).all()


def test_payload_pack_masks_twos_complement_and_names_a_missing_field():
    unit = get_unit("quantizer")
    pl = L.Layout.of(unit).inputs[0]
    data = np.zeros((2, 16), np.uint32)
    out = P.pack(pl, {"data": data, "w4": np.array([-1, 0])}, 2)
    assert P.field_int(P.unpack(pl, out)["w4"]).tolist() == [1, 0]
    with pytest.raises(ValueError, match="field `w4`"):
        P.pack(pl, {"data": data}, 2)


def test_columns_check_names_the_field_the_transaction_and_the_value():
    schema = get_unit("quantizer").schema
    cols = random_columns(schema, np.random.default_rng(1), 5)
    bad = dict(cols.arrays)
    bad["elem_width"] = bad["elem_width"].copy()
    bad["elem_width"][3] = 6
    with pytest.raises(TxnError, match=r"transaction 3 of the batch: elem_width = 6 is out of range \(one of \[8, 4\]\)"):
        check(Columns(schema, bad))
    values = cols["values"].copy()
    values[2, 17] = 0x10000
    with pytest.raises(TxnError, match=r"transaction 2 of the batch: values\[17\] = 65536"):
        check(Columns(schema, {**cols.arrays, "values": values}))
    with pytest.raises(TxnError, match="field `values` has shape"):
        Columns(schema, {**cols.arrays, "values": values[:, :8]})
    with pytest.raises(TxnError, match="missing field"):
        Columns(schema, {"values": values})


@pytest.mark.parametrize("name", ["systolic_array", "attention"])
def test_variable_length_fields_are_padded_and_cut_back(name):
    unit = get_unit(name)
    rng = np.random.default_rng(4)
    rows = [unit.schema.random(rng) for _ in range(60)]
    cols = check(Columns.from_rows(unit.schema, rows))
    assert cols.rows() == rows
    drawn = check(random_columns(unit.schema, rng, 300))
    assert [unit.schema.normalize(t) for t in drawn.rows()] == drawn.rows()
    sized = next(f for f in unit.schema.fields if any(isinstance(d, str) for d in f.shape))
    lengths = {d for d in sized.shape if isinstance(d, str)}
    assert any(len({t[d] for t in drawn.rows()}) > 1 for d in lengths)  # lengths vary
    bad = drawn[sized.name].copy()
    length = next(iter(lengths))
    i = int(np.argmin(drawn[length]))
    if int(drawn[length][i]) < unit.schema.by_name(length).hi:
        axis = sized.shape.index(length)
        index = [i] + [0] * len(sized.shape)
        index[1 + axis] = int(drawn[length][i])
        bad[tuple(index)] = 1
        with pytest.raises(TxnError, match=f"transaction {i} of the batch: field `{sized.name}` holds non-zero"):
            check(Columns(unit.schema, {**drawn.arrays, sized.name: bad}))


def test_random_columns_stay_in_domain_pin_fields_and_round_trip_through_rows():
    unit = get_unit("quantizer")
    assert is_columnar(unit.schema) and unit.columnar
    cols = check(random_columns(unit.schema, np.random.default_rng(2), 500))
    assert set(cols["elem_width"].tolist()) == {4, 8}
    assert Columns.from_rows(unit.schema, cols.rows()).rows() == cols.rows()
    assert [unit.schema.normalize(t) for t in cols.rows(slice(0, 20))] == cols.rows(slice(0, 20))
    pinned = random_columns(unit.schema, np.random.default_rng(2), 10, elem_width=4)
    assert set(pinned["elem_width"].tolist()) == {4}


def _hint_traffic(unit, n=400):
    from mxdv.coverage.plan import HINT_POLICY

    rng = np.random.default_rng(5)
    saved, HINT_POLICY.allowed = HINT_POLICY.allowed, True
    try:
        txns = [unit.schema.normalize(b.hint(rng)) for b in unit.plan.bins if b.hint is not None for _ in range(3)]
    finally:
        HINT_POLICY.allowed = saved
    txns += random_columns(unit.schema, rng, n).rows()
    return txns


def _columnar_variants() -> list[str]:
    """Every unit's default and regression variants whose unit declares the columnar hooks
    (a unit added later is checked here without touching this file), plus a small quantizer."""
    from mxdv.unit import unit_names

    out = ["quantizer:BLOCK=8"]
    for name in unit_names():
        unit = get_unit(name)
        out += [v for v in (unit.variant, *unit.regress_variants) if get_unit(v).columnar]
    return out


@pytest.mark.parametrize("spec", _columnar_variants())
def test_columnar_hooks_match_the_per_transaction_methods(spec):
    unit = get_unit(spec)
    assert unit.columnar
    txns = _hint_traffic(unit, 400 if unit.name == "quantizer" else 40)
    n = len(txns)
    cols = Columns.from_rows(unit.schema, txns)
    lay = L.Layout.of(unit)
    encoded = unit.encode_columns(cols)
    frames = {}
    for pl in lay.inputs:
        p = pl.port.prefix
        counts, enc = encoded[p]
        stim = P.pack(pl, enc, int(counts.sum()))
        assert counts.tolist() == [len(unit.encode(t)[p]) for t in txns]
        assert (stim == pack_beats(pl, [b for t in txns for b in unit.encode(t)[p]])).all()
        frames[p] = (counts, P.unpack(pl, stim))
    assert unit.decode_columns(frames, n).rows() == txns
    for p, (counts, fields) in frames.items():
        if "last" in fields:  # a flag on the wrong beat does not decode (the per-beat path takes it)
            bad = {**frames, p: (counts, {**fields, "last": fields["last"] ^ 1})}
            with pytest.raises(ValueError, match="last"):
                unit.decode_columns(bad, n)
    out_counts, pred = unit.predict_columns(cols)
    out = P.pack(lay.output, pred, int(out_counts.sum()))
    assert out_counts.tolist() == [len(unit.predict(t)) for t in txns]
    assert (out == pack_beats(lay.output, [b for t in txns for b in unit.predict(t)])).all()
    names, m = unit.sample_columns(cols)
    assert [{names[j] for j in np.flatnonzero(row)} for row in m] == [set(unit.sample(t)) for t in txns]
    assert [set(h) for h in unit.sample_batch(txns)] == [set(unit.sample(t)) for t in txns]
    assert m.any(axis=0).sum() > 30  # the traffic reaches most bins
    sizes = [f.name for f in unit.schema.fields if any(f.name in g.shape for g in unit.schema.fields)]
    for size in sizes:  # transactions of different lengths in one batch
        assert len({t[size] for t in txns}) > 1, size


def test_collector_matrix_sampling_counts_and_finds_first_and_goal_rows():
    unit = get_unit("quantizer")
    txns = _hint_traffic(unit, 200)
    sets = [set(unit.sample(t)) for t in txns]
    a = CoverageCollector(unit.plan)
    names, m = unit.sample_columns(Columns.from_rows(unit.schema, txns))
    before = a.hits()
    got = a.sample_matrix(tuple(names), m)
    hits = a.hits()
    for name in unit.plan.bin_names:
        assert hits[name] - before[name] == sum(name in s for s in sets)
    first: dict[str, int] = {}
    for i, s in enumerate(sets):
        for name in s:
            first.setdefault(name, i)
    if not any(before.values()):
        assert {nm: i for i, new in got.new_at.items() for nm in new} == first
    goal = {bn.name: bn.at_least for bn in unit.plan.bins}
    for row, name in got.goal_rows:  # the sample at which the bin's count reached its goal
        assert before[name] + sum(name in s for s in sets[: row + 1]) == goal[name]
        assert before[name] + sum(name in s for s in sets[:row]) < goal[name]
    assert [r for r, _ in got.goal_rows] == sorted(r for r, _ in got.goal_rows)


def test_encode_bug_is_planted_in_the_columnar_encoding_too(monkeypatch):
    unit = get_unit("quantizer")
    monkeypatch.setenv(ENCODE_BUG_VAR, "encode_lanes_reversed")
    install_encode_bug(unit)
    cols = random_columns(unit.schema, np.random.default_rng(3), 20)
    pl = L.Layout.of(unit).inputs[0]
    counts, enc = unit.encode_columns(cols)["in_"]
    stim = P.pack(pl, enc, int(counts.sum()))
    assert (stim == pack_beats(pl, [b for t in cols.rows() for b in unit.encode(t)["in_"]])).all()
    assert (unit.decode_columns({"in_": (counts, P.unpack(pl, stim))}, 20)["values"] == cols["values"][:, ::-1]).all()


def test_replay_file_round_trip_and_errors_name_the_file(tmp_path):
    """An ``.npz`` replay file keeps narrow types on disk, reads back per batch as the same
    transactions, and a corrupt file, wrong fields or an out-of-range value name the file."""
    from types import SimpleNamespace

    from mxdv.sequences.replay import ReplayStrategy, load_columns, save_columns

    unit = get_unit("systolic_array")
    cols = random_columns(unit.schema, np.random.default_rng(3), 25)
    path = save_columns(tmp_path / "t.npz", cols)
    with np.load(path) as data:
        assert data["a"].dtype.itemsize <= 2 and data["w_scale"].dtype == np.uint8
    back = load_columns(path, unit.schema)
    assert all((back[f.name] == cols[f.name]).all() for f in unit.schema.fields)
    strategy = ReplayStrategy.__new__(ReplayStrategy)
    strategy.options = {"file": str(path)}
    ctx = SimpleNamespace(unit=unit, cfg=SimpleNamespace(budget=100), submitted=0)
    parts = [strategy.propose_columns(ctx, 10) for _ in range(3)]
    assert [len(p) for p in parts] == [10, 10, 5]
    assert (np.concatenate([p["a"] for p in parts]) == cols["a"]).all()
    assert len(strategy.propose_columns(ctx, 10)) == 0 and ctx.cfg.budget == 0  # the file is spent

    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="replay file .*bad.npz"):
        load_columns(tmp_path / "bad.npz", unit.schema)
    np.savez(tmp_path / "fields.npz", a=cols["a"])
    with pytest.raises(ValueError, match="fields.npz: fields \\['a'\\]"):
        load_columns(tmp_path / "fields.npz", unit.schema)
    arrays = {f.name: cols[f.name].copy() for f in unit.schema.fields}
    arrays["a_scale"][4, 0, 0] = 300
    np.savez(tmp_path / "range.npz", **arrays)
    with pytest.raises(ValueError, match="range.npz: transaction 4 of the batch: a_scale"):
        load_columns(tmp_path / "range.npz", unit.schema)
