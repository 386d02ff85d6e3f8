"""Sample FHIR resources for drills, benchmarks and tests: one builder, so they agree."""

from __future__ import annotations

from typing import Any

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def vital_sign(
    patient_id: str, code: str, effective: str, value: float, unit: str = "/min"
) -> dict[str, Any]:
    """A vital-signs Observation (LOINC ``code``) with a UCUM quantity, for ``Patient/patient_id``."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": effective,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }
