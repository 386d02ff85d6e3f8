"""Sealed export files (healthstack.security.sealed_files): round trip, and every way a file can be
tampered with fails to open (docs/bulk.md, "Files at rest")."""

from __future__ import annotations

import io
import secrets

import pytest

from healthstack.core.crypto import DecryptionError, Keyring
from healthstack.security.sealed_files import CHUNK, MAGIC, SealedWriter, open_sealed

KEYRING = Keyring(secrets.token_bytes(32))


def seal(data: bytes, label: str = "bulk-export/x/Patient-1.ndjson", ring: Keyring = KEYRING
         ) -> bytes:  # fmt: skip
    sink = io.BytesIO()
    writer = SealedWriter(ring, label, sink)
    for start in range(0, len(data), 1000):
        writer.write(data[start : start + 1000])
    writer.close()
    return sink.getvalue()


def opened(blob: bytes, label: str = "bulk-export/x/Patient-1.ndjson", ring: Keyring = KEYRING
           ) -> bytes:  # fmt: skip
    return b"".join(open_sealed(ring, label, io.BytesIO(blob)))


@pytest.mark.parametrize("size", [0, 10, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_round_trip_of_any_size(size: int) -> None:
    data = secrets.token_bytes(size)
    blob = seal(data)
    assert blob.startswith(MAGIC)
    assert opened(blob) == data
    if size > 16:
        assert data[:16] not in blob


def test_old_key_still_opens_after_rotation() -> None:
    old = secrets.token_bytes(32)
    blob = seal(b"line\n", ring=Keyring(old))
    assert opened(blob, ring=Keyring(secrets.token_bytes(32), (old,))) == b"line\n"


def test_tampering_is_refused() -> None:
    data = secrets.token_bytes(2 * CHUNK + 5)
    blob = seal(data)
    flipped = bytearray(blob)
    flipped[len(MAGIC) + 40] ^= 1
    first_chunk_end = len(MAGIC) + 4 + int.from_bytes(blob[len(MAGIC) : len(MAGIC) + 4], "big")
    for bad in (
        bytes(flipped),  # a flipped bit
        blob[:first_chunk_end],  # cut after a chunk boundary: no final chunk
        blob[:-3],  # cut inside a chunk
        b"NOTSEALED\n" + blob[len(MAGIC) :],
    ):
        with pytest.raises(DecryptionError):
            opened(bad)
    with pytest.raises(DecryptionError):  # moved to another export's name
        opened(blob, label="bulk-export/y/Patient-1.ndjson")
    with pytest.raises(DecryptionError):  # a key that is not configured
        opened(blob, ring=Keyring(secrets.token_bytes(32)))
