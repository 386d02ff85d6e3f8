"""Disclosure records (Bulk export, AI summaries) read back as AuditEvents an auditor's tools know."""

from __future__ import annotations

import orjson

from healthstack.fhir.audit_api import to_fhir


def _content(interaction: str) -> str:
    return orjson.dumps({
        "interaction": interaction, "outcome": "success", "subject": "exporter",
        "time": "2026-12-04T06:00:00+00:00", "resource_type": "Patient", "resource_id": "p1",
        "query": {"kind": "bulk-export", "export": "e1", "types": ["Observation"]},
    }).decode()  # fmt: skip


def test_a_disclosure_is_an_export_event_naming_its_patient() -> None:
    event = to_fhir(0, 7, _content("disclosure"))
    assert event["type"] == {"system": "http://dicom.nema.org/resources/ontology/DCM",
                             "code": "110106", "display": "Export"}  # fmt: skip
    assert event["action"] == "R"
    assert "subtype" not in event  # not a RESTful interaction
    assert event["entity"][0]["what"] == {"reference": "Patient/p1"}
    query = next(d for d in event["entity"][0]["detail"] if d["type"] == "query")
    assert orjson.loads(query["valueString"])["kind"] == "bulk-export"


def test_a_read_stays_a_restful_event() -> None:
    event = to_fhir(0, 8, _content("read"))
    assert event["type"]["code"] == "rest"
    assert event["subtype"][0]["code"] == "read"
