"""``python -m bench.scale`` (``make bench-scale``): US Core searches as the data set grows.

One private PostgreSQL and one service process, seeded through the API in transaction Bundles
with whole patient records (a Patient with encounters, conditions, labs, vitals and medication
requests: ``RECORD`` resources each) up to each size in ``--sizes``. At each size, after ANALYZE:
every search below runs open loop at a light constant rate (latency, not queueing), each request
for a different patient, and its SQL (built by the service's own parser) is EXPLAINed: a
sequential scan on a table that grows with the data fails the plan check. Prints one table per
size and how p50/p99 grew; JSON in bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import openloop
from bench.common import RESULTS, free_port, healthstack_command, launch, postgres, service_env
from healthstack.core.crypto import Keyring
from healthstack.fhir import search
from healthstack.fhir.query import unconfined
from healthstack.ops.samples import vital_sign
from healthstack.security.tokens import mint_dev_token

API = "/api/fhir"
SNOMED, LOINC = "http://snomed.info/sct", "http://loinc.org"
COND_CAT = "http://terminology.hl7.org/CodeSystem/condition-category"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
MRN = "urn:healthstack:scale:mrn"
LABS = ("2345-7", "2160-0", "718-7", "4548-4")
RECORD = 1 + 3 + 2 + 12 + 10 + 2  # Patient, Encounters, Conditions, labs, vitals, medications
PATIENTS_PER_BUNDLE = 3
GROWING = {"fhir_resource", "fhir_search_token", "fhir_search_reference", "fhir_search_date",
           "fhir_token", "fhir_search_string", "fhir_search_number", "fhir_vital"}  # fmt: skip


def _ref(i: int) -> dict[str, str]:
    return {"reference": f"urn:uuid:00000000-0000-4000-8000-{i:012d}"}


def record(i: int) -> list[dict[str, Any]]:
    """One patient's record: the Patient first (its urn:uuid fullUrl), then what refers to it."""
    subject = _ref(i)
    day = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
    out: list[dict[str, Any]] = [{
        "resourceType": "Patient", "identifier": [{"system": MRN, "value": f"S{i:08d}"}],
        "name": [{"family": f"Scale{i}", "given": ["Load"]}], "gender": ("female", "male")[i % 2],
        "birthDate": f"{1940 + i % 60}-0{1 + i % 9}-1{i % 9}"}]  # fmt: skip
    out += [{"resourceType": "Encounter", "status": "finished", "subject": subject,
             "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
             "period": {"start": f"{day}T0{n}:00:00Z", "end": f"{day}T0{n}:30:00Z"}}
            for n in range(3)]  # fmt: skip
    out += [{"resourceType": "Condition", "subject": subject,
             "category": [{"coding": [{"system": COND_CAT, "code": cat}]}],
             "code": {"coding": [{"system": SNOMED, "code": code}]}, "onsetDateTime": "2020-01-01"}
            for cat, code in (("problem-list-item", "44054006"), ("encounter-diagnosis", "38341003"))]  # fmt: skip
    out += [{"resourceType": "Observation", "status": "final", "subject": subject,
             "category": [{"coding": [{"system": OBS_CAT, "code": "laboratory"}]}],
             "code": {"coding": [{"system": LOINC, "code": LABS[n % 4]}]},
             "effectiveDateTime": f"2024-{1 + n:02d}-15T08:00:00Z",
             "valueQuantity": {"value": 5 + n, "unit": "mg/dL"}} for n in range(12)]  # fmt: skip
    vitals = [
        vital_sign("x", "8867-4", f"2024-06-{1 + n:02d}T09:00:00Z", 60 + n) for n in range(10)
    ]
    out += [{**v, "subject": subject} for v in vitals]
    out += [{"resourceType": "MedicationRequest", "status": "active", "intent": "order",
             "subject": subject, "medicationCodeableConcept": {"coding": [{"system": RXNORM,
             "code": code}]}} for code in ("197361", "310798")]  # fmt: skip
    return out


def bundle(first: int, count: int) -> dict[str, Any]:
    entries = []
    for i in range(first, first + count):
        for n, resource in enumerate(record(i)):
            entry: dict[str, Any] = {
                "resource": resource,
                "request": {"method": "POST", "url": resource["resourceType"]},
            }
            if n == 0:
                entry["fullUrl"] = _ref(i)["reference"]
            entries.append(entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def seed(base: str, token: str, start: int, stop: int, ids: dict[int, str]) -> None:
    """Records ``start``..``stop`` through the API, 4 Bundles at a time; remembers Patient ids."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    limit = asyncio.Semaphore(4)
    async with httpx.AsyncClient(base_url=base + API, headers=headers, timeout=300) as client:

        async def post(first: int) -> None:
            count = min(PATIENTS_PER_BUNDLE, stop - first)
            async with limit:
                response = await client.post("", json=bundle(first, count))
            if response.status_code != 200:
                raise RuntimeError(
                    f"seeding answered {response.status_code}: {response.text[:300]}"
                )
            entries = response.json()["entry"]
            for k in range(count):
                ids[first + k] = entries[k * RECORD]["response"]["location"].split("/")[1]

        await asyncio.gather(*(post(f) for f in range(start, stop, PATIENTS_PER_BUNDLE)))


def searches(
    ids: dict[int, str], rng: random.Random, n: int
) -> dict[str, list[list[tuple[str, str]]]]:
    """Each US Core search, with ``n`` random patients' values."""
    sample = rng.sample(sorted(ids), min(n, len(ids)))
    pid = [ids[i] for i in sample]
    return {
        "Patient?identifier": [[("identifier", f"{MRN}|S{i:08d}")] for i in sample],
        "Patient?name": [[("name", f"Scale{i}")] for i in sample],
        "Encounter?patient&date": [[("patient", p), ("date", "ge2024-01-01")] for p in pid],
        "Condition?patient&category": [[("patient", p), ("category", "problem-list-item")] for p in pid],
        "Observation?patient&category=laboratory": [[("patient", p), ("category", "laboratory")] for p in pid],
        "Observation?patient&code": [[("patient", p), ("code", f"{LOINC}|2345-7")] for p in pid],
        "Observation?patient&category&date": [[("patient", p), ("category", "vital-signs"), ("date", "ge2024-06-05")] for p in pid],
        "MedicationRequest?patient&intent": [[("patient", p), ("intent", "order")] for p in pid],
    }  # fmt: skip


async def explain(url: str, keyring: Keyring, rtype: str, params: list[tuple[str, str]]) -> str:
    query = search.Parser(keyring).parse(rtype, params, unconfined)
    sql = search.build_sql(query, None, None, 21)
    conn = await asyncpg.connect(url)
    try:
        return "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *query.args))
    finally:
        await conn.close()


STORAGE_SQL = """
SELECT CASE WHEN c.relname LIKE 'audit%' THEN 'audit' ELSE 'resources' END AS part,
       sum(pg_total_relation_size(c.oid))::bigint AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
  AND (c.relname LIKE 'fhir%' OR c.relname LIKE 'audit%')
GROUP BY 1
"""


async def storage_bytes(url: str) -> dict[str, int]:
    """Bytes on disk (tables, indexes, TOAST): the resources with their search index, and the
    audit trail (every seeding and search request wrote its records)."""
    conn = await asyncpg.connect(url)
    try:
        found = {r["part"]: int(r["bytes"]) for r in await conn.fetch(STORAGE_SQL)}
        found["audit_records"] = int(await conn.fetchval("SELECT count(*) FROM audit_log"))
        return found
    finally:
        await conn.close()


def seq_scans(plan: str) -> list[str]:
    return sorted({t for t in re.findall(r"Seq Scan on (\w+)", plan) if t in GROWING})


def measure(base: str, token: str, cases: dict[str, list[list[tuple[str, str]]]],
            rate: float, seconds: float, workdir: Path) -> dict[str, Any]:  # fmt: skip
    host, port = base.removeprefix("http://").rsplit(":", 1)
    out = {}
    for name, queries in cases.items():
        rtype = name.split("?")[0]
        paths = [f"{API}/{rtype}?{httpx.QueryParams(q)}" for q in queries]
        spec = openloop.LoadSpec(host, int(port), paths, {"Authorization": f"Bearer {token}"},
                                 rate, seconds)  # fmt: skip
        path = workdir / "openloop.json"
        path.write_text(json.dumps(dataclasses.asdict(spec)))
        done = subprocess.run([sys.executable, "-m", "bench.openloop", str(path)],
                              capture_output=True, text=True, check=True)  # fmt: skip
        out[name] = json.loads(done.stdout)
    return out


def run(sizes: list[int], rate: float, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {"record": RECORD, "rate": rate, "seconds": seconds, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="hs-scale-") as scratch, postgres() as pg:
        env = service_env(pg, TOKEN_MAX_LIFETIME_SECONDS="86400")  # a 1M seed outlasts 1 h
        keyring = Keyring(bytes.fromhex(env["ENCRYPTION_KEY"]))
        port = free_port()
        with launch(healthstack_command(port), env, port) as running:
            token = mint_dev_token(
                env["SECRET_KEY_BASE"], "bench", "user/*.cruds", ttl_seconds=86400
            )
            ids: dict[int, str] = {}
            for size in sorted(sizes):
                started = time.monotonic()
                asyncio.run(seed(running.base_url, token, len(ids), size // RECORD, ids))
                seeded_s = time.monotonic() - started
                pg.psql("ANALYZE")
                storage = asyncio.run(storage_bytes(env["DATABASE_URL"]))
                cases = searches(ids, random.Random(size), 200)
                figures = measure(running.base_url, token, cases, rate, seconds, Path(scratch))
                for name, queries in cases.items():
                    plan = asyncio.run(
                        explain(env["DATABASE_URL"], keyring, name.split("?")[0], queries[0])
                    )
                    figures[name]["seq_scans"] = seq_scans(plan)
                results["sizes"][str(len(ids) * RECORD)] = {
                    "seed_seconds": round(seeded_s, 1), "searches": figures, "storage": storage,
                    "bytes_per_resource": round(storage["resources"] / (len(ids) * RECORD)),
                    "bytes_per_audit_record": round(storage["audit"] / storage["audit_records"]),
                }  # fmt: skip
                print(render_size(len(ids) * RECORD, seeded_s, figures), flush=True)
                print(f"storage: {storage} bytes", flush=True)
    return results


def render_size(resources: int, seeded_s: float, figures: dict[str, Any]) -> str:
    lines = [f"\n{resources:,} resources (seeded through the API in {seeded_s:.0f} s, "
             f"{resources / max(seeded_s, 0.001):.0f} resources/s)",
             f"{'search':42} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}  plan"]  # fmt: skip
    for name, f in figures.items():
        plan = "index only" if not f["seq_scans"] else "SEQ SCAN " + ",".join(f["seq_scans"])
        lines.append(f"{name:42} {f['p50_ms']:8.2f} {f['p99_ms']:8.2f} {f['errors']:6d}  {plan}")
    return "\n".join(lines)


def growth(results: dict[str, Any]) -> str:
    sizes = sorted(results["sizes"], key=int)
    if len(sizes) < 2:
        return ""
    small, large = results["sizes"][sizes[0]]["searches"], results["sizes"][sizes[-1]]["searches"]
    lines = [f"\ngrowth from {int(sizes[0]):,} to {int(sizes[-1]):,} resources (p50, p99 ratios):"]
    for name in small:
        lines.append(f"{name:42} x{large[name]['p50_ms'] / small[name]['p50_ms']:.2f} "
                     f"x{large[name]['p99_ms'] / small[name]['p99_ms']:.2f}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="resources at each measuring point (grown in place)")  # fmt: skip
    parser.add_argument("--rate", type=float, default=50.0, help="open-loop requests/s per search")
    parser.add_argument("--seconds", type=float, default=6.0, help="per search and size")
    parser.add_argument("--name", default="scale", help="results file bench/results/NAME.json")
    args = parser.parse_args(argv)
    results = run(args.sizes, args.rate, args.seconds)
    print(growth(results))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    bad = [n for s in results["sizes"].values() for n, f in s["searches"].items() if f["seq_scans"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
