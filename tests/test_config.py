"""Settings: seed names accepted, secrets from files, production refuses bad secrets by name."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from healthstack.config import Settings
from healthstack.errors import HealthstackError

GOOD = {
    "HEALTHSTACK_ENV": "production",
    "DATABASE_URL": "postgresql://app:pw@db:5432/healthcare",
    "SECRET_KEY_BASE": "k" * 64,
    "ENCRYPTION_KEY": "ab" * 32,
    "OIDC_ISSUER": "https://login.example.com/realms/healthcare",
    "OIDC_AUDIENCE": "healthstack",
    "OIDC_JWKS_URL": "https://login.example.com/realms/healthcare/certs",
}


def test_seed_configmap_names_are_read() -> None:
    env = {
        **GOOD,
        "PHX_HOST": "healthcare.example.com",
        "PORT": "4000",
        "POOL_SIZE": "20",
        "LOG_LEVEL": "info",
        "ECTO_IPV6": "false",
    }
    settings = Settings.from_env(env)
    assert (settings.public_host, settings.port, settings.pool_size) == (
        "healthcare.example.com",
        4000,
        20,
    )
    assert settings.db_ipv6 is False


def test_aliases_public_host_and_db_ipv6() -> None:
    settings = Settings.from_env({**GOOD, "PUBLIC_HOST": "h.example", "DB_IPV6": "true"})
    assert settings.public_host == "h.example"
    assert settings.db_ipv6 is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENCRYPTION_KEY", "32_BYTE_HEX_KEY_FOR_PHI_ENCRYPTION"),
        ("SECRET_KEY_BASE", "VERY_LONG_SECRET_KEY_BASE_64_CHARS_MIN"),
        ("SECRET_KEY_BASE", "short-but-not-a-placeholder"),
        ("ENCRYPTION_KEY", "zz" * 32),
        ("ENCRYPTION_KEY", "ab" * 16),
        ("OPENAI_API_KEY", "sk-..."),
        ("DATABASE_URL", "postgresql://user:password@postgres-service:5432/healthcare"),
    ],
)
def test_production_refuses_bad_secret_naming_it_without_its_value(name: str, value: str) -> None:
    with pytest.raises(HealthstackError) as excinfo:
        Settings.from_env({**GOOD, name: value})
    assert name in excinfo.value.message
    assert value not in excinfo.value.message


@pytest.mark.parametrize("name", ["DATABASE_URL", "SECRET_KEY_BASE", "ENCRYPTION_KEY"])
def test_production_requires_each_secret(name: str) -> None:
    env = {k: v for k, v in GOOD.items() if k != name}
    with pytest.raises(HealthstackError, match=name):
        Settings.from_env(env)


def test_development_allows_missing_secrets() -> None:
    assert Settings.from_env({}).encryption_key is None


def test_secret_from_file(tmp_path: Path) -> None:
    key = secrets.token_hex(32)
    (tmp_path / "key").write_text(key + "\n")
    env = {k: v for k, v in GOOD.items() if k != "ENCRYPTION_KEY"}
    settings = Settings.from_env({**env, "ENCRYPTION_KEY_FILE": str(tmp_path / "key")})
    assert settings.encryption_key == key


def test_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(HealthstackError, match="ENCRYPTION_KEY_FILE"):
        Settings.from_env({**GOOD, "ENCRYPTION_KEY_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "http"),
        ("PORT", "99999"),
        ("POOL_SIZE", "0"),
        ("ECTO_IPV6", "maybe"),
        ("LOG_LEVEL", "loud"),
    ],
)
def test_malformed_config_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(HealthstackError, match=name):
        Settings.from_env({**GOOD, name: value})


def test_secrets_are_not_in_repr() -> None:
    assert GOOD["ENCRYPTION_KEY"] not in repr(Settings.from_env(GOOD))


def test_backup_key_must_differ_from_encryption_key() -> None:
    with pytest.raises(HealthstackError, match="BACKUP_KEY"):
        Settings.from_env({**GOOD, "BACKUP_KEY": GOOD["ENCRYPTION_KEY"]})


def test_every_problem_is_reported_at_once() -> None:
    env = {"HEALTHSTACK_ENV": "production", "ENCRYPTION_KEY": "32_BYTE_HEX_KEY_FOR_PHI_ENCRYPTION"}
    with pytest.raises(HealthstackError) as excinfo:
        Settings.from_env(env)
    for name in ("DATABASE_URL", "SECRET_KEY_BASE", "ENCRYPTION_KEY", "OIDC_ISSUER"):
        assert name in excinfo.value.message
    assert "32_BYTE_HEX_KEY_FOR_PHI_ENCRYPTION" not in excinfo.value.message


def test_production_needs_an_identity_provider() -> None:
    env = {k: v for k, v in GOOD.items() if not k.startswith("OIDC_")}
    with pytest.raises(HealthstackError, match="OIDC_ISSUER"):
        Settings.from_env(env)


@pytest.mark.parametrize("name", ["DATABASE_STATEMENT_TIMEOUT", "DATABASE_CONNECT_TIMEOUT"])
def test_production_refuses_unbounded_database_waits(name: str) -> None:
    """0 switches a timeout off (the db-outage drill's control); production refuses it."""
    with pytest.raises(HealthstackError, match=name):
        Settings.from_env({**GOOD, name: "0"})
    with pytest.raises(HealthstackError, match=f"{name} must be a number"):
        Settings.from_env({**GOOD, name: "ten"})
    development = {**GOOD, "HEALTHSTACK_ENV": "development", name: "0"}
    assert Settings.from_env(development).database_statement_timeout in (0.0, 30.0)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
def test_durations_must_be_finite(raw: str) -> None:
    with pytest.raises(
        HealthstackError, match="DATABASE_STATEMENT_TIMEOUT must be a finite number"
    ):
        Settings.from_env({**GOOD, "DATABASE_STATEMENT_TIMEOUT": raw})
