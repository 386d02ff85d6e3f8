"""The values a record identifies its patient by, gathered from the record itself.

Free text repeats them ("Mr Smith called from 555-..."): every value found in a structured
identifying element is then removed from every string, whatever its shape.
"""

from __future__ import annotations

from typing import Any

MIN_LENGTH = 2  # a one-letter initial would erase every "a" in the notes
PERSON_TYPES = ("Patient/", "Practitioner/", "RelatedPerson/", "Person/")
_TELECOM_KIND = {
    "phone": "PHONE",
    "fax": "PHONE",
    "sms": "PHONE",
    "email": "EMAIL",
    "url": "URL",
    "pager": "PHONE",
}
_DEVICE_KEYS = (
    "serialNumber",
    "lotNumber",
    "distinctIdentifier",
    "deviceIdentifier",
    "carrierHRF",
    "carrierAIDC",
)
_ADDRESS_KEYS = ("city", "district", "postalCode", "text")


def known_values(resources: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(kind, value) for every identifying value, longest first (whole names before parts)."""
    found: dict[str, str] = {}
    for resource in resources:
        rid = resource.get("id")
        if isinstance(rid, str):
            found.setdefault(rid, "RES")
        _walk(resource, "", found)
    values = [(kind, value) for value, kind in found.items() if len(value.strip()) >= MIN_LENGTH]
    return sorted(values, key=lambda kv: (-len(kv[1]), kv[1]))


def _walk(value: Any, key: str, found: dict[str, str]) -> None:
    if isinstance(value, list):
        for item in value:
            _walk(item, key, found)
    elif isinstance(value, dict):
        _element(value, key, found)
        for k, v in value.items():
            _walk(v, k, found)


def _element(value: dict[str, Any], key: str, found: dict[str, str]) -> None:
    """One element's identifying values, by where FHIR puts them."""

    def add(kind: str, item: Any) -> None:
        if isinstance(item, str) and item.strip():
            found.setdefault(item.strip(), kind)

    if key == "name" and any(k in value for k in ("family", "given", "text")):
        given = [g for g in value.get("given", []) if isinstance(g, str)]
        for part in (*given, value.get("family"), value.get("text")):
            add("NAME", part)
        add("NAME", " ".join([*given, str(value.get("family", ""))]).strip())
    elif key in ("identifier", "masterIdentifier"):
        add("ID", value.get("value"))
    elif key == "telecom":
        add(_TELECOM_KIND.get(str(value.get("system")), "PHONE"), value.get("value"))
    elif key == "address" or key.endswith("Address"):
        for part in (*value.get("line", []), *(value.get(k) for k in _ADDRESS_KEYS)):
            add("ADDRESS", part)
    if isinstance(value.get("reference"), str):
        reference = value["reference"]
        add("RES", reference.rpartition("/")[2])
        if reference.startswith(PERSON_TYPES):
            add("NAME", value.get("display"))
    for k in _DEVICE_KEYS:
        add("DEVICE", value.get(k))
    if value.get("resourceType") in ("Organization", "Location"):
        add("ORG", value.get("name"))
        for alias in value.get("alias", []):
            add("ORG", alias)
    if "contentType" in value or "data" in value:  # an Attachment
        add("URL", value.get("url"))
