"""Replies cached on disk, keyed by everything that determines them (model, messages,
response format kind, the JSON Schema the decoding was constrained to, seed, temperature), so that re-running with the same seed reproduces
an ``llm`` run offline: when every reply is cached no HTTP request is made at all.

One JSON file per reply, ``<sha256>.json``, written atomically (parallel regression jobs may
share the directory). The API key is not part of the key and never stored.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


class ReplyCache:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(model: str, messages: list[dict], response_format: str, seed: int, temperature: float,
            constraint: dict | None = None) -> str:
        blob = json.dumps({"model": model, "messages": messages, "response_format": response_format,
                           "seed": int(seed), "temperature": float(temperature),
                           "constraint": constraint}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a damaged entry is a miss; the next put overwrites it

    def put(self, key: str, reply: dict) -> None:
        tmp = self.dir / f"{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(reply))
        tmp.replace(self._path(key))
