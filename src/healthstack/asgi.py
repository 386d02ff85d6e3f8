"""ASGI factory for servers other than our own runner (granian, uvicorn --factory) and benchmarks.

Reads the same environment as ``healthstack serve``; the database must already be migrated.
"""

from __future__ import annotations

from starlette.applications import Starlette

from healthstack.config import Settings
from healthstack.errors import HealthstackError
from healthstack.service import logs


def create_app() -> Starlette:
    from healthstack.app import build_app

    settings = Settings.from_env()
    logs.configure(settings.log_level)
    if not settings.database_url:
        raise HealthstackError("DATABASE_URL is required for the ASGI factory")
    return build_app(settings, settings.database_url)
