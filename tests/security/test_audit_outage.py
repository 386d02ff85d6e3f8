"""An audit write that loses its database answers 503 (retry), never a 500 (issue 12, item 8).

Found by the db-outage drill: a connection the server dropped mid-request surfaced as a 500, and
asyncpg's ``InternalClientError`` (its protocol left mid-operation) was not counted as an outage.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import asyncpg
import psycopg
import pytest
from starlette.requests import Request
from tests.conftest import Database
from tests.security.conftest import make_state, run_with_pool

from healthstack.console import views
from healthstack.fhir import audit_api
from healthstack.fhir.http import database_error
from healthstack.security import audit
from healthstack.security.audit_event import AuditEvent
from healthstack.service.db import DATABASE_ERRORS, ClientDataError, unavailable

EVENT = AuditEvent(interaction="read", outcome="success", subject="user-1",
                   resource_type="Patient", resource_id="p-1")  # fmt: skip


def _records(db: Database) -> int:
    with psycopg.connect(db.owner_url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    assert row is not None
    return int(row[0])


def test_audit_write_on_a_connection_the_server_dropped_is_transient(database: Database) -> None:
    state = make_state(database.url)

    async def body(pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            with psycopg.connect(database.owner_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(audit.AuditWriteError) as failure:
                await audit.record(conn, state, EVENT)
            return failure.value.status

    assert run_with_pool(database.url, body, size=1) == 503
    assert _records(database) == 0


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        ),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
        asyncpg.CannotConnectNowError("the database system is shutting down"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_lost_database_is_a_503_for_every_handler(error: Exception) -> None:
    assert unavailable(error)
    assert isinstance(error, DATABASE_ERRORS)  # what the handlers, runners and refreshers catch
    assert database_error(error).status == 503


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.InsufficientPrivilegeError("permission denied for table audit_log"),
        # asyncpg's other internal errors are bugs, not outages: never retried forever as 503s.
        asyncpg.InternalClientError("Bind: expected a sequence, got int"),
        asyncpg.InternalClientError(
            "PoolConnectionHolder.release() called on a free connection holder"
        ),
        # asyncpg's client-side DataError (an InterfaceError): a value it cannot encode.
        ClientDataError("invalid input for query argument $1 (value out of int32 range)"),
    ],
    ids=lambda error: str(error).split(":")[0][:24],
)
def test_a_refused_statement_or_a_client_bug_stays_a_500(error: Exception) -> None:
    assert isinstance(error, DATABASE_ERRORS)  # still answered and audited by every handler
    assert not unavailable(error)
    assert database_error(error).status == 500


def test_the_audit_search_answers_400_for_a_value_asyncpg_cannot_encode() -> None:
    # asyncpg's client-side DataError is an InterfaceError: it must not be taken for an outage.
    async def handler(state: Any, request: Any) -> Any:
        raise ClientDataError("invalid input for query argument $1 (value out of int32 range)")

    response = asyncio.run(audit_api._guarded(handler, cast(Any, None), cast(Any, None)))
    assert response.status_code == 400


OUTCOMES = [
    (ClientDataError("invalid input for query argument $1"), 400),
    (asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
     503),
    (asyncpg.AdminShutdownError("terminating connection due to administrator command"), 503),
    (ConnectionResetError(), 503),
    (asyncpg.InsufficientPrivilegeError("permission denied for table audit_log"), 500),
]  # fmt: skip


@pytest.mark.parametrize(("error", "status"), OUTCOMES, ids=lambda v: type(v).__name__)
def test_the_audit_search_and_the_console_share_the_services_one_definition_of_an_outage(
    error: Exception, status: int
) -> None:
    """The AuditEvent search and the console answer as the FHIR handlers (``unavailable``)."""

    async def handler(state: Any, request: Any) -> Any:
        raise error

    response = asyncio.run(audit_api._guarded(handler, cast(Any, None), cast(Any, None)))
    assert response.status_code == status
    state = make_state("postgresql://unused")
    request = Request({"type": "http", "method": "GET", "path": "/console/", "headers": [],
                       "query_string": b"", "client": ("127.0.0.1", 1)})  # fmt: skip
    page = asyncio.run(views.guarded(state, "search", handler)(request))
    assert page.status_code == status


def test_asyncpgs_own_other_errors_are_console_bugs_audited_as_such(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    async def failed(state: Any, request: Any, interaction: str, error: Exception) -> Any:
        seen.append(type(error).__name__)
        return views._page(500, "Internal error.")

    async def handler(state: Any, request: Any) -> Any:
        raise asyncpg.InternalClientError("Bind: expected a sequence, got int")

    monkeypatch.setattr(views, "_failed", failed)
    state = make_state("postgresql://unused")
    request = Request({"type": "http", "method": "GET", "path": "/console/", "headers": [],
                       "query_string": b"", "client": ("127.0.0.1", 1)})  # fmt: skip
    page = asyncio.run(views.guarded(state, "search", handler)(request))
    assert (page.status_code, seen) == (500, ["InternalClientError"])
