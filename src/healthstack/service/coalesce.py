"""One ``send()`` per response: writes made in one event-loop step leave as one.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start``, then its body on ``http.response.body``: two ``send()`` system calls per
response, and on loopback or a pod's veth each one also runs the receiving side's TCP work and
wakes the reader. Most of a search's system time was these writes (docs/performance.md). The
transport here keeps what is written during one step of the loop and writes it at the end of that
step (``call_soon``), in order, as one buffer: headers and body go out together, and nothing waits
longer than the current step.

Flow control and memory stay uvicorn's: past ``FLUSH_AT`` bytes the pending data is written at
once, so a streamed response that never yields still reaches the real transport, whose buffer
limits pause the writer as before. ``close()`` writes what is pending first, and so does the
protocol when the client half-closes (the transport then closes itself).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

FLUSH_AT = 64 * 1024


class CoalescingTransport(asyncio.Transport):
    """A transport whose writes of one loop step are sent together (see module docstring)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))
        self._pending_size += len(data)
        if self._pending_size >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Hand what is pending to the real transport now."""
        if not self._pending:
            return
        pending, size = self._pending, self._pending_size
        self._pending, self._pending_size = [], 0
        if self._transport.is_closing():
            # The client is gone (a reset handled in this step, before the flush): dropped
            # quietly, as a write to a closing transport is; uvloop would raise on its handle.
            return
        if len(pending) == 1:
            self._transport.write(pending[0])
        elif size > FLUSH_AT:
            self._transport.writelines(pending)  # one vectored send, a large body not copied
        else:
            self._transport.write(b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending, self._pending_size = [], 0
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._pending_size + self._transport.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, writing through a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._coalescing = CoalescingTransport(transport, self.loop)
        super().connection_made(self._coalescing)

    def eof_received(self) -> None:
        # The client half-closed its side (it sent its request, then shut down writing): the
        # real transport closes itself on return, after sending what it holds, so what is
        # still pending here must reach it first (without this every such response was lost).
        self._coalescing.flush()
        super().eof_received()
