"""The service through a real PgBouncer in transaction mode (production's CloudNativePG Pooler).

Transaction pooling hands each transaction to any server connection, so a named prepared
statement created on one is missing on the next: `DATABASE_POOLER=pgbouncer` turns asyncpg's
statement cache off. The pooler keeps fewer server connections than the service's pool asks for,
so requests really do move between server connections.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from tests.conftest import TEST_SECRET_KEY_BASE, Database, Service, start_service

from healthstack.security.tokens import mint_dev_token
from healthstack.service.embedded_pg import APP_ROLE, EmbeddedPostgres, _run_as, free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture
def bouncer_url(pg: EmbeddedPostgres, database: Database) -> Iterator[str]:
    # Not pytest's tmp_path: under root it sits below 0700 folders the pooler's user cannot enter.
    tmp_path = Path(tempfile.mkdtemp(prefix="healthstack-pgbouncer-"))
    try:
        yield from _run_bouncer(pg, database, tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _run_bouncer(pg: EmbeddedPostgres, database: Database, tmp_path: Path) -> Iterator[str]:
    if not Path(PGBOUNCER).is_file():
        pytest.fail("pgbouncer missing: `make sysdeps` installs the Debian package")
    port = free_port()
    password = pg.password(APP_ROLE)
    (tmp_path / "users.txt").write_text(f'"{APP_ROLE}" "{password}"\n')
    (tmp_path / "pgbouncer.ini").write_text(
        f"[databases]\n{database.name} = host=127.0.0.1 port={pg.port} dbname={database.name}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = scram-sha-256\nauth_file = {tmp_path / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 50\n"
        f"logfile = {tmp_path / 'pgbouncer.log'}\n"
    )
    user = _run_as()  # PgBouncer, like PostgreSQL, refuses to run as root
    if user:
        shutil.chown(tmp_path, user)
        for f in tmp_path.iterdir():
            shutil.chown(f, user)
    cmd = [PGBOUNCER, *(["-u", user] if user else []), str(tmp_path / "pgbouncer.ini")]
    with (tmp_path / "stderr.log").open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    try:
        _wait_port(port, proc, tmp_path)
        yield f"postgresql://{APP_ROLE}:{quote(password, safe='')}@127.0.0.1:{port}/{database.name}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_port(port: int, proc: subprocess.Popen[bytes], folder: Path) -> None:
    import socket

    for _ in range(200):
        if proc.poll() is not None:
            logs = [f.read_text(errors="replace")[-2000:] for f in sorted(folder.glob("*.log"))]
            raise AssertionError(f"pgbouncer exited with {proc.returncode}: {logs}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("pgbouncer did not listen")


def _round_trip(client: httpx.Client) -> str:
    created = client.post(
        "/api/fhir/Patient", json={"resourceType": "Patient", "gender": "unknown"}
    )
    assert created.status_code == 201, created.text
    got = client.get(f"/api/fhir/Patient/{created.json()['id']}")
    assert got.status_code == 200, got.text
    return str(got.json()["id"])


def _round_trips(service: Service, count: int = 24) -> None:
    token = mint_dev_token(TEST_SECRET_KEY_BASE, "clinician", "user/Patient.cruds")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    with httpx.Client(base_url=service.base_url, headers=headers, timeout=10) as client:
        # Concurrent clients: the service opens several pool connections and PgBouncer shares
        # its two server connections between them, transaction by transaction.
        with ThreadPoolExecutor(max_workers=6) as workers:
            ids = set(workers.map(lambda _: _round_trip(client), range(count)))
        search = client.get("/api/fhir/Patient", params={"gender": "unknown", "_count": "100"})
        assert search.status_code == 200, search.text
        assert {e["resource"]["id"] for e in search.json().get("entry", [])} == ids


def test_service_works_through_pgbouncer_transaction_mode(
    database: Database, bouncer_url: str, tmp_path: Path
) -> None:
    via_pooler = Database(database.name, bouncer_url, database.owner_url)
    service = start_service(
        via_pooler, tmp_path / "svc.log", DATABASE_POOLER="pgbouncer", POOL_SIZE="8"
    )
    try:
        _round_trips(service)
        assert httpx.get(f"{service.base_url}/health/ready").status_code == 200
        assert "prepared statement" not in service.logs()
    finally:
        service.stop()


def test_pooler_setting_is_validated() -> None:
    from healthstack.config import Settings
    from healthstack.errors import HealthstackError

    assert Settings.from_env({"DATABASE_POOLER": "PgBouncer"}).database_pooler == "pgbouncer"
    assert Settings.from_env({}).database_pooler is None
    with pytest.raises(HealthstackError, match="DATABASE_POOLER"):
        Settings.from_env({"DATABASE_POOLER": "odyssey"})
