"""Endpoint settings of the ``llm`` strategy.

Precedence (lowest to highest): a config file (JSON, or TOML when the name ends in ``.toml``,
at ``$MXDV_LLM_CONFIG`` or option ``config``), the environment (``MXDV_LLM_BASE_URL``,
``MXDV_LLM_MODEL``, ``MXDV_LLM_API_KEY``), then strategy options (``--option base_url=...``).

The API key is never printed: it is left out of ``repr``, :meth:`LLMConfig.public` shows it
as ``<redacted>``, error messages name options but never echo the key, and :func:`redact`
scrubs it from any text the strategy writes (transcript, stats, log).
"""
from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mxdv.sequences.programs.sample import FILLS

ENV = {"base_url": "MXDV_LLM_BASE_URL", "model": "MXDV_LLM_MODEL", "api_key": "MXDV_LLM_API_KEY"}
CONFIG_ENV = "MXDV_LLM_CONFIG"


@dataclass
class LLMConfig:
    base_url: str
    model: str
    api_key: str = field(default="none", repr=False)
    #: Seconds per HTTP request before it counts as a timeout.
    timeout_s: float = 60.0
    #: Retries of one request on timeouts, connection errors, HTTP 429 and 5xx.
    max_retries: int = 3
    #: First backoff between retries (seconds); it doubles per retry, capped at 8 s.
    retry_backoff_s: float = 0.5
    #: Transactions sampled from each program of a reply (at most; a program may ask for fewer).
    batch_size: int = 8
    #: What a program leaves random ("corner": drawn as ``corner_random`` draws it, so the model
    #: steers the honest baseline; "uniform": uniform over the domain, as before 2026-12-04).
    fill: str = "corner"
    #: Per sampled transaction, the chance that each field spec of a program is dropped (the
    #: field then comes from the fill): 0 samples every program as written; above 0 a program's
    #: transactions vary around it, as a swarm varies which constraints are on.
    relax: float = 0.0
    #: Programs asked for per call.
    programs_per_call: int = 3
    #: Open bins shown per call (missed-bin sampling picks them).
    targets_shown: int = 6
    #: "one": each program of a call is asked for one named open bin (targets_shown is then at
    #: most programs_per_call); "any": the open bins are listed and each program picks one or two.
    target_assignment: str = "one"
    #: How the shown bins are picked: "random", or "newest" (bins a program missed most recently first).
    bin_sampling: str = "random"
    #: Best programs (most new bins) offered back as examples.
    best_programs: int = 3
    #: Earlier rounds kept in the dialogue (0: every call starts a new conversation).
    dialogue_rounds: int = 1
    #: Calls without a new bin after which the dialogue restarts.
    stagnation_calls: int = 3
    #: Calls without a new bin after which the strategy stops (converged).
    converge_calls: int = 8
    #: Most LLM calls in a run (0: no limit besides the transaction budget).
    max_calls: int = 0
    #: JSON Schema sent for constrained decoding: "compact" (literal values only: a small grammar,
    #: fast on a CPU endpoint) or "full" (every form of the program language).
    schema_profile: str = "compact"
    temperature: float = 0.2
    max_tokens: int = 2048
    #: Where replies are cached; default ``<parent of the run directory>/llm-cache``.
    cache_dir: str | None = None
    #: Bad replies (JSON, count, values) sent back to the model per batch before giving up.
    max_repairs: int = 2
    #: Consecutive failed batches after which the strategy ends the run gracefully.
    max_failed_batches: int = 3

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name == "api_key":
                continue
            kind = {"float": float, "int": int, "str": str}.get(str(f.type).split(" |")[0])
            if kind is None:
                continue
            try:
                if kind is int and isinstance(value, float) and not value.is_integer():
                    raise ValueError
                setattr(self, f.name, kind(value))
            except (TypeError, ValueError):
                raise ValueError(f"llm strategy: option {f.name} must be {kind.__name__}, got {value!r}") from None
        if not isinstance(self.api_key, str):
            raise ValueError("llm strategy: option api_key must be a string")
        if self.schema_profile not in ("compact", "full"):
            raise ValueError(f"llm strategy: option schema_profile must be compact or full, got {self.schema_profile!r}")
        if self.target_assignment not in ("one", "any"):
            raise ValueError(f"llm strategy: option target_assignment must be one or any, got {self.target_assignment!r}")
        if self.fill not in FILLS:
            raise ValueError(f"llm strategy: option fill must be corner or uniform, got {self.fill!r}")
        if self.bin_sampling not in ("random", "newest"):
            raise ValueError(f"llm strategy: option bin_sampling must be random or newest, got {self.bin_sampling!r}")
        for name in ("best_programs", "dialogue_rounds", "max_calls"):
            if getattr(self, name) < 0:
                raise ValueError(f"llm strategy: option {name} must be >= 0, got {getattr(self, name)}")
        for name in ("timeout_s", "batch_size", "max_tokens", "max_failed_batches", "programs_per_call",
                     "targets_shown", "stagnation_calls", "converge_calls"):
            if getattr(self, name) <= 0:
                raise ValueError(f"llm strategy: option {name} must be > 0, got {getattr(self, name)}")
        for name in ("max_retries", "max_repairs", "retry_backoff_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"llm strategy: option {name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.relax <= 1.0:
            raise ValueError(f"llm strategy: option relax must be in [0, 1], got {self.relax}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"llm strategy: option temperature must be in [0, 2], got {self.temperature}")

    def public(self) -> dict:
        """The settings with the key redacted (safe to print or write)."""
        d = asdict(self)
        d["api_key"] = "<redacted>" if self.api_key else ""
        return d


def _read_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"llm config file {path!r} does not exist (option config / {CONFIG_ENV})")
    try:
        data = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "TOML" if p.suffix == ".toml" else "JSON"
        raise ValueError(f"llm config file {path!r} is not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"llm config file {path!r} must hold an object of settings")
    return data.get("llm", data) if isinstance(data.get("llm"), dict) else data


def resolve(options: dict) -> LLMConfig:
    """Merge file < environment < options into an :class:`LLMConfig` (ValueError if incomplete)."""
    values: dict = {}
    path = options.get("config") or os.environ.get(CONFIG_ENV)
    if path:
        values.update(_read_file(str(path)))
    for key, var in ENV.items():
        if os.environ.get(var):
            values[key] = os.environ[var]
    values.update({k: v for k, v in options.items() if k != "config"})
    for key in ("base_url", "model"):
        if not values.get(key):
            raise ValueError(f"llm strategy: no {key}; set {ENV[key]}, put it in a config file "
                             f"({CONFIG_ENV}), or pass --option {key}=...")
    known = {f.name for f in fields(LLMConfig)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"llm strategy: unknown option(s) {sorted(unknown)}; known: {sorted(known | {'config'})}")
    return LLMConfig(**values)


def redact(text: str, cfg: LLMConfig) -> str:
    """``text`` with every occurrence of the API key replaced by ``<redacted>``."""
    key = cfg.api_key
    if not key or key == "none":
        return text
    for form in (key, json.dumps(key)[1:-1]):  # raw, and as it appears inside a JSON string
        text = text.replace(form, "<redacted>")
    return text
