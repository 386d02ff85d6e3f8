"""Process-wide state shared by handlers (``request.app.state.service``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from healthstack.config import Settings
from healthstack.service.db import Capabilities
from healthstack.service.metrics import Metrics


@dataclass
class ServiceState:
    settings: Settings
    database_url: str
    metrics: Metrics = field(default_factory=Metrics)
    pool: asyncpg.Pool | None = None
    capabilities: Capabilities | None = None
    draining: bool = False
    # Filled by the feature packages at startup (keyring, token verifier, plugin host...).
    extras: dict[str, Any] = field(default_factory=dict)

    def require_pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("database pool used before startup")
        return self.pool
