"""Consistent, encrypted logical backups: ``pg_dump`` of one exported snapshot, and their restore.

``create``: a REPEATABLE READ transaction exports its snapshot (``pg_export_snapshot()``) and
counts every table's rows in it; ``pg_dump --snapshot`` dumps exactly that snapshot, so manifest
and dump agree even while the service keeps writing. The dump (custom format) is streamed through
AES-256-GCM under BACKUP_KEY (``backup_crypto``) and never touches disk in plaintext. The manifest
(JSON: checksums, row counts, key fingerprint, schema revision) carries an HMAC under a key derived
from BACKUP_KEY, so it cannot be edited to match a substituted file.

Both ends use client tools of their server's major version (``pgtools``): the manifest records
the source's, and a target older than the source, or one with no tools of its version here, is
refused before anything is written.

``restore``: verifies the manifest's MAC and the file's SHA-256 before touching the database,
refuses a database that already holds tables, streams the decrypted dump into ``pg_restore
--single-transaction`` (an authentication failure mid-stream aborts it: nothing is committed),
then compares every table's row count with the manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any, cast

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from healthstack.config import PLACEHOLDERS, Settings, is_hex_key
from healthstack.errors import HealthstackError
from healthstack.ops.backup_crypto import decrypt_chunks, encrypt_stream, key_fingerprint
from healthstack.ops.pgtools import server_major, tools_for
from healthstack.ops.progress import CountingReader, Meter
from healthstack.service.embedded_pg import APP_ROLE

FORMAT = "healthstack-backup/1"
DUMP = "dump.pgc.enc"
MANIFEST = "manifest.json"
TABLES_SQL = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname
"""
USER_OBJECTS_SQL = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
"""


def backup_key(settings: Settings) -> bytes:
    """BACKUP_KEY, refused when missing, a placeholder, malformed, or equal to the PHI key."""
    key = settings.backup_key
    if not key:
        raise HealthstackError("BACKUP_KEY is required (set it or BACKUP_KEY_FILE)")
    if key in PLACEHOLDERS or not is_hex_key(key):
        raise HealthstackError("BACKUP_KEY must be 64 hexadecimal characters (32 bytes)")
    if settings.encryption_key and key.lower() == settings.encryption_key.lower():
        raise HealthstackError("BACKUP_KEY must differ from ENCRYPTION_KEY")
    return bytes.fromhex(key)


def _mac(key: bytes, manifest: dict[str, Any]) -> str:
    body = json.dumps({k: v for k, v in manifest.items() if k != "mac"}, sort_keys=True)
    mac_key = hashlib.sha256(b"healthstack/backup-manifest-mac/v1" + key).digest()
    return hmac.new(mac_key, body.encode(), hashlib.sha256).hexdigest()


def pg_env(url: str) -> dict[str, str]:
    """libpq variables for the tools: the password goes in the environment, never in argv."""
    parts = conninfo_to_dict(url)
    names = {
        "host": "PGHOST",
        "port": "PGPORT",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "dbname": "PGDATABASE",
        "sslmode": "PGSSLMODE",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({names[k]: str(v) for k, v in parts.items() if k in names and v is not None})
    return env


def _counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    tables = [r[0] for r in conn.execute(TABLES_SQL).fetchall()]
    counts = {}
    for table in tables:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        counts[table] = int(cast(tuple[int], row.fetchone())[0])
    return counts


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _dump(
    url: str, snapshot: str, key: bytes, target: Path, tools: Path, meter: Meter | None
) -> str:
    command = [
        str(tools / "pg_dump"),
        "--format=custom",
        f"--snapshot={snapshot}",
        "--no-owner",
        "--compress=6",
    ]
    # stderr to a file, not a pipe: a pipe nobody reads until the end can fill and deadlock.
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=pg_env(url))
        try:
            with _private(target, "wb") as sink:
                dump = CountingReader(cast(IO[bytes], process.stdout), meter)
                plaintext_sha = encrypt_stream(key, cast(IO[bytes], dump), sink)
        except BaseException:
            _abandon(process)
            target.unlink(missing_ok=True)
            raise
        if process.wait() != 0:
            target.unlink(missing_ok=True)
            raise HealthstackError(f"pg_dump failed (exit {process.returncode}): {_tail(errors)}")
    return plaintext_sha


def _abandon(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()


def _tail(errors: IO[bytes]) -> str:
    """The tool's own error lines, without DETAIL/CONTEXT, which quote row values (PHI)."""
    errors.seek(0)
    lines = errors.read().decode(errors="replace").splitlines()
    kept = [line for line in lines if not line.lstrip().startswith(("DETAIL:", "CONTEXT:"))]
    return "\n".join(line[:300] for line in kept[-5:]) or "no message"


def create(url: str, out: Path, key: bytes, meter: Meter | None = None) -> dict[str, Any]:
    """Write ``out/dump.pgc.enc`` and ``out/manifest.json``; returns the manifest.

    ``meter`` counts the dump's bytes as pg_dump writes them (its final size is unknown)."""
    if (out / MANIFEST).exists():
        raise HealthstackError(f"{out / MANIFEST} exists; choose an empty --out directory")
    with psycopg.connect(url) as conn:
        major = server_major(conn)
        tools = tools_for(major, "backup create")
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            snapshot = str(
                cast(tuple[str], conn.execute("SELECT pg_export_snapshot()").fetchone())[0]
            )
            counts = _counts(conn)
            revision = _revision(conn)
            # The snapshot lives only while this transaction does: dump inside it.
            plaintext_sha = _dump(url, snapshot, key, out / DUMP, tools, meter)
    manifest = _manifest(out, counts, revision, plaintext_sha, key, major)
    with _private(out / MANIFEST, "w") as handle:
        handle.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _private(path: Path, mode: str) -> IO[Any]:
    """Backups are readable by their owner only (0600), whatever the umask."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    return os.fdopen(descriptor, mode)


def _revision(conn: psycopg.Connection[Any]) -> str | None:
    try:
        with conn.transaction():
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return str(row[0]) if row else None


def _manifest(
    out: Path,
    counts: dict[str, int],
    revision: str | None,
    plaintext_sha: str,
    key: bytes,
    major: int,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "server_major": major,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "schema_revision": revision,
        "key_id": key_fingerprint(key),
        "encryption": "AES-256-GCM, 1 MiB chunks",
        "files": {
            DUMP: {
                "sha256": _sha256(out / DUMP),
                "bytes": (out / DUMP).stat().st_size,
                "plaintext_sha256": plaintext_sha,
            }
        },
        "tables": counts,
    }
    manifest["mac"] = _mac(key, manifest)
    return manifest


def read_manifest(directory: Path, key: bytes) -> dict[str, Any]:
    path = directory / MANIFEST
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HealthstackError(f"{path}: cannot read the manifest: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise HealthstackError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT}")
    if manifest.get("key_id") != key_fingerprint(key):
        raise HealthstackError(
            f"{path}: made with another BACKUP_KEY (key_id {manifest.get('key_id')})"
        )
    if not hmac.compare_digest(str(manifest.get("mac")), _mac(key, manifest)):
        raise HealthstackError(f"{path}: manifest MAC does not verify (edited?)")
    return manifest


def verify_files(directory: Path, manifest: dict[str, Any]) -> None:
    for name, meta in manifest["files"].items():
        actual = _sha256(directory / name)
        if actual != meta["sha256"]:
            raise HealthstackError(
                f"{directory / name}: SHA-256 {actual} != manifest {meta['sha256']}"
            )


def _require_empty(url: str) -> None:
    with psycopg.connect(url) as conn:
        objects = int(cast(tuple[int], conn.execute(USER_OBJECTS_SQL).fetchone())[0])
        if objects:
            raise HealthstackError(
                f"target database {conninfo_to_dict(url).get('dbname')} is not empty "
                f"({objects} relations); restore only into an empty database"
            )
        # Grants in the dump name the application role: it must exist in the target cluster.
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(APP_ROLE)))


def _target_tools(url: str, manifest: dict[str, Any]) -> Path:
    """pg_restore of the target's major version; a target older than the source is refused."""
    with psycopg.connect(url) as conn:
        target = server_major(conn)
    source = manifest.get("server_major")
    if isinstance(source, int) and target < source:
        raise HealthstackError(
            f"backup restore: the backup comes from PostgreSQL {source} and the target is "
            f"PostgreSQL {target}; restore into PostgreSQL {source} or newer. Nothing was changed."
        )
    return tools_for(target, "backup restore")


def _pg_restore(
    url: str,
    directory: Path,
    key: bytes,
    manifest: dict[str, Any],
    tools: Path,
    meter: Meter | None,
) -> None:
    command = [
        str(tools / "pg_restore"),
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--dbname",
        str(conninfo_to_dict(url).get("dbname") or ""),
    ]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=errors, env=pg_env(url))
        try:
            _feed(process, directory, key, manifest, meter)
        except BrokenPipeError:
            _abandon(process)  # pg_restore quit early (e.g. refused login): say why
            raise HealthstackError(f"pg_restore stopped reading: {_tail(errors)}") from None
        except BaseException:
            _abandon(process)  # never let a partial stream commit
            raise
        if process.wait() != 0:
            raise HealthstackError(
                f"pg_restore failed (exit {process.returncode}): {_tail(errors)}"
            )


def _feed(
    process: subprocess.Popen[bytes],
    directory: Path,
    key: bytes,
    manifest: dict[str, Any],
    meter: Meter | None,
) -> None:
    stdin = cast(IO[bytes], process.stdin)
    digest = hashlib.sha256()
    if meter is not None:
        meter.set_total(manifest["files"][DUMP]["bytes"])  # progress in sealed bytes read
    with (directory / DUMP).open("rb") as raw:
        source = cast(IO[bytes], CountingReader(raw, meter))
        for chunk in decrypt_chunks(key, source, str(directory / DUMP)):
            digest.update(chunk)
            stdin.write(chunk)
    if digest.hexdigest() != manifest["files"][DUMP]["plaintext_sha256"]:
        raise HealthstackError(f"{directory / DUMP}: decrypted content differs from the manifest")
    stdin.close()


def restore(directory: Path, url: str, key: bytes, meter: Meter | None = None) -> dict[str, Any]:
    """Restore into an empty database; returns {table: (expected, actual)} and raises on mismatch."""
    manifest = read_manifest(directory, key)
    verify_files(directory, manifest)
    tools = _target_tools(url, manifest)
    _require_empty(url)
    _pg_restore(url, directory, key, manifest, tools, meter)
    with psycopg.connect(url) as conn:
        actual = _counts(conn)
    expected: dict[str, int] = manifest["tables"]
    result = {t: {"expected": n, "restored": actual.get(t, 0)} for t, n in expected.items()}
    wrong = sorted(t for t, v in result.items() if v["expected"] != v["restored"])
    if wrong:
        raise HealthstackError(
            f"restored row counts differ from the manifest for: {', '.join(wrong)}"
        )
    return {"tables": result, "manifest": manifest}
