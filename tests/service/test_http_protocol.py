"""One send per response: the header block waits for its body, and nothing is ever reordered.

The transport is checked with a recording stand-in (what reaches the socket, in which calls), and
the protocol end to end: uvicorn serving a small app on loopback to a raw socket client, with
pipelined requests, a HEAD, a streamed body and ``Expect: 100-continue``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from healthstack.service.embedded_pg import free_port
from healthstack.service.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[bytes]]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", [data]))

    def writelines(self, chunks: list[bytes]) -> None:
        self.calls.append(("writelines", list(chunks)))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.calls.append(("close", []))
        self.closing = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def _wrapped() -> tuple[CoalescingTransport, Recorder, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    recorder = Recorder()
    return CoalescingTransport(recorder, loop), recorder, loop


def test_header_block_and_body_leave_in_one_call() -> None:
    transport, recorder, loop = _wrapped()
    transport.write(HEAD)
    transport.write(b"ok")
    assert recorder.calls == [("writelines", [HEAD, b"ok"])]
    loop.run_until_complete(asyncio.sleep(0))  # the scheduled flush finds nothing held
    assert recorder.calls == [("writelines", [HEAD, b"ok"])]
    loop.close()


def test_a_header_block_without_a_body_in_its_turn_is_written_on_the_next() -> None:
    transport, recorder, loop = _wrapped()
    transport.write(HEAD)
    assert recorder.calls == []
    loop.run_until_complete(asyncio.sleep(0))
    assert recorder.calls == [("write", [HEAD])]
    transport.write(b"ok")  # a later chunk goes straight out, after the header block
    assert recorder.calls[-1] == ("write", [b"ok"])
    loop.close()


@pytest.mark.parametrize("finish", ["close", "write_eof", "writelines"])
def test_whatever_ends_or_bypasses_the_write_sends_the_held_block_first(finish: str) -> None:
    transport, recorder, loop = _wrapped()
    recorder.write_eof = lambda: recorder.calls.append(("write_eof", []))  # type: ignore[attr-defined]
    transport.write(HEAD)
    if finish == "writelines":
        transport.writelines([b"o", b"k"])
    else:
        getattr(transport, finish)()
    assert recorder.calls[0] == ("write", [HEAD])
    assert len(recorder.calls) == 2
    loop.close()


def test_a_body_that_looks_like_a_header_block_is_only_delayed() -> None:
    transport, recorder, loop = _wrapped()
    transport.write(b"x")
    transport.write(HEAD)  # e.g. a proxied response as the body of a streamed one
    transport.write(b"y")
    written = b"".join(b"".join(chunks) for _, chunks in recorder.calls)
    assert written == b"x" + HEAD + b"y"
    loop.close()


def test_nothing_is_written_to_a_closed_connection_and_the_rest_is_delegated() -> None:
    transport, recorder, loop = _wrapped()
    transport.write(HEAD)
    recorder.closing = True  # the client went away before the next turn
    loop.run_until_complete(asyncio.sleep(0))
    assert recorder.calls == []
    assert transport.get_extra_info("peername") == "info:peername"
    loop.close()


async def _plain(request: Request) -> Response:
    body = await request.body()
    return PlainTextResponse(f"{request.method} {request.url.path} {len(body)}")


async def _stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"one,", b"two,", b"three"):
            await asyncio.sleep(0.01)
            yield part

    return StreamingResponse(chunks())


APP = Starlette(routes=[Route("/plain/{n}", _plain, methods=["GET", "HEAD", "POST"]),
                        Route("/stream", _stream)])  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(APP, host="127.0.0.1", port=port, loop="uvloop", log_config=None,
                            http=CoalescingHttpToolsProtocol, lifespan="off")  # fmt: skip
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port
    instance.should_exit = True
    thread.join(10)


def _exchange(port: int, payload: bytes, until: bytes, count: int = 1) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(payload)
        received = b""
        while received.count(until) < count:
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def test_pipelined_requests_are_answered_in_order(server: int) -> None:
    requests = b"".join(f"GET /plain/{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for n in range(5))
    answer = _exchange(server, requests, b"HTTP/1.1 200", 5)
    bodies = [part.rsplit(b"\r\n\r\n", 1)[1] for part in answer.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [f"GET /plain/{n} 0".encode() for n in range(5)]


def test_head_streamed_and_continued_responses_are_whole(server: int) -> None:
    head = _exchange(
        server, b"HEAD /plain/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"\r\n\r\n"
    )
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert head.endswith(b"\r\n\r\n")
    streamed = _exchange(
        server, b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"0\r\n\r\n"
    )
    assert streamed.rstrip(b"0\r\n").endswith(b"three")  # every chunk, in order
    assert streamed.index(b"one,") < streamed.index(b"two,") < streamed.index(b"three")
    with socket.create_connection(("127.0.0.1", server), timeout=5) as conn:
        conn.sendall(
            b"POST /plain/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
        )
        assert conn.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        conn.sendall(b"abc")
        answer = b""
        while not answer.endswith(b"POST /plain/2 3"):
            chunk = conn.recv(65536)
            assert chunk, answer
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK")


def test_the_service_serves_with_this_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    from healthstack.service import server as module

    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def capture(self: Any, config: uvicorn.Config, state: Any) -> None:
        seen["http"] = config.http
        raise Stop

    monkeypatch.setattr(module.DrainingServer, "__init__", capture)
    app = Starlette()
    app.state.service = SimpleNamespace(settings=SimpleNamespace(drain_seconds=5))
    with pytest.raises(Stop):
        module.run(app, "127.0.0.1", 0)
    assert seen["http"] is CoalescingHttpToolsProtocol
