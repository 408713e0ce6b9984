"""A SCRIPTED STAND-IN for an OpenAI-compatible LLM server (it is not an LLM), on 127.0.0.1.

It answers ``POST /v1/chat/completions`` by reading the prompt's machine-readable lines
(``UNIT:``, ``COUNT:``, ``UNCOVERED_BINS:``) and building transactions with the unit's own
coverage-plan hints (the same recipes the ``constrained`` strategy uses), cycling over the
named bins; it answers ``GET /v1/models`` too. Like llama.cpp's server it rejects
``response_format`` of type ``json_schema`` with HTTP 500, so clients exercise their fallback.
It exists to test the ``llm`` strategy's plumbing (HTTP, JSON, validation, retries, caching)
offline and reproducibly; closure numbers measured with it measure the plan's hints, not an
LLM. Faults for tests: ``StandinServer(faults=["bad_json", "wrong_count", "out_of_range",
"http500", "delay:2.5"])`` are applied to successive requests.

    python -m mxdv.llm_stimuli.standin --port 8012
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from mxdv.llm_stimuli.prompt import parse_header


def _transactions(header: dict, seed: int) -> list[dict]:
    from mxdv.unit import get_unit

    unit = get_unit(header["unit"])
    rng = np.random.default_rng(seed)
    hinted = [unit.plan.get(b) for b in header["bins"] if b in unit.plan.bin_names]
    hinted = [b for b in hinted if b.hint is not None]
    out = []
    for i in range(header["count"]):
        out.append(hinted[i % len(hinted)].hint(rng) if hinted else unit.schema.random(rng))
    return out


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, body: dict | str) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "scripted-standin", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self):
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._send(404, {"error": {"message": "not found"}})
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.requests.append(req)
        rf = req.get("response_format") or {}
        if rf.get("type") == "json_schema":
            return self._send(500, {"error": {"message": "json_schema response_format is not supported"}})
        fault = self.server.next_fault()
        if fault == "http500":
            return self._send(500, {"error": {"message": "injected fault"}})
        if fault and fault.startswith("delay:"):
            time.sleep(float(fault.split(":")[1]))
        user = [m for m in req.get("messages", []) if m.get("role") == "user"]
        header = parse_header(user[0]["content"] if user else "")
        txns = _transactions(header, int(req.get("seed") or 0)) if header["unit"] else []
        if fault == "wrong_count":
            txns = txns[:-1] if len(txns) > 1 else txns * 2
        if fault == "out_of_range" and txns:
            first = next(iter(txns[0]))
            txns[0][first] = 10 ** 9
        content = json.dumps({"transactions": txns})
        if fault == "bad_json":
            content = content[: len(content) // 2]
        self._send(200, {"id": "standin", "object": "chat.completion", "created": int(time.time()),
                         "model": req.get("model", "scripted-standin"),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}],
                         "usage": {"prompt_tokens": sum(len(str(m.get("content", ""))) // 4 for m in req.get("messages", [])),
                                   "completion_tokens": len(content) // 4,
                                   "total_tokens": 0}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, faults):
        super().__init__(addr, _Handler)
        self.faults = list(faults)
        self.requests: list[dict] = []
        self._lock = threading.Lock()

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None


class StandinServer:
    """``with StandinServer() as s: s.base_url`` -> ``http://127.0.0.1:PORT/v1``."""

    def __init__(self, port: int = 0, seed: int = 0, faults: list[str] | None = None):
        self.port, self.seed, self.faults = port, seed, faults or []

    def __enter__(self) -> "StandinServer":
        self.server = _Server(("127.0.0.1", self.port), self.faults)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict]:
        return self.server.requests

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8012)
    args = p.parse_args(argv)
    with StandinServer(port=args.port) as s:
        print(f"scripted stand-in (not an LLM) at {s.base_url}; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
