"""Endpoint settings of the ``llm`` strategy.

Precedence (lowest to highest): a config file (JSON, at ``$MXDV_LLM_CONFIG`` or option
``config``), the environment (``MXDV_LLM_BASE_URL``, ``MXDV_LLM_MODEL``,
``MXDV_LLM_API_KEY``), then strategy options (``--option base_url=...``). The API key is
never printed: it is excluded from ``repr`` and from :meth:`LLMConfig.public`.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

ENV = {"base_url": "MXDV_LLM_BASE_URL", "model": "MXDV_LLM_MODEL", "api_key": "MXDV_LLM_API_KEY"}


@dataclass
class LLMConfig:
    base_url: str
    model: str
    api_key: str = field(default="none", repr=False)
    timeout_s: float = 60.0
    max_retries: int = 3
    batch_size: int = 8
    temperature: float = 0.2
    max_tokens: int = 2048
    cache_dir: str | None = None
    #: Bad replies (JSON, count, values) sent back to the model per batch before giving up.
    max_repairs: int = 2
    #: Consecutive failed batches after which the strategy ends the run gracefully.
    max_failed_batches: int = 3

    def public(self) -> dict:
        d = asdict(self)
        d["api_key"] = "<redacted>" if self.api_key else ""
        return d


def resolve(options: dict) -> LLMConfig:
    values: dict = {}
    path = options.get("config") or os.environ.get("MXDV_LLM_CONFIG")
    if path:
        p = Path(path)
        if not p.exists():
            raise ValueError(f"llm config file {path!r} does not exist (option config / MXDV_LLM_CONFIG)")
        try:
            values.update(json.loads(p.read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"llm config file {path!r} is not valid JSON: {exc}") from exc
    for key, var in ENV.items():
        if os.environ.get(var):
            values[key] = os.environ[var]
    values.update({k: v for k, v in options.items() if k != "config"})
    for key, var in (("base_url", ENV["base_url"]), ("model", ENV["model"])):
        if not values.get(key):
            raise ValueError(f"llm strategy: no {key}; set {var}, a config file, or --option {key}=...")
    known = set(LLMConfig.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"llm strategy: unknown option(s) {sorted(unknown)}; known: {sorted(known)}")
    cfg = LLMConfig(**values)
    for name in ("timeout_s", "max_retries", "batch_size", "max_tokens", "max_repairs", "max_failed_batches"):
        if float(getattr(cfg, name)) <= 0 and name not in ("max_retries", "max_repairs"):
            raise ValueError(f"llm strategy: option {name} must be > 0, got {getattr(cfg, name)}")
    return cfg


def redact(text: str, cfg: LLMConfig) -> str:
    if cfg.api_key and len(cfg.api_key) >= 4:
        return text.replace(cfg.api_key, "<redacted>")
    return text
