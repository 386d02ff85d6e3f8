"""``healthstack token``: development tokens the service accepts, never in production."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import jwt
import pytest
from tests.conftest import TEST_SECRET_KEY_BASE

from healthstack.config import Settings
from healthstack.security.verifier import TokenVerifier


def token_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY_BASE", "HEALTHSTACK_ENV")}
    base.update(HEALTHSTACK_ENV="test", SECRET_KEY_BASE=TEST_SECRET_KEY_BASE)
    base.update(env)
    return subprocess.run([sys.executable, "-m", "healthstack.cli", "token", *args],
                          capture_output=True, text=True, env=base, check=False, timeout=60)  # fmt: skip


def test_minted_token_is_accepted_by_the_service_verifier() -> None:
    result = token_cli("--sub", "dr-who", "--scope", "user/Patient.rs patient/Observation.rs",
                       "--patient", "p-1", "--ttl", "10m", "--client-id", "ward-app")  # fmt: skip
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    settings = Settings(env="test", secret_key_base=TEST_SECRET_KEY_BASE)
    principal = asyncio.run(TokenVerifier(settings).verify(token))
    assert principal.subject == "dr-who"
    assert principal.patient == "p-1"
    assert principal.client_id == "ward-app"
    assert principal.scopes == frozenset({"user/Patient.rs", "patient/Observation.rs"})
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600


def test_refuses_in_production() -> None:
    result = token_cli("--sub", "x", "--scope", "user/Patient.rs", HEALTHSTACK_ENV="production",
                       DATABASE_URL="postgresql://a@b/c", ENCRYPTION_KEY="ab" * 32)  # fmt: skip
    assert result.returncode == 2
    assert "production" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("ttl", "message"), [("15 minutes", "--ttl"), ("0", "--ttl"),
                                               ("2h", "TOKEN_MAX_LIFETIME_SECONDS")])  # fmt: skip
def test_bad_ttl_is_refused(ttl: str, message: str) -> None:
    result = token_cli("--sub", "x", "--scope", "user/Patient.rs", "--ttl", ttl)
    assert result.returncode == 2
    assert message in result.stderr


def test_ttl_up_to_the_configured_maximum() -> None:
    result = token_cli("--sub", "x", "--scope", "user/Patient.rs", "--ttl", "2h",
                       TOKEN_MAX_LIFETIME_SECONDS="7200")  # fmt: skip
    assert result.returncode == 0, result.stderr
