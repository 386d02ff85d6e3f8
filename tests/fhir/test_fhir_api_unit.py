"""Small pure pieces of the HTTP layer: error mapping, header parsing, dates."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from healthstack.core.dates import instant_text, interval
from healthstack.core.outcome import FhirError
from healthstack.fhir.bundle import parse_bundle, parse_if_match
from healthstack.fhir.http import database_error
from healthstack.fhir.search import parse_prefixed


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
