"""``llm``: an LLM writes *stimulus programs* aimed at the uncovered bins (in the spirit of
LLM4DV, arXiv 2310.04535), through any OpenAI-compatible chat-completions endpoint.

Each call: prompt (spec, fields, the program language, a sample of the open bins, the best
programs so far, program-by-program feedback) -> reply (from the on-disk cache, else the
endpoint; constrained decoding with the language's JSON Schema where the endpoint takes it,
probed once per endpoint and remembered) -> ``{"programs": [...]}`` -> every program validated
(``mxdv.sequences.programs``) -> ``batch_size`` transactions sampled from each valid program and
executed -> the model is told, per program, which bins it hit and which of its targets it missed.

LLM4DV's levers: missed-bin sampling (option ``bin_sampling``: ``random`` or ``newest``, the bins
whose programs missed them most recently first; never plan order), a best-program buffer
offered back as examples (``best_programs``), a dialogue restart when coverage stagnates for
``stagnation_calls`` calls, and a stop on convergence after ``converge_calls`` calls without a
new bin. The strategy never reads the plan's hints, only what bins mean.

Failure policy (the LLM never crashes a run): a reply with bad JSON or no valid program goes back
to the model with the problems (each naming the program part), up to ``max_repairs`` times; the
valid programs of a partly bad reply are used and the rejected ones reported; HTTP errors and
timeouts are retried by the client; ``max_failed_batches`` calls in a row with nothing usable end
the strategy with the reason in ``stats["error"]``.

Accounting (``strategy_stats`` in result.json): calls, prompt/completion tokens, seconds, and a
``calls_log`` of every call (transactions before it, tokens, latency).
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from mxdv.llm_stimuli.cache import ReplyCache
from mxdv.llm_stimuli.client import ChatClient, FormatMemory, LLMError
from mxdv.llm_stimuli.config import LLMConfig, redact, resolve
from mxdv.llm_stimuli.prompt import SYSTEM, build_prompt, repair_prompt, stimulus_bins
from mxdv.sequences.programs.json_schema import reply_schema
from mxdv.sequences.programs.language import ProgramError, validate_program
from mxdv.sequences.programs.sample import sample_program
from mxdv.sequences.registry import Strategy, register_strategy

log = logging.getLogger("mxdv.llm")
MAX_RECORDED_ERRORS = 20


def _json_body(text: str):
    """The JSON value in a reply, tolerating code fences and prose around one object."""
    body = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        first, last = body.find("{"), body.rfind("}")
        if 0 <= first < last:
            try:
                return json.loads(body[first:last + 1])
            except json.JSONDecodeError:
                pass
        raise exc


def parse_reply(text: str, schema, limit: int, plan_bins: list[str] | None = None) -> tuple[list[tuple[dict, dict]], list[str]]:
    """The valid programs of a reply as ``(raw, normalized)`` pairs, and its problems (each
    naming the program and the part that is wrong)."""
    try:
        data = _json_body(text)
    except json.JSONDecodeError as exc:
        return [], [f"the reply is not valid JSON ({exc.msg} at char {exc.pos})"]
    items = data.get("programs") if isinstance(data, dict) else data
    if isinstance(data, dict) and items is None and "fields" in data:
        items = [data]  # one bare program
    if not isinstance(items, list):
        return [], ['expected an object {"programs": [...]} with a list of programs']
    problems = []
    if len(items) > limit:
        problems.append(f"expected at most {limit} programs, got {len(items)}; the rest are ignored")
    programs = []
    for i, raw in enumerate(items[:limit]):
        try:
            prog = validate_program(schema, raw)
        except ProgramError as exc:
            problems.append(f"program {i + 1}: {exc}")
            continue
        prog["index"] = i + 1  # its number in the reply, for feedback
        if plan_bins is not None:
            unknown = [t for t in prog["targets"] if t not in plan_bins]
            if unknown:
                prog["targets"] = [t for t in prog["targets"] if t in plan_bins]
                problems.append(f"program {i + 1}: targets {unknown[:3]} are not bins of the plan")
        programs.append((raw, prog))
    return programs, problems


@register_strategy("llm")
class LLMStrategy(Strategy):
    summary = "an LLM (any OpenAI-compatible endpoint) writes stimulus programs aimed at the uncovered bins"

    async def run(self, ctx) -> None:
        cfg = resolve(self.options)
        run_dir = Path(ctx.cfg.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else run_dir.resolve().parent / "llm-cache"
        self._cfg = cfg
        self._cache = ReplyCache(cache_dir)
        self._client = ChatClient(cfg, FormatMemory(cache_dir / "formats.json"))
        st = self.stats
        st.update({"endpoint": cfg.base_url, "model": cfg.model, "cache_dir": str(cache_dir),
                   "calls": 0, "requests": 0, "replies": 0, "cache_hits": 0,
                   "prompt_tokens": 0, "completion_tokens": 0, "latency_s": 0.0,
                   "programs": 0, "rejected_programs": 0, "valid_txns": 0, "repairs": 0,
                   "failed_batches": 0, "restarts": 0, "new_bins": 0, "tokens_per_new_bin": None,
                   "stop_reason": None, "response_format": None, "rejected_formats": [],
                   "errors": [], "error": None, "calls_log": []})
        self._rng = ctx.rng
        self._missed: dict[str, int] = {}   # bin -> call index at which a program last missed it
        self._best: list[dict] = []          # best-program buffer
        self._dialogue: list[dict] = []      # earlier rounds of the current dialogue
        feedback: list[str] = []
        failed_in_row = stale = 0
        try:
            with (run_dir / "llm_transcript.jsonl").open("a") as self._transcript:
                while not ctx.done:
                    if cfg.max_calls and st["calls"] >= cfg.max_calls:
                        st["stop_reason"] = f"max_calls ({cfg.max_calls}) reached"
                        return
                    call = st["calls"]
                    programs, problems = self._call(ctx, call, feedback)
                    if not programs:
                        failed_in_row += 1
                        st["failed_batches"] += 1
                        self._error(f"call {call}: nothing usable: {'; '.join(problems[:3])}")
                        feedback = [f"nothing usable: {'; '.join(problems[:3])}"]
                        if failed_in_row >= cfg.max_failed_batches:
                            st["error"] = redact(f"ended after {failed_in_row} failed calls in a row: "
                                                 f"{'; '.join(problems[:3])}", cfg)
                            st["stop_reason"] = "endpoint or replies failed"
                            log.warning("llm strategy: %s", st["error"])
                            return
                        continue
                    failed_in_row = 0
                    new, feedback = await self._run_programs(ctx, call, programs)
                    feedback += [p for p in problems if not p.startswith("expected at most")][:4]
                    stale = 0 if new else stale + 1
                    if stale and stale % cfg.stagnation_calls == 0:
                        st["restarts"] += 1
                        self._dialogue = []
                        feedback = []
                        log.info("llm: no new bin in %d calls: dialogue restarted", stale)
                    if stale >= cfg.converge_calls:
                        st["stop_reason"] = f"converged: no new bin in {stale} calls"
                        return
                if st["stop_reason"] is None:
                    st["stop_reason"] = "closed" if getattr(ctx, "closed", False) else "budget spent"
        finally:
            st["response_format"] = self._client.format if self._client.format_confirmed else None
            st["rejected_formats"] = list(self._client.rejected_formats)
            st["latency_s"] = round(st["latency_s"], 3)
            tokens = st["prompt_tokens"] + st["completion_tokens"]
            st["tokens_per_new_bin"] = round(tokens / st["new_bins"], 1) if st["new_bins"] else None

    # -- choosing what to ask for -----------------------------------------------------------
    def _targets(self, ctx) -> tuple[list, int]:
        bins, _ = stimulus_bins(ctx.unit, ctx.uncovered())
        cfg = self._cfg
        order = list(self._rng.permutation(len(bins))) if bins else []
        shuffled = [bins[i] for i in order]
        if cfg.bin_sampling == "newest":
            shuffled.sort(key=lambda b: -self._missed.get(b.name, -1))
        shown = cfg.targets_shown if cfg.target_assignment == "any" else min(cfg.targets_shown, cfg.programs_per_call)
        return shuffled[:shown], len(bins)

    # -- one call -----------------------------------------------------------------------------
    def _call(self, ctx, call: int, feedback: list[str]) -> tuple[list, list[str]]:
        """Ask (and repair) until the reply has valid programs or the repairs run out."""
        cfg, st = self._cfg, self.stats
        schema = ctx.unit.schema
        targets, open_count = self._targets(ctx)
        prompt = build_prompt(ctx.unit, targets, cfg.programs_per_call, open_count, feedback,
                              self._best[: cfg.best_programs], assign=cfg.target_assignment == "one",
                              fill=cfg.fill)
        messages = [{"role": "system", "content": SYSTEM}] + self._dialogue + [{"role": "user", "content": prompt}]
        assigned = [b.name for b in targets] if cfg.target_assignment == "one" else None
        # with a corner fill a field left out is the baseline's draw, not a useless uniform one
        json_schema = reply_schema(schema, cfg.programs_per_call, ctx.unit.plan.bin_names, cfg.schema_profile,
                                   assigned=assigned, require_arrays=False if cfg.fill == "corner" else None)
        seed = int(ctx.cfg.seed) * 100003 + call
        st["calls"] += 1
        programs: list = []
        problems: list[str] = []
        for attempt in range(cfg.max_repairs + 1):
            entry = {"call": call, "attempt": attempt, "seed": seed, "messages": messages}
            before = (st["prompt_tokens"], st["completion_tokens"])
            try:
                reply = self._ask(messages, json_schema, seed)
            except LLMError as exc:
                problems = [str(exc)]
                self._write(dict(entry, error=str(exc)))
                break
            st["calls_log"].append({"call": call, "attempt": attempt, "txns": getattr(ctx, "submitted", 0),
                                    "prompt_tokens": st["prompt_tokens"] - before[0],
                                    "completion_tokens": st["completion_tokens"] - before[1],
                                    "latency_s": reply.get("latency_s", 0.0), "cached": reply.get("cached", False)})
            programs, problems = parse_reply(reply["text"], schema, cfg.programs_per_call, ctx.unit.plan.bin_names)
            st["rejected_programs"] += sum(1 for p in problems if p.startswith("program "))
            self._write(dict(entry, reply=reply, valid=len(programs), problems=problems))
            if programs or attempt == cfg.max_repairs:
                if programs:
                    kept = 2 * cfg.dialogue_rounds  # ([-0:] would keep the whole history)
                    self._dialogue = (self._dialogue + [{"role": "user", "content": prompt},
                                                        {"role": "assistant", "content": reply["text"]}])[-kept:] if kept else []
                break
            st["repairs"] += 1
            messages = messages + [{"role": "assistant", "content": reply["text"]},
                                   {"role": "user", "content": repair_prompt(problems, cfg.programs_per_call)}]
        return programs, problems

    async def _run_programs(self, ctx, call: int, programs: list) -> tuple[int, list[str]]:
        """Sample and execute each program; returns the new-bin count and per-program feedback."""
        cfg, st = self._cfg, self.stats
        schema = ctx.unit.schema
        feedback, new_total = [], 0
        for raw, prog in programs:
            i = prog.get("index", 1) - 1
            if ctx.done:
                break
            n = min(int(prog["count"]), cfg.batch_size, ctx.budget_left)
            try:
                txns = self._sample(schema, prog, n)
            except ProgramError as exc:
                st["rejected_programs"] += 1
                feedback.append(f"program {i + 1}: {exc}")
                continue
            st["programs"] += 1
            st["valid_txns"] += len(txns)
            results = await ctx.execute(txns)
            hit: set[str] = set()
            for r in results:
                if r.status == "pass":
                    hit |= set(ctx.unit.sample(r.txn))
            new = sorted({b for r in results for b in r.new_bins})
            new_total += len(new)
            st["new_bins"] += len(new)
            missed = [t for t in prog["targets"] if t not in hit]
            for t in missed:
                self._missed[t] = call
            label = f"program {i + 1} (targets {', '.join(prog['targets']) or 'none'})"
            others = sorted(b for b in hit if b not in prog["targets"])
            feedback.append(f"{label}: hit {', '.join(t for t in prog['targets'] if t in hit) or 'none of its targets'}"
                            + (f"; missed {', '.join(missed)}" if missed else "")
                            + (f"; its transactions hit {', '.join(others[:cfg.targets_shown * 2])}" if others else "")
                            + (f"; newly covered {', '.join(new)}" if new else "; nothing new"))
            if new:
                self._best.append({"program": raw, "hit": new, "call": call})
                self._best.sort(key=lambda e: (-len(e["hit"]), -e["call"]))
                del self._best[cfg.best_programs:]
            log.info("llm call %d program %d: %d txns, newly covered: %s", call, i + 1, len(txns), ", ".join(new) or "nothing")
        return new_total, feedback

    def _sample(self, schema, prog: dict, n: int) -> list:
        """``n`` transactions of ``prog``; with ``relax`` > 0 each one drops each field spec with
        that chance (the dropped fields come from the fill)."""
        cfg = self._cfg
        if not cfg.relax:
            return sample_program(schema, prog, self._rng, count=n, fill=cfg.fill)
        out = []
        for _ in range(n):
            kept = {k: v for k, v in prog["fields"].items() if self._rng.random() >= cfg.relax}
            out += sample_program(schema, dict(prog, fields=kept), self._rng, count=1, fill=cfg.fill)
        return out

    def _ask(self, messages: list[dict], json_schema: dict, seed: int) -> dict:
        """The reply from the cache (any format the endpoint may still use) or the endpoint."""
        cfg, st, client = self._cfg, self.stats, self._client
        for kind in client.candidate_formats():
            hit = self._cache.get(self._cache.key(cfg.model, messages, kind, seed, cfg.temperature, json_schema))
            if hit is not None:
                st["cache_hits"] += 1
                client.adopt(kind)
                return dict(hit, cached=True)
        before = client.http_requests
        try:
            reply = client.complete(messages, json_schema, seed)
        finally:
            st["requests"] += client.http_requests - before
        st["replies"] += 1
        st["prompt_tokens"] += reply.prompt_tokens
        st["completion_tokens"] += reply.completion_tokens
        st["latency_s"] += reply.latency_s
        out = {"text": reply.text, "prompt_tokens": reply.prompt_tokens,
               "completion_tokens": reply.completion_tokens, "latency_s": round(reply.latency_s, 3),
               "response_format": reply.response_format, "attempts": reply.attempts}
        self._cache.put(self._cache.key(cfg.model, messages, reply.response_format, seed, cfg.temperature, json_schema), out)
        return dict(out, cached=False)

    # -- records -------------------------------------------------------------------------
    def _write(self, entry: dict) -> None:
        self._transcript.write(redact(json.dumps(entry), self._cfg) + "\n")
        self._transcript.flush()

    def _error(self, text: str) -> None:
        text = redact(text, self._cfg)
        log.warning("llm strategy: %s", text)
        if len(self.stats["errors"]) < MAX_RECORDED_ERRORS:
            self.stats["errors"].append(text)


__all__ = ["LLMStrategy", "LLMConfig", "parse_reply"]
