"""docs/capacity.md: its inputs match the rendered prod overlay and docs/performance.md, and every
derived number is recomputed here from them (issue 18 item 5)."""

from __future__ import annotations

import re

from tests.deploy.conftest import REPO, Rendered

CAPACITY = (REPO / "docs" / "capacity.md").read_text()
PERFORMANCE = (REPO / "docs" / "performance.md").read_text()
CPU_SHARE = 0.70 * 0.5  # the HPA's 70 % of the 500m CPU request


def _number(text: str) -> float:
    return float(text.replace(",", "").split()[0])


def _row(first_cell: str) -> list[str]:
    for line in CAPACITY.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith(first_cell):
            return cells
    raise AssertionError(f"docs/capacity.md has no row starting {first_cell!r}")


def _final_run(case: str) -> float:
    """The API column of ``case`` in docs/performance.md's final (quiet machine) run."""
    block = PERFORMANCE.split("### Final run", 1)[1].split("```", 2)[1]
    line = next(ln for ln in block.splitlines() if ln.startswith(case))
    return float(re.split(r"\s{2,}", line.strip())[2])


def test_per_pod_figures_come_from_the_measured_run() -> None:
    for row, case in (("Patient read", "Patient read"),
                      ("US Core search", "Observation search date"),
                      ("Ingest", "Vitals ingest")):  # fmt: skip
        cells = _row(row)
        assert _number(cells[1]) == _final_run(case), row
        assert round(_number(cells[1]) * CPU_SHARE) == _number(cells[2]), row


def test_connection_arithmetic_matches_the_prod_manifests(rendered: dict[str, Rendered]) -> None:
    prod = rendered["prod"]
    hpa = prod.one("HorizontalPodAutoscaler", "healthcare-app-hpa")
    deployment = prod.one("Deployment", "healthcare-app")
    config = prod.one("ConfigMap", "healthcare-app-config")
    pooler = prod.one("Pooler", "postgres-pooler-rw")
    surge = deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    pgbouncer = pooler["spec"]["pgbouncer"]["parameters"]
    assert _number(_row("HPA maxReplicas")[1]) == hpa["spec"]["maxReplicas"]
    assert _number(_row("rolling-update surge")[1]) == surge
    assert _number(_row("`POOL_SIZE` per pod")[1]) == int(config["data"]["POOL_SIZE"])
    clients = (hpa["spec"]["maxReplicas"] + surge) * int(config["data"]["POOL_SIZE"])
    assert _number(_row("client connections at most")[1]) == clients
    assert _number(_row("PgBouncer `max_client_conn`")[1]) == int(pgbouncer["max_client_conn"])
    servers = pooler["spec"]["instances"] * int(pgbouncer["default_pool_size"])
    assert _number(_row("PgBouncer server connections")[1]) == servers
    assert clients <= int(pgbouncer["max_client_conn"])
    assert servers < 100 - 3  # PostgreSQL's default max_connections, minus reserved


def test_storage_per_patient_year_adds_up() -> None:
    per_resource = int(re.search(r"([\d,]+) bytes a resource", CAPACITY).group(1).replace(",", ""))  # type: ignore[union-attr]
    per_audit = int(
        re.search(r"([\d,]+) bytes an audit record", CAPACITY).group(1).replace(",", "")
    )  # type: ignore[union-attr]
    resources, audit, total = _row("resources (30"), _row("audit records"), _row("total")
    assert _number(resources[2]) == _number(resources[1]) * per_resource
    assert _number(audit[2]) == _number(audit[1]) * per_audit
    assert _number(total[2]) == _number(resources[2]) + _number(audit[2])
    gigabytes = 100_000 * _number(total[2]) / 1e9
    assert "about 40 GB" in CAPACITY
    assert round(gigabytes) == 40
    years = 100 * 2**30 / (100_000 * _number(total[2]))
    assert f"about {years:.1f} years" in CAPACITY
