"""Probes and metrics on a real service process, and readiness across a real database outage."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import TEST_SECRET_KEY_BASE, Database, Service, create_database, start_service

from healthstack.security.tokens import mint_dev_token
from healthstack.service.embedded_pg import EmbeddedPostgres


def test_liveness_and_readiness(live_service: Service) -> None:
    assert httpx.get(f"{live_service.base_url}/health").json() == {"status": "alive"}
    ready = httpx.get(f"{live_service.base_url}/health/ready")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")


def test_metrics_use_route_templates_and_conventional_names(live_service: Service) -> None:
    httpx.get(f"{live_service.base_url}/api/fhir/metadata")
    httpx.get(f"{live_service.base_url}/no/such/path/123")
    text = httpx.get(f"{live_service.base_url}/metrics").text
    assert 'http_requests_total{method="GET",route="/api/fhir/metadata",status="200"}' in text
    assert 'route="unmatched"' in text
    assert "/no/such/path" not in text
    for name in (
        "http_request_duration_seconds_bucket",
        "http_requests_in_flight",
        "healthstack_db_pool_size",
        "healthstack_db_pool_in_use",
        "healthstack_build_info",
    ):
        assert name in text
    # Probes and scrapes are not counted as traffic (they would dilute the SLO).
    assert 'route="/health/ready"' not in text


def test_request_id_is_echoed_or_generated(live_service: Service) -> None:
    given = httpx.get(
        f"{live_service.base_url}/api/fhir/metadata", headers={"x-request-id": "abc-123"}
    )
    assert given.headers["x-request-id"] == "abc-123"
    bogus = httpx.get(
        f"{live_service.base_url}/api/fhir/metadata", headers={"x-request-id": "a b c"}
    )
    assert bogus.headers["x-request-id"] != "a b c"
    assert len(bogus.headers["x-request-id"]) == 32


def _wait_for_log(service: Service, text: str) -> str:
    # Access log lines are written just after the response is sent: give them a moment.
    deadline = time.monotonic() + 5
    while text not in (logs := service.logs()):
        assert time.monotonic() < deadline, f"{text!r} never logged"
        time.sleep(0.05)
    return logs


def test_access_log_is_json_without_raw_paths_and_probes_are_quiet(live_service: Service) -> None:
    httpx.get(f"{live_service.base_url}/health/ready")
    httpx.get(
        f"{live_service.base_url}/api/fhir/Patient/some-id-42",
        headers={"x-request-id": "log-probe"},
    )
    logs = _wait_for_log(live_service, '"request_id":"log-probe"')
    assert "some-id-42" not in logs
    access = [line for line in logs.splitlines() if '"logger":"healthstack.access"' in line]
    assert access, "requests must be logged"
    assert not any("/health" in line for line in access)


def test_traceparent_is_continued(live_service: Service) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    httpx.get(
        f"{live_service.base_url}/api/fhir/metadata",
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    _wait_for_log(live_service, f'"trace_id":"{trace_id}"')


def test_oversized_body_gets_413_operation_outcome(live_service: Service) -> None:
    response = httpx.post(
        f"{live_service.base_url}/api/fhir/Patient",
        content=b"x" * 2_000_000,
        headers={"content-type": "application/fhir+json"},
    )
    assert response.status_code == 413
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "pg")
    server.init()
    server.start()
    server.ensure_database()
    yield server
    server.destroy()


def _ready(service: Service) -> httpx.Response:
    return httpx.get(f"{service.base_url}/health/ready", timeout=5)


def test_database_outage_makes_unready_not_dead_and_recovers(
    own_pg: EmbeddedPostgres, tmp_path: Path
) -> None:
    db: Database = create_database(own_pg)
    service = start_service(db, tmp_path / "service.log")
    try:
        own_pg.stop()
        assert httpx.get(f"{service.base_url}/health").status_code == 200
        unready = _ready(service)
        assert unready.status_code == 503
        assert unready.json()["reason"].startswith("database")
        # The API says "unavailable, retry" (503), never a 500, while the database is away.
        token = mint_dev_token(TEST_SECRET_KEY_BASE, "clinician", "user/Patient.rs")
        api = httpx.get(f"{service.base_url}/api/fhir/Patient/p1",
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip
        assert api.status_code == 503, api.text
        own_pg.start()
        assert _ready(service).status_code == 200, "readiness must recover without a restart"
        assert service.process.poll() is None
    finally:
        service.stop()


def test_an_upgrade_request_is_answered_as_plain_http(live_service: Service) -> None:
    """The service has no WebSocket endpoint and serves none (``ws="none"``): an Upgrade is
    never handed to a WebSocket protocol, which would bypass the HTTP protocol's own writes."""
    host, port = live_service.base_url.removeprefix("http://").split(":")
    request = (f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\n"
               "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")  # fmt: skip
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(request.encode())
        answer = client.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:40]
