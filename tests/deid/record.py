"""A patient record carrying an identifier of every Safe Harbor class in every place FHIR holds one.

``IDENTIFIERS`` lists each value that must never leave the service; ``DATES`` the dates whose
intervals must survive the shift. Shared by the unit tests and the live $summarize tests.
"""

from __future__ import annotations

from typing import Any

PATIENT_ID = "mrn-4471882"
NAMES = ["Zebediah", "Quillfeather", "Zebediah Quillfeather", "Marguerite Okonkwo-Vance"]
IDENTIFIERS = [
    *NAMES,
    "Okonkwo-Vance",
    PATIENT_ID,
    "4471882",
    "MRN-88213",  # MRN in identifier and free text
    "123-45-6789",  # SSN
    "HP-55120934",  # health plan number
    "ACCT-7731902",  # account number
    "D1234-56789",  # licence
    "1HGCM82633A004352",  # vehicle identification number
    "SN-99AX7731",  # device serial
    "(555) 867-5309",
    "555-201-7788",  # fax
    "zeb.quill@example.org",
    "https://zebquill.example.org/home",
    "192.168.44.17",
    "2001:db8::ff00:42:8329",
    "42 Wallaby Way",
    "Springfield Heights",
    "90210",
    "Lincoln County",
    "FP-7781-BIO",  # biometric identifier
    "http://photos.example.org/zq.jpg",
    "iVBORw0KGgoAAAANSUhEUg",  # photo bytes
    "enc-5530921",
    "obs-8812001",
    "1987-06-15",
    "2024-03-01",
    "2024-03-11",
    "June 15",
    "Hortensia Blackwood",
    "03/01/2024",  # a US-style date in a note  # a name the record holds only in a note, after a title
]
DATES = {"birth": "1987-06-15", "start": "2024-03-01T09:30:00Z", "end": "2024-03-11"}


def record() -> list[dict[str, Any]]:
    return [patient(), encounter(), observation(), condition(), device(), document()]


def patient() -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">Zebediah Quillfeather, '
            "SSN 123-45-6789</div>",
        },
        "identifier": [
            {"system": "http://hospital.example.org/mrn", "value": "MRN-88213"},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "123-45-6789"},
            {"system": "http://plan.example.org", "value": "HP-55120934"},
            {"system": "http://bank.example.org", "value": "ACCT-7731902"},
            {"system": "http://dmv.example.org/licence", "value": "D1234-56789"},
            {"system": "http://dmv.example.org/vin", "value": "1HGCM82633A004352"},
            {"system": "http://bio.example.org/fingerprint", "value": "FP-7781-BIO"},
        ],
        "name": [{"use": "official", "family": "Quillfeather", "given": ["Zebediah"]}],
        "telecom": [
            {"system": "phone", "value": "(555) 867-5309"},
            {"system": "fax", "value": "555-201-7788"},
            {"system": "email", "value": "zeb.quill@example.org"},
            {"system": "url", "value": "https://zebquill.example.org/home"},
        ],
        "gender": "male",
        "birthDate": "1987-06-15",
        "address": [
            {
                "line": ["42 Wallaby Way"],
                "city": "Springfield Heights",
                "district": "Lincoln County",
                "state": "CA",
                "postalCode": "90210",
            }
        ],
        "photo": [
            {
                "contentType": "image/jpeg",
                "url": "http://photos.example.org/zq.jpg",
                "data": "iVBORw0KGgoAAAANSUhEUg==",
            }
        ],
        "contact": [
            {
                "name": {"family": "Okonkwo-Vance", "given": ["Marguerite"]},
                "telecom": [{"system": "phone", "value": "555-201-7788"}],
            }
        ],
    }


def encounter() -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "id": "enc-5530921",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": f"Patient/{PATIENT_ID}", "display": "Zebediah Quillfeather"},
        "period": {"start": DATES["start"], "end": DATES["end"]},
    }


def observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "obs-8812001",
        "status": "final",
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
            "text": "Heart rate",
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "encounter": {"reference": "Encounter/enc-5530921"},
        "effectiveDateTime": "2024-03-02T08:00:00Z",
        "valueQuantity": {
            "value": 88,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
        "note": [
            {
                "text": "Zebediah said his wife Marguerite Okonkwo-Vance can be reached at "
                "(555) 867-5309 or zeb.quill@example.org; logged in from "
                "192.168.44.17 and 2001:db8::ff00:42:8329. Seen 2024-03-01, "
                "birthday June 15. MRN-88213, plan HP-55120934."
            }
        ],
    }


def condition() -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": "cond-1",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "code": {"text": "Type 2 diabetes mellitus"},
        "onsetDateTime": "2024-03-01",
        "note": [
            {
                "text": "Lives at 42 Wallaby Way, Springfield Heights 90210; "
                "drives car VIN 1HGCM82633A004352; licence D1234-56789. "
                "Dr. Hortensia Blackwood referred. Visit https://zebquill.example.org/home"
            }
        ],
    }


def device() -> dict[str, Any]:
    return {
        "resourceType": "Device",
        "id": "dev-1",
        "patient": {"reference": f"Patient/{PATIENT_ID}"},
        "serialNumber": "SN-99AX7731",
        "udiCarrier": [{"deviceIdentifier": "SN-99AX7731"}],
        "note": [{"text": "Pump SN-99AX7731 fitted 03/01/2024 for Quillfeather."}],
    }


def document() -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "id": "doc-1",
        "status": "current",
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "description": "Discharge letter for Zebediah (ACCT-7731902)",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain",
                    "url": "http://photos.example.org/zq.jpg",
                    "title": "Letter to Quillfeather",
                }
            }
        ],
    }


def note(text: str) -> dict[str, Any]:
    """An Observation whose value is free text."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "note"},
        "valueString": text,
    }
