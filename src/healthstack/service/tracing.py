"""OpenTelemetry: W3C trace context always propagated; spans exported over OTLP only when configured."""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

propagator = TraceContextTextMapPropagator()
tracer = trace.get_tracer("healthstack")


def configure(endpoint: str | None) -> None:
    """Install the OTLP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (e.g. the seed's Jaeger)."""
    if not endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "healthstack"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    logging.getLogger(__name__).info("tracing: exporting spans over OTLP")
