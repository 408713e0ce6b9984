"""The `llm` strategy over real HTTP to the scripted stand-in server on 127.0.0.1 (not an LLM).

The strategy asks for stimulus *programs* (``{"programs": [...]}``), validates them, samples
transactions from each and tells the model program by program what it hit. Covered here:
response-format fallback and its memory, repairs, partial use of a reply, retries, failure
handling, key redaction, offline replay from the cache, configuration, and LLM4DV's levers
(per-program feedback, best-program buffer, missed-bin sampling, dialogue restart, stop on
convergence, max_calls) and the accounting (calls_log, tokens per new bin). The strategy runs
on a small fake run context (no simulator); tests/sim runs it in simulation."""
import asyncio
import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import openai
import pytest

import mxdv.coverage.plan as plan_mod
from mxdv.env.run_context import TxnResult
from mxdv.llm_stimuli.config import LLMConfig, redact, resolve
from mxdv.llm_stimuli.prompt import build_prompt, parse_header, stimulus_bins
from mxdv.llm_stimuli.standin import StandinServer, scripted_programs
from mxdv.llm_stimuli.strategy import LLMStrategy, parse_reply
from mxdv.sequences.programs import sample_program, validate_program
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
    like the real one, uncovered() also lists the environment's bins (stalls, resets), and the
    strategy's random source is ``rng``."""

    unit: object
    cfg: FakeCfg
    executed: list = field(default_factory=list)
    covered: set = field(default_factory=set)
    rng: object = None

    def __post_init__(self):
        if self.rng is None:
            self.rng = np.random.default_rng(self.cfg.seed)

    @property
    def submitted(self):
        return len(self.executed)

    @property
    def budget_left(self):
        return self.cfg.budget - len(self.executed)

    @property
    def closed(self):
        return not [b for b in self.uncovered() if not b.name.startswith("protocol.")]

    @property
    def done(self):
        return self.budget_left <= 0 or self.closed

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


class BarrenCtx(FakeCtx):
    """A context in which nothing is ever covered: every transaction is dropped."""

    async def execute(self, txns):
        out = []
        for t in txns[: self.budget_left]:
            self.executed.append(t)
            out.append(TxnResult(len(self.executed), t, "dropped", []))
        return out


def run_strategy(tmp_path, options, budget=64, seed=1, run="run", ctx_cls=FakeCtx, unit=UNIT):
    run_dir = tmp_path / run
    ctx = ctx_cls(unit, FakeCfg(seed, str(run_dir), budget))
    strategy = LLMStrategy({"model": "scripted-standin", "api_key": KEY, "batch_size": 8,
                            "retry_backoff_s": 0.01, "cache_dir": str(tmp_path / "cache"), **options})
    asyncio.run(strategy.run(ctx))
    return ctx, strategy.stats, run_dir


def transcript(run_dir):
    return [json.loads(x) for x in (run_dir / "llm_transcript.jsonl").read_text().splitlines()]


def last_prompt(request):
    """The newest user message of a chat request (the prompt of that call)."""
    return [m for m in request["messages"] if m["role"] == "user"][-1]["content"]


def chat_requests(server):
    """Requests the stand-in answered (the json_schema probe it rejects is left out)."""
    return [r for r in server.requests if (r.get("response_format") or {}).get("type") != "json_schema"]


@pytest.fixture(autouse=True)
def _no_ambient_llm_settings(request, monkeypatch):
    """The tests choose their endpoint; a user's MXDV_LLM_* settings only reach the opt-in one."""
    if request.node.name != "test_real_endpoint_one_batch":
        for var in ("MXDV_LLM_BASE_URL", "MXDV_LLM_MODEL", "MXDV_LLM_API_KEY", "MXDV_LLM_CONFIG"):
            monkeypatch.delenv(var, raising=False)


# -- the stand-in itself ----------------------------------------------------------------
def test_standin_speaks_openai_and_rejects_json_schema_like_llama_cpp():
    targets, _ = stimulus_bins(UNIT, UNIT.plan.bins)
    with StandinServer(seed=0) as s:
        client = openai.OpenAI(base_url=s.base_url, api_key="x", max_retries=0)
        assert [m.id for m in client.models.list()] == ["scripted-standin"]
        prompt = build_prompt(UNIT, targets[:6], 3, len(targets), [], [])
        msgs = [{"role": "user", "content": prompt}]
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=msgs,
                                           response_format={"type": "json_schema", "json_schema": {"name": "t", "schema": {}}})
        resp = client.chat.completions.create(model="m", messages=msgs, seed=5, response_format={"type": "json_object"})
        again = client.chat.completions.create(model="m", messages=msgs, seed=5, response_format={"type": "json_object"})
    programs = json.loads(resp.choices[0].message.content)["programs"]
    assert again.choices[0].message.content == resp.choices[0].message.content, "deterministic in seed and prompt"
    assert len(programs) == 3
    for i, p in enumerate(programs):
        norm = validate_program(UNIT.schema, p, UNIT.plan.bin_names)
        assert norm["targets"] == [b.name for b in targets[2 * i: 2 * i + 2]]
        assert all(UNIT.schema.normalize(t) == t for t in sample_program(UNIT.schema, norm, np.random.default_rng(0)))
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    header = parse_header(prompt)
    assert header == {"unit": UNIT.variant, "programs": 3, "bins": [b.name for b in targets[:6]]}
    assert not any(b.startswith("protocol.") for b in header["bins"]), "environment bins are not asked for"


@pytest.mark.parametrize("unit_name", ["quantizer", "systolic_array", "attention"])
def test_standin_programs_validate_for_every_unit(unit_name):
    unit = get_unit(unit_name)
    bins = [b.name for b in stimulus_bins(unit, unit.plan.bins)[0]]
    kinds = set()
    for seed in range(40):
        programs = scripted_programs({"unit": unit.variant, "programs": 3, "bins": bins[:6]}, [0, seed])
        assert len(programs) == 3
        for p in programs:
            norm = validate_program(unit.schema, p, unit.plan.bin_names)
            kinds |= set(norm["fields"])
            for t in sample_program(unit.schema, norm, np.random.default_rng(seed), count=2):
                assert unit.schema.normalize(t) == t
    assert kinds == {f.name for f in unit.schema.fields}, "over 120 programs, every field gets a spec"


# -- fallback and format memory ---------------------------------------------------------
def test_fallback_from_json_schema_and_coverage(tmp_path):
    with StandinServer() as s:
        ctx, stats, run_dir = run_strategy(tmp_path, {"base_url": s.base_url})
        kinds = [(r.get("response_format") or {}).get("type") for r in s.requests]
        sent = s.requests[1]["response_format"]["schema"]
    assert kinds[:2] == ["json_schema", "json_object"] and "json_schema" not in kinds[2:]
    programs = sent["properties"]["programs"]
    assert programs["minItems"] == programs["maxItems"] == 3, "one program per assigned bin, programs_per_call of them"
    assigned = [item["properties"]["targets"]["prefixItems"][0]["const"] for item in programs["prefixItems"]]
    assert len(set(assigned)) == 3 and set(assigned) <= set(UNIT.plan.bin_names)
    prompt = s.requests[1]["messages"][-1]["content"]
    assert all(f"- program {i}: {name}:" in prompt for i, name in enumerate(assigned, 1)), "the prompt names each program's bin"
    assert set(programs["prefixItems"][0]["properties"]["fields"]["properties"]) == {"elem_width", "values"}
    assert stats["response_format"] == "json_object_schema"
    assert stats["rejected_formats"] == ["json_schema: HTTP 500"]
    assert stats["requests"] == stats["replies"] + 1 and stats["cache_hits"] == 0
    assert stats["valid_txns"] == len(ctx.executed) == 64 and stats["prompt_tokens"] > 0
    assert stats["new_bins"] == len(ctx.covered) > 0 and stats["stop_reason"] == "budget spent"
    lines = transcript(run_dir)
    assert lines[0]["reply"]["response_format"] == "json_object_schema" and lines[0]["reply"]["attempts"] == 2
    assert lines[0]["messages"][1]["content"].startswith(f"UNIT: {UNIT.variant}")
    assert lines[0]["valid"] == 3 and lines[0]["problems"] == []


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


def test_http_errors_beyond_the_budget_fail_the_request_not_the_run(tmp_path):
    with StandinServer(faults=["http500"] * 3) as s:
        ctx, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url, "max_retries": 1}, budget=8)
    # the chain gives json_object_schema up after 2 opaque 500s, json_object then answers
    assert stats["error"] is None and len(ctx.executed) == 8
    assert stats["rejected_formats"] == ["json_schema: HTTP 500", "json_object_schema: HTTP 500 2 times"]


# -- bad replies ---------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["bad_json", "wrong_count", "out_of_range"])
def test_bad_replies_are_repaired_or_used_partially(tmp_path, fault):
    with StandinServer(faults=[fault]) as s:
        ctx, stats, run_dir = run_strategy(tmp_path, {"base_url": s.base_url}, budget=24)
        msgs = [r["messages"] for r in s.requests]
    assert stats["error"] is None and len(ctx.executed) > 0
    lines = transcript(run_dir)
    assert lines[0]["problems"], "the bad reply is recorded with its problems"
    if fault == "bad_json":
        assert stats["repairs"] == 1 and lines[1]["attempt"] == 1 and lines[1]["valid"] == 3
        follow_up = msgs[2][-1]["content"]
        assert msgs[2][-2]["role"] == "assistant" and "not valid JSON" in follow_up
        assert "Answer again with 3 programs" in follow_up
    if fault == "wrong_count":
        assert lines[0]["problems"] == ["expected at most 3 programs, got 4; the rest are ignored"]
        assert lines[0]["valid"] == 3 and stats["repairs"] == 0 and stats["programs"] == 3
    if fault == "out_of_range":
        problem = "program 1: count: 1000000000 is outside the field's domain (1..64)"
        assert lines[0]["problems"] == [problem] and lines[0]["valid"] == 2
        assert stats["rejected_programs"] == 1 and stats["repairs"] == 0
        assert stats["calls_log"][1]["txns"] == 16, "the two valid programs of the first reply are used"
        assert f"- {problem}" in last_prompt(s.requests[2]), "the rejection is reported in the next prompt"


def test_replies_that_stay_bad_end_the_run_gracefully(tmp_path):
    with StandinServer(faults=["bad_json"] * 6) as s:
        ctx, stats, run_dir = run_strategy(tmp_path, {"base_url": s.base_url, "max_repairs": 1,
                                                      "max_failed_batches": 2}, budget=16)
    assert ctx.executed == [] and stats["failed_batches"] == 2 and stats["repairs"] == 2
    assert stats["error"].startswith("ended after 2 failed calls in a row: the reply is not valid JSON")
    assert stats["stop_reason"] == "endpoint or replies failed"
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
    assert "ended after 2 failed calls" in stats["error"] and "APITimeoutError" in stats["error"]
    assert "APITimeoutError" in transcript(run_dir)[0]["error"]
    assert stats["stop_reason"] == "endpoint or replies failed"


def test_unreachable_endpoint_never_crashes(tmp_path):
    ctx, stats, _ = run_strategy(tmp_path, {"base_url": "http://127.0.0.1:9/v1", "max_retries": 1,
                                            "max_failed_batches": 1, "timeout_s": 1})
    assert ctx.executed == [] and "APIConnectionError" in stats["error"]
    assert stats["tokens_per_new_bin"] is None and stats["calls"] == 1


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
    assert "llm call 0 program 1" in caplog.text and KEY not in written
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
    assert all(entry["cached"] for entry in stats2["calls_log"]) and stats2["prompt_tokens"] == 0
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
    assert strategy.stats["calls"] == 1
    assert len(list((tmp_path / "runs" / "llm-cache").glob("*.json"))) == 2  # one reply + formats.json


# -- LLM4DV's levers ----------------------------------------------------------------------
def test_next_prompt_gives_feedback_program_by_program(tmp_path):
    with StandinServer() as s:
        ctx, stats, run_dir = run_strategy(tmp_path, {"base_url": s.base_url}, budget=48)
        reqs = chat_requests(s)
    assert stats["calls"] == 2
    first, second = last_prompt(reqs[0]), last_prompt(reqs[1])
    assert "Your last programs:" not in first
    reply = json.loads(transcript(run_dir)[0]["reply"]["text"])["programs"]
    feedback = second.split("Your last programs:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(feedback) == 3
    for i, (raw, line) in enumerate(zip(reply, feedback)):
        targets = raw["targets"]
        assert line.startswith(f"- program {i + 1} (targets {', '.join(targets)}): hit "), line
        # what the feedback says was hit / missed, checked against the bins the program's
        # transactions really sample (transactions 8*i .. 8*i+7 of the run)
        hit = set().union(*(set(UNIT.sample(t)) for t in ctx.executed[8 * i: 8 * i + 8]))
        missed = [t for t in targets if t not in hit]
        if missed:
            assert f"; missed {', '.join(missed)}" in line
        else:
            assert "; missed" not in line
        if any(t in hit for t in targets):
            assert f"hit {', '.join(t for t in targets if t in hit)}" in line
        else:
            assert "hit none of its targets" in line
    assert any("; missed " in line for line in feedback), "random programs miss some of their targets"


def test_best_programs_are_offered_back_as_examples(tmp_path):
    with StandinServer() as s:
        _, stats, run_dir = run_strategy(tmp_path, {"base_url": s.base_url, "best_programs": 2}, budget=48)
        reqs = chat_requests(s)
    reply = json.loads(transcript(run_dir)[0]["reply"]["text"])["programs"]
    second = last_prompt(reqs[1])
    examples = second.split("Programs that worked before (what they newly covered):\n", 1)[1].split("\n\n", 1)[0]
    lines = examples.splitlines()
    assert len(lines) == 2, "best_programs caps the buffer"
    shown = [json.loads(line[2:].rsplit(" -> ", 1)[0]) for line in lines]
    hits = [line.rsplit(" -> ", 1)[1].split(", ") for line in lines]
    assert all(p in reply for p in shown), "the examples are the model's own programs, as written"
    assert len(hits[0]) >= len(hits[1]), "the program with the most new bins comes first"
    assert "Programs that worked before" not in last_prompt(reqs[0])


def test_stop_on_convergence_and_dialogue_restart(tmp_path):
    with StandinServer() as s:
        ctx, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url, "converge_calls": 5,
                                                "stagnation_calls": 2, "batch_size": 1},
                                     budget=1000, ctx_cls=BarrenCtx)
        reqs = chat_requests(s)
    assert stats["stop_reason"] == "converged: no new bin in 5 calls"
    assert stats["calls"] == 5 and len(ctx.executed) == 15 < 1000
    assert stats["restarts"] == 2 and stats["new_bins"] == 0 and stats["tokens_per_new_bin"] is None
    n_msgs = [len(r["messages"]) for r in reqs]
    # system + prompt, then one earlier round kept (dialogue_rounds 1), dropped after stale calls 2 and 4
    assert n_msgs == [2, 4, 2, 4, 2], n_msgs
    assert "Your last programs:" not in last_prompt(reqs[2]), "a restart also drops the feedback"


@pytest.mark.parametrize("rounds,expected", [(0, [2, 2, 2, 2]), (2, [2, 4, 6, 6])])
def test_dialogue_rounds_bound_the_conversation(tmp_path, rounds, expected):
    with StandinServer() as s:
        run_strategy(tmp_path, {"base_url": s.base_url, "dialogue_rounds": rounds, "converge_calls": 100,
                                "stagnation_calls": 100, "max_calls": 4, "batch_size": 1},
                     budget=1000, ctx_cls=BarrenCtx)
        n_msgs = [len(r["messages"]) for r in chat_requests(s)]
    assert n_msgs == expected, n_msgs


def test_max_calls(tmp_path):
    with StandinServer() as s:
        ctx, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url, "max_calls": 2, "batch_size": 2}, budget=500)
    assert stats["calls"] == 2 and stats["stop_reason"] == "max_calls (2) reached"
    assert len(ctx.executed) == 12


@pytest.mark.parametrize("sampling", ["newest", "random"])
def test_missed_bin_sampling(tmp_path, sampling):
    with StandinServer() as s:
        _, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url, "bin_sampling": sampling, "converge_calls": 6, "target_assignment": "any",
                                              "stagnation_calls": 100, "batch_size": 1},
                                   budget=1000, ctx_cls=BarrenCtx)
        shown = [parse_header(last_prompt(r))["bins"] for r in chat_requests(s)]
    assert len(shown) == 6 and all(len(b) == 6 for b in shown)
    plan_order = [b.name for b in stimulus_bins(UNIT, UNIT.plan.bins)[0]]
    assert shown[0] != plan_order[:6], "never plan order"
    if sampling == "newest":
        # every shown bin is a target of the stand-in's programs and is missed (nothing is
        # covered), so the bins missed most recently are the ones shown again
        assert all(set(b) == set(shown[0]) for b in shown)
    else:
        assert len({frozenset(b) for b in shown}) > 1


def test_calls_log_and_tokens_per_new_bin(tmp_path):
    with StandinServer(faults=["bad_json"]) as s:
        ctx, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url}, budget=60)
    log_ = stats["calls_log"]
    assert [(e["call"], e["attempt"]) for e in log_] == [(0, 0), (0, 1), (1, 0), (2, 0)]
    assert [e["txns"] for e in log_] == [0, 0, 24, 48], "transactions run before each call"
    assert sum(e["prompt_tokens"] for e in log_) == stats["prompt_tokens"] > 0
    assert sum(e["completion_tokens"] for e in log_) == stats["completion_tokens"] > 0
    assert all(e["latency_s"] >= 0 and e["cached"] is False for e in log_)
    tokens = stats["prompt_tokens"] + stats["completion_tokens"]
    assert stats["new_bins"] == len(ctx.covered) > 0
    assert stats["tokens_per_new_bin"] == round(tokens / stats["new_bins"], 1)


def test_the_strategy_never_calls_a_plan_hint(tmp_path, monkeypatch):
    """With hints forbidden (as the test bench forbids them for `llm`) the run goes on, and a
    spy policy shows that no hint was even attempted; the prompt still explains the bins."""
    assert LLMStrategy.reads_hints is False
    hinted = [b for b in UNIT.plan.bins if b.hint is not None]
    assert hinted, "the quantizer plan has hints (for `constrained`)"

    class Spy:
        strategy = "llm"
        consulted = 0

        @property
        def allowed(self):
            Spy.consulted += 1
            return False

    monkeypatch.setattr(plan_mod, "HINT_POLICY", Spy())
    with pytest.raises(plan_mod.HintNotAllowed, match=f"strategy 'llm' called the plan hint of bin '{hinted[0].name}'"):
        hinted[0].hint(np.random.default_rng(0))  # the spy is the policy the guard reads
    Spy.consulted = 0
    with StandinServer() as s:
        ctx, stats, _ = run_strategy(tmp_path, {"base_url": s.base_url}, budget=48)
        prompts = [last_prompt(r) for r in chat_requests(s)]
    assert Spy.consulted == 0 and stats["error"] is None and len(ctx.executed) == 48
    for text in prompts:
        for name in parse_header(text)["bins"]:
            assert f"{name}: {UNIT.plan.get(name).meaning}\n" in text


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
    cfg = resolve({"programs_per_call": "4", "bin_sampling": "newest", "schema_profile": "full", "max_calls": 20})
    assert (cfg.programs_per_call, cfg.bin_sampling, cfg.schema_profile, cfg.max_calls) == (4, "newest", "full", 20)


def test_config_defaults():
    cfg = LLMConfig(base_url="http://x/v1", model="m")
    assert (cfg.batch_size, cfg.programs_per_call, cfg.targets_shown, cfg.bin_sampling, cfg.best_programs,
            cfg.dialogue_rounds, cfg.stagnation_calls, cfg.converge_calls, cfg.max_calls,
            cfg.schema_profile, cfg.fill, cfg.relax) == (8, 3, 6, "random", 3, 1, 3, 8, 0, "compact", "corner", 0.0)


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
    with pytest.raises(ValueError, match="bin_sampling must be random or newest, got 'plan'"):
        resolve({"model": "m", "bin_sampling": "plan"})
    with pytest.raises(ValueError, match="schema_profile must be compact or full, got 'tiny'"):
        resolve({"model": "m", "schema_profile": "tiny"})
    with pytest.raises(ValueError, match="converge_calls must be > 0"):
        resolve({"model": "m", "converge_calls": 0})
    with pytest.raises(ValueError, match="max_calls must be >= 0"):
        resolve({"model": "m", "max_calls": -1})
    with pytest.raises(ValueError, match="fill must be corner or uniform, got 'zeros'"):
        resolve({"model": "m", "fill": "zeros"})
    with pytest.raises(ValueError, match=r"relax must be in \[0, 1\], got 1.5"):
        resolve({"model": "m", "relax": 1.5})
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
def test_parse_reply_names_the_program_and_part():
    schema = UNIT.schema
    good = {"targets": ["width.int4"], "count": 4, "fields": {"elem_width": 4, "values": {"max_exp": 3}}}
    text = ("Here you go:\n```json\n" + json.dumps({"programs": [
        good,
        {"targets": [], "fields": {"elem_width": 5}},
        {"fields": {"values": {"ties": {"width": 9}}}},
        {"fields": {"bogus": 1}},
    ]}) + "\n```")
    programs, problems = parse_reply(text, schema, 4)
    assert len(programs) == 1 and programs[0][0] == good
    assert programs[0][1]["fields"] == {"elem_width": {"const": 4}, "values": {"max_exp": {"const": 3}}}
    assert problems == [
        "program 2: fields.elem_width: 5 is outside the field's domain (one of [8, 4])",
        "program 3: fields.values.ties.width: 9 is outside the field's domain (2..8)",
        "program 4: fields: unknown key(s) ['bogus']; allowed: ['elem_width', 'values']"]
    assert parse_reply('{"programs": {"a": 1}}', schema, 1)[1] == [
        'expected an object {"programs": [...]} with a list of programs']
    assert parse_reply('{"programs": [', schema, 1)[1][0].startswith("the reply is not valid JSON")
    # one bare program is accepted; more than `limit` programs are cut, with a note
    assert len(parse_reply(json.dumps(good), schema, 1)[0]) == 1
    programs, problems = parse_reply(json.dumps({"programs": [good] * 3}), schema, 2)
    assert len(programs) == 2 and problems == ["expected at most 2 programs, got 3; the rest are ignored"]
    # targets that are not bins of the plan are dropped from a program that is still used
    bad_target = dict(good, targets=["width.int4", "no.such_bin"])
    programs, problems = parse_reply(json.dumps({"programs": [bad_target]}), schema, 1, UNIT.plan.bin_names)
    assert programs[0][1]["targets"] == ["width.int4"]
    assert problems == ["program 1: targets ['no.such_bin'] are not bins of the plan"]


def test_prompt_names_bins_with_meaning_examples_and_feedback():
    bins = [b for b in UNIT.plan.bins if not b.name.startswith("protocol.")][:3]
    example = {"program": {"fields": {"elem_width": 4}}, "hit": ["width.int4", "exp.p127"], "call": 0}
    text = build_prompt(UNIT, bins, 5, 17, ["program 1 (targets a): hit a; nothing new"], [example])
    assert text.startswith(f"UNIT: {UNIT.variant}\nPROGRAMS: 5\nTARGET_BINS: {', '.join(b.name for b in bins)}\n")
    assert all(f"- {b.name}: {b.meaning}" in text for b in bins)
    assert "(3 of 17 open ones shown)" in text
    assert UNIT.description.strip() in text and UNIT.schema.describe() in text
    assert '"max_exp"' in text and '"ties"' in text, "the program language is described"
    assert '- {"fields":{"elem_width":4}} -> width.int4, exp.p127' in text
    assert "- program 1 (targets a): hit a; nothing new" in text
    assert text.endswith('Answer with 5 programs as JSON: {"programs": [...]}.')
    assert parse_header(text) == {"unit": UNIT.variant, "programs": 5, "bins": [b.name for b in bins]}
    empty = build_prompt(UNIT, [], 2, 0, [], [])
    assert "Every bin that transaction contents can hit is covered" in empty
    assert "Your last programs" not in empty and "Programs that worked before" not in empty


def test_txn_json_schema_pins_fixed_array_lengths():
    """TxnSchema.json_schema (a transaction-list reply format; the llm strategy now sends the
    program reply schema instead)."""
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
               "programs_per_call": 1, "max_calls": 1, "max_failed_batches": 1, "timeout_s": 300,
               "cache_dir": str(tmp_path / "cache")}
    strategy = LLMStrategy(options)
    asyncio.run(strategy.run(ctx))
    stats = strategy.stats
    assert stats["replies"] >= 1 and stats["response_format"] is not None, stats
    assert stats["calls_log"] and stats["calls_log"][0]["completion_tokens"] > 0
    assert stats["error"] is None or "failed calls" in stats["error"]


def test_feedback_numbers_programs_as_the_reply_does(tmp_path):
    with StandinServer(faults=["out_of_range"]) as s:  # the reply's first program is rejected
        run_strategy(tmp_path, {"base_url": s.base_url}, budget=24)
        second = last_prompt(chat_requests(s)[1])
    feedback = second.split("Your last programs:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split(" (")[0].split(":")[0] for line in feedback] == ["- program 2", "- program 3", "- program 1"]


def test_parse_reply_numbers_target_problems_as_the_reply_does():
    good = {"targets": ["width.int4", "no.such_bin"], "fields": {"elem_width": 4}}
    text = json.dumps({"programs": [{"fields": {"elem_width": 5}}, good]})
    _, problems = parse_reply(text, UNIT.schema, 2, UNIT.plan.bin_names)
    assert problems[1] == "program 2: targets ['no.such_bin'] are not bins of the plan"


# -- what a program leaves random ---------------------------------------------------------------
@pytest.mark.parametrize("unit_name", ["quantizer", "systolic_array", "attention"])
def test_empty_programs_with_the_corner_fill_are_corner_random(unit_name):
    """With fill=corner (the default) the strategy samples a program that specifies nothing
    exactly as corner_random draws from the same generator: the model steers the baseline, and
    whatever the llm strategy gains over corner_random comes from what the model wrote."""
    from mxdv.sequences.corner_random import draw_transaction

    unit = get_unit(unit_name)
    prog = validate_program(unit.schema, {"targets": [], "fields": {}})
    rng = np.random.default_rng(3)
    expected = [unit.schema.normalize(draw_transaction(unit.schema, rng)) for _ in range(12)]
    for fill in ("corner", "uniform"):
        strategy = LLMStrategy({"model": "m", "base_url": "http://x/v1", "fill": fill})
        strategy._cfg, strategy._rng = resolve(strategy.options), np.random.default_rng(3)
        assert (strategy._sample(unit.schema, prog, 12) == expected) is (fill == "corner")


def test_relax_drops_field_specs_per_transaction(tmp_path):
    """relax=0 samples every program as written; relax=1 drops every spec (corner fill only)."""
    unit = get_unit("systolic_array")
    prog = validate_program(unit.schema, {"fields": {"wfmt": 4, "kblocks": 2, "a_scale": {"elements": 255}}})
    for relax, written in ((0.0, True), (1.0, False)):
        strategy = LLMStrategy({"model": "m", "base_url": "http://x/v1", "relax": relax})
        strategy._cfg, strategy._rng = resolve(strategy.options), np.random.default_rng(0)
        txns = strategy._sample(unit.schema, prog, 40)
        as_written = [t["wfmt"] == 4 and t["kblocks"] == 2 and {c for row in t["a_scale"] for c in row} == {255}
                      for t in txns]
        assert all(as_written) if written else not any(as_written)
