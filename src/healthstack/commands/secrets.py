"""``healthstack secrets init|apply``: the deployment's Secrets, from a gitignored env file.

``init --env prod`` writes deploy/overlays/prod/secrets.env with strong random values;
``apply --env prod`` creates or updates the Secrets the manifests mount (or prints them with
``--print``). Production clusters with External Secrets load the same values into Vault instead.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from healthstack.errors import HealthstackError
from healthstack.ops import secrets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("init", "apply"))
    parser.add_argument("--env", required=True, choices=sorted(secrets.ENVIRONMENTS))
    parser.add_argument(
        "--file", type=Path, default=None,
        help="env file (default deploy/overlays/<env>/secrets.env under the current directory)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="init: replace an existing file")
    parser.add_argument("--namespace", default=None, help="apply: default healthcare-<env>")
    parser.add_argument(
        "--print", dest="print_only", action="store_true",
        help="apply: print the Secret manifests instead of applying them",
    )  # fmt: skip
    parser.add_argument("--kubectl", default=None, help="kubectl binary (default: venv, PATH)")


def _kubectl(explicit: str | None) -> str:
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if found is None:
        raise HealthstackError("kubectl not found (neither next to Python nor on PATH); --kubectl")
    return found


def _init(args: argparse.Namespace, env: secrets.Environment, path: Path) -> int:
    secrets.write(path, secrets.render(secrets.generate(env), env), force=args.force)
    print(f"wrote {path} (mode 0600); next: healthstack secrets apply --env {env.name}")
    return 0


def _apply(args: argparse.Namespace, env: secrets.Environment, path: Path) -> int:
    kubectl = _kubectl(args.kubectl)
    text = secrets.manifests(kubectl, env, path, args.namespace or env.namespace)
    sys.stdout.write(text if args.print_only else secrets.apply(kubectl, text))
    return 0


def run(args: argparse.Namespace) -> int:
    env = secrets.environment(args.env)
    path = args.file or secrets.default_path(env)
    if args.file is None and not path.parent.is_dir():
        # Never scatter secret files into whatever directory the command happens to run in.
        raise HealthstackError(f"{path.parent}: no such overlay here; run from the repository "
                               "root or pass --file")  # fmt: skip
    return _init(args, env, path) if args.action == "init" else _apply(args, env, path)
