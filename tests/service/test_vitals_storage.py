"""TimescaleDB or plain PostgreSQL: the migration chooses safely and says so; answers match."""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import re

import psycopg
import pytest
from tests.conftest import create_database

from healthstack.fhir.vitals import BUCKET_ORIGIN
from healthstack.service.embedded_pg import SUPERUSER, EmbeddedPostgres

STORAGE = importlib.import_module(
    "healthstack.service.migrations.versions.0002_fhir"
).VITALS_STORAGE
ORIGIN = dt.datetime(2000, 1, 3, tzinfo=dt.UTC)  # time_bucket's default origin (TimescaleDB docs)


def _preload_pattern() -> str:
    match = re.search(r"current_setting\('shared_preload_libraries'\) ~ '([^']+)'", STORAGE)
    assert match, "the migration must read shared_preload_libraries before CREATE EXTENSION"
    return match.group(1).replace("\\\\", "\\")


@pytest.mark.parametrize(
    ("setting", "preloaded"),
    [
        ("timescaledb", True),
        ("pg_stat_statements, timescaledb", True),
        ('"timescaledb"', True),
        ("", False),
        ("pg_stat_statements", False),
        ("timescaledb_toolkit", False),
    ],
)
def test_preload_guard(pg: EmbeddedPostgres, setting: str, preloaded: bool) -> None:
    with psycopg.connect(pg.url(SUPERUSER, "postgres")) as conn:
        row = conn.execute("SELECT %s ~ %s", (setting, _preload_pattern())).fetchone()
    assert row is not None
    assert row[0] is preloaded
    # CREATE EXTENSION comes only after the guard, in the same IF.
    assert STORAGE.index("shared_preload_libraries") < STORAGE.index("CREATE EXTENSION")


def test_migration_logs_the_chosen_storage(
    pg: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="healthstack.migrate"):
        create_database(pg)
    chosen = [r for r in caplog.records if r.getMessage() == "vitals storage chosen"]
    assert [getattr(r, "storage", None) for r in chosen] == ["postgresql"]


@pytest.mark.parametrize("days", [3, 5, 7])
def test_date_bin_uses_time_buckets_origin(pg: EmbeddedPostgres, days: int) -> None:
    """Intervals that do not divide 48 h bucket identically to time_bucket's default origin."""
    at = dt.datetime(2024, 5, 17, 13, 30, tzinfo=dt.UTC)
    with psycopg.connect(pg.url(SUPERUSER, "postgres")) as conn:
        row = conn.execute(
            f"SELECT date_bin(%s::interval, %s::timestamptz, {BUCKET_ORIGIN})",
            (f"{days} days", at),
        ).fetchone()
    width = dt.timedelta(days=days)
    expected = ORIGIN + ((at - ORIGIN) // width) * width
    assert row is not None
    assert row[0] == expected
