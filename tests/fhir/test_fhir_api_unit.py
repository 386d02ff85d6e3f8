"""Small pure pieces of the HTTP layer: error mapping, header parsing, dates."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest
from starlette.requests import Request

from healthstack.config import Settings
from healthstack.core.dates import instant_text, interval
from healthstack.core.outcome import FhirError
from healthstack.fhir.api import Api, request_base
from healthstack.fhir.bundle import parse_bundle, parse_if_match
from healthstack.fhir.http import database_error, header
from healthstack.fhir.search import parse_prefixed
from healthstack.fhir.shaping import Shape
from healthstack.service.state import ServiceState


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (asyncpg.SerializationError("x"), 409),
        (asyncpg.DeadlockDetectedError("x"), 409),
        (asyncpg.TooManyConnectionsError("x"), 503),
        (ConnectionResetError(), 503),
        (asyncpg.UniqueViolationError("x"), 500),
    ],
)
def test_database_errors_map_to_statuses(error: Exception, status: int) -> None:
    assert database_error(error).status == status


def test_if_match_forms() -> None:
    assert parse_if_match('W/"3"') == 3
    assert parse_if_match('"3"') == 3
    assert parse_if_match(None) is None
    with pytest.raises(FhirError):
        parse_if_match("W/abc")


def test_fhir_date_intervals() -> None:
    utc = dt.UTC
    assert interval("2024") == (
        dt.datetime(2024, 1, 1, tzinfo=utc),
        dt.datetime(2025, 1, 1, tzinfo=utc),
    )
    assert interval("2024-12")[1] == dt.datetime(2025, 1, 1, tzinfo=utc)
    assert interval("2024-02-29")[1] == dt.datetime(2024, 3, 1, tzinfo=utc)
    start, end = interval("2024-01-01T10:00:00+02:00")
    assert start == dt.datetime(2024, 1, 1, 8, tzinfo=utc)
    assert end - start == dt.timedelta(seconds=1)
    for bad in ("2024-1", "2024-01-01T10:00:00", "20240101", "2024-13"):
        with pytest.raises(FhirError, match="search parameter date"):
            parse_prefixed("date", bad)
    assert (
        instant_text(dt.datetime(2024, 1, 2, 3, 4, 5, 678900, tzinfo=utc))
        == "2024-01-02T03:04:05.678Z"
    )


@pytest.mark.parametrize(
    "bundle",
    [
        {"resourceType": "Bundle", "type": "collection"},
        {"resourceType": "Patient"},
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "PATCH", "url": "Patient/1"}}],
        },
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "PUT", "url": "Patient"}}],
        },
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "POST", "url": "Patient"}}],
        },
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": "Gadget/1"}}],
        },
    ],
)
def test_malformed_bundles_are_refused(bundle: dict[str, object]) -> None:
    """A malformed entry fails a transaction whole, and only itself in a batch."""
    as_transaction = {**bundle, "type": "transaction"} if bundle.get("type") == "batch" else bundle
    with pytest.raises(FhirError) as caught:
        parse_bundle(as_transaction)
    assert caught.value.status in (400, 404, 422)
    if bundle.get("type") == "batch":
        _, entries = parse_bundle(bundle)
        assert entries[0].error is not None
        assert entries[0].error.status in (400, 404)


@pytest.mark.parametrize(
    ("scheme", "server", "host"),
    [
        ("http", ("127.0.0.1", 8080), b"127.0.0.1:8080"),
        ("http", ("127.0.0.1", 80), None),
        ("http", ("127.0.0.1", 8080), None),
        ("https", ("10.0.0.1", 443), None),
        ("https", ("10.0.0.1", 443), b"fhir.example.org"),
        ("http", ("::1", 8000), None),
        ("http", None, None),
        ("http", ("127.0.0.1", 80), b"evil.example/x?y#z"),
        ("http", ("127.0.0.1", 80), b"user@host:81"),
    ],
)
def test_request_base_is_what_starlette_request_url_gives(
    scheme: str, server: tuple[str, int] | None, host: bytes | None
) -> None:
    """The cached base equals the one built from ``request.url``, whatever the Host header."""
    headers = [(b"host", host)] if host is not None else []
    scope = {"type": "http", "scheme": scheme, "server": server, "path": "/api/fhir/Patient",
             "root_path": "/api/fhir", "query_string": b"", "headers": headers}  # fmt: skip
    url = Request(scope).url
    expected = f"{url.scheme}://{url.netloc}/api/fhir"
    assert request_base(scheme, host, server, "/api/fhir") == expected


@pytest.mark.parametrize("scheme", [None, "http", "https"])
def test_the_link_base_reads_the_scope_as_request_url_does(scheme: str | None) -> None:
    """ASGI makes ``scheme`` optional: a server that leaves it out gets http links, no 500."""
    scope = {"type": "http", "server": ("10.0.0.5", 8000), "path": "/api/fhir/Patient",
             "root_path": "/api/fhir", "query_string": b"", "headers": [(b"host", b"ehr:81")]}  # fmt: skip
    if scheme is not None:
        scope["scheme"] = scheme
    settings = Settings.from_env(
        {"HEALTHSTACK_ENV": "test", "SECRET_KEY_BASE": "b" * 64, "ENCRYPTION_KEY": "ab" * 32}
    )
    api = Api(ServiceState(settings=settings, database_url="postgresql://x"))
    url = Request(scope).url
    assert api.base(Request(scope)) == f"{url.scheme}://{url.netloc}/api/fhir"


def test_header_reads_the_first_value_as_starlette_does() -> None:
    scope = {"type": "http", "headers": [(b"accept", b"application/fhir+json"),
                                         (b"if-none-match", b'W/"2"'), (b"accept", b"text/xml")]}  # fmt: skip
    request = Request(scope)
    for name in ("accept", "if-none-match", "if-modified-since"):
        assert header(request, name.encode()) == request.headers.get(name)


@pytest.mark.parametrize(
    ("summary", "elements", "reduces"),
    [("false", (), False), ("count", (), False), ("true", (), True), ("text", (), True),
     ("data", (), True), ("false", ("id",), True)],
)  # fmt: skip
def test_a_shape_reduces_entries_only_when_summary_or_elements_ask(
    summary: str, elements: tuple[str, ...], reduces: bool
) -> None:
    shape = Shape(summary=summary, elements=elements)
    assert shape.reduces is reduces
    body = b'{"resourceType":"Patient","id":"a","text":{"status":"generated","div":"<div/>"},"active":true}'
    if not reduces:  # entries are sent as stored, so subsetting them must not change them
        assert shape.subset("Patient", body) == body
