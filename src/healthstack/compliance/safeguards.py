"""45 CFR 164.312 (technical safeguards) -> the mechanism that meets each -> the tests proving it.

One row per standard and implementation specification. ``tests`` are pytest node ids
(``path::function``); ``tests/compliance/test_safeguards.py`` checks that each one exists, so a
renamed test cannot leave the report pointing at nothing. A safeguard met only in part says so
in ``gap``: the report shows gaps, it never hides them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Safeguard:
    cite: str  # e.g. "164.312(a)(2)(i)"
    title: str
    kind: str  # standard | required | addressable
    mechanism: str  # one sentence
    doc: str  # repository-relative link, with anchor
    tests: tuple[str, ...]
    evidence: tuple[str, ...] = ()  # keys of live evidence (evidence.py) that bear on it
    gap: str | None = None


SAFEGUARDS: tuple[Safeguard, ...] = (
    Safeguard(
        "164.312(a)(1)",
        "Access control",
        "standard",
        "Every FHIR interaction is authorized from SMART scopes and the patient compartment "
        "before it runs; reading the audit trail needs a scope naming AuditEvent.",
        "docs/security.md#authorization-164312a1",
        (
            "tests/security/test_authz.py::test_require_matrix",
            "tests/security/test_authz.py::test_patient_context_confines_even_user_scopes",
            "tests/security/test_access_matrix.py::test_patient_searches_never_reach_other_patients",
        ),
    ),
    Safeguard(
        "164.312(a)(2)(i)",
        "Unique user identification",
        "required",
        "Every request carries a verified token whose subject is written into each audit record.",
        "docs/security.md#authentication-164312d",
        (
            "tests/security/test_jwks.py::test_claims_are_checked",
            "tests/security/test_audit_completeness.py::test_every_request_has_an_audit_record",
        ),
    ),
    Safeguard(
        "164.312(a)(2)(ii)",
        "Emergency access procedure",
        "required",
        "Break-glass: a permitted token plus a written reason widens reads only; every use is "
        "flagged in the trail, counted in metrics and queued for review in the auditor console.",
        "docs/security.md#emergency-access-break-glass-164312a2ii",
        (
            "tests/security/test_middleware.py::test_break_glass_needs_a_reason",
            "tests/security/test_authz.py::test_break_glass_widens_reads_only_and_lifts_the_compartment",
            "tests/security/test_audit_completeness.py::test_break_glass_is_flagged_and_counted",
            "tests/console/test_console.py::test_break_glass_review_is_sealed_audited_and_final",
        ),
        ("break_glass",),
    ),
    Safeguard(
        "164.312(a)(2)(iii)",
        "Automatic logoff",
        "addressable",
        "Access tokens expire and are refused after expiry; SMART refresh never extends the "
        "consented session.",
        "docs/smart.md",
        (
            "tests/security/test_jwks.py::test_claims_are_checked",
            "tests/auth/test_discovery.py::test_refreshing_never_extends_the_session",
        ),
        gap="Session length of a client application (idle logoff on a workstation) is the "
        "client's duty; the service only bounds token lifetime.",
    ),
    Safeguard(
        "164.312(a)(2)(iv)",
        "Encryption and decryption",
        "addressable",
        "Every PHI field is AES-GCM encrypted at rest, bound to its row; keys rotate online.",
        "docs/fhir.md#phi-at-rest-cryptopy",
        (
            "tests/fhir/test_fhir_crypto.py::test_ciphertext_is_bound_to_its_row",
            "tests/fhir/test_fhir_crypto.py::test_old_keys_decrypt_and_search_until_removed",
            "tests/fhir/test_fhir_keys.py::test_rotation_under_concurrent_writes_then_no_plaintext_in_dump",
        ),
        ("keys",),
    ),
    Safeguard(
        "164.312(b)",
        "Audit controls",
        "standard",
        "Every PHI access appends a hash-chained audit record before the response; auditors "
        "search it via the AuditEvent API and the /console.",
        "docs/audit.md",
        (
            "tests/security/test_audit_completeness.py::test_every_request_has_an_audit_record",
            "tests/security/test_audit_completeness.py::test_auditor_searches_the_trail",
            "tests/security/test_adversarial.py::test_phi_typed_into_urls_stays_out_of_the_audit_trail",
            "tests/console/test_console.py::test_trail_search_filters_pages_and_is_audited",
        ),
        ("audit", "anchor"),
    ),
    Safeguard(
        "164.312(c)(1)",
        "Integrity",
        "standard",
        "Clinical history and the audit trail are append-only for the service role; triggers "
        "refuse edits for everyone.",
        "docs/audit.md#who-can-change-what",
        (
            "tests/security/test_audit_store.py::test_app_role_cannot_edit_the_trail",
            "tests/security/test_audit_store.py::test_history_rows_are_append_only_for_the_service_role",
            "tests/security/test_audit_store.py::test_trigger_refuses_edits_even_for_superuser",
        ),
        ("audit",),
    ),
    Safeguard(
        "164.312(c)(2)",
        "Mechanism to authenticate electronic PHI",
        "addressable",
        "AES-GCM tags authenticate every stored field; `audit verify` recomputes every chain "
        "and checks it passes through signed anchors kept outside the database.",
        "docs/audit.md#healthstack-audit-verify",
        (
            "tests/fhir/test_fhir_crypto.py::test_ciphertext_is_bound_to_its_row",
            "tests/security/test_audit_store.py::test_verify_catches_superuser_tampering",
            "tests/commands/test_audit.py::test_anchor_catches_a_recomputed_chain",
        ),
        ("audit", "anchor"),
    ),
    Safeguard(
        "164.312(d)",
        "Person or entity authentication",
        "standard",
        "Bearer tokens are verified (signature by JWKS, issuer, audience, expiry); failures are "
        "401, audited and rate-limited.",
        "docs/security.md#authentication-164312d",
        (
            "tests/security/test_jwks.py::test_forged_key_with_a_known_kid_is_refused",
            "tests/security/test_middleware.py::test_refused_tokens_get_401_and_are_audited",
            "tests/security/test_auth_rate_limit.py::test_a_flood_of_bad_tokens_is_bounded_in_the_trail_and_refused",
        ),
    ),
    Safeguard(
        "164.312(e)(1)",
        "Transmission security",
        "standard",
        "Istio STRICT mTLS between workloads with deny-by-default authorization and network "
        "policies; `healthstack check` verifies the manifests.",
        "docs/deploy.md",
        (
            "tests/deploy/test_hardening.py::test_mesh_is_strict_and_deny_by_default",
            "tests/deploy/test_hardening.py::test_postgres_only_from_the_app",
        ),
        ("check",),
    ),
    Safeguard(
        "164.312(e)(2)(i)",
        "Integrity controls (in transit)",
        "addressable",
        "mTLS (authenticated encryption) on every in-mesh hop; the gateway terminates TLS.",
        "docs/deploy.md",
        ("tests/deploy/test_hardening.py::test_mesh_is_strict_and_deny_by_default",),
        ("check",),
        gap="TLS from the client to the ingress gateway is the cluster operator's certificate; "
        "no test here can observe it.",
    ),
    Safeguard(
        "164.312(e)(2)(ii)",
        "Encryption (in transit)",
        "addressable",
        "mTLS between workloads (STRICT PeerAuthentication); PostgreSQL reached only from the app.",
        "docs/deploy.md",
        (
            "tests/deploy/test_hardening.py::test_mesh_is_strict_and_deny_by_default",
            "tests/deploy/test_hardening.py::test_postgres_only_from_the_app",
        ),
        ("check",),
        gap="TLS from the client to the ingress gateway is the cluster operator's certificate; "
        "no test here can observe it.",
    ),
)
