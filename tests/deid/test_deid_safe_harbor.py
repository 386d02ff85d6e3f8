"""Safe Harbor de-identification of FHIR JSON (healthstack.deid): pure functions, no service."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from tests.deid.record import DATES, IDENTIFIERS, PATIENT_ID, patient, record

from healthstack.deid import UnknownPlaceholder, deidentify, reidentify_text
from healthstack.deid.text import shift_date

TODAY = dt.date(2026, 12, 4)


def dumped(resources: object) -> str:
    return orjson.dumps(resources).decode()


@pytest.mark.parametrize("shift", [-400, -30, 17, 365])
def test_no_identifier_of_any_class_survives(shift: int) -> None:
    out = deidentify(record(), shift, TODAY)
    text = dumped(out.resources).lower()
    leaked = [value for value in IDENTIFIERS if value.lower() in text]
    assert leaked == []
    assert "text" not in out.resources[0]  # the narrative is gone
    for element in ("identifier", "telecom", "photo", "contact", "name"):
        assert element not in out.resources[0]
    assert out.resources[0]["address"] == [{"state": "CA"}]


def test_dates_shift_consistently_and_keep_intervals() -> None:
    out = deidentify(record(), -45, TODAY)
    period = out.resources[1]["period"]
    start = dt.datetime.fromisoformat(period["start"])
    end = dt.date.fromisoformat(period["end"])
    original_start = dt.datetime.fromisoformat(DATES["start"])
    assert start == original_start - dt.timedelta(days=45)  # time of day and zone kept
    assert end - start.date() == dt.date.fromisoformat(DATES["end"]) - original_start.date()
    born = dt.date.fromisoformat(out.resources[0]["birthDate"])
    assert start.date() - born == original_start.date() - dt.date.fromisoformat(DATES["birth"])
    # The same date in free text moves by the same shift.
    assert "2024-01-16" in out.resources[2]["note"][0]["text"]


def test_shift_date_precisions() -> None:
    assert shift_date("2024-03-01", 1) == "2024-03-02"
    assert shift_date("2024-03", -31) == "2024-01"
    assert shift_date("1950", 400) == "1950"  # a year alone is allowed
    assert shift_date("2024-03-01T10:00:00+02:00", -1) == "2024-02-29T10:00:00+02:00"
    assert shift_date("not a date", 3) is None
    with pytest.raises(ValueError, match="zero date shift"):
        deidentify(record(), 0, TODAY)


def test_ages_over_89_are_aggregated() -> None:
    old = {**patient(), "birthDate": "1930-01-02"}
    out = deidentify([old], 10, TODAY).resources[0]
    assert "birthDate" not in out
    assert out["ageGroup"] == "90 or older"
    young = deidentify([{**patient(), "birthDate": "1937-12-05"}], 10, TODAY).resources[0]
    assert "birthDate" in young  # 88 on TODAY
    age = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "age"},
        "valueQuantity": {"value": 97, "system": "http://unitsofmeasure.org", "code": "a"},
        "note": [{"text": "97-year-old man, a 93 yo neighbour"}],
    }
    scrubbed = deidentify([age], 5, TODAY).resources[0]
    assert scrubbed["valueQuantity"]["value"] == 90
    assert scrubbed["valueQuantity"]["comparator"] == ">="
    assert "97" not in dumped(scrubbed)
    assert "93" not in dumped(scrubbed)


def test_ids_and_references_share_placeholders() -> None:
    out = deidentify(record(), 3, TODAY)
    pid = out.resources[0]["id"]
    assert pid.startswith("[[RES-")
    assert out.resources[1]["subject"]["reference"] == f"Patient/{pid}"
    assert out.reid[pid] == PATIENT_ID
    assert "display" not in dumped(out.resources[1]["subject"]) or "[[NAME-" in dumped(
        out.resources[1]["subject"]
    )


def test_codes_and_clinical_content_are_kept() -> None:
    out = deidentify(record(), 3, TODAY)
    obs = out.resources[2]
    assert obs["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "8867-4",
        "display": "Heart rate",
    }
    assert obs["valueQuantity"]["value"] == 88
    assert out.resources[3]["code"]["text"] == "Type 2 diabetes mellitus"


def test_reidentify_restores_and_refuses_unknown_placeholders() -> None:
    out = deidentify(record(), 3, TODAY)
    name = next(p for p, v in out.reid.items() if v == "Zebediah Quillfeather")
    assert reidentify_text(f"{name} is stable.", out.reid) == "Zebediah Quillfeather is stable."
    for forged in ("[[NAME-999]] is stable", "see [[NAME-1]", "[[name 1]]"):
        with pytest.raises(UnknownPlaceholder):
            reidentify_text(forged, out.reid)


def test_the_record_cannot_forge_a_placeholder() -> None:
    note = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "valueString": "[[NAME-1]] wrote this",
    }
    out = deidentify([note], 2, TODAY)
    assert "[[NAME-1]]" not in dumped(out.resources)


def test_answer_dates_are_moved_back() -> None:
    from healthstack.deid.text import unshift_dates

    out = deidentify(record(), -45, TODAY)
    sent = out.resources[1]["period"]["end"]
    assert unshift_dates(f"discharged {sent}", out.shift_days) == f"discharged {DATES['end']}"


def test_coding_displays_lose_only_the_records_values() -> None:
    vaccine = {
        "resourceType": "Immunization",
        "status": "completed",
        "vaccineCode": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/sid/cvx",
                    "code": "213",
                    "display": "COVID-19 vaccine for Quillfeather",
                }
            ],
            "text": "COVID-19 vaccine",
        },
    }
    out = deidentify([patient(), vaccine], 3, TODAY).resources[1]["vaccineCode"]
    assert out["coding"][0]["display"].startswith("COVID-19 vaccine for [[NAME-")
    assert "COVID-19" not in out["text"]  # free text: identifier-shaped tokens go


def test_patterns_catch_identifiers_the_record_does_not_list() -> None:
    note = (
        "Call 212-555-0147 or j.doe@mail.example, see http://x.example/p?id=9 from 10.0.0.8 "
        "or fe80::1ff:fe23:4567:890a; SSN 987-65-4321, zip 10027, badge AB12CD34, "
        "Mrs. Eleanor Rigby visited on 04/05/2023."
    )
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "note"},
        "valueString": note,
    }
    text = deidentify([obs], 10, TODAY).resources[0]["valueString"]
    for value in (
        "212-555-0147",
        "j.doe@mail.example",
        "http://x.example",
        "10.0.0.8",
        "fe80::1ff",
        "987-65-4321",
        "10027",
        "AB12CD34",
        "Eleanor",
        "04/05/2023",
    ):
        assert value not in text
    for kind in ("PHONE", "EMAIL", "URL", "IP", "SSN", "ID", "NAME"):
        assert f"[[{kind}-1]]" in text
    assert "2023-04-15" in text  # the US date, shifted like the others


def test_organisation_names_and_attachments() -> None:
    org = {"resourceType": "Organization", "id": "org-1", "name": "Quill Family Bakery"}
    letter = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "employer"},
        "valueString": "Works at Quill Family Bakery.",
    }
    out = deidentify([org, letter, *record()], 5, TODAY).resources
    assert out[0]["name"].startswith("[[ORG-")
    assert out[1]["valueString"] == f"Works at {out[0]['name']}."
    attachment = out[-1]["content"][0]["attachment"]
    assert set(attachment) == {"contentType", "title"}
