"""The CapabilityStatement: generated from the same tables the API runs on, so it cannot drift."""

from __future__ import annotations

from typing import Any

from healthstack import __version__
from healthstack.fhir import extract, ops, searchdefs

SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")
INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]
# Parameters Patient and Observation answer from their own columns, with their own semantics.
DOCS = {
    "family": "Word match, case- and accent-insensitive (blind index).",
    "given": "Word match, case- and accent-insensitive (blind index).",
    "name": "Word match on family, given, prefix, suffix or text; case/accent-insensitive.",
    "identifier": "system|value or value (exact, case-sensitive); system| alone not supported.",
    "birthdate": "eq, lt, gt, le, ge prefixes.",
    "date": "eq, lt, gt, le, ge prefixes; repeat for a range (date=ge..&date=lt..).",
    "subject": "Patient/id only.",
}
COLUMN_PARAMS = {"_id": "token", "_lastUpdated": "date"}


def _params(rtype: str) -> list[dict[str, Any]]:
    """Every parameter the server answers for ``rtype``: the definitions' (composite and special
    ones excepted, which the server refuses) plus the two column parameters."""
    out = [{"name": name, "type": kind} for name, kind in COLUMN_PARAMS.items()]
    for code, param in sorted(searchdefs.params_of(rtype).items()):
        if code in COLUMN_PARAMS or param.type == "special":
            continue
        entry: dict[str, Any] = {"name": code, "type": param.type,
                                 "definition": f"http://hl7.org/fhir/SearchParameter/{param.id}"}  # fmt: skip
        if rtype in extract.NATIVE and code in DOCS and code in extract.NATIVE[rtype]:
            entry["documentation"] = DOCS[code]
        out.append(entry)
    return out


BULK_DATA = "http://hl7.org/fhir/uv/bulkdata"


def _resource(rtype: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": rtype,
        "interaction": [{"code": code} for code in INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "multiple",
        "searchParam": _params(rtype),
        "searchInclude": ["*"],
        "searchRevInclude": ["*"],
    }
    entry["operation"] = [
        {
            "name": "validate",
            "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
        },
        {"name": "meta", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-meta"},
    ]
    if rtype == "Observation":
        entry["operation"] += [
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
        entry["operation"] += [
            {
                "name": "evaluate",
                "definition": "urn:healthstack:OperationDefinition/Patient-evaluate",
            },
            {
                "name": "everything",
                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
            },
            # De-identified AI summaries (docs/ai.md); scope user/Patient.$summarize.
            {
                "name": "deidentify",
                "definition": "urn:healthstack:OperationDefinition/Patient-deidentify",
            },
            {
                "name": "summarize",
                "definition": "urn:healthstack:OperationDefinition/Patient-summarize",
            },
            {"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/patient-export"},
        ]
    if rtype == "Group":
        entry["operation"] = [
            {"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/group-export"}
        ]
    return entry


# Served by healthstack.fhir.audit_api, mounted in the same router (auditor scopes only).
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


def capability_statement(base_url: str, oauth_uris: dict[str, Any] | None = None) -> dict[str, Any]:
    security: dict[str, Any] = {
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
    }
    if oauth_uris is not None:  # SMART App Launch: where apps get their tokens (docs/smart.md)
        security["extension"] = [oauth_uris]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-01-01",
        "kind": "instance",
        "software": {"name": "healthstack", "version": __version__},
        "implementation": {"description": "healthstack FHIR R4 server", "url": base_url},
        "instantiates": [f"{BULK_DATA}/CapabilityStatement/bulk-data"],
        "fhirVersion": "4.0.1",
        "format": ["json", "xml"],
        "rest": [
            {
                "mode": "server",
                "security": security,
                "resource": [*(_resource(t) for t in sorted(ops.TYPES)), AUDIT_EVENT],
                "interaction": [{"code": c} for c in SYSTEM_INTERACTIONS],
                # Bulk Data Access 2.0 (docs/bulk.md); Patient and Group list theirs above.
                "operation": [
                    {"name": "export", "definition": f"{BULK_DATA}/OperationDefinition/export"}
                ],
            }
        ],
    }
