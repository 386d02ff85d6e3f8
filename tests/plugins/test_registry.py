"""The PostgreSQL registry and the ``healthstack plugins`` command on a real, migrated database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command

from healthstack.cli import main
from healthstack.plugins import Plugin, PluginHost, PluginRuntime
from healthstack.plugins.registry import PluginRegistry
from healthstack.service.migrate import alembic_config

Vitals = Callable[..., list[dict[str, Any]]]


async def _with_registry(url: str, body: Callable[[PluginRegistry], Any]) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await body(PluginRegistry(conn))
    finally:
        await conn.close()


def test_registry_round_trip_feeds_hooks(
    database: Any, news2: Plugin, runtime: PluginRuntime, vitals: Vitals
) -> None:
    async def body(registry: PluginRegistry) -> None:
        await registry.add(news2)
        loaded = await registry.get("news2")
        assert loaded == news2
        assert [p.name for p in await registry.plugins_for("derive", "Observation")] == ["news2"]
        assert await registry.plugins_for("validate", "Observation") == []
        result = await PluginHost(runtime, registry).run_hook(
            "derive", "Observation", vitals(hr=135)
        )
        assert result.resources[0]["valueInteger"] == 3
        await registry.set_enabled("news2", False)
        assert await registry.plugins_for("derive", "Observation") == []
        with pytest.raises(ValueError, match="already exists"):
            await registry.add(news2)
        await registry.remove("news2")
        assert await registry.get("news2") is None

    asyncio.run(_with_registry(database.url, body))


def test_table_rejects_a_hash_that_does_not_match_the_code(database: Any) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO plugin (name, version, sha256, wasm, triggers, resource_types)"
                " VALUES ('x', '1', $1, $2, '{derive}', '{Observation}')",
                "0" * 64,
                b"\0asm\x01\0\0\0",
            )

    async def run() -> None:
        conn = await asyncpg.connect(database.url)
        try:
            await body(conn)
        finally:
            await conn.close()

    asyncio.run(run())


def test_migration_downgrades_and_upgrades(database: Any) -> None:
    config = alembic_config(database.owner_url)
    exists = "SELECT to_regclass('public.plugin') IS NOT NULL"

    async def table_exists() -> bool:
        conn = await asyncpg.connect(database.url)
        try:
            return bool(await conn.fetchval(exists))
        finally:
            await conn.close()

    command.downgrade(config, "0003")
    assert not asyncio.run(table_exists())
    command.upgrade(config, "0004")
    assert asyncio.run(table_exists())


def cli(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str) -> int:
    monkeypatch.setenv("DATABASE_URL", url)
    return main(["plugins", *argv])


def test_cli_lifecycle(
    database: Any, news2_wasm: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    wasm = tmp_path / "news2.wasm"
    wasm.write_bytes(news2_wasm)
    add = ["add", str(wasm), "--name", "news2", "--version", "1.0.0", "--trigger", "derive",
           "--trigger", "operation", "--resource-type", "Observation"]  # fmt: skip
    assert cli(monkeypatch, database.url, *add) == 0
    assert "added news2@1.0.0 sha256=" in capsys.readouterr().out
    assert cli(monkeypatch, database.url, *add) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    assert cli(monkeypatch, database.url, *add, "--replace", "--version", "1.0.1") == 0
    assert cli(monkeypatch, database.url, "disable", "news2") == 0
    capsys.readouterr()
    assert cli(monkeypatch, database.url, "list", "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["version"], row["enabled"]) == ("news2", "1.0.1", False)
    assert row["triggers"] == ["derive", "operation"]
    assert cli(monkeypatch, database.url, "enable", "news2") == 0
    assert cli(monkeypatch, database.url, "remove", "news2") == 0
    assert cli(monkeypatch, database.url, "remove", "news2") == 2
    assert "no plugin named 'news2'" in capsys.readouterr().err


def _audit_rows(url: str) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(url)
        try:
            rows: list[asyncpg.Record] = await conn.fetch(
                "SELECT interaction, outcome, subject, resource_id, content::jsonb->>'detail' AS d"
                " FROM audit_log WHERE resource_type = 'Plugin' ORDER BY recorded_at, seq"
            )
            return rows
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_cli_changes_are_audited_as_the_unix_user(
    database: Any, wat: Callable[..., Plugin], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    plugin = wat("good")
    wasm = tmp_path / "good.wasm"
    wasm.write_bytes(plugin.wasm)
    monkeypatch.setenv("USER", "ward-admin")
    monkeypatch.setenv("LOGNAME", "ward-admin")
    add = ["add", str(wasm), "--name", "good", "--version", "2", "--trigger", "validate",
           "--resource-type", "Patient"]  # fmt: skip
    for argv in (add, ["disable", "good"], ["enable", "good"], ["list"], ["remove", "good"]):
        assert cli(monkeypatch, database.url, *argv) == 0
    assert cli(monkeypatch, database.url, "remove", "good") == 2  # failed: nothing to audit
    rows = _audit_rows(database.url)
    assert [r["interaction"] for r in rows] == ["create", "update", "update", "delete"]
    assert {(r["outcome"], r["subject"], r["resource_id"]) for r in rows} == {
        ("success", "cli:ward-admin", "good")
    }
    assert rows[0]["d"] == (
        f"plugin=good version=2 sha256={plugin.sha256} triggers=validate resource_types=Patient"
        " grants=- enabled=True"
    )
    assert [r["d"] for r in rows[1:]] == [
        "plugin=good disable",
        "plugin=good enable",
        "plugin=good remove",
    ]


@pytest.mark.parametrize(
    ("guest", "extra", "message"),
    [
        ("clock", [], "import-denied: needs capability clock"),
        ("noinvoke", [], "missing-export"),
        ("good", ["--resource-type", "Encounter"], "invalid choice: 'Encounter'"),
    ],
)
def test_cli_refuses_plugins_that_cannot_run(
    guest: str, extra: list[str], message: str, wat: Callable[..., Plugin], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # No database is needed: the file is checked first, so this also proves nothing was stored.
    wasm = tmp_path / f"{guest}.wasm"
    wasm.write_bytes(wat(guest).wasm)
    argv = ["add", str(wasm), "--name", guest, "--version", "1", "--trigger", "validate",
            "--resource-type", "Patient", *extra]  # fmt: skip
    try:
        code = cli(monkeypatch, "postgresql://nobody@127.0.0.1:1/none", *argv)
    except SystemExit as exit_:  # argparse refuses some values before the command runs
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_grant_lets_clock_plugin_register(
    database: Any, wat: Callable[..., Plugin], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wasm = tmp_path / "clock.wasm"
    wasm.write_bytes(wat("clock").wasm)
    argv = ["add", str(wasm), "--name", "clock", "--version", "1", "--trigger", "validate",
            "--resource-type", "Patient", "--grant", "clock"]  # fmt: skip
    assert cli(monkeypatch, database.url, *argv) == 0
