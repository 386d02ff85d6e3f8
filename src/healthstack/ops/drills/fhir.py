"""The FHIR requests the drills send: reads, searches, conditional creates, and their checks.

Writes are conditional creates (``If-None-Exist`` on a unique identifier) so that any retry, by a
client or by the mesh, can never duplicate a record; the crash drill proves it by searching after.
When the FHIR API is not mounted (an early tree), the drills fall back to the endpoints that exist
and say so in their report.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from healthstack.security.tokens import mint_dev_token

FHIR_JSON = "application/fhir+json"
SYSTEM = "urn:healthstack:drill"
SCOPES = "system/Patient.cruds system/Observation.cruds"
OK = frozenset({200, 201})
# The drills' own requests (probes, creates, the reads that verify) share one client: httpx.get()
# builds a client per call and each loads the system CA bundle (~30 ms of CPU: 62 s of one
# db-outage drill under cProfile). Plain HTTP on loopback: no proxy settings from the environment.
# A new connection per request, as before: a pooled one the proxy or a killed replica closed
# could fail a probe or a verifying read for a reason that is not the service's.
LOOPBACK = httpx.Client(trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    expect: frozenset[int] = OK
    ack: Callable[[httpx.Response], str] | None = None

    def check(self, response: httpx.Response) -> str | None:
        if response.status_code in self.expect:
            return None
        return f"http:{response.status_code}"


def answer_reason(response: httpx.Response) -> str:
    """Who refused and why, for the report: the OperationOutcome's text or the proxy's title.

    The drill's data is synthetic and the service's diagnostics never carry PHI; a 503 from the
    service (``database unavailable``) and one from the proxy (``No server is available``) need
    different fixes, so a failure that only says ``http:503`` cannot be diagnosed from CI.
    """
    try:
        issue = response.json()["issue"][0]
        return str(issue.get("diagnostics") or issue.get("code") or "?")[:120]
    except (ValueError, LookupError, AttributeError, TypeError):  # not an OperationOutcome
        text = re.sub(r"<[^>]+>", " ", response.text[:2000])
        return " ".join(text.split())[:120] or "(empty body)"


@dataclass
class FhirClient:
    base_url: str
    token: str
    timeout: float = 10.0
    api: bool = True  # False: the FHIR API is not mounted in this tree

    @classmethod
    def for_secret(cls, base_url: str, secret_key_base: str, timeout: float = 10.0) -> FhirClient:
        token = mint_dev_token(secret_key_base, "drill-load", SCOPES, ttl_seconds=3600)
        return cls(base_url, token, timeout)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Accept": FHIR_JSON}

    def detect(self) -> bool:
        """Is the FHIR API mounted? (A POST answered 404/405 by the router means no.)"""
        value = f"probe-{random.getrandbits(64):x}"
        response = LOOPBACK.post(
            f"{self.base_url}/api/fhir/Patient", **self._create(value), timeout=self.timeout
        )
        self.api = response.status_code not in (404, 405)
        return self.api

    def _create(self, value: str, conditional: bool = True) -> dict[str, Any]:
        headers = {**self.auth, "Content-Type": FHIR_JSON}
        if conditional:  # only the crash drill's negative control sends plain creates
            # A query string: the value must be percent-encoded ('+' would mean a space).
            headers["If-None-Exist"] = urlencode({"identifier": f"{SYSTEM}|{value}"})
        return {"headers": headers, "content": orjson.dumps(patient(value))}

    def create(self, value: str) -> str:
        response = LOOPBACK.post(
            f"{self.base_url}/api/fhir/Patient", **self._create(value), timeout=self.timeout
        )
        response.raise_for_status()
        return resource_id(response)

    def count(self, value: str) -> int:
        """How many Patients carry the drill identifier ``value`` (the duplicate check)."""
        response = LOOPBACK.get(
            f"{self.base_url}/api/fhir/Patient",
            headers=self.auth,
            params={"identifier": f"{SYSTEM}|{value}"},
            timeout=self.timeout,
        )
        response.raise_for_status()
        return len(response.json().get("entry", []))

    def read(self, rid: str) -> int:
        return LOOPBACK.get(
            f"{self.base_url}/api/fhir/Patient/{rid}", headers=self.auth, timeout=self.timeout
        ).status_code

    # Operations for the load generator ---------------------------------------------------------

    def op_read(self, rid: str) -> Operation:
        return Operation("read", "GET", f"/api/fhir/Patient/{rid}", self.auth)

    def op_search(self, value: str) -> Operation:
        path = "/api/fhir/Patient?" + urlencode({"identifier": f"{SYSTEM}|{value}"})
        return Operation("search", "GET", path, self.auth)

    def op_create(self, value: str, conditional: bool = True) -> Operation:
        args = self._create(value, conditional)
        return Operation(
            "create", "POST", "/api/fhir/Patient", args["headers"], args["content"], ack=resource_id
        )

    def op_fallback(self, rng: random.Random) -> Operation:
        # Without the API: the endpoints that exist (capability statement and liveness).
        if rng.random() < 0.5:
            return Operation("metadata", "GET", "/api/fhir/metadata", self.auth)
        return Operation("liveness", "GET", "/health")


def patient(value: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYSTEM, "value": value}],
        "name": [{"family": "Drill", "given": ["Load"]}],
        "gender": "unknown",
    }


def resource_id(response: httpx.Response) -> str:
    location = str(
        response.headers.get("location") or response.headers.get("content-location") or ""
    )
    if location:
        parts = location.rstrip("/").split("/")
        # .../Patient/<id>/_history/<v> or .../Patient/<id>
        return parts[-3] if len(parts) >= 3 and parts[-2] == "_history" else parts[-1]
    body: dict[str, Any] = response.json()
    return str(body["id"])


def mixed_picker(
    client: FhirClient, ids: list[str], values: list[str], writes: float = 0.2
) -> Callable[[random.Random], Operation]:
    """Reads 40%, searches 40%, conditional creates ``writes`` (a fifth of them repeats)."""

    def pick(rng: random.Random) -> Operation:
        if not client.api:
            return client.op_fallback(rng)
        roll = rng.random()
        if roll < writes:
            repeat = rng.random() < 0.2 and values
            return client.op_create(rng.choice(values) if repeat else f"{rng.getrandbits(96):x}")
        if roll < writes + (1 - writes) / 2:
            return client.op_read(rng.choice(ids))
        return client.op_search(rng.choice(values))

    return pick


def write_picker(client: FhirClient) -> Callable[[random.Random], Operation]:
    """Only conditional creates of fresh identifiers (the database-outage drill)."""
    return lambda rng: client.op_create(f"{rng.getrandbits(96):x}")
