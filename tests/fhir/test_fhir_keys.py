"""Key rotation under concurrent writes, and a pg_dump that holds no plaintext PHI."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import TEST_ENCRYPTION_KEY, Database, Service, service_env, start_service
from tests.fhir.conftest import client_for

from healthstack.core.crypto import key_id_of
from healthstack.service.embedded_pg import EmbeddedPostgres, bin_dir

NEW_KEY = secrets.token_hex(32)
PHI = {
    "family": "Brightwater",
    "given": "Thessaly",
    "mrn": "MRN-PHI-48151623",
    "birth": "1943-11-27",
    "phone": "+1-555-0199-7731",
    "email": "thessaly.b@example.org",
    "street": "742 Evergreen Terrace Unit 9",
    "city": "Springfieldia",
    "narrative": "Thessaly lives with her daughter",
    "note": "reports dizziness after Zyloxin",
}


def _patient(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{PHI["narrative"]}</div>',
        },
        "identifier": [{"system": "urn:mrn", "value": f"{PHI['mrn']}-{n}"}],
        "name": [{"family": PHI["family"], "given": [PHI["given"]]}],
        "telecom": [
            {"system": "phone", "value": PHI["phone"]},
            {"system": "email", "value": PHI["email"]},
        ],
        "address": [{"line": [PHI["street"]], "city": PHI["city"]}],
        "birthDate": PHI["birth"],
        "gender": "female",
    }


def _observation(pid: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "note"},
        "subject": {"reference": f"Patient/{pid}"},
        "note": [{"text": PHI["note"]}],
        "effectiveDateTime": "2024-02-02",
        "valueQuantity": {"value": 1},
    }


def _query(pg: EmbeddedPostgres, db: Database, sql: str) -> str:
    return pg.psql(sql, database=db.name).strip()


@pytest.fixture(scope="module")
def old_service(
    module_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    service = start_service(module_database, tmp_path_factory.mktemp("old") / "service.log")
    yield service
    service.stop()


def _write(client: httpx.Client, count: int, offset: int) -> list[str]:
    ids = []
    for n in range(offset, offset + count):
        created = client.post("/Patient", json=_patient(n))
        assert created.status_code == 201, created.text
        body = created.json()
        ids.append(body["id"])
        assert (
            client.put(f"/Patient/{body['id']}", json={**body, "active": True}).status_code == 200
        )
        assert client.post("/Observation", json=_observation(body["id"])).status_code == 201
    return ids


def _rotate(db: Database) -> str:
    env = service_env(db, ENCRYPTION_KEY=NEW_KEY, ENCRYPTION_OLD_KEYS=TEST_ENCRYPTION_KEY,
                      MIGRATION_DATABASE_URL=db.owner_url)  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "healthstack.cli", "keys", "rotate", "--batch-size", "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr  # the summary on stdout, progress lines on stderr


def test_rotation_under_concurrent_writes_then_no_plaintext_in_dump(
    pg: EmbeddedPostgres, module_database: Database, old_service: Service, tmp_path: Path
) -> None:
    with client_for(old_service) as client:
        before = _write(client, 12, 0)
    with client_for(old_service, "user/Patient.rs break-glass") as glass:
        reason = "unconscious on arrival, no relatives reachable"
        read = glass.get(f"/Patient/{before[0]}", headers={"X-Break-Glass-Reason": reason})
        assert read.status_code == 200
    old_service.stop()
    rotating = start_service(
        module_database,
        tmp_path / "rotating.log",
        ENCRYPTION_KEY=NEW_KEY,
        ENCRYPTION_OLD_KEYS=TEST_ENCRYPTION_KEY,
    )
    written: list[str] = []
    done = threading.Event()

    failures: list[BaseException] = []

    def keep_writing() -> None:  # until the rotation has finished: writes overlap all of it
        try:
            with client_for(rotating) as client:
                while not done.is_set():
                    written.extend(_write(client, 1, 100 + len(written)))
        except BaseException as exc:  # reported by the test thread below
            failures.append(exc)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        while len(written) < 2 and writer.is_alive():
            time.sleep(0.01)
        at_start = len(written)
        report = _rotate(module_database)
        during = len(written) - at_start
    finally:
        done.set()
        writer.join()
    rotating.stop()
    assert not failures, failures
    assert during >= 1, "the writer did not overlap the rotation"
    assert "rotated to key" in report
    assert "keys rotate: " in report
    assert " rows/s" in report
    assert "\nhistory rows " in report  # the summary table
    assert "1 break-glass reasons" in report
    active = key_id_of(bytes.fromhex(NEW_KEY))
    for table in ("fhir_resource", "fhir_resource_version"):
        assert _query(pg, module_database, f"SELECT DISTINCT key_id FROM {table}") == active
    assert " 0 current rows, 0 history rows" in _rotate(module_database)  # idempotent
    # Only the new key now: every row decrypts and the rebuilt blind indexes answer searches.
    only_new = start_service(module_database, tmp_path / "new.log", ENCRYPTION_KEY=NEW_KEY)
    try:
        with client_for(only_new) as client:
            for pid in before + written:
                assert client.get(f"/Patient/{pid}").status_code == 200
                assert client.get(f"/Patient/{pid}/_history/1").status_code == 200
            found = client.get(f"/Patient?identifier=urn:mrn|{PHI['mrn']}-3").json()["entry"]
            assert [e["resource"]["id"] for e in found] == [before[3]]
            matches = client.get(f"/Patient?family={PHI['family']}&_count=100").json()["entry"]
            assert len(matches) == len(before + written)
        # The old key is retired: the break-glass reason still reads (re-sealed, issue 12 item 18).
        with client_for(only_new, "user/AuditEvent.rs") as auditor:
            events = auditor.get("/AuditEvent", params={"_count": "500"}).json()["entry"]
        reasons = [p["text"] for e in events for a in e["resource"]["agent"]
                   for p in a.get("purposeOfUse", [])]  # fmt: skip
        assert reasons == ["unconscious on arrival, no relatives reachable"]
        rotations = [e["resource"] for e in events
                     if e["resource"].get("outcomeDesc", "").startswith("to key")]  # fmt: skip
        assert len(rotations) == 2  # one per run, each with its counts
        assert all(r["outcome"] == "0" for r in rotations)
    finally:
        only_new.stop()
    _assert_dump_has_no_phi(pg, module_database, tmp_path)
    for log in (old_service.logs(), only_new.logs()):
        assert not [v for v in PHI.values() if v in log]


def _assert_dump_has_no_phi(pg: EmbeddedPostgres, db: Database, tmp_path: Path) -> None:
    dump = tmp_path / "dump.sql"
    subprocess.run(
        [str(bin_dir() / "pg_dump"), "--no-owner", "-f", str(dump), "-d", db.owner_url],
        check=True,
        capture_output=True,
        env={**os.environ},
        timeout=60,
    )
    text = dump.read_text(errors="replace")
    assert "fhir_resource" in text
    assert len(text) > 10_000
    leaked = [k for k, v in PHI.items() if v in text or v.lower() in text.lower()]
    assert leaked == []
