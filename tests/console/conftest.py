"""Console fixtures: a live service, tokens, and audit records written like the service writes them."""

from __future__ import annotations

import re
from collections.abc import Sequence

import asyncpg
import httpx
from tests.conftest import Database
from tests.security.conftest import make_state, mint, run_with_pool

from healthstack.security import audit
from healthstack.security.audit_event import AuditEvent

PATIENT_A = "00000000-0000-4000-8000-00000000000a"
PATIENT_B = "00000000-0000-4000-8000-00000000000b"
AUDITOR = mint("auditor-1", "user/AuditEvent.rs")
CLINICIAN = mint("clinician-1", "user/*.cruds break-glass")
PATIENT_AUDITOR = mint("patient-1", "patient/AuditEvent.rs", patient=PATIENT_A)
REASON = "patient unconscious in the emergency room"


def write(db: Database, events: Sequence[AuditEvent]) -> None:
    state = make_state(db.url)

    async def body(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            for event in events:
                await audit.record(conn, state, event)

    run_with_pool(db.url, body, size=1)


def break_glass(subject: str, patient: str, reason: str = REASON) -> AuditEvent:
    return AuditEvent(interaction="read", outcome="success", subject=subject,
                      resource_type="Patient", resource_id=patient, break_glass_reason=reason)  # fmt: skip


def disclosure(patient: str, kind: str, **details: object) -> AuditEvent:
    return AuditEvent(interaction="disclosure", outcome="success", subject="exporter",
                      client_id="bulk-client", resource_type="Patient", resource_id=patient,
                      query={"kind": kind, **details}, detail=f"{kind} of the patient's record")  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def csrf_in(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login(base: str, token: str = AUDITOR) -> str:
    """Log in through the form; the session cookie's value."""
    response = httpx.post(f"{base}/console/login", data={"token": token})
    assert response.status_code == 303, response.text
    return response.cookies["hs_console"]
