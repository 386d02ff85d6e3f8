"""Writes of one event-loop step leave as one ``send()`` (``service/coalesce.py``).

The transport is held against a recording transport (what reaches the socket, in what pieces);
the protocol is held on a real uvicorn server on loopback for the responses that are not one
start and one body: HEAD, 304, streamed bodies larger than the flush threshold, keep-alive
reuse, ``Expect: 100-continue`` and ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from healthstack.service.coalesce import FLUSH_AT, CoalescingHttpToolsProtocol, CoalescingTransport


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.vectored: list[list[bytes]] = []
        self.closed = self.aborted = False

    def write(self, data: Any) -> None:
        self.sent.append(bytes(data))

    def writelines(self, pieces: Any) -> None:
        self.vectored.append(list(pieces))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 0


def _drive(steps: Any) -> Recording:
    async def main() -> Recording:
        recording = Recording()
        transport = CoalescingTransport(recording, asyncio.get_running_loop())
        await steps(transport, recording)
        await asyncio.sleep(0)
        return recording

    return asyncio.run(main())


def test_the_writes_of_one_step_are_sent_once_in_order() -> None:
    async def steps(transport: CoalescingTransport, recording: Recording) -> None:
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"")
        transport.write(memoryview(b"body"))
        assert recording.sent == []  # nothing before the end of the step
        assert transport.get_write_buffer_size() == 23
        await asyncio.sleep(0)
        transport.write(b"next")

    assert _drive(steps).sent == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]


def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    async def closing(transport: CoalescingTransport, recording: Recording) -> None:
        transport.write(b"last words")
        transport.close()
        assert (recording.sent, recording.closed) == ([b"last words"], True)

    assert _drive(closing).sent == [b"last words"]

    async def aborting(transport: CoalescingTransport, recording: Recording) -> None:
        transport.write(b"dropped")
        transport.abort()

    assert _drive(aborting).sent == []


def test_past_the_threshold_pending_data_is_written_at_once() -> None:
    """A body streamed without yielding reaches the real transport (and its flow control)."""
    chunk = b"x" * (FLUSH_AT // 4)

    async def steps(transport: CoalescingTransport, recording: Recording) -> None:
        for _ in range(9):
            transport.write(chunk)
        assert [len(piece) for piece in recording.sent] == [FLUSH_AT, FLUSH_AT]
        assert transport.get_write_buffer_size() == len(chunk)

    assert [len(piece) for piece in _drive(steps).sent] == [FLUSH_AT, FLUSH_AT, len(chunk)]


def test_a_large_write_goes_out_at_once_and_uncopied_with_what_preceded_it() -> None:
    body = b"x" * (2 * FLUSH_AT)

    async def steps(transport: CoalescingTransport, recording: Recording) -> None:
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(body)
        assert recording.vectored == [[b"HTTP/1.1 200 OK\r\n\r\n", body]]
        assert recording.vectored[0][1] is body

    assert _drive(steps).sent == []


def test_what_is_pending_when_the_client_is_gone_is_dropped_quietly() -> None:
    """A reset handled before the step's flush closes the real transport: uvloop raises on a
    write to its closed handle (an error log per disconnect); stock uvicorn drops it silently."""

    async def steps(transport: CoalescingTransport, recording: Recording) -> None:
        transport.write(b"for nobody")
        recording.aborted = True  # what connection_lost leaves

    assert _drive(steps).sent == []


async def _hello(request: Request) -> Response:
    if request.headers.get("if-none-match") == '"1"':
        return Response(status_code=304, headers={"etag": '"1"'})
    body = await request.body()
    return Response(b"hello " + body, headers={"etag": '"1"'})


async def _stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for number in range(64):  # 4 MiB, no await between chunks that yields to the loop
            yield bytes([65 + number % 26]) * 65536

    return StreamingResponse(chunks())


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    app = Starlette(routes=[Route("/", _hello, methods=["GET", "HEAD", "POST"]),
                            Route("/stream", _stream)])  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="uvloop", log_config=None,
                            http=CoalescingHttpToolsProtocol, lifespan="off")  # fmt: skip
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(timeout=10)


def test_responses_through_the_protocol_are_whole(server: str) -> None:
    with httpx.Client(base_url=server) as client:  # one keep-alive connection throughout
        assert client.get("/").content == b"hello "
        head = client.head("/")
        assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "6")
        assert client.get("/", headers={"If-None-Match": '"1"'}).status_code == 304
        posted = client.post("/", content=b"there", headers={"Expect": "100-continue"})
        assert posted.content == b"hello there"
        streamed = client.get("/stream")
        assert len(streamed.content) == 64 * 65536
        assert streamed.content[:1] == b"A"
        assert streamed.content[-1:] == b"L"
        assert client.get("/").content == b"hello "
        closed = client.get("/", headers={"Connection": "close"})
        assert (closed.content, closed.headers.get("connection")) == (b"hello ", "close")


def _exchange(server: str, raw: bytes, half_close: bool) -> bytes:
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(raw)
        if half_close:
            client.shutdown(socket.SHUT_WR)
        received = b""
        with contextlib.suppress(TimeoutError):
            while chunk := client.recv(65536):
                received += chunk
                if not half_close and received.count(b"hello") >= raw.count(b"GET"):
                    break
        return received


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_client_that_half_closes_after_its_request_gets_its_response(
    server: str, method: str
) -> None:
    """Its end of stream closes the real transport, which sends what it holds first: what is
    still pending in ours has to reach it before that (every such response was lost)."""
    request = f"{method} / HTTP/1.1\r\nHost: test\r\n\r\n".encode()
    answers = [_exchange(server, request, half_close=True) for _ in range(50)]
    assert all(answer.startswith(b"HTTP/1.1 200 OK\r\n") for answer in answers)
    assert all(answer.endswith(b"hello ") == (method == "GET") for answer in answers)


def test_pipelined_requests_are_answered_in_order(server: str) -> None:
    raw = b"".join(f"GET /?n={n} HTTP/1.1\r\nHost: test\r\n\r\n".encode() for n in range(5))
    answer = _exchange(server, raw, half_close=False)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 5
