"""The CapabilityStatement advertises exactly what works (issue 15, item 11): every interaction,
operation and conditional flag it advertises is exercised here, and an advertised code this walk
does not know fails it (a new claim needs a new step)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
from tests.fhir.minimal import minimal

from healthstack.fhir import ops

# One type per kind of compartment and shape, plus the two with their own columns; every type
# advertises the same entries (asserted below), so these stand for all of them.
WALKED = ("Patient", "Observation", "Practitioner", "Encounter", "Basic", "Questionnaire")
Step = Callable[[httpx.Client, str, dict[str, Any]], None]


def _ok(response: httpx.Response, *statuses: int) -> httpx.Response:
    assert response.status_code in (statuses or (200,)), (response.request.url, response.text)
    return response


def _read(fhir: httpx.Client, rtype: str, res: dict[str, Any]) -> None:
    etag = _ok(fhir.get(f"/{rtype}/{res['id']}")).headers["ETag"]
    _ok(fhir.get(f"/{rtype}/{res['id']}", headers={"If-None-Match": etag}), 304)


def _vread(fhir: httpx.Client, rtype: str, res: dict[str, Any]) -> None:
    _ok(fhir.get(f"/{rtype}/{res['id']}/_history/1"))


def _update(fhir: httpx.Client, rtype: str, res: dict[str, Any]) -> None:
    current = _ok(fhir.get(f"/{rtype}/{res['id']}")).json()
    current["meta"] = {"tag": [{"system": "urn:walk", "code": "updated"}]}
    _ok(fhir.put(f"/{rtype}/{res['id']}", json=current))
    _ok(fhir.put(f"/{rtype}?_id={res['id']}", json=current))  # conditionalUpdate


def _patch(fhir: httpx.Client, rtype: str, res: dict[str, Any]) -> None:
    body = orjson.dumps([{"op": "add", "path": "/meta/tag/-",
                          "value": {"system": "urn:walk", "code": "patched"}}])  # fmt: skip
    _ok(fhir.patch(f"/{rtype}/{res['id']}", content=body,
                   headers={"Content-Type": "application/json-patch+json"}))  # fmt: skip


def _history_instance(fhir: httpx.Client, rtype: str, res: dict[str, Any]) -> None:
    assert _ok(fhir.get(f"/{rtype}/{res['id']}/_history")).json()["total"] >= 1


def _history_type(fhir: httpx.Client, rtype: str, res: dict[str, Any]) -> None:
    assert _ok(fhir.get(f"/{rtype}/_history", params={"_count": 1})).json()["total"] >= 1


def _create(fhir: httpx.Client, rtype: str, res: dict[str, Any]) -> None:
    again = fhir.post(
        f"/{rtype}", json=minimal(rtype), headers={"If-None-Exist": f"_id={res['id']}"}
    )
    assert _ok(again).json()["id"] == res["id"]  # conditionalCreate: the existing one


def _search_type(fhir: httpx.Client, rtype: str, res: dict[str, Any]) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for bundle in (fhir.get(f"/{rtype}", params={"_id": res["id"]}),
                   fhir.post(f"/{rtype}/_search", content=f"_id={res['id']}", headers=form)):  # fmt: skip
        assert [e["resource"]["id"] for e in _ok(bundle).json()["entry"]] == [res["id"]]


def _delete(fhir: httpx.Client, rtype: str, res: dict[str, Any]) -> None:
    other = _ok(fhir.post(f"/{rtype}", json=minimal(rtype)), 201).json()
    _ok(fhir.delete(f"/{rtype}/{other['id']}"), 204)
    _ok(fhir.get(f"/{rtype}/{other['id']}"), 410)
    _ok(fhir.delete(f"/{rtype}?_id={res['id']}"), 204)  # conditionalDelete
    _ok(fhir.get(f"/{rtype}/{res['id']}"), 410)


def _validate(fhir: httpx.Client, rtype: str, res: dict[str, Any]) -> None:
    _ok(fhir.post(f"/{rtype}/$validate", json=minimal(rtype)))


def _meta(fhir: httpx.Client, rtype: str, res: dict[str, Any]) -> None:
    assert _ok(fhir.get(f"/{rtype}/{res['id']}/$meta")).json()["resourceType"] == "Parameters"


INTERACTIONS: dict[str, Step] = {
    "read": _read, "vread": _vread, "update": _update, "patch": _patch,
    "history-instance": _history_instance, "history-type": _history_type, "create": _create,
    "search-type": _search_type, "delete": _delete,
}  # fmt: skip
OPERATIONS: dict[str, Step] = {"validate": _validate, "meta": _meta}
# Operations of one type, exercised by their own tests (named here so a new one is noticed).
TYPE_OPERATIONS = {
    "Observation": {"lastn", "stats"},
    "Patient": {"evaluate", "everything", "export", "deidentify", "summarize"},  # tests/deid
    "Group": {"export"},  # Bulk Data: tests/fhir/test_bulk_export*.py
}
SYSTEM_OPERATIONS = {"export"}


def _system(fhir: httpx.Client, code: str, pid: str) -> None:
    entry = {"request": {"method": "GET", "url": f"Patient/{pid}"}}
    if code in ("transaction", "batch"):
        bundle = {"resourceType": "Bundle", "type": code, "entry": [entry]}
        assert _ok(fhir.post("", json=bundle)).json()["type"] == f"{code}-response"
    elif code == "search-system":
        _ok(fhir.get("/", params={"_type": "Patient", "_id": pid}))
    elif code == "history-system":
        assert _ok(fhir.get("/_history", params={"_count": 1})).json()["total"] >= 1
    else:
        raise AssertionError(f"advertised system interaction {code} is not walked")


def test_every_advertised_interaction_works(fhir: httpx.Client) -> None:
    rest = _ok(fhir.get("/metadata")).json()["rest"][0]
    resources = {r["type"]: r for r in rest["resource"]}
    assert set(resources) == ops.TYPES | {"AuditEvent"}  # AuditEvent: tests/security
    shared = resources["Basic"]
    assert {o["name"] for o in rest["operation"]} == SYSTEM_OPERATIONS
    for rtype in ops.TYPES:  # the walk below stands for every type: they advertise the same
        entry = resources[rtype]
        assert {i["code"] for i in entry["interaction"]} == set(INTERACTIONS), rtype
        own = {o["name"] for o in entry["operation"]} - set(OPERATIONS)
        assert own == TYPE_OPERATIONS.get(rtype, set()), rtype
        for flag in ("conditionalCreate", "conditionalRead", "conditionalUpdate",
                     "conditionalDelete", "versioning", "readHistory", "updateCreate"):  # fmt: skip
            assert entry[flag] == shared[flag], (rtype, flag)
    assert (shared["conditionalCreate"], shared["conditionalRead"], shared["conditionalUpdate"],
            shared["conditionalDelete"], shared["updateCreate"]) == (
        True, "full-support", True, "multiple", False)  # fmt: skip
    never = fhir.put("/Basic/never-created", json={**minimal("Basic"), "id": "never-created"})
    _ok(never, 404)  # updateCreate: false
    for rtype in WALKED:
        created = _ok(fhir.post(f"/{rtype}", json=minimal(rtype)), 201).json()
        for code in sorted(OPERATIONS):
            OPERATIONS[code](fhir, rtype, created)
        for code in [c for c in INTERACTIONS if c != "delete"] + ["delete"]:
            INTERACTIONS[code](fhir, rtype, created)
    pid = _ok(fhir.post("/Patient", json=minimal("Patient")), 201).json()["id"]
    for code in (i["code"] for i in rest["interaction"]):
        _system(fhir, code, pid)
    # format: json and xml (tests/fhir/test_fhir_xml.py); anything else is refused.
    assert _ok(fhir.get("/metadata")).json()["format"] == ["json", "xml"]
    assert _ok(
        fhir.get("/metadata", headers={"Accept": "application/fhir+xml"})
    ).content.startswith(b"<?xml")
    _ok(fhir.get("/metadata", headers={"Accept": "text/turtle"}), 406)
