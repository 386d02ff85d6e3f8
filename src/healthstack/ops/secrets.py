"""Deployment secrets: generate an environment's env file and turn it into Kubernetes Secrets.

``init`` writes ``deploy/overlays/<env>/secrets.env`` (gitignored, mode 0600) with fresh random
values in the formats docs/CONTRACT.md requires. ``apply`` turns that file into the Secrets the
manifests mount, the way the seed does it (``kubectl create secret generic --from-env-file``),
through ``--dry-run=client -o yaml | kubectl apply -f -`` so re-running it updates in place.
Secret values never appear on a command line (they would be visible in ``ps``) nor in messages.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from healthstack.errors import HealthstackError

APP_SECRET = "healthcare-app-secrets"  # noqa: S105 (a Secret object's name)
DATABASE = "healthcare"
APP_ROLE = "healthstack_app"
_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class Environment:
    """Where an environment's database lives and which Secrets its manifests expect."""

    name: str
    namespace: str
    db_host: str
    owner_role: str  # runs migrations (MIGRATION_DATABASE_URL)
    sslmode: str
    cnpg: bool  # CloudNativePG basic-auth Secrets instead of the StatefulSet's postgres-secrets


ENVIRONMENTS: dict[str, Environment] = {
    # postgres-ha component: CloudNativePG's read-write Service, PostgreSQL TLS (outside the mesh).
    "prod": Environment("prod", "healthcare-prod", "postgres-rw", "healthstack", "require", True),
    # postgres component: the StatefulSet's headless Service; the mesh's mTLS protects the link.
    "staging": Environment(
        "staging", "healthcare-staging", "postgres-service", "postgres", "disable", False
    ),
}


@dataclass(frozen=True)
class SecretSpec:
    """One Kubernetes Secret to create: from the whole env file, or from named values."""

    name: str
    secret_type: str | None = None
    env_file: Path | None = None
    values: tuple[tuple[str, str], ...] = ()


def environment(name: str) -> Environment:
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        known = ", ".join(sorted(ENVIRONMENTS))
        raise HealthstackError(f"unknown environment {name!r} (expected one of {known})") from None


def default_path(env: Environment, root: Path = Path()) -> Path:
    return root / "deploy" / "overlays" / env.name / "secrets.env"


def _url(role: str, password: str, env: Environment) -> str:
    return f"postgresql://{role}:{password}@{env.db_host}:5432/{DATABASE}?sslmode={env.sslmode}"


def generate(env: Environment) -> dict[str, str]:
    """Fresh values: 64-hex keys (32 bytes), an 86-character SECRET_KEY_BASE, URL-safe passwords."""
    encryption_key = secrets.token_hex(32)
    backup_key = secrets.token_hex(32)
    while backup_key == encryption_key:  # the service refuses equal keys
        backup_key = secrets.token_hex(32)
    return {
        "DATABASE_URL": _url(APP_ROLE, secrets.token_urlsafe(32), env),
        "MIGRATION_DATABASE_URL": _url(env.owner_role, secrets.token_urlsafe(32), env),
        "SECRET_KEY_BASE": secrets.token_urlsafe(64),
        "ENCRYPTION_KEY": encryption_key,
        "ENCRYPTION_OLD_KEYS": "",  # filled during key rotation (docs/deploy.md)
        "BACKUP_KEY": backup_key,
    }


def render(values: Mapping[str, str], env: Environment) -> str:
    header = (
        f"# healthstack secrets for {env.namespace}: never commit (gitignored), mode 0600.\n"
        f"# Load with: healthstack secrets apply --env {env.name}\n"
    )
    return header + "".join(f"{key}={value}\n" for key, value in values.items())


def write(path: Path, text: str, *, force: bool) -> None:
    """Create the file with mode 0600 from the start (no window where others can read it)."""
    if path.exists() and not force:
        raise HealthstackError(f"{path} already exists; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def read(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as ``kubectl --from-env-file`` reads them; errors name the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        hint = " (run `healthstack secrets init` first)" if not path.exists() else ""
        raise HealthstackError(f"{path}: cannot read: {exc.strerror}{hint}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not _KEY.match(key):
            raise HealthstackError(f"{path}:{number}: expected KEY=VALUE with an upper-case KEY")
        values[key] = value
    return values


def _password(values: Mapping[str, str], key: str, path: Path) -> tuple[str, str]:
    """(role, password) from one of the env file's connection URLs."""
    url = values.get(key)
    if not url:
        raise HealthstackError(f"{path}: {key} is missing")
    parts = urlsplit(url)
    if not parts.username or not parts.password:
        raise HealthstackError(f"{path}: {key} must include a user name and a password")
    return unquote(parts.username), unquote(parts.password)


def specs(env: Environment, path: Path) -> list[SecretSpec]:
    """The service's Secret (the whole file) and the database's, derived from the same URLs."""
    values = read(path)
    app_role, app_password = _password(values, "DATABASE_URL", path)
    owner_role, owner_password = _password(values, "MIGRATION_DATABASE_URL", path)
    app = SecretSpec(APP_SECRET, env_file=path)
    if env.cnpg:
        basic = "kubernetes.io/basic-auth"
        return [
            app,
            SecretSpec("postgres-owner", basic, values=(("username", owner_role),
                                                        ("password", owner_password))),
            SecretSpec("postgres-app", basic, values=(("username", app_role),
                                                      ("password", app_password))),
        ]  # fmt: skip
    db_values = (("password", owner_password), ("app_password", app_password))
    return [app, SecretSpec("postgres-secrets", values=db_values)]


def _create_args(kubectl: str, spec: SecretSpec, namespace: str, workdir: Path) -> list[str]:
    args = [kubectl, "create", "secret", "generic", spec.name, "--namespace", namespace]
    if spec.secret_type:
        args.append(f"--type={spec.secret_type}")
    if spec.env_file is not None:
        args.append(f"--from-env-file={spec.env_file}")
    for key, value in spec.values:
        file = workdir / f"{spec.name}.{key}"
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(value)
        args.append(f"--from-file={key}={file}")
    return [*args, "--dry-run=client", "--output=yaml"]


def _run(args: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output"
        raise HealthstackError(f"`{' '.join(args[:3])} ...` failed: {detail}")
    return proc.stdout


def manifests(kubectl: str, env: Environment, path: Path, namespace: str) -> str:
    """The Secret manifests, rendered by ``kubectl create ... --dry-run=client -o yaml``."""
    with tempfile.TemporaryDirectory(prefix="healthstack-secrets-") as tmp:
        docs = [_run(_create_args(kubectl, s, namespace, Path(tmp))) for s in specs(env, path)]
    return "---\n".join(docs)


def apply(kubectl: str, text: str) -> str:
    """``kubectl apply -f -`` with the manifests on stdin; returns kubectl's summary lines."""
    return _run([kubectl, "apply", "-f", "-"], stdin=text)
