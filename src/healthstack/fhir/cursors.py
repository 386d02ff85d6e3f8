"""Opaque paging cursors: one sealer for searches, type histories and ``$everything``.

A cursor carries the request and its position AES-GCM sealed under a key derived from the PHI key
(``Keyring.seal_cursor``), so a URL (and every log that records it) holds no search value, id or
date in clear, and a client cannot forge a position. Each names what it is for (``kind`` and
``owner``: the resource type or patient) and expires after :data:`TTL`.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import orjson

from healthstack.core.crypto import DecryptionError, Keyring
from healthstack.core.outcome import FhirError

TTL = dt.timedelta(hours=1)


def bad(message: str) -> FhirError:
    return FhirError(400, "invalid", f"search parameter _cursor: {message}")


def seal(keyring: Keyring, kind: str, owner: str, state: Any) -> str:
    expires = int((dt.datetime.now(dt.UTC) + TTL).timestamp())
    payload = orjson.dumps({"k": kind, "o": owner, "s": state, "e": expires})
    return base64.urlsafe_b64encode(keyring.seal_cursor(payload)).decode().rstrip("=")


def open_(keyring: Keyring, kind: str, owner: str, token: str) -> Any:
    """The state sealed into ``token``; a 400 for a forged, foreign, misplaced or stale one."""
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(keyring.open_cursor(blob))
        sealed_kind, sealed_owner, state, expires = data["k"], data["o"], data["s"], data["e"]
    except (ValueError, TypeError, KeyError, DecryptionError):
        raise bad("invalid or from another server key; repeat the request") from None
    if sealed_kind != kind or sealed_owner != owner:
        raise bad("made for another request; repeat the request")
    if expires < dt.datetime.now(dt.UTC).timestamp():
        raise bad("expired; repeat the request")
    return state
