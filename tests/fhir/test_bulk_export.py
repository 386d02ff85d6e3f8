"""Bulk Data Access 2.0 $export against a live service and PostgreSQL (docs/bulk.md)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from tests.conftest import TEST_SECRET_KEY_BASE, Database, Service, start_service
from tests.fhir.conftest import FHIR_JSON, FULL_SCOPES, client_for, token

from healthstack.security.tokens import mint_dev_token

ASYNC = {"Prefer": "respond-async"}
LOINC = "http://loinc.org"


@pytest.fixture(scope="module")
def bulk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bulk")


@pytest.fixture(scope="module")
def service(
    module_database: Database, tmp_path_factory: pytest.TempPathFactory, bulk_dir: Path
) -> Iterator[Service]:
    log = tmp_path_factory.mktemp("svc") / "service.log"
    svc = start_service(module_database, log, BULK_EXPORT_DIR=str(bulk_dir))
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def fhir(service: Service) -> Iterator[httpx.Client]:
    with client_for(service) as client:
        yield client


@pytest.fixture(scope="module")
def data(fhir: httpx.Client) -> dict[str, Any]:
    """Two patients with observations, a condition each, a practitioner and a group of one."""
    ids: dict[str, Any] = {"patients": [], "observations": []}
    for family, code in (("Bulkone", "8867-4"), ("Bulktwo", "8310-5")):
        pid = fhir.post("/Patient", json={"resourceType": "Patient",
                        "name": [{"family": family}]}).json()["id"]  # fmt: skip
        ids["patients"].append(pid)
        for value in (60, 70):
            obs = {"resourceType": "Observation", "status": "final",
                   "code": {"coding": [{"system": LOINC, "code": code}]},
                   "subject": {"reference": f"Patient/{pid}"},
                   "valueQuantity": {"value": value, "unit": "/min"}}  # fmt: skip
            ids["observations"].append(fhir.post("/Observation", json=obs).json()["id"])
        fhir.post("/Condition", json={"resourceType": "Condition",
                  "subject": {"reference": f"Patient/{pid}"},
                  "code": {"text": "x"}})  # fmt: skip
    ids["practitioner"] = fhir.post("/Practitioner", json={"resourceType": "Practitioner",
                                    "name": [{"family": "Doc"}]}).json()["id"]  # fmt: skip
    group = {"resourceType": "Group", "type": "person", "actual": True,
             "member": [{"entity": {"reference": f"Patient/{ids['patients'][0]}"}},
                        {"entity": {"reference": f"Practitioner/{ids['practitioner']}"}}]}  # fmt: skip
    ids["group"] = fhir.post("/Group", json=group).json()["id"]
    return ids


def kick_off(client: httpx.Client, path: str, **params: str) -> str:
    response = client.get(path, params=params, headers=ASYNC)
    assert response.status_code == 202, response.text
    return response.headers["Content-Location"]


def wait(client: httpx.Client, status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = client.get(status_url)
        if response.status_code == 200:
            assert response.headers["content-type"].startswith(FHIR_JSON)
            return dict(response.json())
        assert response.status_code == 202, response.text
        assert response.headers["X-Progress"]
        assert response.headers["Retry-After"] == "1"
        time.sleep(0.05)
    raise AssertionError("export did not complete")


def download(client: httpx.Client, url: str) -> list[dict[str, Any]]:
    response = client.get(url, headers={"Accept": "application/fhir+ndjson"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    return [orjson.loads(line) for line in response.content.splitlines()]


def searched(client: httpx.Client, rtype: str, **params: str) -> list[dict[str, Any]]:
    out, url, query = [], f"/{rtype}", {"_count": "100", **params}
    while url:
        bundle = client.get(url, params=query).json()
        out += [e["resource"] for e in bundle.get("entry", [])]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url, query = (following[0], {}) if following else ("", {})
    return out


def by_id(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in resources}


def test_system_export_round_trip_equals_search(
    fhir: httpx.Client, data: dict[str, Any], bulk_dir: Path
) -> None:
    status_url = kick_off(fhir, "/$export", _type="Patient,Observation,Practitioner,Condition")
    manifest = wait(fhir, status_url)
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith(
        "/$export?_type=Patient%2CObservation%2CPractitioner%2CCondition"
    )
    assert manifest["error"] == []
    assert manifest["transactionTime"]
    assert "Expires" in fhir.get(status_url).headers
    outputs = {o["type"]: o for o in manifest["output"]}
    assert sorted(outputs) == ["Condition", "Observation", "Patient", "Practitioner"]
    for rtype, output in outputs.items():
        exported = download(fhir, output["url"])
        assert output["count"] == len(exported)
        assert by_id(exported) == by_id(searched(fhir, rtype))
    # At rest the files are sealed: no family name, no ndjson line in clear.
    files = list(bulk_dir.rglob("*.ndjson"))
    assert files
    assert all(b"Bulkone" not in f.read_bytes() for f in files)
    assert all(b'"resourceType"' not in f.read_bytes() for f in files)


def test_post_kick_off_with_parameters_and_since(fhir: httpx.Client, data: dict[str, Any]) -> None:
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "_type", "valueString": "Observation"},
        {"name": "_since", "valueInstant": "2000-01-01T00:00:00Z"},
        {"name": "_outputFormat", "valueString": "application/fhir+ndjson"}]}  # fmt: skip
    response = fhir.post("/$export", json=body, headers=ASYNC)
    assert response.status_code == 202, response.text
    manifest = wait(fhir, response.headers["Content-Location"])
    assert [o["type"] for o in manifest["output"]] == ["Observation"]
    assert manifest["request"].endswith("/$export")
    future = kick_off(fhir, "/$export", _type="Observation", _since="2999-01-01T00:00:00Z")
    assert wait(fhir, future)["output"] == []


def test_type_filter_narrows_by_token(fhir: httpx.Client, data: dict[str, Any]) -> None:
    url = kick_off(fhir, "/$export", _type="Observation",
                   _typeFilter=f"Observation?code={LOINC}|8867-4")  # fmt: skip
    (output,) = wait(fhir, url)["output"]
    exported = download(fhir, output["url"])
    assert by_id(exported) == by_id(searched(fhir, "Observation", code=f"{LOINC}|8867-4"))
    assert len(exported) == 2


def test_patient_export_is_confined_for_a_patient_token(
    service: Service, data: dict[str, Any]
) -> None:
    mine, other = data["patients"]
    with client_for(service, "patient/*.rs", patient=mine) as own:
        manifest = wait(own, kick_off(own, "/Patient/$export"))
        exported = [r for o in manifest["output"] for r in download(own, o["url"])]
    kinds = {r["resourceType"] for r in exported}
    assert {"Patient", "Observation", "Condition"} <= kinds
    assert "Practitioner" not in kinds
    assert other not in orjson.dumps(exported).decode()
    assert {r["id"] for r in exported if r["resourceType"] == "Patient"} == {mine}


def test_group_export_uses_members_and_reports_non_patients(
    fhir: httpx.Client, data: dict[str, Any]
) -> None:
    url = kick_off(fhir, f"/Group/{data['group']}/$export", _type="Patient,Observation")
    manifest = wait(fhir, url)
    assert manifest["request"].endswith(
        f"/Group/{data['group']}/$export?_type=Patient%2CObservation"
    )
    outputs = {o["type"]: download(fhir, o["url"]) for o in manifest["output"]}
    assert [p["id"] for p in outputs["Patient"]] == [data["patients"][0]]
    assert {o["subject"]["reference"] for o in outputs["Observation"]} == {
        f"Patient/{data['patients'][0]}"}  # fmt: skip
    (error,) = manifest["error"]
    (outcome,) = download(fhir, error["url"])
    assert outcome["resourceType"] == "OperationOutcome"
    assert "member 2 of 2 is not a Patient" in outcome["issue"][0]["diagnostics"]
    missing = fhir.get(f"/Group/{uuid.uuid4()}/$export", headers=ASYNC)
    assert missing.status_code == 404


def test_only_the_requester_may_poll_or_download(
    service: Service, fhir: httpx.Client, data: dict[str, Any], pg: Any,
    module_database: Database,
) -> None:  # fmt: skip
    url = kick_off(fhir, "/$export", _type="Patient")
    manifest = wait(fhir, url)
    file_url = manifest["output"][0]["url"]
    intruder = httpx.Client(headers={"Authorization": f"Bearer {token(sub='intruder')}"},
                            timeout=10)  # fmt: skip
    with intruder:
        assert intruder.get(url).status_code == 404
        assert intruder.get(file_url).status_code == 404
        assert intruder.delete(url).status_code == 404
    assert httpx.get(file_url).status_code == 401  # no token at all
    assert fhir.get(file_url.rsplit("/", 1)[0] + "/Other-1.ndjson").status_code == 404
    assert fhir.get(url).status_code == 200  # the requester still can
    with client_for(service) as renewed:  # a new token for the same user and client
        assert renewed.get(url).status_code == 200
    # The same user and client, narrower: a patient launch, or fewer scopes. Neither reaches the
    # wider export (nor can cancel it).
    for narrower in (client_for(service, patient="someone"),
                     client_for(service, scopes="user/Patient.rs")):  # fmt: skip
        with narrower:
            assert narrower.get(url).status_code == 404
            assert narrower.get(file_url).status_code == 404
            assert narrower.delete(url).status_code == 404
    with psycopg.connect(module_database.owner_url) as conn:
        refused = conn.execute("SELECT count(*) FROM audit_log WHERE subject = 'intruder' "
                               "AND outcome <> 'success'").fetchone()  # fmt: skip
    assert refused is not None
    assert refused[0] >= 3


def test_each_exported_patient_is_a_disclosure(
    fhir: httpx.Client, data: dict[str, Any], module_database: Database
) -> None:
    url = kick_off(fhir, "/Patient/$export", _type="Patient,Observation")
    export_id = url.rsplit("/", 1)[1]
    wait(fhir, url)
    with psycopg.connect(module_database.owner_url) as conn:
        rows = conn.execute("SELECT resource_type, resource_id, content FROM audit_log "
                            "WHERE interaction = 'disclosure' AND content::jsonb->'query'->>'export' = %s",
                            (export_id,)).fetchall()  # fmt: skip
    assert sorted(r[1] for r in rows) == sorted(data["patients"])
    for rtype, _, content in rows:
        doc = orjson.loads(content)
        assert rtype == "Patient"
        assert doc["subject"] == "tester"
        assert doc["query"]["kind"] == "bulk-export"
        assert doc["query"]["types"] == ["Observation", "Patient"]
        assert doc["query"]["counts"] == ["Observation:2", "Patient:1"]
        assert "Bulk" not in content  # no PHI in the record


def test_cancel_deletes_files_and_urls(
    fhir: httpx.Client, data: dict[str, Any], bulk_dir: Path
) -> None:
    url = kick_off(fhir, "/$export", _type="Patient")
    file_url = wait(fhir, url)["output"][0]["url"]
    export_id = url.rsplit("/", 1)[1]
    assert (bulk_dir / export_id).is_dir()
    assert fhir.delete(url).status_code == 202
    assert fhir.get(url).status_code == 404
    assert fhir.get(file_url).status_code == 404
    assert not (bulk_dir / export_id).exists()
    assert fhir.delete(url).status_code == 404


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"_type": "Observation,NoSuchType"}, "unknown resource type"),
        ({"_typeFilter": "Observation?value-quantity=5"}, "value-quantity is not supported"),
        ({"_typeFilter": "Observation?nonsense=5"}, "an unknown parameter is not supported"),
        ({"_typeFilter": "Observation"}, "has no query"),
        ({"_typeFilter": "Patient?identifier=123-45-6789"}, "identifier is identifying"),
        ({"_type": "Patient", "_typeFilter": "Observation?code=x"}, "which _type does not"),
        ({"_outputFormat": "text/csv"}, "application/fhir+ndjson only"),
        ({"_since": "yesterday"}, "FHIR instant"),
        ({"_since": "2020-01-01"}, "FHIR instant"),
        ({"patient": "Patient/1"}, "not supported"),
        ({"_type": ",".join(["Observation"] * 500)}, "over 4096 characters"),
    ],
)
def test_bad_kick_off_parameters_are_400(
    fhir: httpx.Client, params: dict[str, str], words: str
) -> None:
    response = fhir.get("/$export", params=params, headers=ASYNC)
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    assert words in response.json()["issue"][0]["diagnostics"]


def test_kick_off_needs_respond_async_and_scopes(service: Service, fhir: httpx.Client) -> None:
    assert fhir.get("/$export").status_code == 400
    with client_for(service, "system/Patient.rs") as narrow:
        assert narrow.get("/$export", params={"_type": "Observation"},
                          headers=ASYNC).status_code == 403  # fmt: skip
        group = narrow.get(f"/Group/{uuid.uuid4()}/$export", headers=ASYNC)
        assert group.status_code == 403  # Group/$export needs read on Group
        url = kick_off(narrow, "/$export")  # without _type: what the scopes allow
        assert [o["type"] for o in wait(narrow, url)["output"]] == ["Patient"]


def test_concurrent_exports_beyond_the_limit_are_429(
    service: Service, module_database: Database
) -> None:
    busy = uuid.uuid4()
    with psycopg.connect(module_database.owner_url) as conn:
        conn.execute("INSERT INTO bulk_export (id, subject, principal, kind, params, base_url, "
                     "status, lease_until) VALUES (%s, 'busy', '{}', 'system', '{}', 'x', "
                     "'running', now() + interval '1 hour')", (busy,))  # fmt: skip
    try:
        with client_for(service) as client:
            client.headers["Authorization"] = f"Bearer {token(sub='busy')}"
            response = client.get("/$export", headers=ASYNC)
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) > 0
    finally:
        with psycopg.connect(module_database.owner_url) as conn:
            conn.execute("DELETE FROM bulk_export WHERE id = %s", (busy,))


def test_files_are_deleted_after_expiry(pg: Any, tmp_path: Path, database: Database) -> None:
    svc = start_service(database, tmp_path / "svc.log", BULK_EXPORT_DIR=str(tmp_path / "bulk"),
                        BULK_EXPORT_EXPIRY_SECONDS="1")  # fmt: skip
    try:
        with client_for(svc) as client:
            client.post("/Patient", json={"resourceType": "Patient"})
            url = kick_off(client, "/$export", _type="Patient")
            file_url = wait(client, url)["output"][0]["url"]
            assert client.get(file_url).status_code == 200
            deadline = time.monotonic() + 5
            while client.get(url).status_code != 404 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert client.get(url).status_code == 404
            assert client.get(file_url).status_code == 404
            deadline = time.monotonic() + 5
            while list((tmp_path / "bulk").rglob("*.ndjson")) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert list((tmp_path / "bulk").rglob("*.ndjson")) == []
    finally:
        svc.stop()


def test_expired_or_wrong_token_on_status_and_files_is_401(
    service: Service, fhir: httpx.Client, data: dict[str, Any]
) -> None:
    url = kick_off(fhir, "/$export", _type="Patient")
    file_url = wait(fhir, url)["output"][0]["url"]
    expired = mint_dev_token(TEST_SECRET_KEY_BASE, "tester", FULL_SCOPES, ttl_seconds=-120)
    forged = token()[:-4] + "AAAA"
    for bearer in (expired, forged):
        headers = {"Authorization": f"Bearer {bearer}"}
        assert httpx.get(url, headers=headers).status_code == 401
        assert httpx.get(file_url, headers=headers).status_code == 401
        assert httpx.delete(url, headers=headers).status_code == 401
    assert fhir.get(file_url).status_code == 200  # nothing was cancelled by the attempts


def test_granular_scope_narrows_the_export(service: Service, data: dict[str, Any]) -> None:
    scope = f"system/Observation.rs?code={LOINC}|8310-5"
    with client_for(service, scope) as narrow:
        (output,) = wait(narrow, kick_off(narrow, "/$export"))["output"]
        exported = download(narrow, output["url"])
    codes = {o["code"]["coding"][0]["code"] for o in exported}
    assert output["type"] == "Observation"
    assert codes == {"8310-5"}
    assert len(exported) == 2


def test_capability_statement_lists_the_export_operations(fhir: httpx.Client) -> None:
    meta = fhir.get("/metadata").json()
    bulk = "http://hl7.org/fhir/uv/bulkdata"
    assert f"{bulk}/CapabilityStatement/bulk-data" in meta["instantiates"]
    rest = meta["rest"][0]
    assert rest["operation"] == [
        {"name": "export", "definition": f"{bulk}/OperationDefinition/export"}
    ]
    resources = {r["type"]: r for r in rest["resource"]}
    assert {"name": "export", "definition": f"{bulk}/OperationDefinition/patient-export"} in (
        resources["Patient"]["operation"]
    )
    assert resources["Group"]["operation"] == [
        {"name": "export", "definition": f"{bulk}/OperationDefinition/group-export"}
    ]


def test_kick_off_poll_download_and_cancel_are_audited(
    fhir: httpx.Client, data: dict[str, Any], module_database: Database
) -> None:
    url = kick_off(fhir, "/$export", _type="Patient")
    export_id = url.rsplit("/", 1)[1]
    download(fhir, wait(fhir, url)["output"][0]["url"])
    fhir.delete(url)
    with psycopg.connect(module_database.owner_url) as conn:
        details = [r[0] for r in conn.execute(
            "SELECT content::jsonb->>'detail' FROM audit_log WHERE interaction = 'operation' "
            "AND content::jsonb->'query'->'export' ? %s ORDER BY recorded_at", (export_id,))]  # fmt: skip
    assert details[0] == "$export kick-off (system)"
    assert "$export status: complete" in details
    assert details[-2:] == ["$export file download", "$export cancelled"]


def test_a_job_whose_runner_died_is_taken_over(
    fhir: httpx.Client, data: dict[str, Any], module_database: Database
) -> None:
    orphan = uuid.uuid4()
    principal = orjson.dumps({"subject": "tester", "client_id": None,
                              "scopes": FULL_SCOPES.split()}).decode()  # fmt: skip
    params = orjson.dumps({"types": ["Practitioner"], "since": None, "filters": {}}).decode()
    with psycopg.connect(module_database.owner_url) as conn:
        conn.execute("INSERT INTO bulk_export (id, subject, principal, kind, params, base_url, "
                     "status, lease_until) VALUES (%s, 'tester', %s, 'system', %s, %s, "
                     "'running', now() - interval '1 second')",
                     (orphan, principal, params, str(fhir.base_url).rstrip("/")))  # fmt: skip
    manifest = wait(fhir, f"/bulk-status/{orphan}")
    (output,) = manifest["output"]
    assert by_id(download(fhir, output["url"])) == by_id(searched(fhir, "Practitioner"))


def test_a_failed_export_answers_500_naming_no_data(
    fhir: httpx.Client, module_database: Database
) -> None:
    broken = uuid.uuid4()
    principal = orjson.dumps({"subject": "tester", "scopes": FULL_SCOPES.split()}).decode()
    params = orjson.dumps({"types": ["Patient"], "since": "not-an-instant"}).decode()
    with psycopg.connect(module_database.owner_url) as conn:
        conn.execute("INSERT INTO bulk_export (id, subject, principal, kind, params, base_url) "
                     "VALUES (%s, 'tester', %s, 'system', %s, 'x')", (broken, principal, params))  # fmt: skip
    deadline = time.monotonic() + 10
    while (response := fhir.get(f"/bulk-status/{broken}")).status_code == 202:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert response.status_code == 500
    assert response.json()["issue"][0]["diagnostics"] == "the export failed (ValueError)"


def test_directories_of_exports_no_longer_live_are_removed(
    fhir: httpx.Client, data: dict[str, Any], bulk_dir: Path
) -> None:
    """What another replica expired or cancelled: its files on this replica's disk go too."""
    stray, unrelated = bulk_dir / str(uuid.uuid4()), bulk_dir / "not-an-export"
    for folder in (stray, unrelated):
        folder.mkdir()
        (folder / "Patient-1.ndjson").write_bytes(b"sealed")
    url = kick_off(fhir, "/$export", _type="Patient")  # wakes the runner, which sweeps first
    deadline = time.monotonic() + 5
    while stray.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not stray.exists()
    assert (unrelated / "Patient-1.ndjson").exists()
    # Leave no export running: the next test's kick-off would be refused (429, one at a time).
    wait(fhir, url)


def test_past_expiry_nothing_is_served_even_before_the_sweep(
    fhir: httpx.Client, data: dict[str, Any], module_database: Database
) -> None:
    url = kick_off(fhir, "/$export", _type="Patient")
    file_url = wait(fhir, url)["output"][0]["url"]
    with psycopg.connect(module_database.owner_url) as conn:  # as if the sweeper were stuck
        conn.execute("UPDATE bulk_export SET expires_at = now() - interval '1 second' "
                     "WHERE id = %s", (uuid.UUID(url.rsplit("/", 1)[1]),))  # fmt: skip
    assert fhir.get(url).status_code == 404
    assert fhir.get(file_url).status_code == 404


def test_a_patient_context_token_cannot_probe_groups(
    service: Service, data: dict[str, Any]
) -> None:
    with client_for(service, patient="someone") as patient_app:
        for group in (data["group"], "no-such-group"):  # the same answer: nothing to learn
            response = patient_app.get(f"/Group/{group}/$export",
                                       headers={"Prefer": "respond-async"})  # fmt: skip
            assert response.status_code == 403
            assert "Patient/$export" in response.json()["issue"][0]["diagnostics"]
