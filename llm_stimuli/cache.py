"""Replies cached on disk, keyed by everything that determines them, so that re-running with
the same seed reproduces an LLM run offline (no HTTP when every reply is cached)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


class ReplyCache:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(model: str, messages: list[dict], seed: int, temperature: float) -> str:
        blob = json.dumps({"model": model, "messages": messages, "seed": seed, "t": temperature}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        path = self.dir / f"{key}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def put(self, key: str, reply: dict) -> None:
        tmp = self.dir / f"{key}.json.tmp"
        tmp.write_text(json.dumps(reply))
        tmp.replace(self.dir / f"{key}.json")
