"""A reduced transformer layer on the three RTL units (one simulation), both simulators:
bit-identical to the quantized stack; a planted bug fails it and the report names unit and op.

The model is a seeded tiny LLaMA decoder layer (hidden 64, 2 query heads of 32, 1 KV head:
GQA; intermediate 64), 4 prefill tokens and 1 decode step, so it stays fast.
"""
import pytest

from mxdv.bugs import apply_bug, bugs_of
from mxdv.env.layer.workload import LayerRequest, write_checkpoint
from mxdv.layer import run_layer


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("layer") / "tiny-gqa")


def _run(ck, tmp_path, sim, **kw):
    req = LayerRequest(model=str(ck), tokens=4, decode=1, sim=sim, run_dir=str(tmp_path / f"run-{sim}"), **kw)
    return run_layer(req)


@pytest.mark.xdist_group("layer")
@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_layer_is_bit_exact(tiny_checkpoint, tmp_path, sim):
    r = _run(tiny_checkpoint, tmp_path, sim, idle_prob=0.1, backpressure_prob=0.1)
    assert r["error"] is None, r["error"]
    assert r["bit_exact"] and r["trace_matches_stack"], r["first_difference"]
    assert r["first_difference"] is None and r["unit_mismatches"] == []
    units = r["per_unit"]
    assert units["quantizer"]["checked"] == r["totals"]["blocks"] > 0
    assert units["systolic_array"]["checked"] == r["totals"]["tiles"] > 0
    assert units["attention"]["checked"] == 2 * 2  # 2 query heads x (prefill + 1 decode)
    assert all(u["protocol_violations"] == [] for u in units.values())
    assert r["accuracy"]["cosine"] > 0.99
    assert all(c["hit"] for c in r["coverage"].values())


@pytest.mark.xdist_group("layer")
@pytest.mark.parametrize("unit, bug_name, op", [("systolic_array", "scale_add_uses_a_twice", "q_proj"),
                                                ("quantizer", "int8_exp_off_by_one", "q_proj/k_proj/v_proj input")])
def test_planted_bug_names_unit_and_op(tiny_checkpoint, tmp_path, monkeypatch, unit, bug_name, op):
    bug = next(b for b in bugs_of(unit) if b.name == bug_name)
    monkeypatch.setenv("MXDV_RTL_ROOT", str(apply_bug(unit, bug, tmp_path / "rtl")))
    r = _run(tiny_checkpoint, tmp_path, "icarus", stop_on_mismatch=True)
    assert not r["bit_exact"]
    assert f"unit {unit}" in r["first_difference"] and f"op {op}" in r["first_difference"], r["first_difference"]
    assert r["unit_mismatches"] and r["unit_mismatches"][0].startswith(f"unit {unit}: layer 0 prefill")
    assert "expected" in r["unit_mismatches"][0] and "actual" in r["unit_mismatches"][0]
