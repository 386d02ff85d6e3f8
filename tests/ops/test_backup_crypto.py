"""The backup file format: round trip, and every way of tampering with it is caught."""

from __future__ import annotations

import io
import os

import pytest

from healthstack.errors import HealthstackError
from healthstack.ops.backup_crypto import CHUNK, decrypt_chunks, encrypt_stream

KEY = os.urandom(32)


def _encrypt(data: bytes) -> bytes:
    sink = io.BytesIO()
    encrypt_stream(KEY, io.BytesIO(data), sink)
    return sink.getvalue()


def _decrypt(blob: bytes, key: bytes = KEY) -> bytes:
    return b"".join(decrypt_chunks(key, io.BytesIO(blob), "test"))


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5])
def test_round_trip(size: int) -> None:
    # A recognisable plaintext: a random one could share a byte or two with the ciphertext by chance.
    marker = b"plaintext-marker:"
    data = (marker * (size // len(marker) + 1))[:size]
    blob = _encrypt(data)
    if size >= len(marker):
        assert marker not in blob
    assert _decrypt(blob) == data


def test_wrong_key_is_refused() -> None:
    with pytest.raises(HealthstackError, match="does not authenticate"):
        _decrypt(_encrypt(b"x" * 100), os.urandom(32))


def test_flipped_bit_is_refused() -> None:
    blob = bytearray(_encrypt(b"y" * 1000))
    blob[-5] ^= 1
    with pytest.raises(HealthstackError, match="chunk 0"):
        _decrypt(bytes(blob))


def test_truncation_at_a_chunk_boundary_is_refused() -> None:
    blob = _encrypt(os.urandom(2 * CHUNK + 10))
    # Drop the last chunk: the remaining last chunk was not sealed as final.
    last_chunk = 4 + 12 + 10 + 16  # length header, nonce, 10 bytes, tag
    first_two = blob[:-last_chunk]
    with pytest.raises(HealthstackError, match="chunk 1"):
        _decrypt(first_two)
