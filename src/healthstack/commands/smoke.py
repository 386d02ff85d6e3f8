"""``healthstack smoke``: after an apply, prove the deployed service works end to end.

Health and readiness, the capability statement, an authenticated round trip (create, read and
delete a synthetic Patient that carries no PHI) and the audit trail recording it. The token comes
from the identity provider (production accepts no other): ``HEALTHSTACK_SMOKE_TOKEN`` or
``--token-file``, with scopes ``user/Patient.cruds user/AuditEvent.rs``. Exit 0 when every step
passes, 1 at the first failure, with the step named and never a response body (it could hold PHI).
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from healthstack.errors import HealthstackError

TOKEN_ENV = "HEALTHSTACK_SMOKE_TOKEN"  # noqa: S105 (the variable's name, not a token)
SYSTEM = "urn:healthstack:smoke"
FHIR_JSON = "application/fhir+json"


class SmokeFailure(Exception):
    """One step failed; the message names it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", required=True,
                        help="the service's public URL, e.g. https://healthcare.example.com")  # fmt: skip
    parser.add_argument("--token-file", type=Path,
                        help=f"file holding the bearer token (default: ${TOKEN_ENV})")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--ca-bundle", type=Path, help="CA bundle for a private TLS certificate")


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            token = args.token_file.read_text("utf-8").strip()
        except OSError as exc:
            raise HealthstackError(f"--token-file {args.token_file}: {exc.strerror}") from None
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    token = str(token)
    if not token:
        raise HealthstackError(f"no token: set {TOKEN_ENV} or pass --token-file")
    return token


def _expect(response: httpx.Response, step: str, *codes: int) -> dict[str, Any]:
    if response.status_code not in codes:
        raise SmokeFailure(f"{step}: HTTP {response.status_code}, expected {codes}")
    if not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        raise SmokeFailure(f"{step}: response is not JSON") from None
    return body if isinstance(body, dict) else {}


def _health(client: httpx.Client) -> None:
    _expect(client.get("/health"), "liveness /health", 200)
    _expect(client.get("/health/ready"), "readiness /health/ready", 200)
    meta = _expect(client.get("/api/fhir/metadata"), "capability statement", 200)
    if meta.get("resourceType") != "CapabilityStatement":
        raise SmokeFailure("capability statement: not a CapabilityStatement")


def _round_trip(client: httpx.Client, marker: str) -> str:
    patient = {"resourceType": "Patient", "active": False,
               "identifier": [{"system": SYSTEM, "value": marker}]}  # fmt: skip
    created = _expect(client.post("/api/fhir/Patient", json=patient), "create Patient", 201)
    pid = str(created.get("id", ""))
    if not pid:
        raise SmokeFailure("create Patient: no id in the response")
    read = _expect(client.get(f"/api/fhir/Patient/{pid}"), "read Patient", 200)
    if read.get("identifier") != patient["identifier"]:
        raise SmokeFailure("read Patient: not what was written")
    _expect(client.delete(f"/api/fhir/Patient/{pid}"), "delete Patient", 200, 204)
    return pid


def _audit(client: httpx.Client, pid: str) -> None:
    bundle = _expect(client.get("/api/fhir/AuditEvent", params={"entity": f"Patient/{pid}"}),
                     "audit trail", 200)  # fmt: skip
    actions = {
        str((e.get("resource") or {}).get("action", ""))
        for e in bundle.get("entry") or []
        if isinstance(e, dict)
    }
    missing = {"C", "R", "D"} - actions
    if missing:
        raise SmokeFailure(f"audit trail: no record of {', '.join(sorted(missing))} on the Patient")


def run(args: argparse.Namespace, report: Callable[[str], None] = print) -> int:
    token = _token(args)
    headers = {"Authorization": f"Bearer {token}", "Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
    verify: bool | str = str(args.ca_bundle) if args.ca_bundle else True
    base = str(args.base_url).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise HealthstackError(f"--base-url must start with http:// or https://, got {base!r}")
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=args.timeout, verify=verify) as c:
            _health(c)
            report("ok  health, readiness, capability statement")
            pid = _round_trip(c, uuid.uuid4().hex)
            report("ok  authenticated round trip (create, read, delete a synthetic Patient)")
            _audit(c, pid)
            report("ok  audit trail recorded create, read and delete")
    except SmokeFailure as exc:
        report(f"FAIL {exc}")
        return 1
    except httpx.HTTPError as exc:
        report(f"FAIL cannot reach {base} ({type(exc).__name__})")
        return 1
    return 0
