"""Every resource type through one engine: a US Core-shaped record for many patients (issue 13).

Loads as transaction Bundles, reads back equal, and each search US Core 6.1 lists as SHALL for
these types returns exactly the expected resources. Then the things the generic engine adds:
chains, ``_has``, modifiers, compartments for every type, and no identifying value in clear.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.conftest import Database, Service
from tests.fhir.conftest import client_for
from tests.fhir.uscore import COND_CLINICAL, LOINC, OBS_CATEGORY, Record, record

PATIENTS = 10


class Loaded:
    def __init__(self, client: httpx.Client, records: list[Record]) -> None:
        self.client = client
        self.records = records
        self.ids: list[dict[str, list[str]]] = []  # per record: type -> ids in bundle order
        self.patient_ids: list[str] = []

    def search(self, rtype: str, **params: str) -> set[str]:
        found: set[str] = set()
        response = self.client.get(f"/{rtype}", params={**params, "_count": "100"})
        assert response.status_code == 200, (rtype, params, response.text[:300])
        bundle = response.json()
        for entry in bundle.get("entry", []):
            assert entry["resource"]["resourceType"] == rtype
            found.add(entry["resource"]["id"])
        assert not any(link["relation"] == "next" for link in bundle.get("link", []))
        return found


@pytest.fixture(scope="module")
def loaded(live_service: Service) -> Iterator[Loaded]:
    run = uuid.uuid4().hex[:6]
    with client_for(live_service) as client:
        state = Loaded(client, [record(i, run) for i in range(PATIENTS)])
        for rec in state.records:
            response = client.post("", json=rec.bundle)
            assert response.status_code == 200, response.text[:500]
            entries = response.json()["entry"]
            by_url = {}
            for request_entry, result in zip(rec.bundle["entry"], entries, strict=True):
                assert result["response"]["status"].startswith("201")
                by_url[request_entry["fullUrl"]] = result["resource"]["id"]
            state.ids.append({t: [by_url[u] for u in urls] for t, urls in rec.by_type.items()})
            state.patient_ids.append(state.ids[-1]["Patient"][0])
        yield state


def test_every_resource_reads_back_equal_with_references_resolved(loaded: Loaded) -> None:
    rec, ids = loaded.records[0], loaded.ids[0]
    urls = {e["fullUrl"]: f"{e['resource']['resourceType']}/{ids[e['resource']['resourceType']][0]}"
            for e in rec.bundle["entry"] if len(ids[e["resource"]["resourceType"]]) == 1}  # fmt: skip
    for entry in rec.bundle["entry"]:
        resource = entry["resource"]
        rtype = resource["resourceType"]
        position = rec.by_type[rtype].index(entry["fullUrl"])
        stored = loaded.client.get(f"/{rtype}/{ids[rtype][position]}").json()
        sent = _resolved(resource, urls, {u: f"Observation/{i}" for u, i in
                                          zip(rec.by_type["Observation"], ids["Observation"], strict=True)})  # fmt: skip
        assert {k: v for k, v in stored.items() if k not in ("id", "meta")} == sent


def _resolved(node: Any, *mappings: dict[str, str]) -> Any:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            for mapping in mappings:
                if node["reference"] in mapping:
                    return {**node, "reference": mapping[node["reference"]]}
        return {k: _resolved(v, *mappings) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolved(v, *mappings) for v in node]
    return node


def test_us_core_shall_searches_return_exactly_the_expected_resources(loaded: Loaded) -> None:
    for n, (rec, ids) in enumerate(zip(loaded.records, loaded.ids, strict=True)):
        pid = loaded.patient_ids[n]
        s = loaded.search
        assert s("Patient", _id=pid) == {pid}
        assert s("Patient", identifier=f"urn:oid:2.16.840.1.113883.19.5|{rec.mrn}") == {pid}
        assert pid in s("Patient", name=rec.family)
        assert s("Patient", name=rec.family, birthdate=rec.birth_date) >= {pid}
        assert pid in s("Patient", name=rec.family, gender=rec.gender)
        assert s("Encounter", patient=pid) == set(ids["Encounter"])
        assert s("Encounter", _id=ids["Encounter"][0]) == set(ids["Encounter"])
        assert s("Encounter", patient=pid, date="ge2024-01-01") == set(ids["Encounter"])
        assert s("Encounter", patient=pid, date="lt2024-01-01") == set()
        assert s("Condition", patient=pid) == set(ids["Condition"])
        assert s("Condition", patient=pid, category="problem-list-item") == set(ids["Condition"])
        assert s("Condition", patient=pid, **{"clinical-status": f"{COND_CLINICAL}|active"}) == set(
            ids["Condition"]
        )
        assert s(
            "Condition", patient=pid, code=f"http://snomed.info/sct|{rec.facts['condition']}"
        ) == set(ids["Condition"])
        lab, vital = ids["Observation"]
        assert s("Observation", patient=pid, category=f"{OBS_CATEGORY}|laboratory") == {lab}
        assert s("Observation", patient=pid, code=f"{LOINC}|{rec.facts['lab']}") == {lab}
        assert s("Observation", patient=pid, category="vital-signs", date="ge2024-02-01") == {vital}
        assert s("DiagnosticReport", patient=pid) == set(ids["DiagnosticReport"])
        assert s("DiagnosticReport", patient=pid, category="LAB") == set(ids["DiagnosticReport"])
        assert s("DiagnosticReport", patient=pid, code=f"{LOINC}|24323-8") == set(
            ids["DiagnosticReport"]
        )
        assert s("DiagnosticReport", patient=pid, category="LAB", date="2024-02-01") == set(
            ids["DiagnosticReport"]
        )
        assert s("MedicationRequest", patient=pid, intent="order") == set(ids["MedicationRequest"])
        assert s("MedicationRequest", patient=pid, intent="order", status="active") == set(
            ids["MedicationRequest"]
        )
        assert s("AllergyIntolerance", patient=pid) == set(ids["AllergyIntolerance"])
        assert s("Immunization", patient=pid) == set(ids["Immunization"])
        assert s("Procedure", patient=pid) == set(ids["Procedure"])
        assert s("Procedure", patient=pid, date="2015-06-01") == set(ids["Procedure"])
        assert s("DocumentReference", patient=pid) == set(ids["DocumentReference"])
        assert s("DocumentReference", patient=pid, category="clinical-note") == set(
            ids["DocumentReference"]
        )
        assert s("DocumentReference", patient=pid, type=f"{LOINC}|34133-9") == set(
            ids["DocumentReference"]
        )
        assert s(
            "Practitioner",
            identifier=f"http://hl7.org/fhir/sid/us-npi|9{rec.mrn.split('-')[1]}{n:04d}",
        ) == set(ids["Practitioner"])
        assert s("Organization", name=f"Clinic {rec.mrn.split('-')[1]} {n}") >= set(ids["Organization"])  # fmt: skip


def test_modifiers_chains_and_has(loaded: Loaded) -> None:
    s, rec, ids, pid = loaded.search, loaded.records[1], loaded.ids[1], loaded.patient_ids[1]
    assert s("Condition", patient=pid, **{"clinical-status:not": "resolved"}) == set(
        ids["Condition"]
    )
    assert s("Condition", patient=pid, **{"code:not": "44054006"}) == (
        set() if rec.facts["condition"] == "44054006" else set(ids["Condition"]))  # fmt: skip
    assert s("Organization", **{"name:contains": "linic"}) >= set(ids["Organization"])
    assert s("Observation", patient=pid, **{"value-quantity": "ge6"}) >= {ids["Observation"][0]}
    assert s("Observation", patient=pid, **{"value-quantity": "lt1"}) == set()
    assert s("Encounter", **{"subject:Patient.name": rec.family}) == set(ids["Encounter"])
    assert s("Patient", **{"_has:Condition:patient:code": rec.facts["condition"],
                           "name": rec.family}) == {pid}  # fmt: skip
    assert s("MedicationRequest", **{"requester:Practitioner.identifier":
                                    f"http://hl7.org/fhir/sid/us-npi|9{rec.mrn.split('-')[1]}0001"}) == set(ids["MedicationRequest"])  # fmt: skip


def test_token_text_matches_whole_words_of_displays_and_text(loaded: Loaded) -> None:
    """``:text`` on any token parameter, native ones included (Observation ``code``): every word
    of the query in the concept's text or a coding's display, case- and accent-insensitive."""
    s, ids, pid = loaded.search, loaded.ids[5], loaded.patient_ids[5]
    heart_rate = {i for i in ids["Observation"] if i in s("Observation", code="8867-4")}
    assert heart_rate
    assert s("Observation", patient=pid, **{"code:text": "HEART rate"}) == heart_rate
    assert s("Observation", patient=pid, **{"code:text": "rate"}) >= heart_rate
    assert s("Observation", patient=pid, **{"code:text": "heart pulse"}) == set()
    assert s("Observation", patient=pid, **{"code:text": "hear"}) == set()  # whole words only
    assert s("AllergyIntolerance", patient=pid, **{"code:text": "cashew"}) == set(
        ids["AllergyIntolerance"]
    )
    assert s("Immunization", patient=pid, **{"vaccine-code:text": "pizza,influenza"}) == set(
        ids["Immunization"]
    )
    assert s("Procedure", patient=pid, **{"code:text": "Appendéctomy"}) == set(ids["Procedure"])


@pytest.mark.parametrize(("params", "fragment"), [
    ({"code:text": " - "}, "at least one word"),
    ({"_id:not": "x"}, "modifiers are not supported"),
    ({"nonsense": "x"}, "nonsense"),
    ({"code:fuzzy": "x"}, "code"),
    ({"subject:Patient.name.family": "x"}, "chains deeper"),
    ({"_has:Condition:patient": "x"}, "_has"),
    ({"onset-date": "not-a-date"}, "onset-date"),
    ({"subject": "a/b/c/"}, "subject"),
])  # fmt: skip
def test_bad_searches_name_the_parameter(
    loaded: Loaded, params: dict[str, str], fragment: str
) -> None:
    response = loaded.client.get("/Condition", params=params)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["issue"][0]["diagnostics"]


def test_patient_context_tokens_see_only_their_compartment_for_every_type(
    loaded: Loaded, live_service: Service
) -> None:
    mine, theirs = loaded.patient_ids[2], loaded.patient_ids[3]
    with client_for(live_service, "patient/*.rs", patient=mine) as own:
        for rtype in ("Encounter", "Condition", "DiagnosticReport", "MedicationRequest",
                      "AllergyIntolerance", "Immunization", "Procedure", "DocumentReference"):  # fmt: skip
            bundle = own.get(f"/{rtype}", params={"_count": "100"}).json()
            got = {e["resource"]["id"] for e in bundle.get("entry", [])}
            assert got == set(loaded.ids[2][rtype]), rtype
            assert own.get(f"/{rtype}/{loaded.ids[3][rtype][0]}").status_code == 404
            assert own.get(f"/{rtype}", params={"patient": theirs}).json().get("entry") is None
        # A chain must not reveal anything about another patient's records either.
        chained = own.get("/Encounter", params={"subject:Patient.name": loaded.records[3].family})
        assert chained.json().get("entry") is None


def test_no_identifying_value_is_stored_in_clear(loaded: Loaded, module_database: Database) -> None:
    import psycopg

    rec = loaded.records[4]
    secrets_written = [rec.mrn, rec.family, f"555-01{rec.index:02d}", f"{rec.index} Elm St",
                       f"Dr{rec.family}"]  # fmt: skip
    with psycopg.connect(module_database.owner_url) as conn:
        for table in ("fhir_search_token", "fhir_search_string", "fhir_search_reference",
                      "fhir_resource", "fhir_resource_version", "fhir_token", "audit_log"):  # fmt: skip
            text = "\n".join(str(r) for r in conn.execute(f"SELECT * FROM {table}").fetchall())
            for value in secrets_written:
                assert value not in text, (table, value)
                assert value.lower() not in text, (table, value)


def test_conditional_references_resolve_inside_a_transaction(loaded: Loaded) -> None:
    rec, pid = loaded.records[5], loaded.patient_ids[5]
    by_identifier = f"Patient?identifier=urn:oid:2.16.840.1.113883.19.5|{rec.mrn}"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Flag", "status": "active", "code": {"text": "fall risk"},
                      "subject": {"reference": by_identifier}},
         "request": {"method": "POST", "url": "Flag"}}]}  # fmt: skip
    response = loaded.client.post("", json=bundle)
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{pid}"
    bundle["entry"][0]["resource"]["subject"]["reference"] = "Patient?identifier=no-such-mrn"
    assert loaded.client.post("", json=bundle).status_code == 412
    bundle["entry"][0]["resource"]["subject"]["reference"] = "Patient?gender=female"
    assert loaded.client.post("", json=bundle).status_code == 412  # several: nothing written


def test_composite_parameters_match_within_one_node(loaded: Loaded) -> None:
    """code-value-quantity: the code and the value of the same Observation (or component)."""
    pid = loaded.patient_ids[6]
    bp = {"resourceType": "Observation", "status": "final",
          "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
          "subject": {"reference": f"Patient/{pid}"}, "effectiveDateTime": "2024-04-01",
          "component": [
              {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
               "valueQuantity": {"value": 150, "unit": "mm[Hg]"}},
              {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
               "valueQuantity": {"value": 95, "unit": "mm[Hg]"}}]}  # fmt: skip
    created = loaded.client.post("/Observation", json=bp).json()["id"]
    hr = loaded.ids[6]["Observation"][1]  # heart rate 66 /min
    s = loaded.search
    key = "component-code-value-quantity"
    assert s("Observation", patient=pid, **{key: f"{LOINC}|8480-6$gt140"}) == {created}
    # Systolic 150 and diastolic 95: "8480-6 below 100" must not match through the diastolic.
    assert s("Observation", patient=pid, **{key: f"{LOINC}|8480-6$lt100"}) == set()
    assert s("Observation", patient=pid, **{"code-value-quantity": f"{LOINC}|8867-4$66"}) == {hr}
    assert s("Observation", patient=pid, **{"code-value-quantity": f"{LOINC}|8867-4$gt70"}) == set()
    bad = loaded.client.get("/Observation", params={"code-value-quantity": "8867-4"})
    assert bad.status_code == 400


def test_sort_on_any_sortable_parameter_pages_stably(loaded: Loaded) -> None:
    """_sort with several keys: Encounters by date descending, then id; pages of 3 while a new
    Encounter is inserted between pages neither repeat nor skip an earlier one."""
    c = loaded.client
    bundle = c.get("/Encounter", params={"_sort": "-date,_id", "_count": "3"}).json()
    seen = [e["resource"]["id"] for e in bundle["entry"]]
    starts = [e["resource"]["period"]["start"] for e in bundle["entry"]]
    assert starts == sorted(starts, reverse=True)
    late = {"resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "period": {"start": "2099-01-01T00:00:00Z"}}  # fmt: skip
    assert c.post("/Encounter", json=late).status_code == 201  # sorts first: before our cursor
    while link := next((x["url"] for x in bundle["link"] if x["relation"] == "next"), None):
        bundle = httpx.get(link, headers=c.headers).json()
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
    everyone = {i for ids in loaded.ids for i in ids["Encounter"]}
    assert everyone <= set(seen)
    assert len(seen) == len(set(seen))  # no repeats across pages
    for bad_sort in ("name", "-identifier", "a,b,c,d"):
        assert c.get("/Encounter", params={"_sort": bad_sort}).status_code == 400
    assert c.get("/Patient", params={"_sort": "-birthdate"}).status_code == 400  # digests only
    condition = c.get("/Condition", params={"_sort": "code,-_lastUpdated", "_count": "50"})
    codes = [e["resource"]["code"]["coding"][0]["code"] for e in condition.json()["entry"]]
    assert codes == sorted(codes, key=lambda x: x.encode())


def test_profiles_identifier_types_and_includes_in_the_compartment(
    loaded: Loaded, live_service: Service
) -> None:
    c, pid = loaded.client, loaded.patient_ids[7]
    profile = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition"
    typed = {"resourceType": "Condition", "subject": {"reference": f"Patient/{pid}"},
             "meta": {"profile": [profile]}, "code": {"text": "typed"},
             "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/"
                                                  "CodeSystem/v2-0203", "code": "FILL"}]},
                             "value": f"ORD-{pid[:8]}"}]}  # fmt: skip
    created = c.post("/Condition", json=typed).json()["id"]
    assert loaded.search("Condition", _profile=profile) == {created}
    of_type = "http://terminology.hl7.org/CodeSystem/v2-0203|FILL|" + f"ORD-{pid[:8]}"
    assert loaded.search("Condition", **{"identifier:of-type": of_type}) == {created}
    wrong_type = of_type.replace("|FILL|", "|PLAC|")
    assert loaded.search("Condition", **{"identifier:of-type": wrong_type}) == set()
    # _include and _revinclude never reach another patient's compartment.
    theirs = loaded.patient_ids[8]
    with client_for(live_service, "patient/*.rs", patient=pid) as own:
        bundle = own.get("/Condition", params={"_include": "Condition:subject",
                                               "_revinclude": "Encounter:subject"}).json()  # fmt: skip
        subjects = {e["resource"]["id"] for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "Patient"}  # fmt: skip
        assert subjects == {pid}
        other = own.get("/Patient", params={"_id": theirs, "_revinclude": "Condition:subject"})
        assert other.json().get("entry") is None


def test_summary_elements_and_total(loaded: Loaded) -> None:
    c, pid = loaded.client, loaded.patient_ids[9]
    counted = c.get("/Condition", params={"patient": pid, "_summary": "count"}).json()
    assert counted["total"] == len(loaded.ids[9]["Condition"])
    assert "entry" not in counted
    total = c.get("/Observation", params={"patient": pid, "_total": "accurate", "_count": "1"})
    assert total.json()["total"] == len(loaded.ids[9]["Observation"])
    assert len(total.json()["entry"]) == 1
    elements = c.get("/Patient", params={"_id": pid, "_elements": "gender"}).json()
    resource = elements["entry"][0]["resource"]
    assert set(resource) == {"resourceType", "id", "meta", "gender"}
    assert {"code": "SUBSETTED"}.items() <= resource["meta"]["tag"][-1].items()
    summary = c.get("/Patient", params={"_id": pid, "_summary": "true"}).json()
    assert "telecom" in summary["entry"][0]["resource"]  # isSummary elements stay
    assert "contact" not in summary["entry"][0]["resource"]
    assert c.get("/Patient", params={"_summary": "maybe"}).status_code == 400


def test_everything_pages_through_the_compartment(loaded: Loaded) -> None:
    c, pid, ids = loaded.client, loaded.patient_ids[0], loaded.ids[0]
    own = {i for rtype, found in ids.items() if rtype not in ("Organization", "Practitioner")
           for i in found}  # fmt: skip
    seen: set[str] = set()
    shared: set[str] = set()
    bundle = c.get(f"/Patient/{pid}/$everything", params={"_count": "4"}).json()
    url: str | None = "first page"
    while url:
        if url != "first page":
            bundle = httpx.get(url, headers=c.headers).json()
        for entry in bundle.get("entry", []):
            target = seen if entry["search"]["mode"] == "match" else shared
            target.add(entry["resource"]["id"])
        url = next((x["url"] for x in bundle["link"] if x["relation"] == "next"), None)
    assert own <= seen  # every resource of the compartment, over several pages
    assert set(ids["Practitioner"]) <= shared  # referenced shared resources come along
    only = c.get(f"/Patient/{pid}/$everything", params={"_type": "Condition"}).json()
    assert {e["resource"]["id"] for e in only["entry"] if e["search"]["mode"] == "match"} == set(
        ids["Condition"])  # fmt: skip
    assert c.get(f"/Patient/{pid}/$everything", params={"_type": "Nope"}).status_code == 400
    assert c.get(f"/Patient/{pid}/$everything", params={"_cursor": "forged"}).status_code == 400
