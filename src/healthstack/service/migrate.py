"""Schema migrations with Alembic (plain-SQL revisions under ``migrations/versions``)."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from healthstack.errors import HealthstackError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def sqlalchemy_url(url: str) -> str:
    """Alembic runs on SQLAlchemy with psycopg 3; the service itself uses asyncpg."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise HealthstackError("DATABASE_URL must start with postgresql://")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in URL-encoded passwords.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("postgresql://x/y")).get_current_head()
    assert head is not None
    return head


def upgrade(url: str, revision: str = "head") -> None:
    try:
        command.upgrade(alembic_config(url), revision)
    except Exception as exc:  # surfaced as one clear message; details stay in the chain
        raise HealthstackError(f"migration failed: {type(exc).__name__}: {exc}") from exc
