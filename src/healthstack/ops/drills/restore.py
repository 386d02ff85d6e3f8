"""``drill restore``: data through the API, an encrypted backup, a restore into a fresh database,
and proof that everything came back: every resource version (byte for byte, decrypting under the
PHI keyring), every audit record (same chain position and hash), the audit chain verifies, every
table's row count matches, and a service started on the restored database serves every resource
and search through the API. It runs on the wheel's PostgreSQL 18 and on the machine's PostgreSQL
15 (Debian), each end with its own server's tools. Control: a backup made without one table.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import psycopg

from healthstack.core.crypto import DecryptionError, Keyring, aad
from healthstack.errors import HealthstackError
from healthstack.ops import backup
from healthstack.ops.drills.cluster import Cluster, cluster
from healthstack.ops.drills.fhir import FHIR_JSON, FhirClient
from healthstack.ops.drills.spec import RolloutSpec
from healthstack.ops.pgtools import server_major
from healthstack.ops.samples import vital_sign
from healthstack.security.verify import verify
from healthstack.service.embedded_pg import SUPERUSER

VERSIONS_SQL = "SELECT resource_type, id, version, key_id, body FROM fhir_resource_version"
AUDIT_SQL = "SELECT chain_id, seq, hash FROM audit_log"


@dataclass
class RestoreReport:
    control_dropped_table: str | None = None
    api: bool = True
    resources: int = 0
    versions: int = 0
    versions_restored: int = 0
    audit_records: int = 0
    audit_restored: int = 0
    audit_chain_intact: bool = False
    decrypted: int = 0
    tables: int = 0
    api_reads: int = 0
    api_read_ok: int = 0
    server_major: int = 0
    backup_bytes: int = 0
    backup_s: float = 0.0
    restore_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        complete = (
            self.versions_restored == self.versions and self.audit_restored == self.audit_records
        )
        return (
            self.api
            and self.versions > 0
            and self.audit_records > 0
            and complete
            and self.decrypted == self.versions
            and self.audit_chain_intact
            and self.api_reads > 0
            and self.api_read_ok == self.api_reads
        )

    def to_dict(self) -> dict[str, Any]:
        return {"drill": "restore", "passed": self.passed, **self.__dict__}


VITALS = (("8867-4", "/min"), ("9279-1", "/min"), ("8310-5", "Cel"), ("2708-6", "%"))


def observation(patient_id: str, index: int, value: float) -> dict[str, Any]:
    """Vital signs of several codes over time: the fhir_vital series gets real buckets."""
    code, unit = VITALS[index % len(VITALS)]
    day, minute = divmod(index, 24 * 60)
    effective = f"2025-01-{day % 28 + 1:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}:00Z"
    return vital_sign(patient_id, code, effective, value, unit)


@dataclass
class Created:
    """What the API must serve again after the restore: (type, id) -> versions, per patient."""

    versions: dict[tuple[str, str], int] = field(default_factory=dict)
    observations: dict[str, int] = field(default_factory=dict)


def _patient(client: FhirClient, p: int, observations: int, versions: int, out: Created) -> None:
    headers = {**client.auth, "Content-Type": FHIR_JSON}
    with httpx.Client(base_url=client.base_url, headers=headers, timeout=client.timeout) as http:
        pid = client.create(f"restore-{p}-{time.monotonic_ns():x}")
        out.versions[("Patient", pid)] = 1
        for o in range(observations):
            created = http.post(
                "/api/fhir/Observation", content=orjson.dumps(observation(pid, o, 60 + o))
            )
            created.raise_for_status()
            oid = created.json()["id"]
            for v in range(1, versions):
                body = {**observation(pid, o, 60 + o + v), "id": oid}
                http.put(
                    f"/api/fhir/Observation/{oid}", content=orjson.dumps(body)
                ).raise_for_status()
            http.get(f"/api/fhir/Observation/{oid}").raise_for_status()
            out.versions[("Observation", oid)] = versions
        http.get("/api/fhir/Observation", params={"patient": pid}).raise_for_status()
        out.observations[pid] = observations


def generate(client: FhirClient, patients: int, observations: int, versions: int) -> Created:
    """Patients, observations with several versions each, and reads (audit records) of all."""
    out = Created()
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = [
            pool.submit(_patient, client, p, observations, versions, out) for p in range(patients)
        ]
        for job in jobs:
            job.result()
    return out


def read_back(client: FhirClient, created: Created, report: RestoreReport) -> None:
    """Through the API of a service on the restored database: every resource, every search."""
    with httpx.Client(
        base_url=client.base_url, headers=client.auth, timeout=client.timeout
    ) as http:
        for (rtype, rid), versions in created.versions.items():
            answer = http.get(f"/api/fhir/{rtype}/{rid}")
            report.api_reads += 1
            if answer.status_code == 200 and answer.json()["meta"]["versionId"] == str(versions):
                report.api_read_ok += 1
        for pid, count in created.observations.items():
            found = http.get("/api/fhir/Observation", params={"patient": pid, "_count": "1000"})
            report.api_reads += 1
            if found.status_code == 200 and len(found.json().get("entry", [])) == count:
                report.api_read_ok += 1


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    """The rows, or none when the table is missing (what a backup without it restores)."""
    with psycopg.connect(url) as conn:
        try:
            return conn.execute(query).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def _fingerprints(url: str, query: str) -> dict[tuple[Any, ...], bytes]:
    rows = _rows(url, query)
    return {tuple(r[:3]): hashlib.sha256(bytes(r[-1] or b"")).digest() for r in rows}


def _decrypt_all(url: str, keyring: Keyring) -> int:
    ok = 0
    for rtype, rid, version, key_id, body in _rows(url, VERSIONS_SQL):
        try:
            if body is None or keyring.decrypt(key_id, bytes(body), aad(rtype, rid, version)):
                ok += 1
        except DecryptionError:
            continue
    return ok


def _compare(source: str, target: str, keyring: Keyring, report: RestoreReport) -> None:
    versions = _fingerprints(source, VERSIONS_SQL)
    restored = _fingerprints(target, VERSIONS_SQL)
    report.versions = len(versions)
    report.resources = len({k[:2] for k in versions})
    report.versions_restored = sum(1 for k, v in versions.items() if restored.get(k) == v)
    audit = _fingerprints(source, AUDIT_SQL)
    audit_restored = _fingerprints(target, AUDIT_SQL)
    report.audit_records = len(audit)
    report.audit_restored = sum(1 for k, v in audit.items() if audit_restored.get(k) == v)
    report.decrypted = _decrypt_all(target, keyring)
    chain = verify(target)
    report.audit_chain_intact = chain.intact and chain.records == report.audit_records
    report.problems = [str(p) for p in chain.problems[:10]]


def _without_table(state: Cluster, table: str) -> str:
    """The negative control's source: a copy of the database with ``table`` dropped."""
    for replica in state.replicas:
        replica.kill()  # CREATE DATABASE ... TEMPLATE needs the source free of sessions
    state.pg.psql('CREATE DATABASE "partial" TEMPLATE "healthstack"')
    state.pg.psql(f'DROP TABLE "{table}" CASCADE', database="partial")
    return state.pg.url(SUPERUSER, "partial")


def _backup_and_restore(state: Cluster, report: RestoreReport, drop_table: str | None) -> str:
    key = bytes.fromhex(state.backup_key)
    source = _without_table(state, drop_table) if drop_table else state.pg.url(SUPERUSER)
    started = time.monotonic()
    manifest = backup.create(source, state.workdir / "backup", key)
    report.backup_s = time.monotonic() - started
    report.backup_bytes = int(manifest["files"][backup.DUMP]["bytes"])
    state.pg.ensure_database("restored")
    target = state.pg.url(SUPERUSER, "restored")
    started = time.monotonic()
    restored = backup.restore(state.workdir / "backup", target, key)
    report.tables = len(restored["tables"])
    report.restore_s = time.monotonic() - started
    return target


def run_restore(
    spec: RolloutSpec,
    *,
    patients: int = 5,
    observations: int = 3,
    versions: int = 3,
    drop_table: str | None = None,
    major: int | None = None,
) -> RestoreReport:
    """``drop_table`` is the negative control: a backup missing that table must FAIL.

    ``major``: run on the machine's PostgreSQL of that version instead of the wheel's.
    """
    report = RestoreReport(control_dropped_table=drop_table)
    with cluster(spec, major=major) as state:
        with psycopg.connect(state.pg.url(SUPERUSER)) as conn:
            report.server_major = server_major(conn)
        state.fleet(1)
        assert state.haproxy is not None
        client = FhirClient.for_secret(state.haproxy.url, state.secret_key_base)
        report.api = client.detect()
        if not report.api:
            return report
        created = generate(client, patients, observations, versions)
        target = _backup_and_restore(state, report, drop_table)
        keyring = Keyring(bytes.fromhex(state.encryption_key))
        _compare(state.pg.url(SUPERUSER), target, keyring, report)
        _serve_restored(state, created, report)
    return report


def _serve_restored(state: Cluster, created: Created, report: RestoreReport) -> None:
    """A fresh replica on the restored database only, behind a fresh load balancer."""
    for replica in state.replicas:
        replica.kill()
    state.database = "restored"
    try:
        state.fleet(1)
    except HealthstackError:
        report.problems.append("the service did not start on the restored database")
        return
    assert state.haproxy is not None
    read_back(FhirClient.for_secret(state.haproxy.url, state.secret_key_base), created, report)


SUMMED = ("resources", "versions", "versions_restored", "audit_records", "audit_restored",
          "decrypted", "tables", "api_reads", "api_read_ok")  # fmt: skip


def run_restore_on(majors: list[int | None], spec: RolloutSpec, **options: Any) -> dict[str, Any]:
    """The drill once per server version; the report sums their figures and lists each."""
    servers = [run_restore(spec, major=major, **options).to_dict() for major in majors]
    merged: dict[str, Any] = {"drill": "restore", "passed": all(s["passed"] for s in servers)}
    merged["api"] = all(s["api"] for s in servers)
    merged.update({key: sum(s[key] for s in servers) for key in SUMMED})
    merged["audit_chain_intact"] = all(s["audit_chain_intact"] for s in servers)
    merged["server_majors"] = [s["server_major"] for s in servers]
    merged["control_dropped_table"] = options.get("drop_table")
    merged["servers"] = servers
    return merged
