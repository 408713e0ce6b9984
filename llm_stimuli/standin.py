"""A SCRIPTED STAND-IN for an OpenAI-compatible LLM server, on 127.0.0.1. It is not an LLM.

It answers ``POST /v1/chat/completions`` by reading the machine-readable lines of the first
user message (``UNIT:``, ``PROGRAMS:``, ``TARGET_BINS:``) and writing ``PROGRAMS`` random valid
stimulus programs for that unit (drawn from the unit's schema alone, as ``hypothesis`` draws
them; it never reads the plan's hints), as ``{"programs": [...]}`` in the assistant message,
with a usage block (tokens estimated as characters / 4). It answers ``GET /v1/models`` too.
Like llama.cpp's server it rejects ``response_format`` of type ``json_schema`` with HTTP 500, so
every client exercises its fallback. Replies are deterministic in (server seed, request seed,
prompt).

It exists to test the ``llm`` strategy's plumbing (HTTP, JSON, validation, feedback, repairs,
retries, caching) offline and reproducibly. Anything measured with it is labelled
"scripted stand-in (not an LLM)" and appears in no closure claim.

Fault injection, for tests: ``StandinServer(faults=[...])`` applies one fault per accepted
request (a request it rejects for its json_schema format consumes none), in order:

* ``"bad_json"``: the reply is cut in half (invalid JSON);
* ``"wrong_count"``: one program more than asked for;
* ``"out_of_range"``: the first program asks for 10**9 transactions (over the bound);
* ``"http500"`` / ``"http429"``: that HTTP status with an error body;
* ``"delay:S"``: sleep S seconds before answering (client timeouts);
* ``None``: no fault for that request.

Manual use:  ``python -m mxdv.llm_stimuli.standin --port 8012 [--fault bad_json ...]``
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from mxdv.llm_stimuli.prompt import parse_header

MODEL_ID = "scripted-standin"
FAULTS = ("bad_json", "wrong_count", "out_of_range", "http500", "http429")


def _check_fault(fault: str | None) -> None:
    if fault is None or fault in FAULTS:
        return
    if fault.startswith("delay:"):
        try:
            float(fault.split(":", 1)[1])
            return
        except ValueError:
            pass
    raise ValueError(f"stand-in fault {fault!r}: expected one of {FAULTS}, 'delay:SECONDS' or None")


def scripted_programs(header: dict, seed: list[int]) -> list[dict]:
    """``PROGRAMS`` random valid stimulus programs for the unit (swarm programs drawn from its
    schema alone, like ``hypothesis`` draws them); each names the bin assigned to it (one listed
    bin per program) or else up to two of the listed bins as its targets, without knowing
    anything about them."""
    from mxdv.sequences.programs.sample import NumpyChooser
    from mxdv.sequences.programs.swarm import random_program
    from mxdv.unit import get_unit

    unit = get_unit(header["unit"])
    rng = np.random.default_rng(seed)
    out = []
    for i in range(max(1, header["programs"])):
        prog = random_program(unit.schema, NumpyChooser(rng))
        per = 1 if len(header["bins"]) <= header["programs"] else 2
        prog["targets"] = header["bins"][per * i: per * i + per]
        out.append(prog)
    return out


def _apply_content_fault(fault: str | None, programs: list[dict]) -> str:
    if fault == "wrong_count":
        programs = programs + programs[:1]
    if fault == "out_of_range" and programs:
        programs[0]["count"] = 10 ** 9
    content = json.dumps({"programs": programs})
    return content[: len(content) // 2] if fault == "bad_json" else content


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": "standin_error", "code": status}})

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model",
                                                         "owned_by": "scripted stand-in (not an LLM)"}]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self):
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._error(404, f"no route {self.path}")
        try:
            req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        except json.JSONDecodeError:
            return self._error(400, "request body is not JSON")
        self.server.record(req)
        if self.server.api_key is not None and self.headers.get("Authorization") != f"Bearer {self.server.api_key}":
            return self._error(401, "invalid API key")
        if (req.get("response_format") or {}).get("type") == "json_schema":
            # what llama.cpp's server does with this format
            return self._error(500, "response_format type json_schema is not supported")
        fault = self.server.next_fault()
        if fault in ("http500", "http429"):
            return self._error(int(fault[4:]), "injected fault")
        if fault and fault.startswith("delay:"):
            time.sleep(float(fault.split(":", 1)[1]))
        user = [m for m in req.get("messages", []) if m.get("role") == "user"]
        try:
            header = parse_header(str(user[0].get("content", "")) if user else "")
            txns = scripted_programs(header, [self.server.seed, int(req.get("seed") or 0)]) if header["unit"] else []
        except (ValueError, KeyError) as exc:
            return self._error(400, f"cannot script a reply: {exc}")
        content = _apply_content_fault(fault, txns)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in req.get("messages", []))
        usage = {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(content) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self._send(200, {"id": f"standin-{len(self.server.requests)}", "object": "chat.completion",
                         "created": int(time.time()), "model": req.get("model", MODEL_ID),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}],
                         "usage": usage})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, faults: list, seed: int, api_key: str | None):
        super().__init__(addr, _Handler)
        self.api_key = api_key
        self.faults = list(faults)
        self.seed = seed
        self.requests: list[dict] = []
        self._lock = threading.Lock()

    def record(self, req: dict) -> None:
        with self._lock:
            self.requests.append(req)

    def next_fault(self) -> str | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None


class StandinServer:
    """``with StandinServer(seed=0) as s: s.base_url`` -> ``"http://127.0.0.1:PORT/v1"``.

    ``port=0`` picks a free port. ``requests`` holds every request body received (for tests).
    ``api_key``: when set, chat requests without ``Authorization: Bearer <api_key>`` get 401.
    """

    def __init__(self, port: int = 0, seed: int = 0, faults: list[str | None] | None = None,
                 api_key: str | None = None):
        for f in faults or []:
            _check_fault(f)
        self.port, self.seed, self.faults, self.api_key = port, seed, list(faults or []), api_key
        self.server: _Server | None = None

    def __enter__(self) -> "StandinServer":
        self.server = _Server(("127.0.0.1", self.port), self.faults, self.seed, self.api_key)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="llm-standin", daemon=True)
        self.thread.start()
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict]:
        return self.server.requests if self.server else []

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mxdv.llm_stimuli.standin", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8012, help="TCP port on 127.0.0.1 (0 = any free port)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fault", action="append", default=[], help="inject a fault into the next request (repeatable)")
    args = p.parse_args(argv)
    try:
        server = StandinServer(port=args.port, seed=args.seed, faults=args.fault)
    except ValueError as exc:
        p.error(str(exc))
    with server as s:
        print(f"scripted stand-in (not an LLM) at {s.base_url}; model id {MODEL_ID!r}; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
