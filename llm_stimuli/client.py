"""Chat completions over the ``openai`` client with a response-format fallback chain.

Endpoints differ in how they constrain JSON output: OpenAI takes
``response_format={"type": "json_schema", ...}``; llama.cpp's server answers that with HTTP
500 but accepts ``{"type": "json_object", "schema": ...}``. The client tries, in order,
json_schema -> json_object with schema -> json_object -> none, moves on when a format is
rejected (HTTP 4xx/5xx before any success with it), and remembers the first one that works.
Timeouts, connection errors and 5xx on a working format are retried with backoff.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import openai

from mxdv.llm_stimuli.config import LLMConfig

FORMATS = ("json_schema", "json_object_schema", "json_object", "none")


@dataclass
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    response_format: str


class LLMError(RuntimeError):
    """The endpoint could not produce a reply within the retry budget (message has no key)."""


def _response_format(kind: str, schema: dict) -> dict | None:
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "transactions", "schema": schema, "strict": False}}
    if kind == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    return None


class ChatClient:
    def __init__(self, cfg: LLMConfig, sleep=time.sleep):
        self.cfg = cfg
        self._client = openai.OpenAI(base_url=cfg.base_url, api_key=cfg.api_key or "none",
                                     timeout=cfg.timeout_s, max_retries=0)
        self.format_index = 0
        self.format_confirmed = False
        self.sleep = sleep
        self.rejected_formats: list[str] = []

    @property
    def format(self) -> str:
        return FORMATS[self.format_index]

    def complete(self, messages: list[dict], schema: dict, seed: int) -> Reply:
        retries = 0
        while True:
            kind = self.format
            kwargs = dict(model=self.cfg.model, messages=messages, temperature=self.cfg.temperature,
                          max_tokens=self.cfg.max_tokens, seed=seed)
            rf = _response_format(kind, schema)
            if rf is not None:
                kwargs["response_format"] = rf
            t0 = time.monotonic()
            try:
                resp = self._client.chat.completions.create(**kwargs)
            except openai.APIStatusError as exc:
                if not self.format_confirmed and self.format_index < len(FORMATS) - 1 and exc.status_code != 401:
                    self.rejected_formats.append(f"{kind}: HTTP {exc.status_code}")
                    self.format_index += 1  # this endpoint does not take that response_format
                    continue
                if exc.status_code >= 500 and retries < self.cfg.max_retries:
                    retries += 1
                    self.sleep(min(8.0, 0.5 * 2 ** retries))
                    continue
                raise LLMError(f"HTTP {exc.status_code} from the endpoint after {retries} retries") from None
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                if retries < self.cfg.max_retries:
                    retries += 1
                    self.sleep(min(8.0, 0.5 * 2 ** retries))
                    continue
                raise LLMError(f"{type(exc).__name__} after {retries} retries") from None
            self.format_confirmed = True
            usage = getattr(resp, "usage", None)
            text = resp.choices[0].message.content or "" if resp.choices else ""
            return Reply(text, getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0,
                         time.monotonic() - t0, kind)
