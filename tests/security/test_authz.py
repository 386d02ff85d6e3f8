"""Scope parsing and authorization decisions (no database: pure functions over a Principal)."""

from __future__ import annotations

import pytest

from healthstack.core.outcome import FhirError
from healthstack.security import authz
from healthstack.security.audit import REDACTED, Withheld, redact_query
from healthstack.security.principal import Principal
from healthstack.security.scopes import parse_scope


def who(scopes: str, patient: str | None = None, reason: str | None = None) -> Principal:
    return Principal(subject="u1", scopes=frozenset(scopes.split()), patient=patient,
                     break_glass_reason=reason)  # fmt: skip


@pytest.mark.parametrize(
    ("scope", "letters"),
    [
        ("patient/Observation.rs", "rs"),
        ("user/Patient.cruds", "cruds"),
        ("system/*.rs", "rs"),
        ("user/Patient.read", "rs"),
        ("user/Patient.write", "cud"),
        ("user/Patient.*", "cruds"),
        ("user/Patient.c", "c"),
    ],
)
def test_scopes_parse(scope: str, letters: str) -> None:
    grant = parse_scope(scope)
    assert grant is not None
    assert grant.permissions == frozenset(letters)


@pytest.mark.parametrize(
    "scope",
    ["user/Patient.sr", "user/Patient.x", "admin/Patient.r", "user/Patient",
     "patient/*.rs?category=vital-signs", "user/Observation.rs?", "user/Observation.rs?category",
     "user/Observation.rs?category=", "openid", "user/Patient.rr", ""],
)  # fmt: skip
def test_malformed_or_unsupported_scopes_grant_nothing(scope: str) -> None:
    assert parse_scope(scope) is None


def test_a_granular_scope_narrows_reads_and_searches_only() -> None:
    scope = "user/Observation.rs?category=http://x.org/c|laboratory&status=final"
    grant = parse_scope(scope)
    assert grant is not None
    assert grant.query == (("category", "http://x.org/c|laboratory"), ("status", "final"))
    principal = who(scope)
    assert not authz.allowed(principal, "Observation", "read")  # not without applying the query
    assert authz.allowed(principal, "Observation", "read", granular=True)
    assert authz.restrictions(principal, "Observation", "search") == (grant.query,)
    for interaction in ("history", "operation", "history-type"):
        assert not authz.allowed(principal, "Observation", interaction, granular=True)
    # A scope without a query for the same type lifts the restriction.
    assert authz.restrictions(who(f"{scope} user/Observation.s"), "Observation", "search") is None


MATRIX = [
    # scopes, patient claim, type, interaction, allowed
    ("user/Patient.cruds", None, "Patient", "delete", True),
    ("user/Patient.rs", None, "Patient", "create", False),
    ("user/Patient.rs", None, "Observation", "read", False),
    ("user/Observation.read", None, "Observation", "search", True),
    ("user/Observation.read", None, "Observation", "history", True),
    ("user/Observation.read", None, "Observation", "operation", True),
    ("user/Observation.write", None, "Observation", "read", False),
    ("user/Observation.write", None, "Observation", "update", True),
    ("system/*.rs", None, "Observation", "search", True),
    ("system/*.rs", None, "AuditEvent", "search", False),  # auditing must be named
    ("system/*.cruds", None, "AuditEvent", "read", False),
    ("user/AuditEvent.rs", None, "AuditEvent", "search", True),
    ("user/AuditEvent.cruds", None, "AuditEvent", "create", False),  # append-only
    ("patient/Observation.rs", "p1", "Observation", "search", True),
    ("patient/Observation.rs", None, "Observation", "search", False),  # no context, no grant
    ("patient/*.rs", "p1", "AuditEvent", "read", False),
    ("patient/Patient.rs", "p1", "Observation", "read", False),
    ("openid fhirUser", None, "Patient", "read", False),
]


@pytest.mark.parametrize(("scopes", "patient", "rtype", "interaction", "expected"), MATRIX)
def test_require_matrix(scopes: str, patient: str | None, rtype: str, interaction: str,
                        expected: bool) -> None:  # fmt: skip
    principal = who(scopes, patient)
    assert authz.allowed(principal, rtype, interaction) is expected
    if expected:
        authz.require(principal, rtype, interaction)
    else:
        with pytest.raises(FhirError) as denied:
            authz.require(principal, rtype, interaction)
        assert denied.value.status == 403


def test_patient_context_confines_even_user_scopes() -> None:
    principal = who("user/Patient.rs patient/Observation.rs", patient="p1")
    assert authz.patient_scope(principal) == "p1"
    for interaction in ("read", "create", "update"):
        assert authz.compartment_permits(principal, ["p1"], interaction)
        assert authz.compartment_permits(principal, ["p2", "p1"], interaction)
        assert not authz.compartment_permits(principal, ["p2"], interaction)
        assert not authz.compartment_permits(principal, [], interaction)


def test_unconfined_principal_sees_everything() -> None:
    principal = who("user/Patient.rs")
    assert authz.patient_scope(principal) is None
    assert authz.compartment_permits(principal, ["anyone"], "update")
    assert authz.compartment_permits(principal, [], "update")


def test_break_glass_widens_reads_only_and_lifts_the_compartment() -> None:
    plain = who("patient/Observation.rs break-glass", patient="p1")
    assert authz.has_break_glass_permission(plain)
    assert not authz.allowed(plain, "Patient", "read")
    glass = who("patient/Observation.rs break-glass", patient="p1", reason="unconscious in ER")
    assert authz.patient_scope(glass) is None
    for write in ("create", "update", "delete"):  # emergency access never widens writes
        assert authz.patient_scope(glass, write) == "p1"
        assert not authz.compartment_permits(glass, ["p2"], write)
    assert authz.allowed(glass, "Patient", "read")
    assert authz.allowed(glass, "Observation", "search")
    assert not authz.allowed(glass, "Patient", "update")
    assert not authz.allowed(glass, "AuditEvent", "search")


def test_hidden_is_a_plain_not_found() -> None:
    error = authz.hidden("Patient", "p2")
    assert error.status == 404
    assert error.issues[0]["code"] == "not-found"


def test_redact_query_keeps_in_clear_only_values_that_cannot_be_phi() -> None:
    uuid = "0b6c5f8e-2f65-4a51-9c1e-3f1f7d0e9a11"
    params = {
        "name": ["Smith"], "birthdate": ["ge1970-01-01"], "identifier": ["urn:mrn|12345"],
        "_count": ["10"], "status": ["final"], "code": ["Smith"], "date": ["ge2024-01-01"],
        "gender": ["female"], "code:text": ["Smith"], "_id": ["MRN-12345"],
        "patient": [f"Patient/{uuid}"], "subject": ["Patient/Jane-Doe"], "_sort": ["-date"],
    }  # fmt: skip
    redacted = redact_query("Patient", params)
    clear = {"_count": ["10"], "patient": [f"Patient/{uuid}"], "_sort": ["-date"]}
    for name, values in params.items():
        expected = clear.get(name, [Withheld(v) for v in values])
        assert redacted[name] == expected, name
    assert repr(Withheld("Smith")) == REDACTED  # never printed in clear by accident
