"""``healthstack plugins add|list|enable|disable|remove``: the WASM plugin registry.

Uses ``DATABASE_URL`` (the application role, which the 0004 migration grants the plugin table to).
``add`` compiles the module and checks its ABI exports and imports against the granted
capabilities before storing it, so a plugin that cannot run is never registered. Every change
(add, enable, disable, remove) writes an audit record (subject ``cli:<unix user>``) in the same
transaction, so a change without its record cannot commit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import io
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from healthstack.config import Settings
from healthstack.errors import HealthstackError
from healthstack.plugins.capabilities import CAPABILITIES
from healthstack.plugins.errors import PluginError
from healthstack.plugins.model import TRIGGERS, Plugin
from healthstack.plugins.registry import PluginRegistry, audit_detail, validate_manifest
from healthstack.plugins.runtime import check_plugin
from healthstack.security import audit
from healthstack.security.audit_event import AuditEvent
from healthstack.service.state import ServiceState

# Action -> audit interaction; `list` reads metadata only (no PHI) and is not audited.
AUDITED = {"add": "create", "enable": "update", "disable": "update", "remove": "delete"}


HOOKED_TYPES = ("Patient", "Observation")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="register a .wasm plugin (checked before it is stored)")
    add.add_argument("file", type=Path, help="the plugin module, a .wasm binary")
    add.add_argument("--name", required=True)
    add.add_argument("--version", required=True, dest="plugin_version", metavar="VERSION")
    add.add_argument("--trigger", action="append", required=True, choices=TRIGGERS)
    add.add_argument(
        "--resource-type", action="append", required=True, dest="resource_types",
        choices=HOOKED_TYPES,  # the API runs hooks for these types only
    )  # fmt: skip
    add.add_argument("--grant", action="append", default=[], choices=sorted(CAPABILITIES))
    add.add_argument("--disabled", action="store_true", help="register without enabling")
    add.add_argument("--replace", action="store_true", help="replace a plugin of the same name")
    listing = sub.add_parser("list", help="list registered plugins")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    for action in ("enable", "disable", "remove"):
        sub.add_parser(action, help=f"{action} a plugin").add_argument("name")


def _database_url() -> str:
    url = Settings.from_env().database_url
    if not url:
        raise HealthstackError(
            "set DATABASE_URL (or DATABASE_URL_FILE) to reach the plugin registry"
        )
    return url


def _read_plugin(args: argparse.Namespace) -> Plugin:
    try:
        wasm = args.file.read_bytes()
    except OSError as exc:
        raise HealthstackError(f"{args.file}: cannot read: {exc.strerror}") from exc
    plugin = Plugin(
        args.name, args.plugin_version, wasm, frozenset(args.trigger),
        frozenset(args.resource_types), frozenset(args.grant), not args.disabled,
    )  # fmt: skip
    try:
        validate_manifest(plugin)
        check_plugin(plugin)
    except ValueError as exc:
        raise HealthstackError(f"{args.file}: {exc}") from exc
    except PluginError as exc:
        raise HealthstackError(f"{args.file}: {exc.code}: {exc.message}") from exc
    return plugin


async def _add(registry: PluginRegistry, args: argparse.Namespace) -> None:
    plugin: Plugin = args.checked_plugin
    await registry.add(plugin, replace=args.replace)
    state = "disabled" if args.disabled else "enabled"
    print(f"added {plugin.label} sha256={plugin.sha256} ({state})")


async def _list(registry: PluginRegistry, args: argparse.Namespace) -> None:
    infos = await registry.list_all()
    if args.json:
        print(json.dumps([i.to_json() for i in infos], indent=2))
        return
    for i in infos:
        state = "enabled " if i.enabled else "disabled"
        grants = ",".join(i.grants) or "-"
        print(
            f"{i.name}@{i.version}  {state}  {','.join(i.triggers)}  "
            f"{','.join(i.resource_types)}  grants={grants}  sha256={i.sha256}"
        )


async def _toggle(registry: PluginRegistry, args: argparse.Namespace) -> None:
    await registry.set_enabled(args.name, args.action == "enable")
    print(f"{args.action}d {args.name}")


async def _remove(registry: PluginRegistry, args: argparse.Namespace) -> None:
    await registry.remove(args.name)
    print(f"removed {args.name}")


ACTIONS: dict[str, Callable[[PluginRegistry, argparse.Namespace], Awaitable[None]]] = {
    "add": _add,
    "list": _list,
    "enable": _toggle,
    "disable": _toggle,
    "remove": _remove,
}


def _unix_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name, no passwd entry (containers): the uid names it
        return f"uid{os.getuid()}"


def _audit_event(args: argparse.Namespace) -> AuditEvent | None:
    interaction = AUDITED.get(args.action)
    if interaction is None:
        return None
    if args.action == "add":
        name, detail = args.checked_plugin.name, audit_detail(args.checked_plugin)
    else:
        name, detail = args.name, f"plugin={args.name} {args.action}"
    return AuditEvent(
        interaction, "success", f"cli:{_unix_user()}", client_id="healthstack-cli",
        resource_type="Plugin", resource_id=name[:64], detail=detail,
    )  # fmt: skip


async def _act(conn: asyncpg.Connection, url: str, args: argparse.Namespace) -> None:
    """The registry change and its audit record commit together, or neither does."""
    event, said = _audit_event(args), io.StringIO()
    async with conn.transaction():
        with contextlib.redirect_stdout(said):  # report success only once committed
            await ACTIONS[args.action](PluginRegistry(conn), args)
        if event is not None:
            await audit.record(conn, ServiceState(Settings.from_env(), url), event)
    print(said.getvalue(), end="")


async def _run(args: argparse.Namespace) -> None:
    if args.action == "add":
        args.checked_plugin = _read_plugin(args)  # a bad file fails before touching the database
    url = _database_url()
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        raise HealthstackError(f"cannot connect to DATABASE_URL: {type(exc).__name__}") from exc
    try:
        await _act(conn, url, args)
    except audit.AuditWriteError as exc:
        raise HealthstackError(f"nothing changed: {exc.issues[0]['diagnostics']}") from exc
    except ValueError as exc:
        raise HealthstackError(str(exc)) from exc
    except PluginError as exc:
        raise HealthstackError(exc.message) from exc
    except asyncpg.UndefinedTableError as exc:
        raise HealthstackError("table plugin missing: run `healthstack db migrate`") from exc
    finally:
        await conn.close()


def run(args: argparse.Namespace) -> int:
    asyncio.run(_run(args))
    return 0
