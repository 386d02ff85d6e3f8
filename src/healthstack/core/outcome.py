"""OperationOutcome responses: the one error shape of the FHIR API."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from starlette.responses import Response

FHIR_JSON = "application/fhir+json"


class FhirResponse(Response):
    media_type = FHIR_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def issue(
    code: str, diagnostics: str, *, severity: str = "error", expression: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        entry["expression"] = [expression]
    return entry


def outcome_body(issues: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


def operation_outcome(
    status: int,
    code: str,
    diagnostics: str,
    *,
    expression: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> FhirResponse:
    """A single-issue OperationOutcome. ``diagnostics`` must never carry PHI values."""
    body = outcome_body([issue(code, diagnostics, expression=expression)])
    return FhirResponse(body, status_code=status, headers=headers)


class FhirError(Exception):
    """Raised inside handlers; the API turns it into an OperationOutcome response."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        *,
        expression: str | None = None,
        issues: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.issues = issues or [issue(code, diagnostics, expression=expression)]
        self.headers = dict(headers or {})

    def response(self) -> FhirResponse:
        return FhirResponse(
            outcome_body(self.issues), status_code=self.status, headers=self.headers
        )


# Routing errors (unknown path, wrong method) in the same shape as every other error. Starlette
# raises HTTPException for them inside an application; these are the answers.
HTTP_CODES = {404: "not-found", 405: "not-supported", 413: "too-long", 400: "invalid"}


def http_error_response(status: int, headers: Mapping[str, str] | None = None) -> FhirResponse:
    if status == 404:
        text = "no such endpoint; see /api/fhir/metadata for what this server offers"
    elif status == 405:
        allowed = (headers or {}).get("Allow", "")
        text = f"this endpoint does not support that method (allowed: {allowed})"
    else:
        text = "the request could not be handled"
    return operation_outcome(status, HTTP_CODES.get(status, "processing"), text, headers=headers)


UNEXPECTED = "unexpected error; it was logged and audited, and nothing was stored"
