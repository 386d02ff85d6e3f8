"""The audit hash chain: one definition of a record's canonical bytes and its link hash.

The database computes the same hash in ``audit_append`` (migration 0003) with
``sha256(prev || int2send(chain) || int8send(seq) || convert_to(content, 'UTF8'))``;
``healthstack audit verify`` recomputes it here. Keep the two in step.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import orjson

CHAINS = 64  # must equal the rows seeded into audit_chain by migration 0003


def genesis(chain_id: int) -> bytes:
    return hashlib.sha256(f"healthstack-audit-genesis/{chain_id}".encode()).digest()


def link(previous: bytes, chain_id: int, seq: int, content: str) -> bytes:
    return hashlib.sha256(previous + struct.pack(">hq", chain_id, seq) + content.encode()).digest()


def canonical(fields: dict[str, Any]) -> str:
    """Sorted keys, no whitespace, no nulls: the exact text that is hashed and stored."""
    return orjson.dumps({k: v for k, v in fields.items() if v not in (None, {}, [])},
                        option=orjson.OPT_SORT_KEYS).decode()  # fmt: skip
