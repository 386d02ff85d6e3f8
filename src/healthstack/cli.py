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
    "audit": ("audit", "audit trail: verify the hash chain"),
    "check": ("check", "verify Kubernetes manifests offline"),
    "secrets": ("secrets", "deployment secrets: init, apply"),
    "backup": ("backup", "encrypted logical backups: create, restore"),
    "drill": ("drill", "reliability drills with real processes"),
    "plugins": ("plugins", "WASM plugins: add, list, enable, disable, remove"),
}


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
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as other CLI tools do.
        sys.stderr.close()
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
