"""`healthstack secrets init|apply` as an operator runs them (real kubectl, no cluster)."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from healthstack.config import Settings, is_hex_key
from healthstack.ops import secrets

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}  # an empty config: no cluster anywhere
    return subprocess.run([sys.executable, "-m", "healthstack.cli", "secrets", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, check=False, timeout=60)  # fmt: skip


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A repository-shaped folder: the overlays exist, their secrets.env do not."""
    for env in secrets.ENVIRONMENTS:
        (tmp_path / "deploy" / "overlays" / env).mkdir(parents=True)
    return tmp_path


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text("")
    return path


@pytest.mark.parametrize("env", sorted(secrets.ENVIRONMENTS))
def test_init_writes_strong_values_mode_0600(env: str, checkout: Path, kubeconfig: Path) -> None:
    result = _cli("init", "--env", env, cwd=checkout, kubeconfig=kubeconfig)
    assert result.returncode == 0, result.stderr
    path = checkout / "deploy" / "overlays" / env / "secrets.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = secrets.read(path)
    assert set(values) == {"DATABASE_URL", "MIGRATION_DATABASE_URL", "SECRET_KEY_BASE",
                           "ENCRYPTION_KEY", "ENCRYPTION_OLD_KEYS", "BACKUP_KEY"}  # fmt: skip
    assert is_hex_key(values["ENCRYPTION_KEY"])
    assert is_hex_key(values["BACKUP_KEY"])
    assert len(values["SECRET_KEY_BASE"]) >= 64
    for value in values.values():
        assert value not in result.stdout + result.stderr or not value
    # The service's own production validation accepts exactly these values.
    identity = {"OIDC_ISSUER": "https://idp.example", "OIDC_AUDIENCE": "healthstack",
                "OIDC_JWKS_URL": "https://idp.example/certs"}  # fmt: skip
    Settings.from_env({"HEALTHSTACK_ENV": "production", **identity, **values})
    host = urlsplit(values["DATABASE_URL"]).hostname
    assert host == {"prod": "postgres-rw", "staging": "postgres-service"}[env]


def test_values_differ_between_runs() -> None:
    first, second = (secrets.generate(secrets.ENVIRONMENTS["prod"]) for _ in range(2))
    assert all(first[k] != second[k] for k in first if first[k])


def test_init_refuses_to_overwrite_without_force(checkout: Path, kubeconfig: Path) -> None:
    assert _cli("init", "--env", "prod", cwd=checkout, kubeconfig=kubeconfig).returncode == 0
    path = checkout / "deploy" / "overlays" / "prod" / "secrets.env"
    before = path.read_text()
    refused = _cli("init", "--env", "prod", cwd=checkout, kubeconfig=kubeconfig)
    assert refused.returncode == 2
    assert "already exists" in refused.stderr
    assert "--force" in refused.stderr
    assert path.read_text() == before
    forced = _cli("init", "--env", "prod", "--force", cwd=checkout, kubeconfig=kubeconfig)
    assert forced.returncode == 0
    assert path.read_text() != before
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_init_outside_a_checkout_writes_nothing(tmp_path: Path, kubeconfig: Path) -> None:
    result = _cli("init", "--env", "staging", cwd=tmp_path, kubeconfig=kubeconfig)
    assert result.returncode == 2
    assert "--file" in result.stderr
    assert not (tmp_path / "deploy").exists()


def _decoded(doc: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}


def test_apply_print_renders_every_secret_the_manifests_mount(checkout: Path,
                                                             kubeconfig: Path) -> None:  # fmt: skip
    assert _cli("init", "--env", "staging", cwd=checkout, kubeconfig=kubeconfig).returncode == 0
    values = secrets.read(checkout / "deploy/overlays/staging/secrets.env")
    result = _cli("apply", "--env", "staging", "--print", cwd=checkout, kubeconfig=kubeconfig)
    assert result.returncode == 0, result.stderr
    docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.stdout)}
    assert set(docs) == {"healthcare-app-secrets", "postgres-secrets"}
    assert all(d["metadata"]["namespace"] == "healthcare-staging" for d in docs.values())
    assert _decoded(docs["healthcare-app-secrets"]) == values
    db = _decoded(docs["postgres-secrets"])
    assert db["password"] == urlsplit(values["MIGRATION_DATABASE_URL"]).password
    assert db["app_password"] == urlsplit(values["DATABASE_URL"]).password


def test_apply_print_prod_gives_cloudnativepg_basic_auth(checkout: Path, kubeconfig: Path) -> None:
    assert _cli("init", "--env", "prod", cwd=checkout, kubeconfig=kubeconfig).returncode == 0
    result = _cli("apply", "--env", "prod", "--print", "--namespace", "other", cwd=checkout,
                  kubeconfig=kubeconfig)  # fmt: skip
    docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.stdout)}
    assert set(docs) == {"healthcare-app-secrets", "postgres-owner", "postgres-app"}
    for name, user in (("postgres-owner", "healthstack"), ("postgres-app", "healthstack_app")):
        assert docs[name]["type"] == "kubernetes.io/basic-auth"
        assert docs[name]["metadata"]["namespace"] == "other"
        assert _decoded(docs[name])["username"] == user


def test_rendered_secret_names_match_the_manifests() -> None:
    """The Secrets `apply` creates are the ones the overlays mount (checked on the YAML itself)."""
    app = (REPO / "deploy/base/deployment.yaml").read_text()
    assert f"secretName: {secrets.APP_SECRET}" in app
    assert "secretName: postgres-secrets" in (REPO / "deploy/components/postgres/statefulset.yaml"
                                             ).read_text()  # fmt: skip
    cluster = (REPO / "deploy/components/postgres-ha/cluster.yaml").read_text()
    assert "name: postgres-owner" in cluster
    assert "name: postgres-app" in cluster


def test_apply_without_cluster_fails_cleanly(checkout: Path, kubeconfig: Path) -> None:
    assert _cli("init", "--env", "prod", cwd=checkout, kubeconfig=kubeconfig).returncode == 0
    values = secrets.read(checkout / "deploy/overlays/prod/secrets.env")
    result = _cli("apply", "--env", "prod", cwd=checkout, kubeconfig=kubeconfig)
    assert result.returncode == 2
    assert "kubectl apply" in result.stderr
    assert "Traceback" not in result.stderr
    assert not any(v and v in result.stdout + result.stderr for v in values.values())


def test_apply_names_a_malformed_line(checkout: Path, kubeconfig: Path) -> None:
    path = checkout / "deploy/overlays/staging/secrets.env"
    path.write_text("# comment\nDATABASE_URL=postgresql://a:b@h/db\nnot a pair\n")
    result = _cli("apply", "--env", "staging", "--print", cwd=checkout, kubeconfig=kubeconfig)
    assert result.returncode == 2
    assert f"{Path('deploy/overlays/staging/secrets.env')}:3:" in result.stderr


def test_apply_without_init_says_what_to_run(checkout: Path, kubeconfig: Path) -> None:
    result = _cli("apply", "--env", "prod", "--print", cwd=checkout, kubeconfig=kubeconfig)
    assert result.returncode == 2
    assert "secrets init" in result.stderr
