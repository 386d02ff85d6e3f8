"""Streaming AES-256-GCM for backup files, under BACKUP_KEY (never the PHI key).

File layout: ``MAGIC || file_id (16 random bytes)`` then chunks ``len (4 bytes BE) || nonce (12) ||
ciphertext+tag``. Each chunk's associated data is ``file_id || chunk index || final flag``, so chunks
cannot be reordered, moved to another backup, dropped, or the file truncated after a chunk
boundary (the last chunk must carry the final flag). Nonces are random per chunk.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterator
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from healthstack.core.streams import read_full
from healthstack.errors import HealthstackError

MAGIC = b"HSBACKUP1\n"
CHUNK = 1 << 20
_HEADER = struct.Struct(">I")


def key_fingerprint(key: bytes) -> str:
    """Names the key in the manifest without revealing it."""
    return hashlib.sha256(b"healthstack/backup-key-id/v1" + key).hexdigest()[:16]


def _aad(file_id: bytes, index: int, final: bool) -> bytes:
    return file_id + struct.pack(">Q?", index, final)


def encrypt_stream(key: bytes, source: IO[bytes], sink: IO[bytes]) -> str:
    """Encrypt all of ``source`` into ``sink``; returns the plaintext's SHA-256 (hex)."""
    aead, file_id, digest = AESGCM(key), os.urandom(16), hashlib.sha256()
    sink.write(MAGIC + file_id)
    index, current = 0, read_full(source, CHUNK)
    while True:
        following = read_full(source, CHUNK) if len(current) == CHUNK else b""
        final = not following
        digest.update(current)
        nonce = os.urandom(12)
        sealed = nonce + aead.encrypt(nonce, current, _aad(file_id, index, final))
        sink.write(_HEADER.pack(len(sealed)) + sealed)
        if final:
            return digest.hexdigest()
        index, current = index + 1, following


def decrypt_chunks(key: bytes, source: IO[bytes], name: str) -> Iterator[bytes]:
    """Yield plaintext chunks; raise before yielding anything that does not authenticate."""
    if source.read(len(MAGIC)) != MAGIC:
        raise HealthstackError(f"{name}: not a healthstack backup file")
    aead, file_id, index = AESGCM(key), source.read(16), 0
    header = source.read(_HEADER.size)
    while header:
        sealed = read_full(source, _HEADER.unpack(header)[0])
        header = source.read(_HEADER.size)
        final = not header
        try:
            yield aead.decrypt(sealed[:12], sealed[12:], _aad(file_id, index, final))
        except InvalidTag as exc:
            raise HealthstackError(
                f"{name}: chunk {index} does not authenticate (wrong BACKUP_KEY, or the file "
                "was altered or truncated)"
            ) from exc
        index += 1
