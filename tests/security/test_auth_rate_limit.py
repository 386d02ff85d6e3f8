"""Authentication failures: aggregated in the trail, then refused with 429 (issue 12 item 16).

A service of its own: this module's failures put 127.0.0.1 over the limit for a minute.
"""

from __future__ import annotations

import httpx
import psycopg
import pytest
from tests.conftest import Database, start_service
from tests.fhir.conftest import token

from healthstack.security.ratelimit import AUDIT_EACH, LIMIT, FailureLimiter


def test_limiter_audits_the_first_failures_aggregates_the_rest_and_refuses_past_the_limit() -> None:
    limiter = FailureLimiter(window=60, limit=10, audit_each=3)
    individually = [limiter.failed("10.0.0.9", "invalid", 1000.0 + n) for n in range(12)]
    assert individually == [True] * 3 + [False] * 9
    assert limiter.retry_after("10.0.0.9", 1012.0) == 48
    assert limiter.retry_after("10.0.0.10", 1012.0) is None  # other sources unaffected
    assert limiter.closed(1030.0) == []  # the window is still open
    aggregates = limiter.closed(1060.5)
    assert [(a.source, a.reason, a.count) for a in aggregates] == [("10.0.0.9", "invalid", 9)]
    assert limiter.retry_after("10.0.0.9", 1060.5) is None  # a new window: allowed again
    assert limiter.closed(1200.0) == []  # each aggregate is handed out once


def test_limiter_hands_over_everything_at_shutdown() -> None:
    limiter = FailureLimiter(window=60, limit=100, audit_each=1)
    for n in range(5):
        limiter.failed(None, "missing", 5.0 + n)
    assert [(a.reason, a.count) for a in limiter.drain()] == [("missing", 4)]
    assert limiter.drain() == []


def login_rows(db: Database) -> list[tuple[str, str]]:
    with psycopg.connect(db.owner_url) as conn:
        rows = conn.execute(
            "SELECT outcome, coalesce(content::jsonb->>'detail', '') FROM audit_log"
            " WHERE interaction = 'login'"
        ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def test_a_flood_of_bad_tokens_is_bounded_in_the_trail_and_refused(
    database: Database, tmp_path: pytest.TempPathFactory
) -> None:
    service = start_service(database, tmp_path / "service.log")  # type: ignore[operator]
    good = {"Authorization": f"Bearer {token()}"}
    bad = {"Authorization": "Bearer not.a.token"}
    try:
        with httpx.Client(base_url=f"{service.base_url}/api/fhir", timeout=10) as client:
            assert client.get("/Patient", headers=good).status_code == 200  # verified, cached
            statuses = [client.get("/Patient", headers=bad).status_code for _ in range(LIMIT + 20)]
            assert statuses[:LIMIT] == [401] * LIMIT
            assert set(statuses[LIMIT:]) == {429}
            refused = client.get("/Patient", headers=bad)
            assert refused.headers["content-type"].startswith("application/fhir+json")
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            # A token the service already accepted keeps working from the same address.
            assert client.get("/Patient", headers=good).status_code == 200
    finally:
        assert service.stop() == 0  # shutdown writes the aggregates still open
    rows = login_rows(database)
    individual = [d for _, d in rows if "aggregated" not in d]
    aggregated = [d for _, d in rows if "aggregated" in d]
    assert len(individual) == 2 * AUDIT_EACH  # per reason: "malformed" and "rate_limited"
    counted = sum(int(d.split(": ", 1)[1].split()[0]) for d in aggregated)
    assert counted + len(individual) == LIMIT + 21  # every failure is accounted for
