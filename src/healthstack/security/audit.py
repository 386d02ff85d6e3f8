"""Writing audit records (164.312(b)) and removing PHI from what they say.

:func:`record` appends one record through the ``audit_append`` database function (a hash-chain
link, see docs/audit.md). Called on the caller's connection it joins the caller's transaction, so
a write and its audit record commit or roll back together; a read's record is written (and, outside
a transaction, committed) before the handler answers. If the append fails, the request must fail:
:class:`AuditWriteError` is a FhirError the API turns into a 500 OperationOutcome.
"""

from __future__ import annotations

import base64
import contextvars
import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, cast

import asyncpg

from healthstack.core.crypto import DecryptionError, Keyring
from healthstack.core.outcome import FhirError
from healthstack.errors import HealthstackError
from healthstack.security.audit_event import AuditEvent
from healthstack.security.audit_group import AuditGroup, GroupAborted
from healthstack.security.chain import canonical
from healthstack.security.principal import Principal
from healthstack.service.db import DATABASE_ERRORS, unavailable
from healthstack.service.logs import request_id_var, trace_id_var
from healthstack.service.state import ServiceState

log = logging.getLogger("healthstack.audit")
# Set by the authentication middleware for the current request (after proxy-hop handling).
source_ip_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "source_ip", default=None
)


class Written:
    """How many audit records the current request has written (a mutable box in a contextvar, so
    appends made anywhere in the request's task are seen by the middleware's safety net)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


written_var: contextvars.ContextVar[Written | None] = contextvars.ContextVar(
    "audit_written", default=None
)
APPEND_SQL = "SELECT audit_append($1, $2)"
# N records, chained in order on one chain, in one round trip (migration 0005).
APPEND_MANY_SQL = "SELECT audit_append_many($1, $2::text[])"
REDACTED = "[redacted]"
# What a client types into a URL can be PHI wherever it goes: a name in `code=`, an MRN as a
# resource id (issue 12 item 15). The trail keeps in clear only values whose shape cannot carry
# PHI: result-control switches, server-assigned ids and server timestamps. Every other value is
# kept as a keyed digest (``h:<key id>:<hex>``), so an investigator holding the key can still
# ask "was this MRN searched?" while a reader of the table learns nothing (docs/audit.md).
CONTROL_PARAMS = frozenset({
    "_count", "_sort", "_summary", "_elements", "_total", "_format", "_pretty", "_lastUpdated",
    "_type", "_since", "_at", "max", "period", "interval", "duration", "_before",
})  # fmt: skip
ID_PARAMS = frozenset({"_id", "patient", "subject"})
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.:/|,+\-]{1,200}$")
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# Server-assigned ids: resource UUIDs and AuditEvent ids (chain-seq).
_KNOWN_ID = re.compile(rf"^(?:{_UUID}|[0-9]{{1,10}}-[0-9]{{1,18}})$")
_ID_VALUE = re.compile(rf"^(?:(?:Patient/)?{_UUID})(?:,(?:Patient/)?{_UUID})*$")
# Pseudo-types whose ids are names chosen by operators, never patients (plugin administration).
_NAMED_TYPES = frozenset({"Plugin"})


class Withheld:
    """A client-typed value the trail keeps only as a keyed digest; never printed in clear."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Withheld) and other.value == self.value

    def __hash__(self) -> int:
        return hash(self.value)


class AuditWriteError(FhirError):
    def __init__(self, *, transient: bool = False) -> None:
        if transient:  # the database is unreachable: the client may retry elsewhere or later
            super().__init__(503, "transient", "the audit trail is unavailable; nothing done")
        else:
            super().__init__(
                500, "exception", "the audit record could not be written; nothing done"
            )


def redact_query(resource_type: str | None, params: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Parameter names always; values in clear only where their shape cannot carry PHI."""
    redacted: dict[str, Any] = {}
    for raw_name, values in params.items():
        name = raw_name[:64]
        base, _, modifier = name.partition(":")
        if base in CONTROL_PARAMS and not modifier:
            redacted[name] = [v if _SAFE_VALUE.fullmatch(v) else Withheld(v) for v in values]
        elif base in ID_PARAMS and modifier in ("", "Patient"):
            redacted[name] = [v if _ID_VALUE.fullmatch(v) else Withheld(v) for v in values]
        else:
            redacted[name] = [Withheld(v) for v in values]
    return redacted


def known_id(resource_type: str | None, resource_id: str) -> bool:
    """Whether an id may stay in clear in the trail (server-assigned, or an operator's name)."""
    return resource_type in _NAMED_TYPES or _KNOWN_ID.fullmatch(resource_id) is not None


def event_for(
    principal: Principal | None, interaction: str, outcome: str, **fields: Any
) -> AuditEvent:
    """An AuditEvent with who/break-glass filled from the principal and where from the request's
    context (source IP, request and trace ids), unless given."""
    if principal is not None:
        fields.setdefault("client_id", principal.client_id)
        fields.setdefault("break_glass_reason", principal.break_glass_reason)
    fields.setdefault("source_ip", source_ip_var.get())
    fields.setdefault("request_id", request_id_var.get())
    fields.setdefault("trace_id", trace_id_var.get())
    subject = principal.subject if principal is not None else None
    return AuditEvent(interaction=interaction, outcome=outcome, subject=subject, **fields)


def _with_context(event: AuditEvent, state: ServiceState) -> AuditEvent:
    """Context the event lacks, from the writing request (events made outside one)."""
    event = _withhold(state, event)
    context: dict[str, Any] = {}
    for name, var in _CONTEXT:
        if getattr(event, name) is None and (value := var.get()) is not None:
            context[name] = value
    return dataclasses.replace(event, **context) if context else event


_CONTEXT = (("source_ip", source_ip_var), ("request_id", request_id_var),
            ("trace_id", trace_id_var))  # fmt: skip


def _withhold(state: ServiceState, event: AuditEvent) -> AuditEvent:
    """Client-typed values (unrecognised ids, search values) become keyed digests."""
    rid = event.resource_id
    unknown_id = rid is not None and not known_id(event.resource_type, rid)
    query_withheld = any(isinstance(v, Withheld) for vs in event.query.values() for v in vs)
    if not unknown_id and not query_withheld:
        return event
    keyring = _keyring(state)
    query = {
        name: [withheld_digest(keyring, v.value) if isinstance(v, Withheld) else v for v in vs]
        for name, vs in event.query.items()
    }
    if rid is not None and unknown_id:
        rid = withheld_digest(keyring, rid)
    return dataclasses.replace(event, resource_id=rid, query=query)


def withhold(state: ServiceState, value: str) -> str:
    """A client-typed value as the trail keeps it outside a query or an id: its keyed digest.
    Raises :class:`AuditWriteError` when the service has no PHI key to make it with."""
    return withheld_digest(_keyring(state), value)


def withheld_digest(keyring: Keyring, value: str) -> str:
    """``h:<key id>:<24 hex>``: HMAC under the active PHI key's derived index key."""
    digest = keyring.active.digest("audit-withheld", value)[:12].hex()
    return f"h:{keyring.active.key_id}:{digest}"


def content_of(event: AuditEvent, when: dt.datetime | None = None) -> str:
    moment = when or dt.datetime.now(dt.UTC)
    # Shallow on purpose: dataclasses.asdict deep-copies, and showed in the read profile.
    fields = dict(vars(event))
    fields["time"] = moment.isoformat(timespec="microseconds")
    # jsonb refuses \u0000: a NUL typed into a path or header must not make the append fail.
    return canonical(fields).replace("\\u0000", "\\ufffd")


# A break-glass reason is free text that may name a patient: it is stored only as AES-GCM
# ciphertext under the PHI keyring (so a pg_dump holds no plaintext), and shown to auditors.
REASON_PREFIX = "enc:v1:"
REASON_AAD = b"healthstack/audit/break-glass-reason/v1"


def _keyring(state: ServiceState) -> Keyring:
    ring = state.extras.get("audit_keyring")
    if ring is None:
        try:
            ring = state.extras["audit_keyring"] = Keyring.from_settings(state.settings)
        except HealthstackError as exc:
            raise AuditWriteError from exc
    return cast(Keyring, ring)


def _sealed(state: ServiceState, event: AuditEvent) -> AuditEvent:
    reason = event.break_glass_reason
    if not reason or reason.startswith(REASON_PREFIX):
        return event
    try:
        keyring = _keyring(state)
    except AuditWriteError:
        state.metrics.audit_failures.inc()
        raise
    key_id, blob = keyring.encrypt(reason.encode(), REASON_AAD)
    sealed = f"{REASON_PREFIX}{key_id}:{base64.urlsafe_b64encode(blob).decode()}"
    return dataclasses.replace(event, break_glass_reason=sealed)


def reason_keyring(state: ServiceState) -> Keyring | None:
    """The keyring that opens sealed reasons, or None when the service has no PHI key."""
    try:
        return _keyring(state)
    except AuditWriteError:
        return None


def resealed_aad(chain_id: int, seq: int) -> bytes:
    """A re-sealed copy is bound to its record: it cannot be moved to another one."""
    return f"healthstack/audit/break-glass-reason/v2/{chain_id}/{seq}".encode()


def review_note_aad(chain_id: int, seq: int) -> bytes:
    """An auditor's review note (console, ``audit_review``) is bound to the record it reviews."""
    return f"healthstack/console/review-note/v1/{chain_id}/{seq}".encode()


def open_reason(keyring: Keyring, stored: str, resealed: tuple[str, bytes] | None = None,
                chain_id: int = 0, seq: int = 0) -> str:  # fmt: skip
    """The reason as written, for auditors: the copy ``keys rotate`` re-sealed under a current
    key when there is one, else the chained ciphertext; records from before sealing pass through."""
    if resealed is not None:
        key_id, blob = resealed
        try:
            return keyring.decrypt(key_id, blob, resealed_aad(chain_id, seq)).decode()
        except DecryptionError:
            return f"[encrypted under key {key_id}, which is not configured]"
    if not stored.startswith(REASON_PREFIX):
        return stored
    key_id, _, encoded = stored[len(REASON_PREFIX) :].partition(":")
    try:
        return keyring.decrypt(key_id, base64.urlsafe_b64decode(encoded), REASON_AAD).decode()
    except (DecryptionError, ValueError):
        return f"[encrypted under key {key_id}, which is not configured]"


async def record(conn: asyncpg.Connection, state: ServiceState, event: AuditEvent) -> None:
    """Append one audit record on ``conn`` inside its transaction, or, outside one, committed
    with the records other requests write in this turn (``audit_group``); fail loudly."""
    event = _sealed(state, _with_context(event, state))
    content = content_of(event)
    try:
        if conn.is_in_transaction():
            await conn.execute(APPEND_SQL, _chain_hint(conn), content)
        else:
            await _group(state).append(conn, [content], _chain_hint(conn))
    except (*DATABASE_ERRORS, GroupAborted) as exc:
        _failed(state, exc, event.interaction)
    _written(state, [event])


async def record_many(
    conn: asyncpg.Connection, state: ServiceState, events: Sequence[AuditEvent]
) -> None:
    """Append ``events`` in order, chained one after another, in one round trip on ``conn``.

    The same records (content, chain links) as one :func:`record` per event; call it inside the
    transaction whose changes the events describe, so they commit or roll back together.
    """
    if not events:
        return
    stamped = [_sealed(state, _with_context(event, state)) for event in events]
    contents = [content_of(event) for event in stamped]
    try:
        if conn.is_in_transaction():
            await conn.execute(APPEND_MANY_SQL, _chain_hint(conn), contents)
        else:
            await _group(state).append(conn, contents, _chain_hint(conn))
    except (*DATABASE_ERRORS, GroupAborted) as exc:
        _failed(state, exc, stamped[0].interaction)
    _written(state, stamped)


def _group(state: ServiceState) -> AuditGroup:
    group = state.extras.get("audit_group")
    if group is None:
        group = state.extras["audit_group"] = AuditGroup()
    return cast(AuditGroup, group)


def _failed(state: ServiceState, exc: BaseException, interaction: str) -> NoReturn:
    state.metrics.audit_failures.inc()
    log.error("audit write failed", extra={"error": type(exc).__name__,
                                            "interaction": interaction})  # fmt: skip
    # 503 when the connection was lost or the group's leader stopped (the client may retry),
    # 500 for a refused statement.
    raise AuditWriteError(transient=isinstance(exc, GroupAborted) or unavailable(exc)) from exc


def _written(state: ServiceState, events: Sequence[AuditEvent]) -> None:
    box = written_var.get()
    if box is not None:
        box.count += len(events)
    for event in events:
        if event.break_glass_reason and event.outcome == "success":
            state.metrics.break_glass.labels(event.resource_type or "none").inc()


async def record_detached(state: ServiceState, event: AuditEvent) -> None:
    """Append on a pooled connection of its own (authentication failures, denials)."""
    try:
        pool = state.require_pool()
        async with pool.acquire() as conn:
            await record(conn, state, event)
    except RuntimeError as exc:  # no pool yet: count it, the request fails anyway
        state.metrics.audit_failures.inc()
        raise AuditWriteError from exc
    except DATABASE_ERRORS as exc:
        # No connection (found by the db-outage drill): 503 as every outage; anything else 500.
        state.metrics.audit_failures.inc()
        raise AuditWriteError(transient=unavailable(exc)) from exc


def _chain_hint(conn: asyncpg.Connection) -> int:
    # A connection prefers one chain (its backend pid), so concurrent connections rarely meet on a
    # chain head; audit_append skips locked heads anyway (docs/audit.md).
    # Behind PgBouncer the "pid" is the pooler's random key, often negative: SQL's % would then
    # name a chain that does not exist, so keep it a non-negative int4.
    pid = conn.get_server_pid()
    return pid & 0x7FFFFFFF if pid is not None else 0
