"""The accounting of disclosures from what the live service records: a real Bulk export, a real
AI summary (a fake provider on loopback) and a break-glass read of an Observation (attributed to its patient through the read's ``patients``)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator

import httpx
import orjson
import psycopg
import pytest
from tests.conftest import Database, Service, start_service
from tests.console.conftest import AUDITOR, bearer
from tests.deid.fake_openai import FakeOpenAI
from tests.fhir.conftest import FULL_SCOPES, client_for
from tests.fhir.test_bulk_export import kick_off, wait

from healthstack.fhir.access import compartment_query
from healthstack.fhir.store import Version
from healthstack.security import audit

REASON = "unresponsive on arrival, medication history needed"


@pytest.fixture(scope="module")
def service(
    module_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """Bulk export on, and an AI provider answering on loopback (FakeOpenAI)."""
    bulk = tmp_path_factory.mktemp("bulk")
    with FakeOpenAI().running() as provider:
        svc = start_service(module_database, tmp_path_factory.mktemp("svc") / "service.log",
                            BULK_EXPORT_DIR=str(bulk), OPENAI_API_KEY="test-provider-key",
                            OPENAI_BASE_URL=provider.base_url, AI_MODEL="test-model",
                            AI_SUMMARY_TYPES="Observation")  # fmt: skip
        yield svc
        svc.stop()


def _patient_with_observation(fhir: httpx.Client, family: str) -> tuple[str, str]:
    pid = fhir.post("/Patient", json={"resourceType": "Patient",
                    "name": [{"family": family, "given": ["Ada"]}]}).json()["id"]  # fmt: skip
    obs = fhir.post("/Observation", json={"resourceType": "Observation", "status": "final",
                    "code": {"text": "heart rate"}, "subject": {"reference": f"Patient/{pid}"},
                    "effectiveDateTime": dt.date.today().isoformat(),
                    "note": [{"text": f"Ada {family} was calm"}],  # a name the summary sends
                    "valueQuantity": {"value": 61, "unit": "/min"}}).json()["id"]  # fmt: skip
    return pid, obs


def _accounting(service: Service, pid: str) -> list[dict[str, str]]:
    response = httpx.get(f"{service.base_url}/console/disclosures", headers=bearer(AUDITOR),
                         params={"patient": pid, "format": "csv"})  # fmt: skip
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


def test_a_real_export_an_ai_summary_and_a_break_glass_read_are_in_the_accounting(
    service: Service, module_database: Database
) -> None:
    with client_for(service, f"{FULL_SCOPES} user/Patient.$summarize") as fhir:
        pid, obs = _patient_with_observation(fhir, "Accountone")
        other, other_obs = _patient_with_observation(fhir, "Accounttwo")
        status = kick_off(fhir, "/Patient/$export", _type="Patient,Observation")
        wait(fhir, status)
        export_id = status.rsplit("/", 1)[1]
        summary = fhir.post(f"/Patient/{pid}/$summarize")
        assert summary.status_code == 201, summary.text
    with client_for(service, "user/*.rs break-glass") as glass:
        read = glass.get(f"/Observation/{obs}", headers={"X-Break-Glass-Reason": REASON})
        assert read.status_code == 200, read.text
        searched = glass.get(
            "/Patient", params={"_id": pid}, headers={"X-Break-Glass-Reason": REASON}
        )
        assert searched.status_code == 200, searched.text
        assert glass.get(f"/Observation/{obs}/_history/1",
                         headers={"X-Break-Glass-Reason": REASON}).status_code == 200  # fmt: skip
    with psycopg.connect(module_database.owner_url) as conn:
        row = conn.execute("SELECT content FROM audit_log WHERE interaction = 'read' AND "
                           "resource_type = 'Observation' AND resource_id = %s AND break_glass",
                           (obs,)).fetchone()  # fmt: skip
    assert row is not None
    assert orjson.loads(row[0])["query"] == {"patients": [pid]}
    entries = _accounting(service, pid)
    kinds = sorted(e["kind"] for e in entries)
    assert kinds == ["ai-summary", "break-glass", "break-glass", "break-glass", "bulk-export"]
    ai = next(e for e in entries if e["kind"] == "ai-summary")
    assert orjson.loads(ai["description"])["model"] == "test-model"
    export = next(e for e in entries if e["kind"] == "bulk-export")
    assert orjson.loads(export["description"])["export"] == export_id
    assert export["recipient"] == "tester"
    glass_reads = [e for e in entries if e["kind"] == "break-glass"]
    assert sorted(e["description"] for e in glass_reads) == [
        "read Observation",
        "search Patient",
        "vread Observation",
    ]
    assert {e["purpose"] for e in glass_reads} == {REASON}
    # The other patient was exported too, but nobody read their Observation under break-glass.
    assert [e["kind"] for e in _accounting(service, other)] == ["bulk-export"]
    assert other_obs != obs


def test_a_read_names_its_patients_and_withholds_an_id_that_is_not_server_assigned() -> None:
    when = dt.datetime.now(dt.UTC)
    pid = "00000000-0000-4000-8000-0000000000c1"
    version = Version("Observation", "o", 1, False, when, b"{}", (pid, "MRN-4417"))
    query = compartment_query(version)
    assert query["patients"][0] == pid
    assert isinstance(query["patients"][1], audit.Withheld)  # digested when written
    assert compartment_query(Version("Practitioner", "p", 1, False, when, b"{}")) == {}
