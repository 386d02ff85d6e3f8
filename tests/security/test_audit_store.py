"""The audit trail in PostgreSQL: append through the chain, refuse edits, catch superuser tampering."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import psycopg
import pytest
from tests.conftest import Database
from tests.security.conftest import make_state, run_with_pool

from healthstack.security import audit
from healthstack.security.audit_event import AuditEvent
from healthstack.security.verify import Report, verify

EVENTS = 12


def _events(n: int) -> list[AuditEvent]:
    return [AuditEvent(interaction="read", outcome="success", subject=f"user-{i}",
                       resource_type="Patient", resource_id=f"id-{i}") for i in range(n)]  # fmt: skip


def populate(db: Database, n: int = EVENTS) -> None:
    state = make_state(db.url)

    async def body(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:  # one connection: one chain, in order
            for event in _events(n):
                await audit.record(conn, state, event)

    run_with_pool(db.url, body, size=1)


def chain_of(db: Database) -> int:
    with psycopg.connect(db.owner_url) as conn:
        row = conn.execute(
            "SELECT chain_id FROM audit_log GROUP BY 1 ORDER BY count(*) DESC"
        ).fetchone()
    assert row is not None
    return int(row[0])


def tamper(db: Database, *statements: str) -> None:
    """As superuser, with triggers off for this session (what a rogue DBA could do)."""
    with psycopg.connect(db.owner_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for sql in statements:
            conn.execute(sql)


def test_intact_trail_verifies(database: Database) -> None:
    populate(database)
    report = verify(database.owner_url)
    assert report.intact, report.problems
    assert report.records == EVENTS
    assert report.chains == 64


def test_concurrent_appends_spread_over_chains_and_verify(database: Database) -> None:
    state = make_state(database.url)

    async def body(pool: asyncpg.Pool) -> None:
        import asyncio

        async def writer(k: int) -> None:
            async with pool.acquire() as conn, conn.transaction():
                for event in _events(5):  # holds its chain head until commit
                    await audit.record(conn, state, event)
                await asyncio.sleep(0.05)

        await asyncio.gather(*(writer(k) for k in range(8)))

    run_with_pool(database.url, body, size=8)
    report = verify(database.owner_url)
    assert report.intact, report.problems
    assert report.records == 40
    with psycopg.connect(database.owner_url) as conn:
        used = conn.execute("SELECT count(DISTINCT chain_id) FROM audit_log").fetchone()
    assert used is not None
    assert used[0] == 8


def test_rolled_back_transaction_leaves_no_gap(database: Database) -> None:
    state = make_state(database.url)

    async def body(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            await audit.record(conn, state, _events(1)[0])
            await transaction.rollback()  # the change failed: its audit record goes with it
            await audit.record(conn, state, _events(1)[0])

    run_with_pool(database.url, body, size=1)
    report = verify(database.owner_url)
    assert report.intact
    assert report.records == 1


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET subject = 'someone-else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "INSERT INTO audit_log SELECT * FROM audit_log LIMIT 1",
        "UPDATE audit_chain SET seq = 0",
        "DELETE FROM audit_chain",
        "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        "SET session_replication_role = replica",
    ],
)
def test_app_role_cannot_edit_the_trail(database: Database, sql: str) -> None:
    populate(database, 3)

    async def body(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.PostgresError):
                await conn.execute(sql)

    run_with_pool(database.url, body, size=1)
    assert verify(database.owner_url).intact


def test_trigger_refuses_edits_even_for_superuser(database: Database) -> None:
    populate(database, 3)
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        for sql in ("UPDATE audit_log SET subject = 'x'", "DELETE FROM audit_log",
                    "TRUNCATE audit_log"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)


def _only(report: Report) -> tuple[int, str]:
    assert not report.intact
    problem = report.problems[0]
    return problem.seq, problem.kind


Case = Callable[[int], list[str]]
TAMPERING: dict[str, tuple[Case, tuple[int, str]]] = {
    "altered content": (lambda c: [
        f"UPDATE audit_log SET content = replace(content, 'user-5', 'user-X') "
        f"WHERE chain_id = {c} AND seq = 6"], (6, "altered")),
    "altered column": (lambda c: [
        f"UPDATE audit_log SET subject = 'user-X' WHERE chain_id = {c} AND seq = 6"],
        (6, "altered")),
    "deleted middle": (lambda c: [
        f"DELETE FROM audit_log WHERE chain_id = {c} AND seq = 4"], (4, "deleted")),
    "deleted tail": (lambda c: [
        f"DELETE FROM audit_log WHERE chain_id = {c} AND seq >= 11"], (11, "deleted")),
    "inserted middle": (lambda c: [
        f"UPDATE audit_log SET seq = seq + 100 WHERE chain_id = {c} AND seq >= 7",
        f"UPDATE audit_log SET seq = seq - 99 WHERE chain_id = {c} AND seq >= 107",
        f"INSERT INTO audit_log SELECT chain_id, 7, hash, content, recorded_at, interaction, "
        f"outcome, subject, client_id, resource_type, resource_id, break_glass, request_id "
        f"FROM audit_log WHERE chain_id = {c} AND seq = 3"], (7, "inserted")),
    "reordered": (lambda c: [
        f"UPDATE audit_log SET seq = -1 WHERE chain_id = {c} AND seq = 5",
        f"UPDATE audit_log SET seq = 5 WHERE chain_id = {c} AND seq = 6",
        f"UPDATE audit_log SET seq = 6 WHERE chain_id = {c} AND seq = -1"], (5, "reordered")),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_verify_catches_superuser_tampering(database: Database, case: str) -> None:
    populate(database)
    assert verify(database.owner_url).intact
    statements, expected = TAMPERING[case]
    tamper(database, *statements(chain_of(database)))
    assert _only(verify(database.owner_url)) == expected
