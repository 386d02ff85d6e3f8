"""uvicorn's httptools protocol, with each response's header block and body leaving in one send.

uvicorn writes the status line and headers as soon as the app sends ``http.response.start``, and
the body on ``http.response.body``; on uvloop each ``write`` is its own ``send()`` system call.
A response whose body follows in the same event-loop turn (every Starlette ``Response``) can go
out in one: the header block is held and written with the body (``writelines``, one vectored
send), or on the next turn if no body came (streaming responses, ``100 Continue``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Delegates everything to the real transport but holds a header block for one turn."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.writelines([held, data])
        elif data.startswith(b"HTTP/") and data.endswith(b"\r\n\r\n"):
            # A header block (a body that looks like one is only delayed, never reordered).
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write a held header block (no body came in its turn)."""
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    # Whatever else writes or ends the stream sends the held block first: order is never changed.
    def writelines(self, chunks: list[bytes]) -> None:
        self.flush()
        self._transport.writelines(chunks)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        wrapped: Any = CoalescingTransport(transport, self.loop)
        super().connection_made(wrapped)
