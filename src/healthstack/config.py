"""Settings: one class, read from the environment (and ``*_FILE`` secret files), validated once.

Variable names are the seed's own (``PHX_HOST``, ``ECTO_IPV6``...) so its ConfigMap and Secret work
unchanged. In production the settings refuse missing, placeholder, short or malformed secrets; an
error names the variable and never echoes its value.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from healthstack.errors import HealthstackError

# Values copied from the seed's secret.yaml and common stand-ins: never acceptable as real secrets.
PLACEHOLDERS = frozenset(
    {
        "VERY_LONG_SECRET_KEY_BASE_64_CHARS_MIN",
        "32_BYTE_HEX_KEY_FOR_PHI_ENCRYPTION",
        "sk-...",
        "postgresql://user:password@postgres-service:5432/healthcare",
        "changeme",
        "CHANGEME",
        "secret",
        "password",
        "xxx",
        "TODO",
    }
)
_HEX_KEY = re.compile(r"^[0-9a-fA-F]{64}$")
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
SECRET_NAMES = (
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "SECRET_KEY_BASE",
    "ENCRYPTION_KEY",
    "ENCRYPTION_OLD_KEYS",
    "BACKUP_KEY",
    "OPENAI_API_KEY",
)


def secret_from_env(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """A secret outside :class:`Settings` (tools' keys), with the same ``NAME_FILE`` rule."""
    return _secret(os.environ if env is None else env, name)


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret from ``NAME`` or from the file ``NAME_FILE`` names (a mounted Secret key)."""
    file_var = f"{name}_FILE"
    if file_var in env:
        path = Path(env[file_var])
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise HealthstackError(f"{file_var}: cannot read {path}: {exc.strerror}") from exc
    value = env.get(name)
    return value.strip() if value else None


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise HealthstackError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise HealthstackError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise HealthstackError(f"{name} must be <= {maximum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise HealthstackError(f"{name} must be a number, got {raw!r}") from exc
    if not math.isfinite(value):
        raise HealthstackError(f"{name} must be a finite number, got {raw!r}")
    if value < 0:
        raise HealthstackError(f"{name} must be >= 0, got {value}")
    return value


def _pooler(env: Mapping[str, str]) -> str | None:
    value = env.get("DATABASE_POOLER", "").strip().lower()
    if value not in ("", "none", "pgbouncer"):
        raise HealthstackError("DATABASE_POOLER must be pgbouncer or none")
    return value if value == "pgbouncer" else None


def _bool(env: Mapping[str, str], *names: str) -> bool:
    for name in names:
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise HealthstackError(f"{name} must be true or false, got {raw!r}")
    return False


def _smart_embedded(env: Mapping[str, str], mode: str) -> bool:
    """The embedded development authorization server: on by default outside production, never in
    production (it signs with a key derived from SECRET_KEY_BASE and knows no real users)."""
    if mode != "production":
        return env.get("SMART_EMBEDDED_AS", "") == "" or _bool(env, "SMART_EMBEDDED_AS")
    if _bool(env, "SMART_EMBEDDED_AS"):
        raise HealthstackError(
            "SMART_EMBEDDED_AS: the embedded development authorization server is refused in "
            "production; set SMART_AUTHORIZE_URL and SMART_TOKEN_URL to the identity provider"
        )
    return False


def is_hex_key(value: str) -> bool:
    return bool(_HEX_KEY.match(value))


def _format_problem(name: str, value: str) -> str | None:
    if name == "SECRET_KEY_BASE" and len(value) < 64:
        return "SECRET_KEY_BASE must be at least 64 characters"
    if name in ("ENCRYPTION_KEY", "BACKUP_KEY") and not is_hex_key(value):
        return f"{name} must be 64 hexadecimal characters (32 bytes)"
    return None


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    public_host: str = "localhost"
    port: int = 4000
    pool_size: int = 10
    # "pgbouncer": connections go through a transaction-mode pooler (no named prepared statements).
    database_pooler: str | None = None
    log_level: str = "info"
    db_ipv6: bool = False
    drain_seconds: float = 10.0
    max_body_bytes: int = 1_048_576
    token_max_lifetime: int = 3600
    trusted_proxy_hops: int = 0  # X-Forwarded-For entries to trust (docs/security.md)
    # Client-side bounds on every database wait (0 = none, refused in production): a frozen server
    # (SIGSTOP, a partitioned VM) keeps sockets open, and only these make requests fail fast.
    database_statement_timeout: float = 30.0
    database_connect_timeout: float = 5.0
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    otlp_endpoint: str | None = None
    data_dir: Path = Path(".healthstack")
    database_url: str | None = None
    migration_database_url: str | None = None
    secret_key_base: str | None = field(default=None, repr=False)
    encryption_key: str | None = field(default=None, repr=False)
    encryption_old_keys: tuple[str, ...] = field(default=(), repr=False)
    backup_key: str | None = field(default=None, repr=False)
    openai_api_key: str | None = field(default=None, repr=False)
    # SMART App Launch (issue 16, docs/smart.md): the authorization server apps are sent to. In
    # production the organisation's identity provider (SMART_AUTHORIZE_URL, SMART_TOKEN_URL,
    # SMART_CAPABILITIES); elsewhere the embedded development server under /auth, its clients
    # registered in SMART_CLIENTS_FILE (JSON). SMART_EMBEDDED_AS=true is refused in production.
    smart_authorize_url: str | None = None
    smart_token_url: str | None = None
    smart_capabilities: tuple[str, ...] = ()
    smart_clients_file: Path | None = None
    smart_embedded_as: bool = True
    # Bulk Data export (docs/bulk.md): where sealed output files go (default <data dir>/bulk-export),
    # how long they stay downloadable, and how many exports one requester may have in flight.
    bulk_export_dir: Path | None = None
    bulk_export_expiry: int = 3600
    bulk_export_max_concurrent: int = 1
    # Set: files go to this S3-compatible bucket (credentials from the AWS SDK's usual chain:
    # AWS_* variables, IRSA, instance profile); the directory above only stages them.
    bulk_export_s3_bucket: str | None = None
    bulk_export_s3_prefix: str = "bulk-export/"
    bulk_export_s3_endpoint: str | None = None  # MinIO, Ceph...; unset: AWS

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        mode = env.get("HEALTHSTACK_ENV", "development")
        if mode not in ("development", "production", "test"):
            raise HealthstackError(
                f"HEALTHSTACK_ENV must be development, production or test, got {mode!r}"
            )
        log_level = env.get("LOG_LEVEL", "info").lower()
        if log_level not in _LOG_LEVELS:
            raise HealthstackError(f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
        old_keys = _secret(env, "ENCRYPTION_OLD_KEYS")
        settings = cls(
            env=mode,
            public_host=env.get("PHX_HOST") or env.get("PUBLIC_HOST") or "localhost",
            port=_int(env, "PORT", 4000, minimum=0, maximum=65535),
            pool_size=_int(env, "POOL_SIZE", 10, minimum=1),
            database_pooler=_pooler(env),
            database_statement_timeout=_float(env, "DATABASE_STATEMENT_TIMEOUT", 30.0),
            database_connect_timeout=_float(env, "DATABASE_CONNECT_TIMEOUT", 5.0),
            log_level=log_level,
            db_ipv6=_bool(env, "ECTO_IPV6", "DB_IPV6"),
            drain_seconds=_float(env, "SHUTDOWN_DRAIN_SECONDS", 10.0),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 1_048_576, minimum=1024),
            token_max_lifetime=_int(env, "TOKEN_MAX_LIFETIME_SECONDS", 3600, minimum=60),
            trusted_proxy_hops=_int(env, "TRUSTED_PROXY_HOPS", 0, minimum=0),
            oidc_issuer=env.get("OIDC_ISSUER") or None,
            oidc_audience=env.get("OIDC_AUDIENCE") or None,
            oidc_jwks_url=env.get("OIDC_JWKS_URL") or None,
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            data_dir=Path(env.get("HEALTHSTACK_DATA_DIR", ".healthstack")),
            database_url=_secret(env, "DATABASE_URL"),
            migration_database_url=_secret(env, "MIGRATION_DATABASE_URL"),
            secret_key_base=_secret(env, "SECRET_KEY_BASE"),
            encryption_key=_secret(env, "ENCRYPTION_KEY"),
            encryption_old_keys=tuple(k.strip() for k in (old_keys or "").split(",") if k.strip()),
            backup_key=_secret(env, "BACKUP_KEY"),
            openai_api_key=_secret(env, "OPENAI_API_KEY"),
            smart_authorize_url=env.get("SMART_AUTHORIZE_URL") or None,
            smart_token_url=env.get("SMART_TOKEN_URL") or None,
            smart_capabilities=tuple(env.get("SMART_CAPABILITIES", "").split()),
            smart_clients_file=Path(env["SMART_CLIENTS_FILE"])
            if env.get("SMART_CLIENTS_FILE")
            else None,
            smart_embedded_as=_smart_embedded(env, mode),
            bulk_export_dir=Path(env["BULK_EXPORT_DIR"]) if env.get("BULK_EXPORT_DIR") else None,
            bulk_export_expiry=_int(env, "BULK_EXPORT_EXPIRY_SECONDS", 3600, minimum=1),
            bulk_export_max_concurrent=_int(env, "BULK_EXPORT_MAX_CONCURRENT", 1, minimum=1),
            bulk_export_s3_bucket=env.get("BULK_EXPORT_S3_BUCKET") or None,
            bulk_export_s3_prefix=env.get("BULK_EXPORT_S3_PREFIX", "bulk-export/"),
            bulk_export_s3_endpoint=env.get("BULK_EXPORT_S3_ENDPOINT") or None,
        )
        settings.validate_secrets(require_all=settings.production)
        return settings

    def validate_secrets(self, *, require_all: bool) -> None:
        """Refuse bad secrets; in production also missing ones. Messages never include values.

        Every problem is reported at once, so one failed start tells an operator all to fix.
        """
        problems = self.secret_problems(require_all=require_all)
        if len(problems) == 1:
            raise HealthstackError(problems[0])
        if problems:
            raise HealthstackError("invalid configuration:\n  - " + "\n  - ".join(problems))

    def secret_problems(self, *, require_all: bool) -> list[str]:
        required = {
            "DATABASE_URL": self.database_url,
            "SECRET_KEY_BASE": self.secret_key_base,
            "ENCRYPTION_KEY": self.encryption_key,
        }
        optional = {
            "MIGRATION_DATABASE_URL": self.migration_database_url,
            "BACKUP_KEY": self.backup_key,
            "OPENAI_API_KEY": self.openai_api_key,
        }
        problems: list[str] = []
        for name, value in (required | optional).items():
            if value is None:
                if require_all and name in required:
                    problems.append(f"{name} is required in production (set it or {name}_FILE)")
            elif value in PLACEHOLDERS or value.startswith("sk-..."):
                problems.append(f"{name} is a placeholder value; generate a real secret")
            elif problem := _format_problem(name, value):
                problems.append(problem)
        problems += [
            f"ENCRYPTION_OLD_KEYS entry {index + 1} must be 64 hexadecimal characters"
            for index, key in enumerate(self.encryption_old_keys)
            if not is_hex_key(key)
        ]
        if self.backup_key is not None and self.backup_key == self.encryption_key:
            problems.append("BACKUP_KEY must differ from ENCRYPTION_KEY")
        return problems + self._production_problems(require_all)

    def _production_problems(self, require_all: bool) -> list[str]:
        if not require_all:
            return []
        problems = [
            f"{name} must be greater than 0 in production (seconds)"
            for name, value in (
                ("DATABASE_STATEMENT_TIMEOUT", self.database_statement_timeout),
                ("DATABASE_CONNECT_TIMEOUT", self.database_connect_timeout),
            )
            if value <= 0
        ]
        return problems + self._oidc_problems()

    def _oidc_problems(self) -> list[str]:
        if not self.oidc_issuer:
            # Development HS256 tokens are refused in production: nobody could sign in.
            return ["OIDC_ISSUER is required in production (with OIDC_AUDIENCE and OIDC_JWKS_URL)"]
        if not (self.oidc_audience and self.oidc_jwks_url):
            return ["OIDC_ISSUER needs OIDC_AUDIENCE and OIDC_JWKS_URL as well"]
        return []

    def with_overrides(self, **changes: object) -> Settings:
        from dataclasses import replace

        return replace(self, **changes)  # type: ignore[arg-type]
