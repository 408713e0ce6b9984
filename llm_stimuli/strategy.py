"""``llm``: an LLM proposes transactions aimed at the uncovered bins (in the spirit of LLM4DV).

Each batch: prompt (spec, fields, uncovered bins, earlier results) -> reply (cached on disk)
-> JSON -> every transaction checked with the unit's schema. Bad JSON, wrong counts and
out-of-range values go back to the model as a follow-up message (up to ``max_repairs``);
valid transactions of a partly bad reply are used. Endpoint failures (timeouts, HTTP errors)
are retried by the client; a batch that still gets nothing counts as failed, and after
``max_failed_batches`` failed batches in a row the strategy ends the run gracefully, with the
reason in ``strategy_stats.error``: the run never crashes on the LLM's account.
Transcript: ``llm_transcript.jsonl`` in the run directory (no API key in it).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from mxdv.llm_stimuli.cache import ReplyCache
from mxdv.llm_stimuli.client import ChatClient, LLMError
from mxdv.llm_stimuli.config import redact, resolve
from mxdv.llm_stimuli.prompt import SYSTEM, build_prompt
from mxdv.schema import TxnError
from mxdv.sequences.registry import Strategy, register_strategy


def parse_reply(text: str, schema, count: int) -> tuple[list[dict], list[str]]:
    """Valid transactions and a list of problems (each naming the transaction and field)."""
    body = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        return [], [f"the reply is not valid JSON ({exc.msg} at char {exc.pos})"]
    items = data.get("transactions") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return [], ['expected an object {"transactions": [...]}']
    problems = []
    if len(items) != count:
        problems.append(f"expected {count} transactions, got {len(items)}")
    txns = []
    for i, raw in enumerate(items[:count]):
        try:
            txns.append(schema.normalize(raw))
        except TxnError as exc:
            problems.append(f"transaction {i}: {exc}")
    return txns, problems


@register_strategy("llm")
class LLMStrategy(Strategy):
    summary = "an LLM (any OpenAI-compatible endpoint) targets the uncovered bins"

    async def run(self, ctx) -> None:
        cfg = resolve(self.options)
        run_dir = Path(ctx.cfg.run_dir)
        cache = ReplyCache(Path(cfg.cache_dir) if cfg.cache_dir else run_dir.resolve().parent / "llm-cache")
        client = ChatClient(cfg)
        st = self.stats
        st.update({"endpoint": cfg.public()["base_url"], "model": cfg.model, "requests": 0, "cache_hits": 0,
                   "prompt_tokens": 0, "completion_tokens": 0, "replies": 0, "valid_txns": 0,
                   "rejected_txns": 0, "repairs": 0, "failed_batches": 0, "error": None})
        history: list[str] = []
        failed = batch = 0
        with (run_dir / "llm_transcript.jsonl").open("a") as transcript:
            while not ctx.done:
                n = min(cfg.batch_size, ctx.budget_left)
                messages = [{"role": "system", "content": SYSTEM},
                            {"role": "user", "content": build_prompt(ctx.unit, ctx.uncovered(), n, history)}]
                schema = ctx.unit.schema.json_schema(n)
                seed = ctx.cfg.seed * 100003 + batch
                txns, problems = [], []
                for attempt in range(cfg.max_repairs + 1):
                    try:
                        reply = self._ask(client, cache, cfg, messages, schema, seed)
                    except LLMError as exc:
                        problems = [str(exc)]
                        break
                    txns, problems = parse_reply(reply["text"], ctx.unit.schema, n)
                    st["rejected_txns"] += sum(1 for p in problems if p.startswith("transaction "))
                    transcript.write(redact(json.dumps({"batch": batch, "attempt": attempt, "messages": messages,
                                                        "reply": reply, "problems": problems}), cfg) + "\n")
                    if txns or attempt == cfg.max_repairs:
                        break
                    st["repairs"] += 1
                    messages = messages + [
                        {"role": "assistant", "content": reply["text"]},
                        {"role": "user", "content": "Your answer could not be used: " + "; ".join(problems[:8])
                         + f'. Answer again with exactly {n} transactions as {{"transactions": [...]}}.'}]
                batch += 1
                if not txns:
                    failed += 1
                    st["failed_batches"] += 1
                    history.append(f"a batch failed: {'; '.join(problems[:3])}")
                    if failed >= cfg.max_failed_batches:
                        st["error"] = redact(f"ended after {failed} failed batches in a row: {'; '.join(problems[:3])}", cfg)
                        return
                    continue
                failed = 0
                st["valid_txns"] += len(txns)
                results = await ctx.execute(txns)
                new = sorted({b for r in results for b in r.new_bins})
                history.append(f"{len(txns)} transactions newly covered: {', '.join(new) if new else 'nothing new'}"
                               + (f"; problems: {'; '.join(problems[:3])}" if problems else ""))
        st["response_format"] = client.format if client.format_confirmed else None
        st["rejected_formats"] = client.rejected_formats

    def _ask(self, client, cache, cfg, messages, schema, seed) -> dict:
        key = cache.key(cfg.model, messages, seed, cfg.temperature)
        hit = cache.get(key)
        if hit is not None:
            self.stats["cache_hits"] += 1
            return hit
        reply = client.complete(messages, schema, seed)
        self.stats["requests"] += 1
        self.stats["replies"] += 1
        self.stats["prompt_tokens"] += reply.prompt_tokens
        self.stats["completion_tokens"] += reply.completion_tokens
        out = {"text": reply.text, "prompt_tokens": reply.prompt_tokens,
               "completion_tokens": reply.completion_tokens, "latency_s": round(reply.latency_s, 3),
               "response_format": reply.response_format}
        cache.put(key, out)
        return out
