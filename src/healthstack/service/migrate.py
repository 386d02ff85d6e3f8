"""Schema migrations with Alembic (plain-SQL revisions under ``migrations/versions``)."""

from __future__ import annotations

import ast
import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from healthstack.errors import HealthstackError

log = logging.getLogger("healthstack.migrate")

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def sqlalchemy_url(url: str) -> str:
    """Alembic runs on SQLAlchemy with psycopg 3; the service itself uses asyncpg."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise HealthstackError("DATABASE_URL must start with postgresql://")


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in URL-encoded passwords.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str:
    """The revision no other revision builds on, read from the files without importing Alembic.

    The serving path needs only this, for readiness; Alembic and SQLAlchemy cost ~0.5 s of start-up
    (measured by `make bench`). tests/service/test_migrate.py checks it agrees with Alembic.
    """
    revisions: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        values = _module_constants(path)
        revisions[str(values["revision"])] = values.get("down_revision")  # type: ignore[assignment]
    heads = set(revisions) - {down for down in revisions.values() if down}
    if len(heads) != 1:
        raise HealthstackError(f"migrations must form one chain, found heads {sorted(heads)}")
    return heads.pop()


def _module_constants(path: Path) -> dict[str, object]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        target.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision")
    }


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    try:
        command.upgrade(alembic_config(url), revision)
    except Exception as exc:  # surfaced as one clear message; details stay in the chain
        # Driver messages can quote row values (DETAIL, parameters): type and SQLSTATE only.
        sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or "n/a"
        raise HealthstackError(
            f"migration failed: {type(exc).__name__} (SQLSTATE {sqlstate})"
        ) from exc
    _log_storage(url)


def _log_storage(url: str) -> None:
    """Say which vitals storage the migration chose (TimescaleDB hypertable or plain table)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            row = conn.execute(sqlalchemy.text(
                "SELECT enabled, detail FROM service_capability WHERE name = 'timescaledb'"
            )).first()  # fmt: skip
    except sqlalchemy.exc.SQLAlchemyError:
        return  # an older revision without the table: nothing chosen yet
    finally:
        engine.dispose()
    if row is not None:
        storage = "timescaledb" if row[0] else "postgresql"
        log.info("vitals storage chosen", extra={"storage": storage, "detail": row[1]})
