"""The CapabilityStatement: generated from the same tables the API runs on, so it cannot drift."""

from __future__ import annotations

from typing import Any

from healthstack import __version__
from healthstack.fhir import search

INTERACTIONS = [
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]
PARAM_TYPES = {
    "_id": "token",
    "_lastUpdated": "date",
    "identifier": "token",
    "family": "string",
    "given": "string",
    "name": "string",
    "birthdate": "date",
    "gender": "token",
    "patient": "reference",
    "subject": "reference",
    "code": "token",
    "category": "token",
    "date": "date",
}
DOCS = {
    "family": "Exact word match, case- and accent-insensitive (blind index); no prefix matching.",
    "given": "Exact word match, case- and accent-insensitive (blind index); no prefix matching.",
    "name": "Exact word match on family, given, prefix, suffix or text; case/accent-insensitive.",
    "identifier": "system|value or value (exact, case-sensitive); system| alone not supported.",
    "birthdate": "eq, lt, gt, le, ge prefixes.",
    "date": "eq, lt, gt, le, ge prefixes; repeat for a range (date=ge..&date=lt..).",
    "subject": "Patient/id only.",
}


def _params(rtype: str) -> list[dict[str, Any]]:
    out = []
    for name in search.PARAMS[rtype]:
        if name in PARAM_TYPES:
            param = {"name": name, "type": PARAM_TYPES[name]}
            if name in DOCS:
                param["documentation"] = DOCS[name]
            out.append(param)
    return out


def _resource(rtype: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": rtype,
        "interaction": [{"code": code} for code in INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": True,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": _params(rtype),
    }
    if rtype == "Observation":
        entry["operation"] = [
            {
                "name": "lastn",
                "definition": "http://hl7.org/fhir/OperationDefinition/Observation-lastn",
            },
            {
                "name": "stats",
                "definition": "http://hl7.org/fhir/OperationDefinition/Observation-stats",
            },
        ]
    if rtype == "Patient":
        # WASM plugins (docs/plugins.md): POST Patient/{id}/$evaluate?plugin=NAME.
        entry["operation"] = [
            {
                "name": "evaluate",
                "definition": "urn:healthstack:OperationDefinition/Patient-evaluate",
            }
        ]
    return entry


# Served by healthstack.security.audit_api, mounted in the same router (auditor scopes only).
AUDIT_EVENT: dict[str, Any] = {
    "type": "AuditEvent",
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "documentation": "The audit trail, read-only; needs a scope naming AuditEvent.",
    "searchParam": [
        {"name": "date", "type": "date"},
        {"name": "agent", "type": "reference"},
        {"name": "entity", "type": "reference"},
        {"name": "outcome", "type": "token"},
    ],
}


def capability_statement(base_url: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": {"name": "healthstack", "version": __version__},
        "implementation": {"description": "healthstack FHIR R4 server", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": "OAuth2 bearer tokens with SMART v2 scopes.",
                },
                "resource": [*(_resource(t) for t in ("Patient", "Observation")), AUDIT_EVENT],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }
