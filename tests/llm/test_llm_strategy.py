"""The `llm` strategy over real HTTP to the scripted stand-in server on 127.0.0.1 (not an LLM):
response-format fallback, repairs, retries, failure handling, key redaction, offline replay.
The strategy runs on a small fake run context (no simulator); tests/sim runs it in simulation."""
import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mxdv.env.run_context import TxnResult
from mxdv.llm_stimuli.config import resolve
from mxdv.llm_stimuli.standin import StandinServer
from mxdv.llm_stimuli.strategy import LLMStrategy, parse_reply
from mxdv.unit import get_unit

KEY = "sk-test-DO-NOT-LEAK-42"


@dataclass
class FakeCfg:
    seed: int
    run_dir: str
    budget: int


@dataclass
class FakeCtx:
    """Enough of RunContext for a strategy: every transaction 'passes' and hits its bins."""

    unit: object
    cfg: FakeCfg
    executed: list = field(default_factory=list)
    covered: set = field(default_factory=set)

    @property
    def budget_left(self):
        return self.cfg.budget - len(self.executed)

    @property
    def done(self):
        return self.budget_left <= 0 or not self.uncovered()

    def uncovered(self):
        return [b for b in self.unit.plan.bins if b.name not in self.covered and not b.name.startswith("protocol.")]

    async def execute(self, txns):
        out = []
        for t in txns[: self.budget_left]:
            hits = set(self.unit.sample(t)) - self.covered
            self.covered |= hits
            self.executed.append(t)
            out.append(TxnResult(len(self.executed), t, "pass", sorted(hits)))
        return out


def run_strategy(tmp_path, options, budget=64, seed=1, run="run"):
    run_dir = tmp_path / run
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = FakeCtx(get_unit("quantizer"), FakeCfg(seed, str(run_dir), budget))
    strategy = LLMStrategy({"model": "scripted-standin", "api_key": KEY, "batch_size": 8,
                            "cache_dir": str(tmp_path / "cache"), **options})
    asyncio.run(strategy.run(ctx))
    return ctx, strategy.stats, run_dir


def test_fallback_from_json_schema_and_coverage(tmp_path):
    with StandinServer() as s:
        ctx, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url})
        assert s.requests[0]["response_format"]["type"] == "json_schema"
        assert s.requests[1]["response_format"]["type"] == "json_object"
    assert stats["response_format"] == "json_object_schema"
    assert stats["rejected_formats"] == ["json_schema: HTTP 500"]
    assert stats["valid_txns"] == len(ctx.executed) > 0
    assert not ctx.uncovered(), "the stand-in answers with the plan's hints, so the stimulus bins close"


@pytest.mark.parametrize("fault", ["bad_json", "wrong_count", "out_of_range"])
def test_bad_replies_are_repaired_or_used_partially(tmp_path, fault):
    with StandinServer(faults=[fault]) as s:  # faults apply to requests the stand-in accepts
        ctx, stats, run_dir = run_strategy(tmp_path, {"base_url": s.base_url}, budget=16)
        msgs = [r["messages"] for r in s.requests]
    assert stats["error"] is None and len(ctx.executed) > 0
    lines = [json.loads(x) for x in (run_dir / "llm_transcript.jsonl").read_text().splitlines()]
    assert lines[0]["problems"], "the bad reply is recorded with its problems"
    if fault == "bad_json":
        assert stats["repairs"] == 1
        assert "could not be used" in msgs[2][-1]["content"] and "not valid JSON" in msgs[2][-1]["content"]
    if fault == "out_of_range":
        assert stats["rejected_txns"] == 1 and "transaction 0" in lines[0]["problems"][-1]


def test_http_errors_are_retried(tmp_path):
    with StandinServer(faults=["http500", "http500"]) as s:
        ctx, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url, "max_retries": 3}, budget=8)
    assert stats["error"] is None and len(ctx.executed) == 8


def test_timeouts_end_the_run_gracefully(tmp_path):
    faults = ["delay:1.5"] * 20
    with StandinServer(faults=faults) as s:
        ctx, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url, "timeout_s": 0.3, "max_retries": 1,
                                                "max_failed_batches": 2}, budget=16)
    assert ctx.executed == []
    assert "ended after 2 failed batches" in stats["error"] and "APITimeoutError" in stats["error"]


def test_unreachable_endpoint_never_crashes(tmp_path):
    ctx, stats, _ = run_strategy(tmp_path, {"base_url": "http://127.0.0.1:9/v1", "max_retries": 1,
                                            "max_failed_batches": 1, "timeout_s": 1})
    assert ctx.executed == [] and "APIConnectionError" in stats["error"]


def test_key_never_written(tmp_path):
    with StandinServer() as s:
        _, stats, run_dir = run_strategy(tmp_path, {"base_url": s.base_url}, budget=16)
    written = (run_dir / "llm_transcript.jsonl").read_text() + json.dumps(stats)
    written += "".join(p.read_text() for p in (tmp_path / "cache").glob("*.json"))
    assert KEY not in written
    cfg = resolve({"base_url": "http://x/v1", "model": "m", "api_key": KEY})
    assert KEY not in repr(cfg) and KEY not in json.dumps(cfg.public())


def test_cache_replays_offline(tmp_path):
    with StandinServer() as s:
        first, stats1, _ = run_strategy(tmp_path, {"base_url": s.base_url}, run="a")
    assert stats1["requests"] > 0
    # the server is gone: every reply must come from the cache, with identical transactions
    again, stats2, _ = run_strategy(tmp_path, {"base_url": s.base_url, "max_retries": 0}, run="b")
    assert stats2["requests"] == 0 and stats2["cache_hits"] == stats1["requests"]
    assert again.executed == first.executed


def test_config_precedence_and_errors(tmp_path, monkeypatch):
    f = tmp_path / "llm.json"
    f.write_text(json.dumps({"base_url": "http://file/v1", "model": "file-model", "batch_size": 4}))
    monkeypatch.setenv("MXDV_LLM_CONFIG", str(f))
    monkeypatch.setenv("MXDV_LLM_MODEL", "env-model")
    cfg = resolve({"batch_size": 2})
    assert (cfg.base_url, cfg.model, cfg.batch_size) == ("http://file/v1", "env-model", 2)
    monkeypatch.delenv("MXDV_LLM_CONFIG")
    monkeypatch.delenv("MXDV_LLM_MODEL")
    monkeypatch.delenv("MXDV_LLM_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="no base_url; set MXDV_LLM_BASE_URL"):
        resolve({"model": "m"})
    with pytest.raises(ValueError, match="unknown option"):
        resolve({"base_url": "u", "model": "m", "bogus": 1})


def test_parse_reply_reports_fields():
    schema = get_unit("quantizer:BLOCK=8").schema
    txns, problems = parse_reply('```json\n{"transactions": [{"elem_width": 8, "values": {"fill": "1.5"}},'
                                 ' {"elem_width": 5, "values": {"fill": 0}}]}\n```', schema, 2)
    assert len(txns) == 1 and txns[0]["values"] == [0x3FC0] * 8
    assert problems == ["transaction 1: elem_width: 5 is out of range (one of 8, 4)"]


@pytest.mark.skipif(not os.environ.get("MXDV_LLM_BASE_URL"), reason="set MXDV_LLM_BASE_URL to test a real endpoint")
def test_real_endpoint_one_batch(tmp_path):
    ctx, stats, _ = run_strategy(tmp_path, {"api_key": os.environ.get("MXDV_LLM_API_KEY", "none"),
                                            "model": os.environ.get("MXDV_LLM_MODEL", "qwen2.5-coder-0.5b-instruct"),
                                            "batch_size": 2, "max_failed_batches": 2}, budget=2)
    assert stats["requests"] >= 1
    assert stats["error"] is None or "failed batches" in stats["error"]
