"""OTLP export, for real: a loopback collector receives the service's spans (the seed's Jaeger)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tests.conftest import Database, start_service

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class Collector(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.path == "/v1/traces":
            Collector.received.append(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:  # keep test output quiet
        return


@pytest.fixture
def collector() -> Iterator[str]:
    Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _spans() -> list[tuple[str, str]]:
    spans = []
    for body in Collector.received:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                spans += [(s.trace_id.hex(), s.name) for s in scope_spans.spans]
    return spans


def test_spans_reach_the_collector_with_the_callers_trace_and_no_ids(
    module_database: Database, tmp_path: Path, collector: str
) -> None:
    service = start_service(module_database, tmp_path / "service.log",
                            OTEL_EXPORTER_OTLP_ENDPOINT=collector, OTEL_BSP_SCHEDULE_DELAY="100")  # fmt: skip
    try:
        traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
        httpx.get(f"{service.base_url}/api/fhir/metadata", headers={"traceparent": traceparent})
        httpx.get(f"{service.base_url}/api/fhir/Patient/secret-id-77")
        deadline = time.monotonic() + 10
        while len(_spans()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        service.stop()
    spans = _spans()
    assert (TRACE_ID, "GET /api/fhir/metadata") in spans
    assert all(b"secret-id-77" not in body for body in Collector.received)
    assert len(spans) >= 2
