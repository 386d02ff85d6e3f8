"""Signed anchors of the audit chain heads, kept outside the database (issue 12 item 14).

A superuser who rewrites a chain and recomputes every hash leaves it self-consistent; a tail cut
off together with its head row looks like a shorter chain. Only heads recorded elsewhere, earlier,
catch both. ``healthstack audit anchor`` reads every chain head and writes them, signed with
Ed25519, to an append-only destination: a JSON-lines file opened ``O_APPEND`` locally, or, when
the destination is a directory, a new file per anchor created ``O_EXCL`` (what an object store
with object lock, mounted by a CSI driver, accepts: new objects, never overwrites).
``healthstack audit verify --anchor`` checks every anchor's signature and that the trail extends
the newest one.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from healthstack.errors import HealthstackError

VERSION = 1
Heads = dict[int, tuple[int, str]]  # chain -> (seq, hex head hash)


@dataclass(frozen=True)
class Anchor:
    time: str
    heads: Heads
    public_key: str  # hex; which key signed (checked against the trusted one)


def generate_key() -> tuple[str, str]:
    """(private seed hex, public key hex) for AUDIT_ANCHOR_KEY / AUDIT_ANCHOR_PUBLIC_KEY."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw().hex()
    return seed, public_hex(private.public_key())


def public_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def private_key(seed_hex: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex.strip()))
    except ValueError:
        raise HealthstackError("AUDIT_ANCHOR_KEY must be 64 hexadecimal characters") from None


def public_key(key_hex: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex.strip()))
    except ValueError:
        raise HealthstackError("the anchor public key must be 64 hexadecimal characters") from None


def _payload(time: str, heads: Heads) -> bytes:
    chains = {str(c): [seq, head] for c, (seq, head) in sorted(heads.items())}
    return orjson.dumps({"version": VERSION, "time": time, "chains": chains},
                        option=orjson.OPT_SORT_KEYS)  # fmt: skip


def sign(key: Ed25519PrivateKey, heads: Heads, now: dt.datetime | None = None) -> bytes:
    """One anchor as a JSON line (with its newline)."""
    time = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    payload = _payload(time, heads)
    record = orjson.loads(payload) | {
        "public_key": public_hex(key.public_key()),
        "signature": base64.b64encode(key.sign(payload)).decode(),
    }
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n"


def write(destination: Path, line: bytes) -> Path:
    """Append to a file, or add a new file to a directory; never rewrite anything."""
    if destination.is_dir():
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = destination / f"anchor-{stamp}.json"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    else:
        target = destination
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    fd = os.open(target, flags, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return target


def _lines(source: Path) -> list[tuple[str, bytes]]:
    files = sorted(source.glob("anchor-*.json")) if source.is_dir() else [source]
    out = []
    for path in files:
        for number, line in enumerate(path.read_bytes().splitlines(), start=1):
            if line.strip():
                out.append((f"{path.name}:{number}", line))
    return out


def load(source: Path, trusted: Ed25519PublicKey) -> Anchor:
    """Every anchor's signature checked with ``trusted``; the newest returned."""
    try:
        lines = _lines(source)
    except OSError as exc:
        raise HealthstackError(f"--anchor {source}: cannot read ({exc.strerror})") from None
    if not lines:
        raise HealthstackError(f"--anchor {source}: no anchors")
    anchors = [_checked(where, line, trusted) for where, line in lines]
    return max(anchors, key=lambda a: a.time)


def _checked(where: str, line: bytes, trusted: Ed25519PublicKey) -> Anchor:
    try:
        record: dict[str, Any] = orjson.loads(line)
        payload = _payload(record["time"], _heads(record["chains"]))
        signature = base64.b64decode(record["signature"], validate=True)
        signer = str(record["public_key"])
    except (ValueError, KeyError, TypeError):
        raise HealthstackError(f"anchor {where}: not a signed anchor") from None
    if signer != public_hex(trusted):
        raise HealthstackError(f"anchor {where}: signed by another key")
    try:
        trusted.verify(signature, payload)
    except InvalidSignature:
        raise HealthstackError(f"anchor {where}: signature does not verify (forged?)") from None
    return Anchor(record["time"], _heads(record["chains"]), signer)


def _heads(chains: Any) -> Heads:
    return {int(c): (int(seq), str(head)) for c, (seq, head) in chains.items()}
