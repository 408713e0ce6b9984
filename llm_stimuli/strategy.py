"""``llm``: an LLM proposes transactions aimed at the uncovered bins (in the spirit of LLM4DV,
arXiv 2310.04535), through any OpenAI-compatible chat-completions endpoint.

Each batch: prompt (spec, fields, uncovered bins, what earlier batches covered or got wrong)
-> reply (from the on-disk cache, else the endpoint) -> JSON -> every transaction checked with
``ctx.unit.schema.normalize`` -> the valid ones executed.

Failure policy (the LLM never crashes a run):

* a reply with bad JSON, or with no usable transaction, goes back to the model as a follow-up
  message listing the exact problems (field names, ranges), up to ``max_repairs`` times;
* the valid transactions of a partly bad reply (wrong count, some values out of range) are
  used, and the problems are reported to the model in the next batch's prompt;
* timeouts, connection errors and HTTP errors are retried by the client (``max_retries``,
  with backoff); a batch that still ends with nothing usable is a failed batch, and the
  strategy goes on with the next batch -- until ``max_failed_batches`` fail in a row, when it
  ends gracefully with the reason in ``stats["error"]`` (``strategy_stats.error`` in
  ``result.json``; ``mxdv run`` prints it).

Configuration errors (no base URL, no model, bad option values) raise ``ValueError``.
Transcript: ``llm_transcript.jsonl`` in the run directory -- every conversation, raw reply,
token count, latency and problem, with the API key redacted.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from mxdv.llm_stimuli.cache import ReplyCache
from mxdv.llm_stimuli.client import ChatClient, FormatMemory, LLMError
from mxdv.llm_stimuli.config import LLMConfig, redact, resolve
from mxdv.llm_stimuli.prompt import SYSTEM, build_prompt, repair_prompt
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


def parse_reply(text: str, schema, count: int) -> tuple[list[dict], list[str]]:
    """Valid transactions of a reply and its problems (each naming the transaction and field)."""
    try:
        data = _json_body(text)
    except json.JSONDecodeError as exc:
        return [], [f"the reply is not valid JSON ({exc.msg} at char {exc.pos})"]
    items = data.get("transactions") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return [], ['expected an object {"transactions": [...]} with a list of transactions']
    problems = []
    if len(items) != count:
        problems.append(f"expected {count} transactions, got {len(items)}")
    txns = []
    for i, raw in enumerate(items[:count]):
        try:
            txns.append(schema.normalize(raw))
        except Exception as exc:  # TxnError names the field; anything else is a malformed value
            problems.append(f"transaction {i}: {exc}")
    return txns, problems


@register_strategy("llm")
class LLMStrategy(Strategy):
    summary = "an LLM (any OpenAI-compatible endpoint) writes transactions aimed at the uncovered bins"

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
                   "batches": 0, "requests": 0, "replies": 0, "cache_hits": 0,
                   "prompt_tokens": 0, "completion_tokens": 0, "latency_s": 0.0,
                   "valid_txns": 0, "rejected_txns": 0, "repairs": 0, "failed_batches": 0,
                   "response_format": None, "rejected_formats": [], "errors": [], "error": None})
        history: list[str] = []
        failed_in_row = 0
        try:
            with (run_dir / "llm_transcript.jsonl").open("a") as self._transcript:
                while not ctx.done:
                    batch = st["batches"]
                    st["batches"] += 1
                    n = min(cfg.batch_size, ctx.budget_left)
                    txns, problems = self._batch(ctx, batch, n, history)
                    if not txns:
                        failed_in_row += 1
                        st["failed_batches"] += 1
                        self._error(f"batch {batch}: nothing usable: {'; '.join(problems[:3])}")
                        history.append(f"a batch gave nothing usable: {'; '.join(problems[:3])}")
                        if failed_in_row >= cfg.max_failed_batches:
                            st["error"] = redact(f"ended after {failed_in_row} failed batches in a row: "
                                                 f"{'; '.join(problems[:3])}", cfg)
                            log.warning("llm strategy: %s", st["error"])
                            return
                        continue
                    failed_in_row = 0
                    st["valid_txns"] += len(txns)
                    results = await ctx.execute(txns)
                    new = sorted({b for r in results for b in r.new_bins})
                    log.info("llm batch %d: %d/%d valid transactions, newly covered: %s", batch, len(txns), n,
                             ", ".join(new) or "nothing")
                    history.append(f"{len(txns)} transactions newly covered: {', '.join(new) or 'nothing new'}"
                                   + (f"; rejected: {'; '.join(problems[:4])}" if problems else ""))
        finally:
            st["response_format"] = self._client.format if self._client.format_confirmed else None
            st["rejected_formats"] = list(self._client.rejected_formats)
            st["latency_s"] = round(st["latency_s"], 3)

    # -- one batch -----------------------------------------------------------------------
    def _batch(self, ctx, batch: int, n: int, history: list[str]) -> tuple[list[dict], list[str]]:
        """Ask (and repair) until the reply has usable transactions or the repairs run out."""
        cfg, st = self._cfg, self.stats
        schema = ctx.unit.schema
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": build_prompt(ctx.unit, ctx.uncovered(), n, history)}]
        json_schema = schema.json_schema(n)
        seed = int(ctx.cfg.seed) * 100003 + batch
        txns: list[dict] = []
        problems: list[str] = []
        for attempt in range(cfg.max_repairs + 1):
            entry = {"batch": batch, "attempt": attempt, "seed": seed, "messages": messages}
            try:
                reply = self._ask(messages, json_schema, seed)
            except LLMError as exc:
                problems = [str(exc)]
                self._write(dict(entry, error=str(exc)))
                break
            txns, problems = parse_reply(reply["text"], schema, n)
            st["rejected_txns"] += sum(1 for p in problems if p.startswith("transaction "))
            self._write(dict(entry, reply=reply, valid=len(txns), problems=problems))
            if txns or attempt == cfg.max_repairs:
                break
            st["repairs"] += 1
            messages = messages + [{"role": "assistant", "content": reply["text"]},
                                   {"role": "user", "content": repair_prompt(problems, n)}]
        return txns, problems

    def _ask(self, messages: list[dict], json_schema: dict, seed: int) -> dict:
        """The reply from the cache (any format the endpoint may still use) or the endpoint."""
        cfg, st, client = self._cfg, self.stats, self._client
        for kind in client.candidate_formats():
            hit = self._cache.get(self._cache.key(cfg.model, messages, kind, seed, cfg.temperature))
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
        self._cache.put(self._cache.key(cfg.model, messages, reply.response_format, seed, cfg.temperature), out)
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
