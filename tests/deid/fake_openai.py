"""A local OpenAI-compatible chat completions server on loopback that records every request body.

Each request takes the next behaviour from ``script`` ("ok" once it is empty): "ok" answers a
summary that quotes placeholders and a date from the request, so the test can see them restored;
the others play a failing provider.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

NAME = re.compile(rb"\[\[NAME-\d+\]\]")
START = re.compile(rb'\\"start\\":\\"(\d{4}-\d{2}-\d{2})')


class FakeOpenAI:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.script: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def _next(self, body: bytes, headers: dict[str, str]) -> str:
        with self.lock:
            self.bodies.append(body)
            self.headers.append(headers)
            return self.script.pop(0) if self.script else "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                behaviour = fake._next(body, dict(self.headers))
                status, answer = respond(behaviour, body, self.path)
                if behaviour == "timeout":
                    time.sleep(2.5)
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    if status == 429:
                        self.send_header("retry-after", "0")
                    if status == 307:
                        self.send_header("location", "http://203.0.113.9/v1/chat/completions")
                    self.send_header("content-length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client gave up (timeout)

        return Handler

    @contextmanager
    def running(self) -> Iterator[FakeOpenAI]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def completion(text: str, finish: str = "stop") -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": "test-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": finish,
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }
    )


def respond(behaviour: str, body: bytes, path: str) -> tuple[int, bytes]:
    if path != "/v1/chat/completions":
        return 404, b'{"error": "not found"}'
    if behaviour == "ok":
        name = NAME.search(body)
        start = START.search(body)
        who = name.group(0).decode() if name else "the patient"
        when = start.group(1).decode() if start else "an unknown date"
        return 200, completion(f"{who} was admitted on {when}; diabetes is stable.")
    if behaviour == "invalid-json":
        return 200, b"{not json"
    if behaviour == "unknown-placeholder":
        return 200, completion("[[NAME-999]] was admitted.")
    if behaviour == "truncated":
        return 200, completion("The patient was", finish="length")
    if behaviour == "wrong-shape":
        return 200, b'{"choices": []}'
    if behaviour == "empty":
        return 200, completion("  ")
    if behaviour == "redirect":
        return 307, b"{}"  # with a Location elsewhere the client must not follow
    if behaviour == "huge":
        return 200, completion("x" * 2_000_000)
    if behaviour == "429":
        return 429, b'{"error": {"message": "rate limited"}}'
    return 500, b'{"error": {"message": "boom"}}'  # "500", "timeout" (after the sleep)
