"""The plugin registry in PostgreSQL (table ``plugin``, migration 0004), a :class:`PluginSource`.

Reads fetch the wasm bytes only for hashes this process has not seen, so a hook costs one small
metadata query, not a transfer of every module on every write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from healthstack.plugins.capabilities import CAPABILITIES
from healthstack.plugins.errors import PluginError
from healthstack.plugins.model import TRIGGERS, Plugin

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$")
RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_INSERT_COLUMNS = "name, version, sha256, wasm, triggers, resource_types, grants, enabled"
# --replace swaps code and manifest in one statement; created_at keeps the first registration.
_REPLACE = (
    "DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _INSERT_COLUMNS.split(", ")[1:])
    + ", updated_at = now()"
)
_COLUMNS = (
    "name, version, sha256, triggers, resource_types, grants, enabled, created_at, updated_at"
)


@dataclass(frozen=True)
class PluginInfo:
    """A registry row without its code, for listings."""

    name: str
    version: str
    sha256: str
    triggers: tuple[str, ...]
    resource_types: tuple[str, ...]
    grants: tuple[str, ...]
    enabled: bool
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["created_at"] = self.created_at.isoformat()
        out["updated_at"] = self.updated_at.isoformat()
        return out


def validate_manifest(plugin: Plugin) -> None:
    """Reject a bad name, version, trigger, resource type or capability, naming the field."""
    checks = [
        (bool(NAME.match(plugin.name)), f"name {plugin.name!r} must match {NAME.pattern}"),
        (
            bool(VERSION.match(plugin.version)),
            f"version {plugin.version!r} must match {VERSION.pattern}",
        ),
        (
            bool(plugin.triggers) and plugin.triggers <= set(TRIGGERS),
            f"triggers must be among {TRIGGERS}",
        ),
        (
            bool(plugin.resource_types)
            and all(RESOURCE_TYPE.match(t) for t in plugin.resource_types),
            "resource types must be FHIR resource type names such as Observation",
        ),
        (plugin.grants <= CAPABILITIES, f"grants must be among {sorted(CAPABILITIES)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


class PluginRegistry:
    """CRUD over the ``plugin`` table through an asyncpg pool or connection."""

    def __init__(self, db: asyncpg.Pool | asyncpg.Connection) -> None:
        self.db = db
        self._wasm: dict[str, bytes] = {}

    async def add(self, plugin: Plugin, *, replace: bool = False) -> None:
        validate_manifest(plugin)
        status = await self.db.execute(
            f"INSERT INTO plugin ({_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            f" ON CONFLICT (name) {_REPLACE if replace else 'DO NOTHING'}",
            plugin.name, plugin.version, plugin.sha256, plugin.wasm, sorted(plugin.triggers),
            sorted(plugin.resource_types), sorted(plugin.grants), plugin.enabled,
        )  # fmt: skip
        if status.endswith(" 0"):
            raise ValueError(
                f"plugin {plugin.name!r} already exists; remove it or add with --replace"
            )

    async def list_all(self) -> list[PluginInfo]:
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM plugin ORDER BY name")
        return [_info(row) for row in rows]

    async def set_enabled(self, name: str, enabled: bool) -> None:
        status = await self.db.execute(
            "UPDATE plugin SET enabled = $2, updated_at = now() WHERE name = $1", name, enabled
        )
        _found(status, name)

    async def remove(self, name: str) -> None:
        _found(await self.db.execute("DELETE FROM plugin WHERE name = $1", name), name)

    async def get(self, name: str) -> Plugin | None:
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM plugin WHERE name = $1", name)
        plugins = await self._with_code(rows)
        return plugins[0] if plugins else None

    async def all_plugins(self) -> list[Plugin]:
        """Every registered plugin with its code, enabled or not (the API's in-memory snapshot)."""
        rows = await self.db.fetch(f"SELECT {_COLUMNS} FROM plugin ORDER BY name")
        plugins = await self._with_code(rows)
        # Forget the code of replaced or removed versions: the cache never outgrows the table.
        current = {p.sha256 for p in plugins}
        self._wasm = {h: w for h, w in self._wasm.items() if h in current}
        return plugins

    async def plugins_for(self, trigger: str, resource_type: str) -> list[Plugin]:
        rows = await self.db.fetch(
            f"SELECT {_COLUMNS} FROM plugin WHERE enabled AND $1 = ANY(triggers)"
            " AND $2 = ANY(resource_types) ORDER BY name",
            trigger,
            resource_type,
        )
        return await self._with_code(rows)

    async def _with_code(self, rows: list[asyncpg.Record]) -> list[Plugin]:
        missing = [r["sha256"] for r in rows if r["sha256"] not in self._wasm]
        if missing:
            for row in await self.db.fetch(
                "SELECT sha256, wasm FROM plugin WHERE sha256 = ANY($1::text[])", missing
            ):
                self._wasm[row["sha256"]] = bytes(row["wasm"])
        return [_plugin(row, self._wasm[row["sha256"]]) for row in rows]


def audit_detail(plugin: Plugin) -> str:
    """What a registration's audit record says: identity, manifest and grants (no PHI)."""
    return (
        f"plugin={plugin.name} version={plugin.version} sha256={plugin.sha256} "
        f"triggers={','.join(sorted(plugin.triggers))} "
        f"resource_types={','.join(sorted(plugin.resource_types))} "
        f"grants={','.join(sorted(plugin.grants)) or '-'} enabled={plugin.enabled}"
    )


def _found(status: str, name: str) -> None:
    if status.endswith(" 0"):
        raise PluginError("not-found", f"no plugin named {name!r}")


def _info(row: asyncpg.Record) -> PluginInfo:
    return PluginInfo(
        row["name"], row["version"], row["sha256"], tuple(row["triggers"]),
        tuple(row["resource_types"]), tuple(row["grants"]), row["enabled"],
        row["created_at"], row["updated_at"],
    )  # fmt: skip


def _plugin(row: asyncpg.Record, wasm: bytes) -> Plugin:
    plugin = Plugin(
        row["name"], row["version"], wasm, frozenset(row["triggers"]),
        frozenset(row["resource_types"]), frozenset(row["grants"]), row["enabled"],
    )  # fmt: skip
    if plugin.sha256 != row["sha256"]:  # the table's CHECK makes this unreachable; belt and braces
        raise PluginError("compile-error", f"stored code of {plugin.label} does not match its hash")
    return plugin
