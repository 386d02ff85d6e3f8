"""WASM plugins wired into the live FHIR API: validate, derive (NEWS2), $evaluate, admin, audit."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import wasmtime
from tests.conftest import Database, Service
from tests.fhir.conftest import FULL_SCOPES, client_for

from healthstack.fhir.plugin_hooks import derived_problem, evaluation_response
from healthstack.plugins.errors import PluginError
from healthstack.plugins.host import PLUGIN_TAG_SYSTEM, HookResult
from healthstack.plugins.model import sha256_hex
from healthstack.plugins.toolchain import compile_c, find_clang

REPO = Path(__file__).resolve().parents[2]
GUESTS = REPO / "tests" / "plugins" / "guests"
ADMIN_SCOPES = f"{FULL_SCOPES} system/Plugin.cruds"
NEWS2_CODE = "http://snomed.info/sct|1104051000000101"
# A hand-computed NEWS2 case: RR 22 -> 2, SpO2 95 -> 1, SBP 105 -> 1, HR 115 -> 2, 38.5 Cel -> 1,
# alert (A) -> 0, air -> 0: total 7, high risk.
VITALS = {"9279-1": 22, "59408-5": 95, "8480-6": 105, "8867-4": 115, "8310-5": 38.5}


@pytest.fixture(scope="module")
def news2_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    if find_clang() is None:
        pytest.skip("clang-14 is not installed (make sysdeps) to build plugins/news2")
    out = tmp_path_factory.mktemp("news2") / "news2.wasm"
    return compile_c(REPO / "plugins" / "news2" / "news2.c", out)


@pytest.fixture(scope="module")
def admin(live_service: Service, news2_wasm: bytes) -> Iterator[httpx.Client]:
    """An admin client; NEWS2 registered (raw wasm body) for derive and $evaluate."""
    with client_for(live_service, ADMIN_SCOPES) as client:
        response = client.post(
            "/$plugins",
            content=news2_wasm,
            headers={"Content-Type": "application/wasm"},
            params=[
                ("name", "news2"),
                ("version", "1.0.0"),
                ("trigger", "derive"),
                ("trigger", "operation"),
                ("resource-type", "Observation"),
                ("resource-type", "Patient"),
            ],
        )
        assert response.status_code == 201, response.text
        yield client


def register_wat(client: httpx.Client, guest: str, triggers: list[str], rtype: str) -> None:
    wasm = wasmtime.wat2wasm((GUESTS / f"{guest}.wat").read_text())
    manifest = {"name": guest, "version": "1.0.0", "triggers": triggers, "resourceTypes": [rtype],
                "wasm": base64.b64encode(wasm).decode()}  # fmt: skip
    response = client.post("/$plugins", json=manifest)
    assert response.status_code == 201, response.text


def vital(pid: str, code: str, value: float, minute: int) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value}
    if code == "8310-5":
        quantity.update(unit="Cel", system="http://unitsofmeasure.org", code="Cel")
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": f"2026-03-01T10:{minute:02d}:00Z",
        "valueQuantity": quantity,
    }


def new_patient(client: httpx.Client) -> str:
    response = client.post("/Patient", json={"resourceType": "Patient", "gender": "female"})
    assert response.status_code == 201, response.text
    pid: str = response.json()["id"]
    return pid


def news2_scores(client: httpx.Client, pid: str) -> list[dict[str, Any]]:
    bundle = client.get("/Observation", params={"patient": pid, "code": NEWS2_CODE}).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def audit_rows(db: Database, where: str, *args: Any) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(db.url)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(
                "SELECT interaction, outcome, resource_type, resource_id,"
                f" content::jsonb->>'detail' AS detail FROM audit_log WHERE {where}"
                " ORDER BY recorded_at, chain_id, seq",
                *args,
            )
            return rows
        finally:
            await conn.close()

    return asyncio.run(fetch())


@pytest.fixture(scope="module")
def scored(admin: httpx.Client) -> tuple[str, list[str]]:
    """A patient with the five NEWS2 vitals posted one by one: (patient id, observation ids)."""
    pid = new_patient(admin)
    ids = []
    for minute, (code, value) in enumerate(VITALS.items()):
        response = admin.post("/Observation", json=vital(pid, code, value, minute))
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return pid, ids


def test_news2_is_derived_with_provenance_and_audited(
    admin: httpx.Client, scored: tuple[str, list[str]], news2_wasm: bytes,
    module_database: Database,
) -> None:  # fmt: skip
    pid, ids = scored
    (score,) = news2_scores(admin, pid)  # the first four writes lacked a vital: nothing derived
    assert score["valueInteger"] == 7
    assert score["interpretation"][0]["text"].startswith("high")
    assert score["subject"] == {"reference": f"Patient/{pid}"}
    assert sorted(r["reference"] for r in score["derivedFrom"]) == sorted(
        f"Observation/{i}" for i in ids
    )
    sha = sha256_hex(news2_wasm)
    assert {"system": PLUGIN_TAG_SYSTEM, "code": "news2@1.0.0", "display": sha} in score["meta"][
        "tag"
    ]
    calls = audit_rows(module_database, "resource_id = ANY($1) AND interaction = 'operation'", ids)
    assert len(calls) == 5  # one derive call per vital written
    detail = calls[-1]["detail"]
    assert detail.startswith(f"plugin=news2 version=1.0.0 sha256={sha} trigger=derive duration_ms=")
    assert detail.endswith(" outcome=success")
    (created,) = audit_rows(module_database, "resource_id = $1", score["id"])
    assert (created["interaction"], created["outcome"]) == ("create", "success")
    assert created["detail"] == f"derived by plugin=news2@1.0.0 sha256={sha}"


def test_transaction_bundle_runs_derive_plugins_entry_by_entry(
    admin: httpx.Client, module_database: Database
) -> None:
    """With a derive plugin enabled, Bundle creates keep the per-entry path (no batching): each
    entry's derive call sees the vitals stored before it in the same transaction."""
    pid = new_patient(admin)
    entries = [
        {"resource": vital(pid, code, value, minute),
         "request": {"method": "POST", "url": "Observation"}}
        for minute, (code, value) in enumerate(VITALS.items())
    ]  # fmt: skip
    response = admin.post("", json={"resourceType": "Bundle", "type": "transaction",
                                    "entry": entries})  # fmt: skip
    assert response.status_code == 200, response.text
    ids = [e["resource"]["id"] for e in response.json()["entry"]]
    (score,) = news2_scores(admin, pid)  # only the fifth entry completed the set
    assert score["valueInteger"] == 7
    assert sorted(r["reference"] for r in score["derivedFrom"]) == sorted(
        f"Observation/{i}" for i in ids
    )
    calls = audit_rows(module_database, "resource_id = ANY($1) AND interaction = 'operation'", ids)
    assert len(calls) == 5  # one derive call per entry


def test_evaluate_returns_the_score(admin: httpx.Client, scored: tuple[str, list[str]]) -> None:
    pid, _ = scored
    response = admin.post(f"/Patient/{pid}/$evaluate", params={"plugin": "news2"})
    assert response.status_code == 200, response.text
    (part,) = response.json()["parameter"]
    assert (part["name"], part["resource"]["valueInteger"]) == ("return", 7)
    voice = {"resourceType": "Parameters",
             "parameter": [{"name": "consciousness", "valueCode": "V"}]}  # fmt: skip
    response = admin.post(f"/Patient/{pid}/$evaluate?plugin=news2", json=voice)
    assert response.json()["parameter"][0]["resource"]["valueInteger"] == 10


def test_evaluate_reports_missing_vitals_and_unknown_plugins(
    admin: httpx.Client, module_database: Database
) -> None:
    pid = new_patient(admin)
    response = admin.post(f"/Patient/{pid}/$evaluate?plugin=news2")
    assert response.status_code == 422
    issues = response.json()["issue"]
    assert all(i["diagnostics"].startswith("plugin 'news2'") for i in issues)
    assert admin.post(f"/Patient/{pid}/$evaluate?plugin=nope").status_code == 404
    # Refused before any PHI is read: never audited as a successful PHI operation.
    rows = audit_rows(module_database, "resource_id = $1 AND interaction = 'operation'", pid)
    assert not [r for r in rows if r["outcome"] == "success" and "nope" in (r["detail"] or "")]


def test_patient_token_cannot_evaluate_another_patient(
    live_service: Service, scored: tuple[str, list[str]], admin: httpx.Client
) -> None:
    pid, _ = scored
    scopes = "patient/Patient.rs patient/Observation.rs"
    with client_for(live_service, scopes, patient=pid) as own:
        assert own.post(f"/Patient/{pid}/$evaluate?plugin=news2").status_code == 200
    other = new_patient(admin)
    with client_for(live_service, scopes, patient=other) as stranger:
        response = stranger.post(f"/Patient/{pid}/$evaluate?plugin=news2")
    assert response.status_code == 404
    assert response.json()["issue"][0]["diagnostics"] == f"Patient/{pid} not found"


def test_rejecting_validator_blocks_the_write(
    admin: httpx.Client, module_database: Database
) -> None:
    pid = new_patient(admin)
    register_wat(admin, "reject", ["validate"], "Observation")
    try:
        response = admin.post("/Observation", json=vital(pid, "8867-4", 300, 0))
        assert response.status_code == 422, response.text
        (issue,) = response.json()["issue"]
        assert issue["diagnostics"] == "plugin 'reject@1.0.0': heart rate is implausible"
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "POST", "url": "Observation"},
             "resource": vital(pid, "9279-1", 16, 1)}]}  # fmt: skip
        assert admin.post("/", json=bundle).status_code == 422
        listed = admin.get("/Observation", params={"patient": pid}).json()
        assert "entry" not in listed  # nothing stored
        rejected = audit_rows(
            module_database,
            "interaction = 'operation' AND content::jsonb->>'detail' LIKE 'plugin=reject %'",
        )
        assert [(r["outcome"], r["detail"].split()[-1]) for r in rejected] == [
            ("failed", "outcome=rejected")
        ] * 2  # written although both writes rolled back
        assert admin.post("/$plugins/reject/$disable").status_code == 200
        assert admin.post("/Observation", json=vital(pid, "8867-4", 300, 0)).status_code == 201
    finally:
        assert admin.delete("/$plugins/reject").status_code == 204


def test_derived_resource_outside_the_patient_is_dropped(
    admin: httpx.Client, module_database: Database
) -> None:
    """`good` derives an Observation with no subject: never stored; the source write stands."""
    pid = new_patient(admin)
    register_wat(admin, "good", ["derive"], "Observation")
    try:
        response = admin.post("/Observation", json=vital(pid, "8867-4", 70, 0))
        assert response.status_code == 201, response.text
        listed = admin.get("/Observation", params={"patient": pid}).json()
        assert [e["resource"]["id"] for e in listed["entry"]] == [response.json()["id"]]
        (call,) = audit_rows(
            module_database,
            "resource_id = $1 AND content::jsonb->>'detail' LIKE 'plugin=good %'",
            response.json()["id"],
        )
        assert " trigger=derive " in call["detail"]
        assert call["outcome"] == "success"
    finally:
        assert admin.delete("/$plugins/good").status_code == 204


def test_runaway_is_stopped_and_the_next_request_succeeds(
    admin: httpx.Client, scored: tuple[str, list[str]]
) -> None:
    pid, _ = scored
    register_wat(admin, "loop", ["operation"], "Patient")
    started = time.monotonic()
    response = admin.post(f"/Patient/{pid}/$evaluate?plugin=loop")
    elapsed = time.monotonic() - started
    assert response.status_code in (500, 504)
    (issue,) = response.json()["issue"]
    assert issue["details"]["coding"][0]["code"] in ("out-of-fuel", "timeout")
    assert issue["diagnostics"].startswith("plugin 'loop@1.0.0'")
    assert elapsed < 3.0  # the 1 s deadline (fuel usually stops it first), plus HTTP on a busy host
    assert admin.post(f"/Patient/{pid}/$evaluate?plugin=news2").status_code == 200


def test_admin_api_needs_the_plugin_scope_and_lists(
    live_service: Service, admin: httpx.Client
) -> None:
    with client_for(live_service, FULL_SCOPES) as clinician:
        assert clinician.get("/$plugins").status_code == 403
        assert clinician.delete("/$plugins/news2").status_code == 403
    listing = admin.get("/$plugins")
    assert listing.headers["content-type"] == "application/json"
    news2 = next(p for p in listing.json()["plugins"] if p["name"] == "news2")
    assert (news2["enabled"], news2["triggers"]) == (True, ["derive", "operation"])
    bad = {"name": "Bad Name", "version": "1", "triggers": ["derive"],
           "resourceTypes": ["Observation"], "wasm": base64.b64encode(b"\0asm").decode()}  # fmt: skip
    assert admin.post("/$plugins", json=bad).status_code == 422
    assert admin.post("/$plugins/nothing/$enable").status_code == 404


def test_invocations_are_counted_in_metrics(
    live_service: Service, scored: tuple[str, list[str]]
) -> None:
    text = httpx.get(f"{live_service.base_url}/metrics").text
    assert 'healthstack_plugin_invocations_total{outcome="success",plugin="news2"}' in text


def _failed(code: str) -> HookResult:
    result = HookResult("operation", "Patient")
    result.failures.append(PluginError(code, "stopped", plugin="p@1"))
    return result


@pytest.mark.parametrize(("code", "status"), [("timeout", 504), ("trap", 500),
                                              ("invalid-output", 500)])  # fmt: skip
def test_evaluate_maps_plugin_failures_to_statuses(code: str, status: int) -> None:
    answer, body = evaluation_response(_failed(code))
    assert answer == status
    assert body["issue"][0]["details"]["coding"][0]["code"] == code


def test_derived_resources_must_stay_with_the_source_patient() -> None:
    derived = vital("p1", "8867-4", 70, 0)
    assert derived_problem(derived, "p1") is None
    assert derived_problem(derived, "p2") == "subject is not the patient of the source observation"
    assert derived_problem({**derived, "resourceType": "Patient"}, "p1") is not None
    assert derived_problem({**derived, "status": "bogus"}, "p1") is not None


def test_derived_resources_need_the_callers_own_create_scope(
    admin: httpx.Client, scored: tuple[str, list[str]], live_service: Service,
    module_database: Database,
) -> None:  # fmt: skip
    """Issue 12 item 3: an update by a token without Observation.c derives nothing."""
    pid, observation_ids = scored
    before = len(news2_scores(admin, pid))
    current = admin.get(f"/Observation/{observation_ids[0]}").json()
    current["valueQuantity"]["value"] = 24  # still a vital sign: derive runs on updates too
    with client_for(live_service, "user/Observation.ru") as updater:
        response = updater.put(f"/Observation/{observation_ids[0]}", json=current)
    assert response.status_code == 200, response.text
    assert len(news2_scores(admin, pid)) == before
    denied = audit_rows(module_database, "outcome = 'denied' AND interaction = 'create'")
    assert any("may not create Observation" in (row["detail"] or "") for row in denied)
