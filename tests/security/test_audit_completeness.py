"""A scripted session against a live service: every request has its audit record; no PHI anywhere."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from tests.conftest import Database, Service
from tests.security.conftest import mint

from healthstack.security.verify import verify

FAMILY = f"Vexqorth{uuid.uuid4().hex[:6]}"
GIVEN = f"Ilsabet{uuid.uuid4().hex[:6]}"
MRN = f"MRN-{uuid.uuid4().hex[:10]}"
BIRTH = "1953-02-27"
PHONE = "+1-555-0142-9981"
PHI = [FAMILY, GIVEN, MRN, BIRTH, PHONE]


def _patient() -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": FAMILY, "given": [GIVEN]}],
            "identifier": [{"system": "urn:mrn", "value": MRN}], "birthDate": BIRTH,
            "telecom": [{"system": "phone", "value": PHONE}]}  # fmt: skip


def _observation(pid: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "effectiveDateTime": "2024-05-01T08:00:00Z",
            "valueQuantity": {"value": 64, "unit": "/min"}}  # fmt: skip


class Session:
    def __init__(self, service: Service) -> None:
        self.client = httpx.Client(base_url=f"{service.base_url}/api/fhir", timeout=10)
        self.sent: list[tuple[str, str, int]] = []  # request id, what, status

    def send(
        self, what: str, method: str, path: str, token: str | None, **kw: Any
    ) -> httpx.Response:
        request_id = uuid.uuid4().hex
        headers = {"X-Request-ID": request_id, **kw.pop("headers", {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.request(method, path, headers=headers, **kw)
        self.sent.append((request_id, what, response.status_code))
        return response


def script(session: Session) -> None:
    admin = mint("admin-1", "user/Patient.cruds user/Observation.cruds", client_id="ward-app")
    pid = session.send("create", "POST", "/Patient", admin, json=_patient()).json()["id"]
    oid = session.send("create", "POST", "/Observation", admin, json=_observation(pid)).json()["id"]
    s = session.send
    s("read", "GET", f"/Patient/{pid}", admin)
    s("vread", "GET", f"/Patient/{pid}/_history/1", admin)
    s("history", "GET", f"/Patient/{pid}/_history", admin)
    s("search", "GET", "/Patient", admin, params={"family": FAMILY, "birthdate": BIRTH})
    s("search", "GET", "/Patient", admin, params={"identifier": f"urn:mrn|{MRN}"})
    s("search", "GET", "/Observation", admin, params={"patient": pid, "date": "ge2024-01-01"})
    s("lastn", "GET", "/Observation/$lastn", admin, params={"patient": pid})
    s("stats", "GET", "/Observation/$stats", admin,
      params={"patient": pid, "code": "http://loinc.org|8867-4", "start": "2024-01-01T00:00:00Z",
              "end": "2025-01-01T00:00:00Z"})  # fmt: skip
    s("update", "PUT", f"/Patient/{pid}", admin, json={**_patient(), "id": pid, "gender": "female"})
    s("batch", "POST", "/", admin, json={"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Observation/{oid}"}}]})  # fmt: skip
    s("denied", "GET", f"/Patient/{pid}", mint("nobody", "openid"))
    s("hidden", "GET", f"/Patient/{pid}", mint("pt-9", "patient/Patient.rs", patient="other"))
    s("unauthenticated", "GET", f"/Patient/{pid}", None)
    s("bad token", "GET", f"/Patient/{pid}", "e30.e30.e30")
    s("break-glass", "GET", f"/Patient/{pid}",
      mint("er-doc", "patient/Patient.rs break-glass", patient="other"),
      headers={"X-Break-Glass-Reason": "cardiac arrest, no consent possible"})  # fmt: skip
    s("delete", "DELETE", f"/Observation/{oid}", admin)


@pytest.fixture(scope="module")
def session(live_service: Service) -> Iterator[Session]:
    session = Session(live_service)
    try:
        script(session)
        yield session
    finally:
        session.client.close()


def _records(db: Database) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.owner_url) as conn:
        return conn.execute("SELECT request_id, interaction, outcome, break_glass, content "
                            "FROM audit_log").fetchall()  # fmt: skip


def test_every_request_has_an_audit_record(session: Session, module_database: Database) -> None:
    by_request: dict[str, list[tuple[Any, ...]]] = {}
    for record in _records(module_database):
        by_request.setdefault(record[0], []).append(record)
    missing = [(what, status) for rid, what, status in session.sent if rid not in by_request]
    assert missing == []
    outcomes = {what: {r[2] for r in by_request[rid]} for rid, what, _ in session.sent}
    assert outcomes["denied"] == {"denied"}
    assert outcomes["unauthenticated"] == outcomes["bad token"] == {"unauthenticated"}
    assert outcomes["read"] == {"success"}
    assert outcomes["hidden"]  # the hidden 404 is audited...
    assert "success" not in outcomes["hidden"]  # ...as a refusal, not as a read
    assert outcomes["stats"] == {"success"}


def test_break_glass_is_flagged_and_counted(session: Session, module_database: Database,
                                           live_service: Service) -> None:  # fmt: skip
    [rid] = [rid for rid, what, _ in session.sent if what == "break-glass"]
    flagged = [r for r in _records(module_database) if r[0] == rid]
    assert flagged
    assert all(r[3] for r in flagged)
    metrics = httpx.get(f"{live_service.base_url}/metrics").text
    assert 'healthstack_break_glass_total{resource_type="Patient"} 1.0' in metrics


def test_no_phi_in_audit_records_or_logs(session: Session, module_database: Database,
                                         live_service: Service) -> None:  # fmt: skip
    trail = "\n".join(str(r[4]) for r in _records(module_database))
    logs = live_service.logs()
    # Sanity: the scan reads the service's real log (every request id sent is in it).
    assert all(rid in logs for rid, _, _ in session.sent)
    for value in PHI:
        assert value not in trail, f"PHI value found in the audit trail: {value[:3]}..."
        assert value not in logs, f"PHI value found in the service log: {value[:3]}..."
    # The break-glass reason may name a patient: only ciphertext in the database, never logged.
    assert "cardiac arrest" not in trail
    assert "enc:v1:" in trail
    assert "cardiac arrest" not in logs


def test_trail_verifies_after_the_session(session: Session, module_database: Database) -> None:
    report = verify(module_database.url)  # the service role may read the trail
    assert report.intact, report.problems
    assert report.records >= len(session.sent)


def test_auditor_searches_the_trail(session: Session, live_service: Service) -> None:
    auditor = {"Authorization": f"Bearer {mint('auditor-1', 'user/AuditEvent.rs')}"}
    base = f"{live_service.base_url}/api/fhir/AuditEvent"
    found = httpx.get(base, params={"agent": "er-doc"}, headers=auditor).json()
    [event] = [e["resource"] for e in found["entry"]]
    assert event["agent"][0]["purposeOfUse"][0]["coding"][0]["code"] == "ETREAT"
    assert "cardiac arrest" in event["agent"][0]["purposeOfUse"][0]["text"]  # auditors read it
    denied = httpx.get(base, params={"outcome": "4", "agent": "nobody"}, headers=auditor).json()
    assert len(denied["entry"]) == 1
    first = httpx.get(base, params={"_count": "3", "date": "ge2020-01-01"}, headers=auditor).json()
    assert len(first["entry"]) == 3
    [next_link] = [link["url"] for link in first["link"] if link["relation"] == "next"]
    second = httpx.get(next_link, headers=auditor).json()
    assert not {e["fullUrl"] for e in first["entry"]} & {e["fullUrl"] for e in second["entry"]}
    bad = httpx.get(base, params={"name": "x"}, headers=auditor)
    assert bad.status_code == 400
