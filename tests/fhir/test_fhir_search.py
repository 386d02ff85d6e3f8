"""Search and paging matrix: every supported parameter, prefixes, ranges, cursors without PHI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

FAMILIES = ["García-López", "Okafor", "Smith", "smith", "Nakamura"]
PEOPLE = [
    # (family, given, birthDate, gender, mrn)
    ("García-López", "José", "1950-01-15", "male", "S-001"),
    ("Okafor", "Ada", "1980", "female", "S-002"),
    ("Smith", "John Paul", "1980-06", "male", "S-003"),
    ("smith", "Jane", "1999-12-31", "female", "S-004"),
    ("Nakamura", "Yuki", "2001-03-04", "other", "S-005"),
]
LOINC = "http://loinc.org"


def _patient(family: str, given: str, birth: str, gender: str, mrn: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": given.split()}],
        "birthDate": birth,
        "gender": gender,
        "identifier": [{"system": "urn:search", "value": mrn}],
    }


@pytest.fixture(scope="module")
def seeded(fhir: httpx.Client) -> Iterator[dict[str, str]]:
    ids = {}
    for person in PEOPLE:
        response = fhir.post("/Patient", json=_patient(*person))
        assert response.status_code == 201, response.text
        ids[person[4]] = response.json()["id"]
    target = ids["S-001"]
    for day in range(1, 31):  # 30 daily heart rates and 10 weights for one patient
        fhir.post(
            "/Observation", json=_obs(target, "8867-4", f"2024-04-{day:02d}T08:00:00Z", 60 + day)
        )
    for day in range(1, 11):
        fhir.post(
            "/Observation", json=_obs(target, "29463-7", f"2024-04-{day:02d}T09:00:00Z", 80.0)
        )
    return ids


def _obs(pid: str, code: str, when: str, value: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "x"},
    }


def mrns(fhir: httpx.Client, query: str) -> list[str]:
    response = fhir.get(f"/Patient?{query}&identifier=" + ",".join(p[4] for p in PEOPLE))
    assert response.status_code == 200, response.text
    return sorted(e["resource"]["identifier"][0]["value"] for e in response.json().get("entry", []))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("family=garcia-lopez", ["S-001"]),
        ("family=GARCIA", ["S-001"]),
        ("family=lopez", ["S-001"]),
        ("family=smith", ["S-003", "S-004"]),
        ("family=smit", []),
        ("given=jose", ["S-001"]),
        ("given=paul", ["S-003"]),
        ("name=ada", ["S-002"]),
        ("name=okafor,yuki", ["S-002", "S-005"]),
        ("family=smith&given=jane", ["S-004"]),
        ("gender=female", ["S-002", "S-004"]),
        ("gender=male,other", ["S-001", "S-003", "S-005"]),
        ("birthdate=1950-01-15", ["S-001"]),
        ("birthdate=1980", ["S-002", "S-003"]),
        ("birthdate=1980-06", ["S-003"]),
        ("birthdate=lt1980", ["S-001"]),
        ("birthdate=le1980", ["S-001", "S-002", "S-003"]),
        ("birthdate=gt1999-12-30", ["S-004", "S-005"]),
        ("birthdate=ge2000-01-01", ["S-005"]),
        ("birthdate=ge1980-06-15&birthdate=lt2000", ["S-002", "S-003", "S-004"]),
    ],
)
def test_patient_search(
    fhir: httpx.Client, seeded: dict[str, str], query: str, expected: list[str]
) -> None:
    assert mrns(fhir, query) == expected


def test_identifier_forms(fhir: httpx.Client, seeded: dict[str, str]) -> None:
    def found(query: str) -> int:
        return len(fhir.get(f"/Patient?identifier={query}").json().get("entry", []))

    assert found("urn:search|S-002") == 1
    assert found("S-002") == 1
    assert found("urn:other|S-002") == 0
    assert found("s-002") == 0  # identifiers are case-sensitive
    assert (
        fhir.get(f"/Patient?_id={seeded['S-005']}").json()["entry"][0]["resource"]["id"]
        == seeded["S-005"]
    )


def observations(fhir: httpx.Client, query: str) -> list[dict[str, Any]]:
    out, url = [], f"/Observation?{query}"
    while url:
        response = fhir.get(url)
        assert response.status_code == 200, response.text
        bundle = response.json()
        out += [e["resource"] for e in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), "")
    return out


@pytest.mark.parametrize(
    ("query", "count"),
    [
        ("code=http://loinc.org|8867-4", 30),
        ("code=8867-4", 30),
        ("code=http://other|8867-4", 0),
        ("code=8867-4,29463-7", 40),
        ("category=vital-signs", 40),
        ("date=2024-04-05", 2),
        ("date=ge2024-04-10&date=lt2024-04-20", 11),
        ("date=gt2024-04-29", 1),
        ("date=le2024-04-01T08:00:00Z", 1),
        ("date=lt2024-04-01", 0),
        ("_lastUpdated=gt2000-01-01", 40),
    ],
)
def test_observation_search(
    fhir: httpx.Client, seeded: dict[str, str], query: str, count: int
) -> None:
    pid = seeded["S-001"]
    assert len(observations(fhir, f"patient={pid}&{query}&_count=7")) == count
    assert len(observations(fhir, f"subject=Patient/{pid}&{query}")) == count


@pytest.mark.parametrize("sort", ["date", "-date", "_id"])
def test_paging_is_complete_stable_and_sorted(
    fhir: httpx.Client, seeded: dict[str, str], sort: str
) -> None:
    pid = seeded["S-001"]
    pages = observations(fhir, f"patient={pid}&_sort={sort}&_count=4")
    assert len(pages) == 40
    assert len({o["id"] for o in pages}) == 40
    if sort != "_id":
        dates = [o["effectiveDateTime"] for o in pages]
        assert dates == sorted(dates, reverse=sort.startswith("-"))


def test_page_links_carry_no_phi_and_count_is_capped(
    fhir: httpx.Client, seeded: dict[str, str]
) -> None:
    bundle = fhir.get("/Patient?family=smith&_count=1").json()
    assert len(bundle["entry"]) == 1
    urls = " ".join(link["url"] for link in bundle["link"])
    assert "smith" not in urls.lower()
    assert "family" not in urls
    assert {link["relation"] for link in bundle["link"]} == {"self", "next"}
    pid = seeded["S-001"]
    big = fhir.get(f"/Observation?patient={pid}&_count=1000").json()
    assert len(big["entry"]) == 40  # under the cap of 100
    tampered = bundle["link"][1]["url"][:-4] + "AAAA"
    assert fhir.get(tampered).status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "Patient?unknown=1",
        "Patient?_count=0",
        "Patient?_count=abc",
        "Patient?gender=robot",
        "Patient?_sort=family",
        "Patient?identifier=urn:x|",
        "Observation?date=2024-99",
        "Observation?subject=Group/1",
        "Observation?code=",
        "Observation?patient=bad id",
        "Patient?_cursor=abc&family=x",
    ],
)
def test_strict_handling(fhir: httpx.Client, query: str) -> None:
    response = fhir.get(f"/{query}")
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
