"""PHI at rest: AES-256-GCM bound to its row, keyed blind indexes, and the keyring that holds both.

Every ciphertext is ``nonce (12 bytes) || ciphertext+tag`` with associated data
``"<type>/<id>/<version>"``, so a ciphertext copied to another row (or version) fails to decrypt.

Blind indexes (exact-match search over encrypted fields) are HMAC-SHA256 under a key derived with
HKDF from the *same* encryption key that encrypts the row (never equal to it). Consequence, chosen
on purpose: retiring a key retires its indexes too, so ``keys rotate`` rebuilds a row's indexes
when it re-encrypts the row, and a search during a rotation asks for the digests under every
configured key (``Keyring.digests``), which is a handful of HMACs per search value.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from healthstack.config import Settings, is_hex_key
from healthstack.errors import HealthstackError

NONCE_BYTES = 12


def _derive(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(key)


def key_id_of(key: bytes) -> str:
    """A short public fingerprint: names the key in every row without revealing it."""
    return hashlib.sha256(b"healthstack/key-id/v1" + key).hexdigest()[:16]


def normalize(value: str) -> str:
    """Case- and accent-insensitive form used by every blind index (documented in docs/fhir.md)."""
    decomposed = unicodedata.normalize("NFKD", value.strip())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


class DecryptionError(Exception):
    """A ciphertext that no configured key opens (wrong key, tampered, or swapped between rows)."""


@dataclass(frozen=True)
class DataKey:
    key_id: str
    aead: AESGCM  # built once per key: AESGCM construction is not free on the hot path
    index_key: bytes

    @classmethod
    def from_bytes(cls, key: bytes) -> DataKey:
        return cls(key_id_of(key), AESGCM(key), _derive(key, b"healthstack/blind-index/v1"))

    def digest(self, kind: str, value: str) -> bytes:
        """HMAC over an already-normalized value (names: ``normalize``; identifiers: exact)."""
        message = kind.encode() + b"\x00" + value.encode()
        return hmac.new(self.index_key, message, hashlib.sha256).digest()


class Keyring:
    """The active key (encrypts) plus old keys (still decrypt and still answer searches)."""

    def __init__(self, active: bytes, old: tuple[bytes, ...] = ()) -> None:
        self.active = DataKey.from_bytes(active)
        others = [DataKey.from_bytes(k) for k in old]
        self.keys: dict[str, DataKey] = {k.key_id: k for k in [*others, self.active]}
        self.cursor_aead = AESGCM(_derive(active, b"healthstack/search-cursor/v1"))
        self.lock_keys = [_derive(k, b"healthstack/conditional-lock/v1") for k in (*old, active)]

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        if not settings.encryption_key or not is_hex_key(settings.encryption_key):
            raise HealthstackError("ENCRYPTION_KEY must be set to 64 hexadecimal characters")
        old = tuple(bytes.fromhex(k) for k in settings.encryption_old_keys)
        return cls(bytes.fromhex(settings.encryption_key), old)

    def encrypt(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return self.active.key_id, nonce + self.active.aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise DecryptionError(f"key {key_id} is not configured (ENCRYPTION_OLD_KEYS?)")
        try:
            return key.aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise DecryptionError(f"ciphertext does not authenticate under key {key_id}") from exc

    def digests(self, kind: str, value: str) -> list[bytes]:
        """The digest under every configured key: rows not yet rotated still match."""
        return [key.digest(kind, value) for key in self.keys.values()]

    def seal_cursor(self, payload: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self.cursor_aead.encrypt(nonce, payload, b"cursor")

    def open_cursor(self, blob: bytes) -> bytes:
        try:
            return self.cursor_aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], b"cursor")
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError("search cursor does not authenticate") from exc

    def lock_ids(self, text: str) -> list[int]:
        """Advisory-lock ids for a conditional create, keyed so pg_locks shows no PHI.

        One per configured key, sorted (no deadlock): during a rollout replicas may differ in their
        active key, but a rotation keeps the old key configured, so they always share one lock.
        """
        ids = {_lock_id(k, text) for k in self.lock_keys}
        return sorted(ids)


def _lock_id(key: bytes, text: str) -> int:
    raw = hmac.new(key, text.encode(), hashlib.sha256).digest()[:8]
    return int.from_bytes(raw, "big", signed=True)


def aad(resource_type: str, resource_id: str, version: int) -> bytes:
    return f"{resource_type}/{resource_id}/{version}".encode()
