"""Database credentials reach pg_dump/pg_restore through libpq variables, never argv."""

from __future__ import annotations

from healthstack.ops.backup import pg_env


def test_password_goes_to_the_environment() -> None:
    env = pg_env("postgresql://owner:s%40cret@127.0.0.1:5433/healthstack")
    assert env["PGPASSWORD"] == "s@cret"
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGDATABASE"]) == (
        "127.0.0.1", "5433", "owner", "healthstack")  # fmt: skip
