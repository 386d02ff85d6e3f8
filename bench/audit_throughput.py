"""Audit append throughput, 1 vs 16 concurrent writers, chained (64 heads) vs one global chain.

Run: ``.venv/bin/python -m bench.audit_throughput [--seconds 5]`` (own embedded PostgreSQL).
Two workloads: *read-style* (each record its own autocommit statement) and *write-style* (the
record inside a transaction that also does 2 ms of other work, holding its chain head until
commit, as a create/update does). The one-chain baseline is the same function with a single head
and a blocking lock: what a naive hash chain would do.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import asyncpg

from healthstack.security.audit import content_of
from healthstack.security.audit_event import AuditEvent
from healthstack.service import migrate
from healthstack.service.embedded_pg import APP_ROLE, SUPERUSER, EmbeddedPostgres

# The baseline: every append waits for chain 0's head (created only in the throwaway database).
SINGLE = """
CREATE FUNCTION audit_append_single(hint integer, content text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE s bigint; h bytea; doc jsonb := content::jsonb;
BEGIN
    UPDATE audit_chain SET seq = seq + 1,
        head = sha256(head || int2send(0::smallint) || int8send(seq + 1) || convert_to(content, 'UTF8'))
    WHERE chain_id = 0 RETURNING seq, head INTO s, h;
    INSERT INTO audit_log (chain_id, seq, hash, content, recorded_at, interaction, outcome,
                           subject, client_id, resource_type, resource_id, break_glass, request_id)
    VALUES (0, s, h, content, (doc->>'time')::timestamptz, doc->>'interaction', doc->>'outcome',
            doc->>'subject', doc->>'client_id', doc->>'resource_type', doc->>'resource_id',
            doc ? 'break_glass_reason', doc->>'request_id');
END $$;
GRANT EXECUTE ON FUNCTION audit_append_single(integer, text) TO healthstack_app;
"""
EVENT = AuditEvent(interaction="read", outcome="success", subject="bench-user",
                   resource_type="Patient", resource_id="00000000-0000-0000-0000-000000000000",
                   request_id="0123456789abcdef0123456789abcdef", source_ip="10.1.2.3")  # fmt: skip


async def _writer(pool: asyncpg.Pool, function: str, in_tx: bool, stop: float) -> int:
    done = 0
    sql = f"SELECT {function}($1, $2)"
    async with pool.acquire() as conn:
        hint = conn.get_server_pid()
        while time.monotonic() < stop:
            if in_tx:
                async with conn.transaction():
                    await conn.execute(sql, hint, content_of(EVENT))
                    await conn.execute("SELECT pg_sleep(0.002)")
            else:
                await conn.execute(sql, hint, content_of(EVENT))
            done += 1
    return done


async def measure(url: str, function: str, writers: int, in_tx: bool, seconds: float) -> float:
    pool = await asyncpg.create_pool(url, min_size=writers, max_size=writers)
    try:
        stop = time.monotonic() + seconds
        counts = await asyncio.gather(*(_writer(pool, function, in_tx, stop)
                                        for _ in range(writers)))  # fmt: skip
    finally:
        await pool.close()
    return sum(counts) / seconds


async def run(url: str, seconds: float) -> list[tuple[str, str, int, float]]:
    await measure(url, "audit_append", 4, False, 1.0)  # warm caches and plan caches first
    results = []
    for workload, in_tx in (("read-style", False), ("write-style", True)):
        for design, function in (("64 chains", "audit_append"), ("1 chain", "audit_append_single")):
            for writers in (1, 16):
                rate = await measure(url, function, writers, in_tx, seconds)
                results.append((workload, design, writers, rate))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pg")
        pg.init()
        pg.start()
        try:
            pg.ensure_database("bench")
            migrate.upgrade(pg.url(SUPERUSER, "bench"))
            pg.psql(SINGLE, database="bench")
            results = asyncio.run(run(pg.url(APP_ROLE, "bench"), args.seconds))
        finally:
            pg.destroy()
    print(f"{'workload':<12} {'design':<10} {'writers':>7} {'records/s':>10}")
    for workload, design, writers, rate in results:
        print(f"{workload:<12} {design:<10} {writers:>7} {rate:>10.0f}")


if __name__ == "__main__":
    main()
