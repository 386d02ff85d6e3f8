"""OpenTelemetry: W3C trace context always propagated; spans exported over OTLP only when configured."""

from __future__ import annotations

import logging
import re

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

propagator = TraceContextTextMapPropagator()
tracer = trace.get_tracer("healthstack")


# True once an exporter is installed; until then no span objects are made per request.
exporting = False
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def incoming_trace_id(traceparent: str) -> str | None:
    """The caller's W3C trace id, so logs and audit records join its trace without a span."""
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)


def configure(endpoint: str | None) -> None:
    """Install the OTLP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (e.g. the seed's Jaeger)."""
    global exporting
    if not endpoint:
        return
    exporting = True
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "healthstack"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    logging.getLogger(__name__).info("tracing: exporting spans over OTLP")
