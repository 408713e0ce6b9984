"""The `llm` strategy over real HTTP to the scripted stand-in server on 127.0.0.1 (not an LLM):
response-format fallback and its memory, repairs, retries, failure handling, key redaction,
offline replay from the cache, configuration. The strategy runs on a small fake run context
(no simulator); tests/sim runs it in simulation."""
import asyncio
import json
import logging
import os
from dataclasses import dataclass, field

import openai
import pytest

from mxdv.env.run_context import TxnResult
from mxdv.llm_stimuli.config import LLMConfig, redact, resolve
from mxdv.llm_stimuli.prompt import build_prompt, parse_header
from mxdv.llm_stimuli.standin import StandinServer
from mxdv.llm_stimuli.strategy import LLMStrategy, parse_reply
from mxdv.unit import get_unit

KEY = "sk-test-DO-NOT-LEAK-42"
UNIT = get_unit("quantizer")


@dataclass
class FakeCfg:
    seed: int
    run_dir: str
    budget: int


@dataclass
class FakeCtx:
    """Enough of RunContext for a strategy: every transaction 'passes' and hits its bins;
    like the real one, uncovered() also lists the environment's bins (stalls, resets)."""

    unit: object
    cfg: FakeCfg
    executed: list = field(default_factory=list)
    covered: set = field(default_factory=set)

    @property
    def budget_left(self):
        return self.cfg.budget - len(self.executed)

    @property
    def done(self):
        return self.budget_left <= 0 or not [b for b in self.uncovered() if not b.name.startswith("protocol.")]

    def uncovered(self):
        return [b for b in self.unit.plan.bins if b.name not in self.covered]

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
    ctx = FakeCtx(UNIT, FakeCfg(seed, str(run_dir), budget))
    strategy = LLMStrategy({"model": "scripted-standin", "api_key": KEY, "batch_size": 8,
                            "retry_backoff_s": 0.01, "cache_dir": str(tmp_path / "cache"), **options})
    asyncio.run(strategy.run(ctx))
    return ctx, strategy.stats, run_dir


def transcript(run_dir):
    return [json.loads(x) for x in (run_dir / "llm_transcript.jsonl").read_text().splitlines()]


@pytest.fixture(autouse=True)
def _no_ambient_llm_settings(request, monkeypatch):
    """The tests choose their endpoint; a user's MXDV_LLM_* settings only reach the opt-in one."""
    if request.node.name != "test_real_endpoint_one_batch":
        for var in ("MXDV_LLM_BASE_URL", "MXDV_LLM_MODEL", "MXDV_LLM_API_KEY", "MXDV_LLM_CONFIG"):
            monkeypatch.delenv(var, raising=False)


# -- the stand-in itself ----------------------------------------------------------------
def test_standin_speaks_openai_and_rejects_json_schema_like_llama_cpp():
    with StandinServer(seed=0) as s:
        client = openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0)
        assert [m.id for m in client.models.list()] == ["scripted-standin"]
        prompt = build_prompt(UNIT, UNIT.plan.bins, 3, [])
        msgs = [{"role": "user", "content": prompt}]
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=msgs,
                                           response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": {}}})
        resp = client.chat.completions.create(model="m", messages=msgs, seed=5, response_format={"type": "json_object"})
    txns = json.loads(resp.choices[0].message.content)["transactions"]
    assert len(txns) == 3 and all(UNIT.schema.normalize(t) == t for t in txns)
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    header = parse_header(prompt)
    assert header["unit"] == UNIT.variant and header["count"] == 3
    assert not any(b.startswith("protocol.") for b in header["bins"]), "environment bins are not asked for"


# -- fallback and format memory ---------------------------------------------------------
def test_fallback_from_json_schema_and_coverage(tmp_path):
    with StandinServer() as s:
        ctx, stats, run_dir = run_strategy(tmp_path, {"base_url": s.base_url})
        kinds = [(r.get("response_format") or {}).get("type") for r in s.requests]
        assert s.requests[1]["response_format"]["schema"]["properties"]["transactions"]["minItems"] == 8
    assert kinds[:2] == ["json_schema", "json_object"] and "json_schema" not in kinds[2:]
    assert stats["response_format"] == "json_object_schema"
    assert stats["rejected_formats"] == ["json_schema: HTTP 500"]
    assert stats["requests"] == stats["replies"] + 1 and stats["cache_hits"] == 0
    assert stats["valid_txns"] == len(ctx.executed) > 0 and stats["prompt_tokens"] > 0
    assert not [b for b in ctx.uncovered() if not b.name.startswith("protocol.")], \
        "the stand-in answers with the plan's hints, so the stimulus bins close"
    lines = transcript(run_dir)
    assert lines[0]["reply"]["response_format"] == "json_object_schema" and lines[0]["reply"]["attempts"] == 2
    assert lines[0]["messages"][1]["content"].startswith(f"UNIT: {UNIT.variant}")


def test_working_format_is_remembered_per_endpoint(tmp_path):
    with StandinServer() as s:
        run_strategy(tmp_path, {"base_url": s.base_url}, budget=8, run="a")
        _, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url}, budget=8, seed=2, run="b")
        kinds = [(r.get("response_format") or {}).get("type") for r in s.requests]
    assert kinds == ["json_schema", "json_object", "json_object"], "the second run starts at the remembered format"
    assert stats["rejected_formats"] == [] and stats["response_format"] == "json_object_schema"


def test_transient_http_errors_are_retried_without_losing_the_format(tmp_path):
    with StandinServer(faults=["http500", "http429", "http500"]) as s:
        ctx, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url, "max_retries": 3}, budget=8)
        kinds = [(r.get("response_format") or {}).get("type") for r in s.requests]
    assert stats["error"] is None and len(ctx.executed) == 8
    assert stats["response_format"] == "json_object_schema", "an injected 500 is not a format rejection"
    assert kinds == ["json_schema"] + ["json_object"] * 4 and stats["requests"] == 5


def test_http_errors_beyond_the_budget_fail_the_batch_not_the_run(tmp_path):
    with StandinServer(faults=["http500"] * 3) as s:
        ctx, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url, "max_retries": 1}, budget=8)
    # the chain gives json_object_schema up after 2 opaque 500s, json_object then answers
    assert stats["error"] is None and len(ctx.executed) == 8
    assert stats["rejected_formats"] == ["json_schema: HTTP 500", "json_object_schema: HTTP 500 2 times"]


# -- bad replies ---------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["bad_json", "wrong_count", "out_of_range"])
def test_bad_replies_are_repaired_or_used_partially(tmp_path, fault):
    with StandinServer(faults=[fault]) as s:
        ctx, stats, run_dir = run_strategy(tmp_path, {"base_url": s.base_url}, budget=16)
        msgs = [r["messages"] for r in s.requests]
    assert stats["error"] is None and len(ctx.executed) > 0
    lines = transcript(run_dir)
    assert lines[0]["problems"], "the bad reply is recorded with its problems"
    if fault == "bad_json":
        assert stats["repairs"] == 1 and lines[1]["attempt"] == 1 and lines[1]["valid"] == 8
        follow_up = msgs[2][-1]["content"]
        assert msgs[2][-2]["role"] == "assistant" and "not valid JSON" in follow_up
    if fault == "wrong_count":
        assert lines[0]["problems"] == ["expected 8 transactions, got 7"] and lines[0]["valid"] == 7
        assert "rejected: expected 8 transactions, got 7" in msgs[2][1]["content"], "reported in the next prompt"
    if fault == "out_of_range":
        assert stats["rejected_txns"] == 1 and lines[0]["valid"] == 7
        assert lines[0]["problems"] == ["transaction 0: elem_width: 1000000000 is out of range (one of 8, 4)"]


def test_replies_that_stay_bad_end_the_run_gracefully(tmp_path):
    with StandinServer(faults=["bad_json"] * 6) as s:
        ctx, stats, run_dir = run_strategy(tmp_path, {"base_url": s.base_url, "max_repairs": 1,
                                                      "max_failed_batches": 2}, budget=16)
    assert ctx.executed == [] and stats["failed_batches"] == 2 and stats["repairs"] == 2
    assert stats["error"].startswith("ended after 2 failed batches in a row: the reply is not valid JSON")
    assert len(transcript(run_dir)) == 4 and len(stats["errors"]) == 2


def test_a_timeout_is_retried(tmp_path):
    with StandinServer(faults=["delay:1.0"]) as s:
        ctx, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url, "timeout_s": 0.3, "max_retries": 1}, budget=8)
    assert stats["error"] is None and len(ctx.executed) == 8 and stats["requests"] == 3


def test_timeouts_end_the_run_gracefully(tmp_path):
    with StandinServer(faults=["delay:1.0"] * 20) as s:
        ctx, stats, run_dir = run_strategy(tmp_path, {"base_url": s.base_url, "timeout_s": 0.2, "max_retries": 1,
                                                      "max_failed_batches": 2}, budget=16)
    assert ctx.executed == [] and stats["response_format"] is None
    assert "ended after 2 failed batches" in stats["error"] and "APITimeoutError" in stats["error"]
    assert "APITimeoutError" in transcript(run_dir)[0]["error"]


def test_unreachable_endpoint_never_crashes(tmp_path):
    ctx, stats, _ = run_strategy(tmp_path, {"base_url": "http://127.0.0.1:9/v1", "max_retries": 1,
                                            "max_failed_batches": 1, "timeout_s": 1})
    assert ctx.executed == [] and "APIConnectionError" in stats["error"]


# -- the key ------------------------------------------------------------------------------
def test_key_never_written_or_logged(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)  # openai and httpx log requests at DEBUG
    with StandinServer(faults=["bad_json", "http500"], api_key=KEY) as s:
        _, stats, run_dir = run_strategy(tmp_path, {"base_url": s.base_url}, budget=16)
    assert stats["valid_txns"] == 16
    with StandinServer(api_key="the-right-key") as s:  # our key is refused: 401
        _, bad, bad_dir = run_strategy(tmp_path, {"base_url": s.base_url, "max_failed_batches": 1}, run="bad")
    assert "refused the API key" in bad["error"]
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    written += json.dumps(stats) + json.dumps(bad) + caplog.text + "".join(capsys.readouterr())
    assert "llm batch 0" in caplog.text and KEY not in written
    cfg = resolve({"base_url": "http://x/v1", "model": "m", "api_key": KEY})
    assert KEY not in repr(cfg) and KEY not in str(cfg) and KEY not in json.dumps(cfg.public())
    assert redact(f'{{"k": {json.dumps(KEY)}}}', cfg) == '{"k": "<redacted>"}'
    with pytest.raises(ValueError) as err:
        resolve({"base_url": "http://x/v1", "model": "m", "api_key": KEY, "temperature": "hot"})
    assert KEY not in str(err.value) and "temperature" in str(err.value)


# -- reproducibility ----------------------------------------------------------------------
def test_cache_replays_offline(tmp_path):
    with StandinServer() as s:
        first, stats1, _ = run_strategy(tmp_path, {"base_url": s.base_url}, run="a")
    assert stats1["replies"] > 1
    # the server is gone: every reply must come from the cache, with identical transactions
    again, stats2, run_dir = run_strategy(tmp_path, {"base_url": s.base_url, "max_retries": 0}, run="b")
    assert stats2["requests"] == 0 and stats2["cache_hits"] == stats1["replies"]
    assert again.executed == first.executed and stats2["error"] is None
    assert stats2["response_format"] == "json_object_schema"
    assert all(line["reply"]["cached"] for line in transcript(run_dir))
    # a different seed is a different run: it misses the cache and, offline, fails gracefully
    other, stats3, _ = run_strategy(tmp_path, {"base_url": s.base_url, "max_retries": 0,
                                               "max_failed_batches": 1}, seed=2, run="c")
    assert other.executed == [] and stats3["cache_hits"] == 0 and "APIConnectionError" in stats3["error"]


def test_default_cache_dir_is_next_to_the_run_dir(tmp_path):
    with StandinServer() as s:
        ctx = FakeCtx(UNIT, FakeCfg(3, str(tmp_path / "runs" / "r1"), 8))
        strategy = LLMStrategy({"base_url": s.base_url, "model": "scripted-standin"})
        asyncio.run(strategy.run(ctx))
    assert strategy.stats["cache_dir"] == str(tmp_path / "runs" / "llm-cache")
    assert len(list((tmp_path / "runs" / "llm-cache").glob("*.json"))) == 2  # one reply + formats.json


# -- configuration ------------------------------------------------------------------------
def test_config_precedence(tmp_path, monkeypatch):
    f = tmp_path / "llm.json"
    f.write_text(json.dumps({"base_url": "http://file/v1", "model": "file-model", "batch_size": 4, "api_key": "file-key"}))
    monkeypatch.setenv("MXDV_LLM_CONFIG", str(f))
    assert (resolve({}).base_url, resolve({}).model, resolve({}).api_key) == ("http://file/v1", "file-model", "file-key")
    monkeypatch.setenv("MXDV_LLM_MODEL", "env-model")
    monkeypatch.setenv("MXDV_LLM_API_KEY", "env-key")
    cfg = resolve({"batch_size": "2"})
    assert (cfg.base_url, cfg.model, cfg.api_key, cfg.batch_size) == ("http://file/v1", "env-model", "env-key", 2)
    assert resolve({"model": "opt-model", "base_url": "http://opt/v1"}).model == "opt-model"
    toml = tmp_path / "llm.toml"
    toml.write_text('[llm]\nbase_url = "http://toml/v1"\nmodel = "toml-model"\ntimeout_s = 5\n')
    cfg = resolve({"config": str(toml)})
    assert (cfg.base_url, cfg.model, cfg.timeout_s) == ("http://toml/v1", "env-model", 5.0)


def test_config_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="no base_url; set MXDV_LLM_BASE_URL"):
        resolve({"model": "m"})
    monkeypatch.setenv("MXDV_LLM_BASE_URL", "http://env/v1")
    with pytest.raises(ValueError, match="no model; set MXDV_LLM_MODEL"):
        resolve({})
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['bogus'\]"):
        resolve({"model": "m", "bogus": 1})
    with pytest.raises(ValueError, match="batch_size must be > 0"):
        resolve({"model": "m", "batch_size": 0})
    with pytest.raises(ValueError, match="max_retries must be int"):
        resolve({"model": "m", "max_retries": 1.5})
    with pytest.raises(ValueError, match="does not exist"):
        resolve({"model": "m", "config": str(tmp_path / "missing.json")})
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="is not valid JSON"):
        resolve({"model": "m", "config": str(tmp_path / "bad.json")})
    ctx = FakeCtx(UNIT, FakeCfg(1, str(tmp_path / "r"), 8))
    with pytest.raises(ValueError, match="no model"):
        asyncio.run(LLMStrategy({}).run(ctx))
    assert isinstance(resolve({"model": "m"}), LLMConfig)


# -- parsing and prompt ---------------------------------------------------------------------
def test_parse_reply_reports_fields():
    schema = get_unit("quantizer:BLOCK=8").schema
    txns, problems = parse_reply('Here you go:\n```json\n{"transactions": [{"elem_width": 8, "values": {"fill": "1.5"}},'
                                 ' {"elem_width": 5, "values": {"fill": 0}}, {"values": [1]}]}\n```', schema, 3)
    assert len(txns) == 1 and txns[0]["values"] == [0x3FC0] * 8
    assert problems == ["transaction 1: elem_width: 5 is out of range (one of 8, 4)",
                        "transaction 2: missing field `elem_width`"]
    assert parse_reply('{"transactions": {"a": 1}}', schema, 1)[1] == [
        'expected an object {"transactions": [...]} with a list of transactions']
    txns, problems = parse_reply('{"transactions": [{"elem_width": 4, "values": {"fill": 0, "set": [1]}}]}', schema, 1)
    assert txns == [] and problems[0].startswith("transaction 0:")


def test_prompt_names_bins_with_meaning_why_and_history():
    bins = [b for b in UNIT.plan.bins if not b.name.startswith("protocol.")][:3]
    env_bins = [b for b in UNIT.plan.bins if b.name.startswith("protocol.")]
    text = build_prompt(UNIT, bins + env_bins, 5, ["8 transactions newly covered: a, b"])
    assert f"UNCOVERED_BINS: {', '.join(b.name for b in bins)}\n" in text and "COUNT: 5\n" in text
    assert all(f"- {b.name}: {b.meaning} (why it matters: {b.why})" in text for b in bins)
    assert UNIT.description.strip() in text and UNIT.schema.describe() in text and '"fill"' in text
    assert f"({len(env_bins)} more bins are hit by the test bench" in text
    assert "- 8 transactions newly covered: a, b" in text
    assert text.endswith('Answer with exactly 5 transactions as JSON: {"transactions": [...]}.')


def test_reply_schema_pins_fixed_array_lengths():
    from mxdv.schema import Field, TxnSchema

    values = UNIT.schema.json_schema(2)["properties"]["transactions"]["items"]["properties"]["values"]
    full, compact = values["anyOf"]
    assert (full["minItems"], full["maxItems"], full["items"]) == (32, 32, {"type": ["number", "string"]})
    assert compact["properties"]["set"]["additionalProperties"] == {"type": ["number", "string"]}
    mixed = TxnSchema((Field("n", "int", "rows", lo=1, hi=4), Field("m", "int", "matrix", lo=-8, hi=7, shape=(2, 3)),
                       Field("keys", "int", "one per row", lo=0, hi=9, shape=("n",))))
    props = mixed.json_schema(1)["properties"]["transactions"]["items"]["properties"]
    m = props["m"]["anyOf"][0]
    assert (m["minItems"], m["items"]["minItems"], m["items"]["items"]) == (2, 3, {"type": "integer", "minimum": -8, "maximum": 7})
    assert props["keys"]["anyOf"][0] == {"type": "array"}, "a length given by another field stays loose"


# -- a real endpoint (opt-in) -----------------------------------------------------------------
@pytest.mark.skipif(not os.environ.get("MXDV_LLM_BASE_URL"), reason="set MXDV_LLM_BASE_URL to test a real endpoint")
def test_real_endpoint_one_batch(tmp_path):
    ctx = FakeCtx(UNIT, FakeCfg(1, str(tmp_path / "run"), 2))
    options = {"model": os.environ.get("MXDV_LLM_MODEL", "qwen2.5-coder-0.5b-instruct"), "batch_size": 2,
               "max_failed_batches": 1, "timeout_s": 180, "cache_dir": str(tmp_path / "cache")}
    strategy = LLMStrategy(options)
    asyncio.run(strategy.run(ctx))
    stats = strategy.stats
    assert stats["replies"] >= 1 and stats["response_format"] is not None, stats
    assert stats["error"] is None or "failed batches" in stats["error"]
