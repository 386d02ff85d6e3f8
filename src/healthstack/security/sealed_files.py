"""Files sealed at rest under the PHI keyring: export output (docs/bulk.md) written and read as a
stream, so neither side ever holds a whole file.

Layout: ``MAGIC`` then chunks ``len (4 bytes BE) || key id (16 ascii) || nonce+ciphertext+tag``.
Each chunk's associated data names the file (a caller-chosen label such as ``<export>/<name>``),
the chunk index and whether it is the last one: chunks cannot be reordered, moved between files
or dropped, and a file cut after a chunk boundary fails to open (no final chunk). The key id lets
files written before a key rotation open while the old key is still configured.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import IO

from healthstack.core.crypto import DecryptionError, Keyring
from healthstack.core.streams import read_full

MAGIC = b"HSSEALED1\n"
CHUNK = 256 * 1024  # plaintext bytes per chunk: the bound on what either side buffers
_LENGTH = struct.Struct(">I")
_KEY_ID_BYTES = 16


def _aad(label: str, index: int, final: bool) -> bytes:
    return b"healthstack/sealed-file/v1/" + label.encode() + struct.pack(">Q?", index, final)


class SealedWriter:
    """Buffers plaintext up to :data:`CHUNK` bytes and writes each full chunk sealed."""

    def __init__(self, keyring: Keyring, label: str, sink: IO[bytes]) -> None:
        self.keyring, self.label, self.sink = keyring, label, sink
        self.buffer = bytearray()
        self.index = 0
        sink.write(MAGIC)

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) > CHUNK:
            self._chunk(bytes(self.buffer[:CHUNK]), final=False)
            del self.buffer[:CHUNK]

    def close(self) -> None:
        """Seal what is left as the final chunk (possibly empty) and flush."""
        self._chunk(bytes(self.buffer), final=True)
        self.buffer.clear()
        self.sink.flush()

    def _chunk(self, plaintext: bytes, final: bool) -> None:
        key_id, blob = self.keyring.encrypt(plaintext, _aad(self.label, self.index, final))
        body = key_id.encode().ljust(_KEY_ID_BYTES)[:_KEY_ID_BYTES] + blob
        self.sink.write(_LENGTH.pack(len(body)) + body)
        self.index += 1


def open_sealed(keyring: Keyring, label: str, source: IO[bytes]) -> Iterator[bytes]:
    """The plaintext chunks of a sealed file, each authenticated before it is yielded; raises
    :class:`DecryptionError` on any tampering, a foreign label or a truncated file. Reads ahead
    one header to know whether a chunk is the last: ``source`` need not be seekable (an object
    store's response body)."""
    if read_full(source, len(MAGIC)) != MAGIC:
        raise DecryptionError("not a sealed file")
    index, header = 0, read_full(source, _LENGTH.size)
    while True:
        if len(header) < _LENGTH.size:
            raise DecryptionError("sealed file is truncated")
        (length,) = _LENGTH.unpack(header)
        body = read_full(source, length)
        if len(body) < length or length <= _KEY_ID_BYTES:
            raise DecryptionError("sealed file is truncated")
        key_id, blob = body[:_KEY_ID_BYTES].decode("ascii", "replace").strip(), body[_KEY_ID_BYTES:]
        header = read_full(source, _LENGTH.size)
        final = not header
        yield keyring.decrypt(key_id, blob, _aad(label, index, final))
        if final:
            return
        index += 1
