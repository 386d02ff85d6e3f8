"""Bulk Data ``$export`` of N resources against a ``COPY ... TO`` of the same rows (the baseline).

Run: ``.venv/bin/python -m bench.bulk_export [--resources 20000]`` (own embedded PostgreSQL and
service). The issue's figure is ``--resources 1000000`` (seeding that many takes a while: rows are
written with the service's own ``Store.create_many``, encrypted and indexed as the API writes
them). Reported: export resources/s (kick-off to manifest, plus the time to download every file)
and the service's peak RSS while it exports; the baseline's resources/s is ``COPY (SELECT body
...) TO STDOUT`` of the same rows, ciphertext as stored (no decryption, no authorization, no
audit: the floor a database dump pays). Target (issue 16): at least 40 % of the baseline's rate,
peak RSS under 200 MiB. JSON in bench/results/bulk_export.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.common import healthstack_command, launch, postgres, save, service_env
from bench.memory import sampling
from bench.seed import observation
from healthstack.core.crypto import Keyring
from healthstack.fhir.store import Store
from healthstack.security.tokens import mint_dev_token
from healthstack.service.embedded_pg import APP_ROLE, SUPERUSER, EmbeddedPostgres, free_port

PER_PATIENT = 100
BATCH = 500
ASYNC = {"Prefer": "respond-async"}


async def seed(url: str, keyring: Keyring, resources: int) -> None:
    """Patients and their Observations, ``PER_PATIENT`` each, until ``resources`` rows exist."""
    store, conn = Store(keyring), await asyncpg.connect(url)
    try:
        items: list[tuple[str, str, dict[str, Any]]] = []
        patient, written = "", 0
        while written < resources:
            if written % PER_PATIENT == 0:
                patient = str(uuid.uuid4())
                items.append(("Patient", patient, {"resourceType": "Patient", "gender": "other"}))
            else:
                items.append(("Observation", str(uuid.uuid4()), observation(patient, written)))
            written += 1
            if len(items) >= BATCH or written == resources:
                await store.create_many(conn, items)
                items = []
    finally:
        await conn.close()


async def copy_baseline(url: str, sink: Path) -> float:
    conn = await asyncpg.connect(url)
    try:
        started = time.monotonic()
        await conn.copy_from_query(
            "SELECT body FROM fhir_resource WHERE resource_type IN ('Patient', 'Observation') "
            "AND NOT deleted ORDER BY resource_type, id", output=str(sink))  # fmt: skip
        return time.monotonic() - started
    finally:
        await conn.close()


def export(base: str, token: str) -> tuple[float, float, int]:
    """Seconds from kick-off to the manifest and to every file downloaded; resources downloaded."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    with httpx.Client(base_url=f"{base}/api/fhir", headers=headers, timeout=600) as client:
        started = time.monotonic()
        response = client.get("/$export", params={"_type": "Patient,Observation"}, headers=ASYNC)
        response.raise_for_status()
        status = response.headers["Content-Location"]
        while (polled := client.get(status)).status_code == 202:
            time.sleep(0.05)
        polled.raise_for_status()
        manifest, lines = time.monotonic() - started, 0
        for output in polled.json()["output"]:
            with client.stream("GET", output["url"]) as body:
                lines += sum(chunk.count(b"\n") for chunk in body.iter_bytes())
        return manifest, time.monotonic() - started, lines


def run(resources: int) -> dict[str, Any]:
    key = "cd" * 32  # what bench.common.service_env configures
    work = Path(tempfile.mkdtemp(prefix="hs-bulk-bench-"))
    try:
        with postgres() as pg:
            pg_url: str = pg.url(APP_ROLE)
            started = time.monotonic()
            asyncio.run(seed(pg_url, Keyring(bytes.fromhex(key)), resources))
            seeded = time.monotonic() - started
            copy_seconds = asyncio.run(copy_baseline(_owner(pg), work / "copy.out"))
            port = free_port()
            env = service_env(pg, BULK_EXPORT_DIR=str(work / "bulk"), POOL_SIZE="4")
            token = mint_dev_token("b" * 64, "bench", "system/*.rs", ttl_seconds=3600)
            with (
                launch(healthstack_command(port), env, port) as running,
                sampling(running.process.pid) as sampler,
            ):
                manifest, seconds, lines = export(running.base_url, token)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the COPY output alone is GBs at 1M
    assert lines == resources, f"exported {lines} of {resources}"
    export_rate, copy_rate = resources / seconds, resources / copy_seconds
    return {
        "resources": resources,
        "seed_seconds": round(seeded, 1),
        "export_seconds": round(seconds, 2),
        "of_which_to_manifest_seconds": round(manifest, 2),
        "export_resources_per_s": round(export_rate),
        "copy_seconds": round(copy_seconds, 2),
        "copy_resources_per_s": round(copy_rate),
        "export_vs_copy": round(export_rate / copy_rate, 3),
        "peak_rss_mib": round(sampler.peak_rss_mib, 1),
        "targets": {"export_vs_copy": 0.4, "peak_rss_mib": 200},
    }


def _owner(pg: EmbeddedPostgres) -> str:
    return pg.url(SUPERUSER)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bulk_export", description=__doc__)
    parser.add_argument("--resources", type=int, default=20_000,
                        help="rows exported (the issue's figure: 1000000)")  # fmt: skip
    result = run(parser.parse_args().resources)
    for name, value in result.items():
        print(f"{name:>24}: {value}")
    print(f"written {save('bulk_export', result)}")


if __name__ == "__main__":
    main()
