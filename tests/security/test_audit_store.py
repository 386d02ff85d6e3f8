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


@pytest.mark.parametrize("change", ["delete chain", "add chain"])
def test_verify_requires_exactly_the_schemas_chains(database: Database, change: str) -> None:
    """Issue 12 item 12: removing a whole chain (head and records) or adding one is caught."""
    populate(database)
    c = chain_of(database)
    statements = {
        "delete chain": [f"DELETE FROM audit_log WHERE chain_id = {c}",
                         f"DELETE FROM audit_chain WHERE chain_id = {c}"],
        "add chain": ["INSERT INTO audit_chain VALUES (64, 0, "
                      "sha256(convert_to('healthstack-audit-genesis/64', 'UTF8')))"],
    }[change]  # fmt: skip
    tamper(database, *statements)
    report = verify(database.owner_url)
    assert not report.intact
    assert report.problems[0].kind == ("deleted" if change == "delete chain" else "inserted")


def test_an_anchored_chain_that_vanished_is_reported(database: Database) -> None:
    populate(database)
    c = chain_of(database)
    anchors = verify(database.owner_url).heads
    tamper(database, f"DELETE FROM audit_log WHERE chain_id = {c}",
           f"DELETE FROM audit_chain WHERE chain_id = {c}")  # fmt: skip
    problems = verify(database.owner_url, anchors).problems
    assert [(p.chain_id, p.kind) for p in problems] == [(c, "deleted")]


def _append_raw(db: Database, content: str) -> None:
    async def body(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            await conn.execute("SELECT audit_append(1, $1)", content)

    run_with_pool(db.url, body, size=1)


def test_the_database_stamps_the_time_not_the_caller(database: Database) -> None:
    """Issue 12 item 13: a record 'from 2020' appended by the service role is dated now."""
    _append_raw(database, '{"interaction":"read","outcome":"success","subject":"u",'
                          '"time":"2020-01-01T00:00:00+00:00"}')  # fmt: skip
    with psycopg.connect(database.owner_url) as conn:
        row = conn.execute("SELECT recorded_at > now() - interval '1 minute' FROM audit_log")
        assert row.fetchone() == (True,)
    assert verify(database.owner_url).intact


@pytest.mark.parametrize("content", [
    '["not", "an", "object"]',
    '{"interaction":"read","outcome":"success","recorded_at":"2020-01-01"}',
    '{"interaction":"read","outcome":"fine"}',
    '{"interaction":"DROP TABLE","outcome":"success"}',
    '{"interaction":"read","outcome":"success","subject":["a"]}',
    '{"interaction":"read","outcome":"success","subject":"a\\nb"}',
    '{"interaction":"read","outcome":"success","version":"2"}',
    '{"interaction":"read","outcome":"success","detail":"' + "x" * 5000 + '"}',
])  # fmt: skip
def test_audit_append_refuses_what_the_caller_may_not_set(database: Database, content: str) -> None:
    with pytest.raises(asyncpg.PostgresError):
        _append_raw(database, content)
    with psycopg.connect(database.owner_url) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)


def test_history_rows_are_append_only_for_the_service_role(database: Database) -> None:
    """Issue 12 item 5: clinical history cannot be rewritten by the application role."""

    async def body(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            for sql in ("UPDATE fhir_resource_version SET body = NULL",
                        "UPDATE fhir_resource_version SET key_id = 'x'",
                        "DELETE FROM fhir_resource_version", "TRUNCATE fhir_resource_version"):  # fmt: skip
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(sql)

    run_with_pool(database.url, body, size=1)


_VERSION = ("INSERT INTO fhir_resource_version (resource_type, id, version, deleted, last_updated, "
            "key_id, body) VALUES ('Patient', 'p1', 1, false, now(), 'k1', '\\x00')")  # fmt: skip


@pytest.mark.parametrize("sql", [
    "UPDATE fhir_resource_version SET version = 2",
    "UPDATE fhir_resource_version SET last_updated = now() - interval '1 year'",
    "UPDATE fhir_resource_version SET deleted = true, body = NULL",
    "DELETE FROM fhir_resource_version",
    "TRUNCATE fhir_resource_version",
    "UPDATE audit_reason SET seq = seq + 1",
    "DELETE FROM audit_reason",
    "TRUNCATE audit_reason",
])  # fmt: skip
def test_even_the_owner_may_only_reseal_history_and_reasons(database: Database, sql: str) -> None:
    """Migration 0008: `keys rotate` (the owner) swaps key_id/body and upserts re-sealed reasons;
    what a version is, and whether a re-sealed reason exists, nobody changes."""
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute(_VERSION)
        conn.execute('SELECT audit_append(3, \'{"interaction":"read","outcome":"success"}\')')
        conn.execute("INSERT INTO audit_reason (chain_id, seq, key_id, ciphertext) "
                     "SELECT chain_id, seq, 'k1', '\\x00' FROM audit_log")  # fmt: skip
        # What rotation does is allowed:
        conn.execute("UPDATE fhir_resource_version SET key_id = 'k2', body = '\\x01'")
        conn.execute("INSERT INTO audit_reason (chain_id, seq, key_id, ciphertext) SELECT chain_id, "
                     "seq, 'k2', '\\x01' FROM audit_log ON CONFLICT (chain_id, seq) DO UPDATE SET "
                     "key_id = EXCLUDED.key_id, ciphertext = EXCLUDED.ciphertext")  # fmt: skip
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql)
