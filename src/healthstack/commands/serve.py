"""``healthstack serve``: the service, on DATABASE_URL or on an embedded PostgreSQL."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
from pathlib import Path

from healthstack.config import Settings
from healthstack.errors import HealthstackError
from healthstack.service import logs, tracing

log = logging.getLogger("healthstack.serve")
DEV_SECRETS = "dev-secrets.env"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (default 0.0.0.0, :: if IPv6)")
    parser.add_argument("--port", type=int, default=None, help="overrides PORT")
    parser.add_argument(
        "--no-migrate", action="store_true", help="do not apply migrations at start (production)"
    )


def dev_secrets(data_dir: Path) -> dict[str, str]:
    """Development keys, generated once under the data dir (mode 0600) and reused."""
    path = data_dir / DEV_SECRETS
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        values = {
            "SECRET_KEY_BASE": secrets.token_urlsafe(64),
            "ENCRYPTION_KEY": secrets.token_hex(32),
            "BACKUP_KEY": secrets.token_hex(32),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.writelines(f"{k}={v}\n" for k, v in values.items())
        log.warning("DEVELOPMENT MODE: generated development keys", extra={"path": str(path)})
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


def development_settings(settings: Settings) -> Settings:
    """Fill missing secrets with generated development keys (never in production)."""
    if settings.secret_key_base and settings.encryption_key and settings.backup_key:
        return settings
    generated = dev_secrets(settings.data_dir)
    filled = settings.with_overrides(
        secret_key_base=settings.secret_key_base or generated["SECRET_KEY_BASE"],
        encryption_key=settings.encryption_key or generated["ENCRYPTION_KEY"],
        backup_key=settings.backup_key or generated["BACKUP_KEY"],
    )
    filled.validate_secrets(require_all=False)
    return filled


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    if args.port is not None:
        settings = settings.with_overrides(port=args.port)
    if not settings.production:
        log.warning("DEVELOPMENT MODE: not for PHI", extra={"env": settings.env})
        settings = development_settings(settings)
    tracing.configure(settings.otlp_endpoint)
    host = args.host or ("::" if settings.db_ipv6 else "0.0.0.0")  # noqa: S104 (a container's port)
    if settings.database_url:
        return _serve(settings, settings.database_url, host, migrate_first=not args.no_migrate)
    if settings.production:
        raise HealthstackError(
            "DATABASE_URL is required in production (set it or DATABASE_URL_FILE)"
        )
    return _serve_embedded(settings, host)


def _serve(
    settings: Settings, url: str, host: str, *, migrate_first: bool, owner_url: str | None = None
) -> int:
    from healthstack.app import build_app
    from healthstack.service.server import run as run_server

    if migrate_first and not settings.production:
        from healthstack.service import migrate  # Alembic only when migrating (start-up time)

        migrate.upgrade(owner_url or settings.migration_database_url or url)
    return run_server(build_app(settings, url), host, settings.port)


def _serve_embedded(settings: Settings, host: str) -> int:
    from healthstack.service.embedded_pg import SUPERUSER, EmbeddedPostgres

    pg = EmbeddedPostgres(settings.data_dir.resolve() / "postgres")
    pg.init()
    pg.start()
    log.warning("DEVELOPMENT MODE: embedded PostgreSQL", extra={"port": pg.port})
    try:
        pg.ensure_database()
        return _serve(settings, pg.url(), host, migrate_first=True, owner_url=pg.url(SUPERUSER))
    finally:
        pg.stop()
        log.info("embedded PostgreSQL stopped")
