"""Batched audit appends (``audit_append_many``, migration 0005): chained, verifiable, tamper-evident."""

from __future__ import annotations

import asyncpg
import orjson
import psycopg
from tests.conftest import Database
from tests.security.conftest import make_state, run_with_pool
from tests.security.test_audit_store import _events, _only, tamper

from healthstack.security import audit
from healthstack.security.chain import genesis, link
from healthstack.security.verify import verify


def _records(db: Database) -> list[tuple[int, int, bytes, str]]:
    with psycopg.connect(db.owner_url) as conn:
        rows = conn.execute(
            "SELECT chain_id, seq, hash, content FROM audit_log ORDER BY chain_id, seq"
        ).fetchall()
    return [(c, s, bytes(h), text) for c, s, h, text in rows]


def append(db: Database, *batches: int | None, rollback_last: bool = False) -> None:
    """On one connection (one chain): single records (None) and batches of n, each in its own
    transaction; with ``rollback_last`` the last transaction rolls back."""
    state = make_state(db.url)

    async def body(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            for i, size in enumerate(batches):
                transaction = conn.transaction()
                await transaction.start()
                if size is None:
                    await audit.record(conn, state, _events(1)[0])
                else:
                    await audit.record_many(conn, state, _events(size))
                if rollback_last and i == len(batches) - 1:
                    await transaction.rollback()
                else:
                    await transaction.commit()

    run_with_pool(db.url, body, size=1)


def test_batch_is_one_chain_in_order_and_verifies(database: Database) -> None:
    append(database, None, 12, None)
    rows = _records(database)
    assert [seq for _, seq, _, _ in rows] == list(range(1, 15))
    assert len({chain for chain, _, _, _ in rows}) == 1
    # Each record links to the one before it, across the single/batch boundaries.
    chain, previous = rows[0][0], genesis(rows[0][0])
    for _, seq, digest, content in rows:
        assert digest == link(previous, chain, seq, content)
        previous = digest
    batch = [orjson.loads(content)["subject"] for _, seq, _, content in rows[1:13]]
    assert batch == [f"user-{i}" for i in range(12)]  # array order is chain order
    report = verify(database.owner_url)
    assert report.intact, report.problems
    assert report.records == 14


def test_empty_batch_writes_nothing_and_rolled_back_batch_leaves_no_gap(
    database: Database,
) -> None:
    append(database, None, 0, 5, None, 5, rollback_last=True)
    report = verify(database.owner_url)
    assert report.intact, report.problems
    assert report.records == 7
    assert [seq for _, seq, _, _ in _records(database)] == list(range(1, 8))


def test_tampering_with_one_record_of_a_batch_is_caught(database: Database) -> None:
    append(database, 12)
    assert verify(database.owner_url).intact
    chain = _records(database)[0][0]
    tamper(
        database,
        f"UPDATE audit_log SET content = replace(content, 'user-5', 'user-X') "
        f"WHERE chain_id = {chain} AND seq = 6",
    )
    assert _only(verify(database.owner_url)) == (6, "altered")


def test_deleting_one_record_of_a_batch_is_caught(database: Database) -> None:
    append(database, 12)
    chain = _records(database)[0][0]
    tamper(database, f"DELETE FROM audit_log WHERE chain_id = {chain} AND seq = 4")
    assert _only(verify(database.owner_url)) == (4, "deleted")


def test_a_null_record_is_refused_and_nothing_appended(database: Database) -> None:
    async def body(pool: asyncpg.Pool) -> str:
        async with pool.acquire() as conn:
            try:
                await conn.execute(audit.APPEND_MANY_SQL, 1, ["{}", None])
            except asyncpg.PostgresError as error:
                return type(error).__name__
        return "accepted"

    assert run_with_pool(database.url, body, size=1) == "NullValueNotAllowedError"
    assert verify(database.owner_url).records == 0
