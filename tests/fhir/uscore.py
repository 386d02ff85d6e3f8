"""A synthetic, US Core-shaped record per patient, as one transaction Bundle (issue 13).

Deterministic from a seed: the same patient index always gives the same values, so a test can
say exactly which resources each US Core search must return. Everything is fictional.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import Any

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
DR_CATEGORY = "http://terminology.hl7.org/CodeSystem/v2-0074"
MRN = "urn:oid:2.16.840.1.113883.19.5"
NPI = "http://hl7.org/fhir/sid/us-npi"
FAMILIES = ["Okafor", "Lindqvist", "Tanaka", "Moreau", "Castillo", "Nakamura", "Haddad", "Novak"]
GIVEN = ["Amara", "Bo", "Chiara", "Dmitri", "Esi", "Farid", "Greta", "Hiro", "Ines", "Jun"]
CONDITIONS = [("44054006", "Diabetes mellitus type 2"), ("38341003", "Hypertension"),
              ("195967001", "Asthma")]  # fmt: skip
LABS = [("2339-0", "Glucose", "mg/dL"), ("718-7", "Hemoglobin", "g/dL")]
MEDS = [("860975", "metformin 500 MG"), ("197361", "amlodipine 5 MG")]


@dataclass
class Record:
    """One patient's Bundle and what each search should find (resource type -> full URLs)."""

    index: int
    mrn: str
    family: str
    given: str
    birth_date: str
    gender: str
    bundle: dict[str, Any]
    by_type: dict[str, list[str]] = field(default_factory=dict)  # type -> fullUrls in the bundle
    facts: dict[str, Any] = field(default_factory=dict)


def _urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding], **({"text": display} if display else {})}


def record(index: int, run: str) -> Record:
    rng = random.Random(index)
    family = f"{FAMILIES[index % len(FAMILIES)]}{run}{chr(97 + index % 26)}"
    given = GIVEN[index % len(GIVEN)]
    birth = f"{1940 + rng.randrange(60)}-{1 + rng.randrange(12):02d}-{1 + rng.randrange(28):02d}"
    gender = ("female", "male")[index % 2]
    mrn = f"MRN-{run}-{index:05d}"
    entries: list[tuple[str, dict[str, Any]]] = []
    rec = Record(index, mrn, family, given, birth, gender, {})

    def add(resource: dict[str, Any]) -> str:
        url = _urn()
        entries.append((url, resource))
        rec.by_type.setdefault(resource["resourceType"], []).append(url)
        return url

    org = add({"resourceType": "Organization", "active": True, "name": f"Clinic {run} {index}",
               "identifier": [{"system": NPI, "value": f"{run}{index:04d}"}],
               "address": [{"city": "Springfield", "state": "IL"}]})  # fmt: skip
    doc = add({"resourceType": "Practitioner",
               "identifier": [{"system": NPI, "value": f"9{run}{index:04d}"}],
               "name": [{"family": f"Dr{family}", "given": ["Pat"]}]})  # fmt: skip
    patient = add({
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": family, "given": [given]}], "gender": gender, "birthDate": birth,
        "telecom": [{"system": "phone", "value": f"555-01{index:02d}"}],
        "address": [{"line": [f"{index} Elm St"], "city": "Springfield", "state": "IL",
                     "postalCode": "62701"}],
        "managingOrganization": {"reference": org},
    })  # fmt: skip
    subject = {"reference": patient}
    encounter = add({
        "resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "identifier": [{"system": "urn:enc", "value": f"E-{run}-{index}"}],
        "subject": subject, "participant": [{"individual": {"reference": doc}}],
        "period": {"start": f"2024-0{1 + index % 9}-10T09:00:00Z",
                   "end": f"2024-0{1 + index % 9}-10T10:00:00Z"},
    })  # fmt: skip
    code, text = CONDITIONS[index % len(CONDITIONS)]
    add({"resourceType": "Condition", "subject": subject, "encounter": {"reference": encounter},
         "clinicalStatus": _coding(COND_CLINICAL, "active"),
         "category": [_coding(COND_CATEGORY, "problem-list-item")],
         "code": _coding(SNOMED, code, text), "onsetDateTime": "2019-05-01"})  # fmt: skip
    rec.facts["condition"] = code
    lab_code, lab_text, unit = LABS[index % len(LABS)]
    lab = add({"resourceType": "Observation", "status": "final", "subject": subject,
               "category": [_coding(OBS_CATEGORY, "laboratory")],
               "code": _coding(LOINC, lab_code, lab_text),
               "effectiveDateTime": "2024-02-01T08:00:00Z",
               "valueQuantity": {"value": 5 + index, "unit": unit,
                                 "system": "http://unitsofmeasure.org", "code": unit}})  # fmt: skip
    rec.facts["lab"] = lab_code
    add({"resourceType": "Observation", "status": "final", "subject": subject,
         "category": [_coding(OBS_CATEGORY, "vital-signs")],
         "code": _coding(LOINC, "8867-4", "Heart rate"),
         "effectiveDateTime": "2024-02-01T08:05:00Z",
         "valueQuantity": {"value": 60 + index, "unit": "/min",
                           "system": "http://unitsofmeasure.org", "code": "/min"}})  # fmt: skip
    add({"resourceType": "DiagnosticReport", "status": "final", "subject": subject,
         "category": [_coding(DR_CATEGORY, "LAB")], "code": _coding(LOINC, "24323-8", "CMP"),
         "effectiveDateTime": "2024-02-01T08:00:00Z", "result": [{"reference": lab}]})  # fmt: skip
    med_code, med_text = MEDS[index % len(MEDS)]
    add({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
         "subject": subject, "requester": {"reference": doc},
         "medicationCodeableConcept": _coding(RXNORM, med_code, med_text),
         "authoredOn": "2024-02-02"})  # fmt: skip
    add({"resourceType": "AllergyIntolerance", "patient": subject,
         "clinicalStatus": _coding("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active"),
         "code": _coding(SNOMED, "227493005", "Cashew nuts")})  # fmt: skip
    add({"resourceType": "Immunization", "status": "completed", "patient": subject,
         "vaccineCode": _coding(CVX, "140", "Influenza"), "occurrenceDateTime": "2023-10-01"})  # fmt: skip
    add({"resourceType": "Procedure", "status": "completed", "subject": subject,
         "code": _coding(SNOMED, "80146002", "Appendectomy"), "performedDateTime": "2015-06-01"})  # fmt: skip
    add({"resourceType": "DocumentReference", "status": "current", "subject": subject,
         "type": _coding(LOINC, "34133-9", "Summary of episode note"),
         "category": [_coding("http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "clinical-note")],
         "date": "2024-02-03T12:00:00Z",
         "content": [{"attachment": {"contentType": "text/plain", "data": "Tm90ZQ=="}}]})  # fmt: skip
    rec.bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": url, "resource": resource,
         "request": {"method": "POST", "url": resource["resourceType"]}}
        for url, resource in entries]}  # fmt: skip
    return rec
