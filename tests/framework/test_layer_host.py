"""The host side of `mxdv layer`: bad input fails before any simulation, naming the parameter;
the traced stack equals QuantizedPath bit for bit; the op compare names op, unit and place."""
import numpy as np
import pytest

from mxdv.cli import main
from mxdv.env.layer import top
from mxdv.env.layer.compare import first_difference
from mxdv.env.layer.traced_path import TracedPath
from mxdv.env.layer.workload import LayerInputError, LayerRequest, build_workload, write_checkpoint


_checkpoint = write_checkpoint


@pytest.fixture
def no_build(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("a simulation model was built for a bad request")
    monkeypatch.setattr(top, "build", fail)


@pytest.mark.parametrize("args, words", [
    (["--model", "gpt-5"], ["--model", "unknown model 'gpt-5'"]),
    (["--model", "/nonexistent/ckpt"], ["--model", "does not exist"]),
    (["--model", "tiny-llama", "--quant", "W2A2"], ["--quant", "W2A2"]),
    (["--model", "tiny-llama", "--layer", "7"], ["--layer", "7"]),
])
def test_bad_requests_fail_before_simulation(no_build, capsys, args, words):
    assert main(["layer", *args, "--sim", "icarus"]) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err, err


def test_head_dim_that_does_not_fit_the_rtl(no_build, tmp_path, capsys):
    ck = _checkpoint(tmp_path / "ck", num_attention_heads=4, num_key_value_heads=2)  # head_dim 16
    assert main(["layer", "--model", str(ck), "--sim", "icarus"]) == 2
    assert "head_dim 16" in capsys.readouterr().err


def test_intermediate_size_that_does_not_fit_the_blocks(tmp_path):
    ck = _checkpoint(tmp_path / "ck", intermediate_size=80)
    with pytest.raises(LayerInputError, match="intermediate_size 80"):
        build_workload(LayerRequest(model=str(ck)))


def test_checkpoint_without_config(tmp_path):
    ck = _checkpoint(tmp_path / "ck")
    (ck / "config.json").unlink()
    with pytest.raises(LayerInputError, match="no config.json"):
        build_workload(LayerRequest(model=str(ck)))


@pytest.mark.parametrize("model, kw", [("tiny-llama", {"tokens": 5, "decode": 2}),
                                       ("bert", {"tokens": 6, "decode": 0, "pad": 2})])
def test_traced_stack_equals_quantized_path(tmp_path, model, kw):
    if model == "bert":
        ck = _checkpoint(tmp_path / "bert", model_type="bert", num_key_value_heads=2, intermediate_size=128,
                         hidden_act="gelu")
        req = LayerRequest(model=str(ck), **kw)
    else:
        req = LayerRequest(model=model, **kw)
    wl = build_workload(req)
    stack = wl.run_layer(wl.new_model(wl.quantized_path()))
    path = TracedPath(wl.quant, wl.hardware["AT_TILE"], wl.config)
    model_ = wl.new_model(path)
    path.name_weights(model_, req.layer)
    traced = wl.run_layer(model_, on_step=lambda s: setattr(path, "step", s.name))
    for a, b in zip(stack, traced):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    ops = [r.op for r in path.records]
    assert "q_proj/k_proj/v_proj input" in ops and "k_cache" in ops and "attention" in ops


def test_first_difference_names_op_unit_and_tile():
    wl = build_workload(LayerRequest(model="tiny-llama", tokens=4, decode=0))
    runs = []
    for _ in range(2):
        path = TracedPath(wl.quant, wl.hardware["AT_TILE"], wl.config)
        m = wl.new_model(path)
        path.name_weights(m, 0)
        wl.run_layer(m, on_step=lambda s, p=path: setattr(p, "step", s.name))
        runs.append(path.records)
    ref, rtl = runs
    assert first_difference(ref, rtl, 0, 8, 8) is None
    gemm = next(r for r in rtl if r.kind == "gemm")
    gemm.value = gemm.value.copy()
    gemm.value[0, 2, 140] += 1.0  # column 140 of the fused q/k/v GEMM: k_proj, tile col 17
    report = first_difference(ref, rtl, 0, 8, 8)
    assert "layer 0 prefill" in report and "op k_proj" in report and "unit systolic_array" in report
    assert "col 17" in report and "expected 0x" in report and "actual 0x" in report
