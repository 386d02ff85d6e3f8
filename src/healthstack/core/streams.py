"""Reading binary streams that may return short reads (pipes, sockets, object-store bodies)."""

from __future__ import annotations

from typing import IO


def read_full(source: IO[bytes], size: int) -> bytes:
    """Exactly ``size`` bytes unless the stream ends first."""
    parts, remaining = [], size
    while remaining:
        part = source.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)
