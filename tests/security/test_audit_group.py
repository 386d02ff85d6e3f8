"""Group commit of audit records written outside a transaction (``security/audit_group.py``).

Held on a real PostgreSQL: records that reach the append in the same turn share one statement,
each caller returns only once its own record is committed (another connection sees it), the
chain verifies, one bad record or dead connection fails only its own member (the others write
alone), a group whose outcome is unknown fails every member with 503 (nothing written twice,
nobody left waiting), and records inside a transaction never join a group (they roll back with
it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import psycopg
import pytest
from tests.conftest import TEST_SECRET_KEY_BASE, Database
from tests.security.conftest import make_state, run_with_pool

from healthstack.security import audit
from healthstack.security.audit_event import AuditEvent
from healthstack.security.audit_group import AuditGroup, GroupAborted
from healthstack.security.chain import CHAINS
from healthstack.security.tokens import mint_dev_token
from healthstack.security.verify import verify
from healthstack.service.state import ServiceState

MEMBERS = 6


def _event(number: int) -> AuditEvent:
    return AuditEvent(interaction="read", outcome="success", subject="user-1",
                      resource_type="Patient", request_id=f"req-{number}")  # fmt: skip


def _request_ids(db: Database) -> list[str]:
    with psycopg.connect(db.owner_url) as conn:
        rows = conn.execute("SELECT request_id FROM audit_log ORDER BY chain_id, seq").fetchall()
    return [row[0] for row in rows]


def _group(state: ServiceState) -> AuditGroup:
    group = state.extras["audit_group"]
    assert isinstance(group, AuditGroup)
    return group


@contextlib.asynccontextmanager
async def _connections(pool: asyncpg.Pool, count: int) -> AsyncIterator[list[asyncpg.Connection]]:
    """``count`` connections held at once (so their records can meet in one turn)."""
    conns = [await pool.acquire() for _ in range(count)]
    try:
        yield conns
    finally:
        for conn in conns:
            await pool.release(conn)


def test_records_of_one_turn_share_a_statement_and_each_is_committed_on_return(
    database: Database,
) -> None:
    state = make_state(database.url)

    async def member(conn: asyncpg.Connection, number: int) -> int:
        await audit.record(conn, state, _event(number))
        # Committed before record() returned: visible to a statement on another connection.
        count = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE request_id = $1", f"req-{number}"
        )
        return int(count)

    async def body(pool: asyncpg.Pool) -> list[int]:
        async with _connections(pool, MEMBERS) as conns:
            return await asyncio.gather(*(member(c, n) for n, c in enumerate(conns)))

    assert run_with_pool(database.url, body, size=MEMBERS) == [1] * MEMBERS
    group = _group(state)
    assert (group.appends, group.records) == (1, MEMBERS)
    # Chained in the order the members joined (the leader first), and the chain verifies.
    assert _request_ids(database) == [f"req-{n}" for n in range(MEMBERS)]
    report = verify(database.owner_url)
    assert report.intact, report.problems


async def _closed(conn: asyncpg.Connection) -> None:
    """Until asyncpg has read the server's goodbye on ``conn`` (bounded)."""
    for _ in range(500):
        try:
            if conn.is_closed():
                return
        except asyncpg.InterfaceError:  # the pool took the lost connection back
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the terminated connection was never seen closed")


def _statuses(results: list[Any]) -> list[int]:
    return [r.status if isinstance(r, audit.AuditWriteError) else 0 for r in results]


@pytest.mark.parametrize("through", ["record", "group"])
def test_a_connection_closed_before_the_append_fails_only_its_own_request(
    database: Database, through: str
) -> None:
    """Through ``audit.record`` the dead connection fails before joining; straight into the
    group it becomes the leader, and its followers write alone (nothing was sent on it)."""
    state = make_state(database.url)
    group = AuditGroup()

    async def write(conn: asyncpg.Connection, number: int) -> None:
        if through == "record":
            await audit.record(conn, state, _event(number))
        else:
            await group.append(conn, [audit.content_of(_event(number))], number)

    async def body(pool: asyncpg.Pool) -> list[str]:
        async with _connections(pool, MEMBERS) as conns:
            leader_pid = await conns[0].fetchval("SELECT pg_backend_pid()")
            with psycopg.connect(database.owner_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (leader_pid,))
            await _closed(conns[0])
            results = await asyncio.gather(
                *(write(c, n) for n, c in enumerate(conns)), return_exceptions=True
            )
        return [type(result).__name__ for result in results]

    outcomes = run_with_pool(database.url, body, size=MEMBERS)
    failure = "AuditWriteError" if through == "record" else "InterfaceError"
    assert outcomes == [failure] + ["NoneType"] * (MEMBERS - 1)
    assert sorted(_request_ids(database)) == [f"req-{n}" for n in range(1, MEMBERS)]
    assert verify(database.owner_url).intact


def test_a_connection_lost_while_the_group_statement_runs_fails_every_member_with_503(
    database: Database,
) -> None:
    """The outcome is unknown (it may have committed): nobody writes again, everybody 503s."""
    state = make_state(database.url)

    async def body(pool: asyncpg.Pool) -> list[Any]:
        async with _connections(pool, MEMBERS) as conns:
            leader_pid = await conns[0].fetchval("SELECT pg_backend_pid()")
            with psycopg.connect(database.owner_url) as holder:
                # Every chain head held: the group's statement waits for its chain.
                holder.execute("SELECT pg_advisory_xact_lock(1096108372, c::int) "
                               "FROM generate_series(0, %s) c", (CHAINS - 1,))  # fmt: skip
                members = [asyncio.ensure_future(audit.record(c, state, _event(n)))
                           for n, c in enumerate(conns)]  # fmt: skip
                await _waiting_for_a_lock(database, leader_pid)
                with psycopg.connect(database.owner_url, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (leader_pid,))
                await _closed(conns[0])
                holder.rollback()
            return await asyncio.gather(*members, return_exceptions=True)

    results = run_with_pool(database.url, body, size=MEMBERS)
    assert _statuses(results) == [503] * MEMBERS
    # Each follower raised its own exception, chained to the group's.
    causes = [result.__cause__ for result in results[1:]]
    assert all(isinstance(cause, GroupAborted) and cause.__cause__ for cause in causes)
    assert len({id(cause) for cause in causes}) == MEMBERS - 1
    assert _request_ids(database) == []


async def _waiting_for_a_lock(db: Database, pid: int) -> None:
    for _ in range(500):
        with psycopg.connect(db.owner_url, autocommit=True) as admin:
            row = admin.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                (pid,)).fetchone()  # fmt: skip
        if row is not None and row[0] == "Lock":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the group's statement never waited for its chain")


@pytest.mark.parametrize("bad", [0, 2], ids=["leader", "follower"])
def test_a_refused_group_statement_fails_only_the_bad_record(database: Database, bad: int) -> None:
    """A record the trail refuses (here a 300-character subject) makes the group's statement
    roll back as a whole; every member then writes alone, and only the bad one fails."""
    group = AuditGroup()

    def content(number: int) -> str:
        document = json.loads(audit.content_of(_event(number)))
        if number == bad:
            document["subject"] = "s" * 300
        return json.dumps(document)

    async def body(pool: asyncpg.Pool) -> list[str]:
        async with _connections(pool, MEMBERS) as conns:
            outcomes = await asyncio.gather(
                *(group.append(c, [content(n)], n) for n, c in enumerate(conns)),
                return_exceptions=True,
            )
        return [type(outcome).__name__ for outcome in outcomes]

    outcomes = run_with_pool(database.url, body, size=MEMBERS)
    expected = ["NoneType"] * MEMBERS
    expected[bad] = asyncpg.InvalidParameterValueError.__name__
    assert outcomes == expected
    assert sorted(_request_ids(database)) == [f"req-{n}" for n in range(MEMBERS) if n != bad]
    assert (group.appends, group.records) == (1 + MEMBERS, 2 * MEMBERS)
    assert verify(database.owner_url).intact


def test_a_leader_cancelled_before_sending_leaves_its_followers_to_write_alone(
    database: Database,
) -> None:
    group = AuditGroup()

    async def body(pool: asyncpg.Pool) -> list[str]:
        async with _connections(pool, 3) as conns:
            contents = [[audit.content_of(_event(n))] for n in range(3)]
            # Created in one turn: the first becomes the leader, the others join its group.
            members = [asyncio.ensure_future(group.append(c, contents[n], 1))
                       for n, c in enumerate(conns)]  # fmt: skip
            await asyncio.sleep(0)  # the leader is waiting its turn, the others have joined
            members[0].cancel()
            outcomes = await asyncio.wait_for(
                asyncio.gather(*members, return_exceptions=True), timeout=10
            )
        return [type(outcome).__name__ for outcome in outcomes]

    outcomes = run_with_pool(database.url, body, size=3)
    assert outcomes == ["CancelledError", "NoneType", "NoneType"]
    assert (group.appends, group.records) == (2, 2)
    assert sorted(_request_ids(database)) == ["req-1", "req-2"]


def test_a_follower_of_an_aborted_group_answers_a_transient_audit_failure() -> None:
    state = make_state("postgresql://unused")
    with pytest.raises(audit.AuditWriteError) as failure:
        audit._failed(state, GroupAborted(), "read")
    assert failure.value.status == 503


def test_records_inside_a_transaction_never_join_a_group(database: Database) -> None:
    state = make_state(database.url)

    async def body(pool: asyncpg.Pool) -> None:
        async def rolled_back(conn: asyncpg.Connection) -> None:
            transaction = conn.transaction()
            await transaction.start()
            await audit.record(conn, state, _event(0))
            await transaction.rollback()

        async with _connections(pool, 2) as conns:
            await asyncio.gather(rolled_back(conns[0]), audit.record(conns[1], state, _event(1)))

    run_with_pool(database.url, body, size=2)
    # The transaction's record rolled back with it; the other was committed on its own.
    assert _request_ids(database) == ["req-1"]
    assert (_group(state).appends, _group(state).records) == (1, 1)


def test_a_huge_unknown_type_in_the_path_is_audited_without_failing_the_request(
    live_service: Any,
) -> None:
    """A 5,000-character type segment once made its failure record exceed the trail's field
    limit: refused, and with group commit every read of the same turn failed with it."""
    token = mint_dev_token(TEST_SECRET_KEY_BASE, "attacker", "user/*.rs", ttl_seconds=300)
    response = httpx.get(f"{live_service.base_url}/api/fhir/{'A' * 5000}/1",
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert response.status_code in (400, 404)
