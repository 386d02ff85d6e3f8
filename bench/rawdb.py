"""The raw-database baseline: a bare asyncpg program running exactly the SQL of one API request.

Run as its own process (``python -m bench.rawdb SPEC.pickle``) so it competes for the two cores the
way the service does. N coroutines share a pool of the service's size for a fixed duration; each
iteration acquires a connection, runs one request's statements on it and releases it. The pool
does no session reset on release: the baseline is the request's SQL and nothing else.
Prints one JSON object: requests/s, p50/p99 milliseconds, requests, errors.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import pickle
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from healthstack.security.audit import APPEND_SQL

AUDIT = "audit"  # a statement marker: one audit_append with a fresh timestamp, as the API does
TIME_MARK = "@TIME@"


@dataclass
class Copy:
    """COPY of rows into tables in one transaction; column 1 of every row gets a fresh id."""

    tables: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]
    id_column: dict[str, int] = field(default_factory=dict)  # table -> index of the id column
    # Tables with any number of rows per resource (the search index): their id column holds the
    # resource's position in the first table, replaced by that resource's fresh id.
    positional: frozenset[str] = frozenset()


@dataclass
class Spec:
    url: str
    pool_size: int
    concurrency: int
    seconds: float
    warmup: float
    # Each iteration: statements (sql, args), or (AUDIT, content template), or a Copy.
    iterations: list[list[tuple[str, Any]] | Copy]


async def _reset_nothing(conn: asyncpg.Connection) -> None:
    """No session reset on release: the baseline is the request's statements only."""


async def run_statements(conn: asyncpg.Connection, statements: list[tuple[str, Any]]) -> None:
    for sql, args in statements:
        if sql == AUDIT:
            now = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
            await conn.execute(APPEND_SQL, conn.get_server_pid(), args.replace(TIME_MARK, now))
        else:
            await conn.fetch(sql, *args)


def fresh_rows(copy: Copy) -> list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
    """The same rows under new ids (ids link the tables: row i keeps one id in each)."""
    ids = [str(uuid.uuid4()) for _ in copy.tables[0][2]]
    out = []
    for table, columns, rows in copy.tables:
        at = copy.id_column[table]
        if table in copy.positional:
            fresh = [(*r[:at], ids[r[at]], *r[at + 1 :]) for r in rows]
        else:
            fresh = [(*r[:at], ids[i], *r[at + 1 :]) for i, r in enumerate(rows)]
        out.append((table, columns, fresh))
    return out


async def run_copy(conn: asyncpg.Connection, copy: Copy) -> None:
    tables = fresh_rows(copy)
    async with conn.transaction():
        for table, columns, rows in tables:
            await conn.copy_records_to_table(table, records=rows, columns=columns)


async def _worker(
    pool: asyncpg.Pool, spec: Spec, offset: int, stop: float, out: list[tuple[float, float]]
) -> int:
    errors, i = 0, offset
    while (started := time.perf_counter()) < stop:
        work = spec.iterations[i % len(spec.iterations)]
        i += 1
        try:
            async with pool.acquire() as conn:
                if isinstance(work, Copy):
                    await run_copy(conn, work)
                else:
                    await run_statements(conn, work)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            errors += 1
            continue
        out.append((started, time.perf_counter() - started))
    return errors


async def _cpu_between(start: float, stop: float) -> float:
    """This process's CPU seconds between two ``perf_counter`` instants (the measured window)."""
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    before = time.process_time()
    await asyncio.sleep(max(0.0, stop - time.perf_counter()))
    return time.process_time() - before


async def measure(spec: Spec) -> dict[str, float]:
    pool = await asyncpg.create_pool(
        spec.url, min_size=spec.pool_size, max_size=spec.pool_size, reset=_reset_nothing
    )
    try:
        begin = time.perf_counter()
        counted_from, stop = begin + spec.warmup, begin + spec.warmup + spec.seconds
        samples: list[tuple[float, float]] = []
        cpu = asyncio.create_task(_cpu_between(counted_from, stop))
        errors = await asyncio.gather(
            *(_worker(pool, spec, n * 7, stop, samples) for n in range(spec.concurrency))
        )
        cpu_seconds = await cpu
    finally:
        await pool.close()
    latencies = [took for started, took in samples if started >= counted_from]
    result = summarize(latencies, spec.seconds, sum(errors))
    # The baseline's own CPU per operation (the database's is measured by the suite, over every
    # iteration including the warm-up: hence the total).
    result["cpu_ms_per_op"] = cpu_seconds * 1000 / len(latencies)
    result["iterations_total"] = len(samples)
    return result


def summarize(latencies: list[float], seconds: float, errors: int) -> dict[str, float]:
    if len(latencies) < 2:
        raise RuntimeError(f"the raw baseline completed only {len(latencies)} iterations")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "requests": len(latencies),
        "errors": errors,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.rawdb SPEC.pickle", file=sys.stderr)
        return 2
    # The spec is a file the suite itself just wrote in its private temporary directory.
    spec: Spec = pickle.loads(Path(argv[0]).read_bytes())  # noqa: S301
    print(json.dumps(uvloop.run(measure(spec))))
    return 0


if __name__ == "__main__":
    # Pickled specs name classes of bench.rawdb, not __main__: run the imported module's main.
    from bench import rawdb

    sys.exit(rawdb.main(sys.argv[1:]))
