"""Chat completions over the ``openai`` client with a response-format fallback chain.

Endpoints differ in how they constrain JSON output: OpenAI takes
``response_format={"type": "json_schema", ...}``; llama.cpp's server answers that with HTTP
500 but accepts ``{"type": "json_object", "schema": ...}`` (and then constrains the output
with a grammar). :data:`FORMATS` is tried in order, starting from the format remembered for
the endpoint (:class:`FormatMemory`), until one works:

* a format is *rejected* when, before any success with it, the endpoint answers a 4xx other
  than 401/403/404/408/429, or a 5xx whose message names the response format or schema
  (llama.cpp's case) -- the next format is tried at once;
* any other 5xx, 408, 429, timeout or connection error is *transient*: the same request is
  retried with exponential backoff up to ``max_retries`` times; when a never-confirmed format
  exhausts its retries, the chain moves on too (an endpoint that fails opaquely);
* 401/403/404 and other client errors end the request with :class:`LLMError`.

Error messages never contain the API key (they are built here, not copied from the client).
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import openai

from mxdv.llm_stimuli.config import LLMConfig

FORMATS = ("json_schema", "json_object_schema", "json_object", "none")
_FORMAT_COMPLAINT = re.compile(r"response_format|json_schema|schema|grammar", re.IGNORECASE)


@dataclass
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    #: Seconds of the successful request.
    latency_s: float
    #: The response format the reply was produced with (one of :data:`FORMATS`).
    response_format: str
    #: HTTP requests made for this reply (fallbacks and retries included).
    attempts: int = 1


class LLMError(RuntimeError):
    """The endpoint gave no reply within the retry budget (the message never holds the key)."""


def response_format(kind: str, schema: dict) -> dict | None:
    """The ``response_format`` request field for a format kind (``None`` = leave it out)."""
    if kind == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "transactions", "schema": schema, "strict": False}}
    if kind == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "none":
        return None
    raise ValueError(f"unknown response format kind {kind!r}; expected one of {FORMATS}")


class FormatMemory:
    """The response format that worked, per endpoint (base URL + model), kept in a JSON file."""

    def __init__(self, path: Path | None):
        self.path = Path(path) if path else None

    @staticmethod
    def endpoint(cfg: LLMConfig) -> str:
        return f"{cfg.base_url.rstrip('/')} {cfg.model}"

    def _load(self) -> dict:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, cfg: LLMConfig) -> str | None:
        kind = self._load().get(self.endpoint(cfg))
        return kind if kind in FORMATS else None

    def put(self, cfg: LLMConfig, kind: str) -> None:
        if self.path is None:
            return
        data = self._load()
        if data.get(self.endpoint(cfg)) == kind:
            return
        data[self.endpoint(cfg)] = kind
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{id(self)}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(self.path)


class ChatClient:
    """One endpoint; :meth:`complete` returns a :class:`Reply` or raises :class:`LLMError`."""

    def __init__(self, cfg: LLMConfig, memory: FormatMemory | None = None, sleep=time.sleep,
                 backoff_s: float | None = None):
        self.cfg = cfg
        self.memory = memory or FormatMemory(None)
        self.sleep = sleep
        self.backoff_s = cfg.retry_backoff_s if backoff_s is None else backoff_s
        self._client = openai.OpenAI(base_url=cfg.base_url, api_key=cfg.api_key or "none",
                                     timeout=cfg.timeout_s, max_retries=0)
        remembered = self.memory.get(cfg)
        self.start_index = FORMATS.index(remembered) if remembered else 0
        self.format_index = self.start_index
        self.format_confirmed = False
        #: "kind: HTTP code" for every format the endpoint rejected.
        self.rejected_formats: list[str] = []
        self.http_requests = 0

    @property
    def format(self) -> str:
        return FORMATS[self.format_index]

    def candidate_formats(self) -> list[str]:
        """Formats a reply could still come from (the confirmed one, or the rest of the chain)."""
        return [self.format] if self.format_confirmed else list(FORMATS[self.format_index:])

    def adopt(self, kind: str) -> None:
        """Use ``kind`` from now on (a cached reply showed it works with this endpoint)."""
        self.format_index = FORMATS.index(kind)
        self._confirm()

    def _confirm(self) -> None:
        if not self.format_confirmed:
            self.format_confirmed = True
            self.memory.put(self.cfg, self.format)

    def _next_format(self, why: str) -> bool:
        if self.format_confirmed or self.format_index >= len(FORMATS) - 1:
            return False
        self.rejected_formats.append(f"{self.format}: {why}")
        self.format_index += 1
        return True

    def _backoff(self, retries: int) -> None:
        self.sleep(min(8.0, self.backoff_s * 2 ** (retries - 1)))

    def complete(self, messages: list[dict], schema: dict, seed: int) -> Reply:
        retries = attempts = 0
        while True:
            kind = self.format
            kwargs = dict(model=self.cfg.model, messages=messages, temperature=self.cfg.temperature,
                          max_tokens=self.cfg.max_tokens, seed=seed)
            rf = response_format(kind, schema)
            if rf is not None:
                kwargs["response_format"] = rf
            attempts += 1
            self.http_requests += 1
            t0 = time.monotonic()
            try:
                resp = self._client.chat.completions.create(**kwargs)
            except openai.APIStatusError as exc:
                code = exc.status_code
                if code in (401, 403):
                    raise LLMError(f"HTTP {code}: the endpoint refused the API key or model access") from None
                if code == 404:
                    raise LLMError(f"HTTP 404: no chat completions at {self.cfg.base_url} "
                                   f"(wrong base URL or unknown model {self.cfg.model!r})") from None
                transient = code >= 500 or code in (408, 429)
                names_format = code >= 500 and bool(_FORMAT_COMPLAINT.search(str(exc.message)))
                if (not transient or names_format) and self._next_format(f"HTTP {code}"):
                    continue
                if transient and retries < self.cfg.max_retries:
                    retries += 1
                    self._backoff(retries)
                    continue
                if transient and self._next_format(f"HTTP {code} {retries + 1} times"):
                    retries = 0
                    continue
                self._give_up()
                raise LLMError(f"HTTP {code} from the endpoint after {retries} retries "
                               f"(response format {kind})") from None
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                if retries < self.cfg.max_retries:
                    retries += 1
                    self._backoff(retries)
                    continue
                self._give_up()
                raise LLMError(f"{type(exc).__name__} after {retries} retries "
                               f"(timeout {self.cfg.timeout_s} s)") from None
            except openai.OpenAIError as exc:  # malformed response and the like
                self._give_up()
                raise LLMError(f"{type(exc).__name__} from the endpoint") from None
            latency = time.monotonic() - t0
            self._confirm()
            usage = getattr(resp, "usage", None)
            choices = getattr(resp, "choices", None) or []
            text = (choices[0].message.content or "") if choices else ""
            return Reply(text, int(getattr(usage, "prompt_tokens", 0) or 0),
                         int(getattr(usage, "completion_tokens", 0) or 0), latency, kind, attempts)

    def _give_up(self) -> None:
        """After a failed request, an unconfirmed chain starts over (an outage is not a rejection)."""
        if not self.format_confirmed:
            self.format_index = self.start_index
