"""Alerts never mix environments, and cover the database, backups and secret sync (item 7)."""

from __future__ import annotations

import re
from typing import Any

from tests.deploy.conftest import Rendered


def _rules(overlay: Rendered) -> list[dict[str, Any]]:
    rule = overlay.one("PrometheusRule", "healthstack-slo")
    return [r for g in rule["spec"]["groups"] for r in g["rules"]]


def test_every_aggregation_is_per_namespace(overlay: Rendered) -> None:
    for rule in _rules(overlay):
        for aggregation in re.findall(
            r"\b(sum|min|max|avg)\b\s*(by \([^)]*\))?\s*\(", rule["expr"]
        ):
            assert "namespace" in aggregation[1], (rule.get("record") or rule["alert"], aggregation)


def test_every_alert_carries_its_environment(overlay: Rendered) -> None:
    for rule in _rules(overlay):
        if "alert" in rule:
            assert rule["labels"]["environment"].startswith("{{ $labels."), rule["alert"]


def test_outage_alert_names_this_environment(overlay: Rendered) -> None:
    (missing,) = [r for r in _rules(overlay) if r.get("alert") == "HealthstackTargetMissing"]
    assert f'namespace="healthcare-{overlay.env}"' in missing["expr"]


def test_monitoring_objects_carry_the_release_label(overlay: Rendered) -> None:
    for kind in ("PrometheusRule", "ServiceMonitor", "PodMonitor"):
        for obj in overlay.find(kind):
            assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack", kind


def test_platform_alerts_exist(overlay: Rendered) -> None:
    exprs = " ".join(r["expr"] for r in _rules(overlay) if "alert" in r)
    for metric in ("cnpg_collector_up", "cnpg_pg_stat_archiver_seconds_since_last_archival",
                   "velero_backup_last_status", "velero_backup_last_successful_timestamp",
                   "externalsecret_status_condition"):  # fmt: skip
        assert metric in exprs, metric


def _dashboard(overlay: Rendered) -> dict[str, Any]:
    import json

    cm = overlay.one("ConfigMap", "healthstack-grafana-dashboard")
    return dict(json.loads(cm["data"]["healthstack-slo.json"]))


def test_dashboard_per_environment(rendered: dict[str, Rendered]) -> None:
    boards = {env: _dashboard(r) for env, r in rendered.items()}
    assert {b["uid"] for b in boards.values()} == {"healthcare-prod", "healthcare-staging"}
    assert {b["title"] for b in boards.values()} == {"healthcare-prod", "healthcare-staging"}


def test_dashboard_filters_by_namespace_and_shows_saturation_and_database(
    overlay: Rendered,
) -> None:
    board = _dashboard(overlay)
    assert "namespace" in {v["name"] for v in board["templating"]["list"]}
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert all('namespace="$namespace"' in e for e in exprs), exprs
    titles = " ".join(p["title"] for p in board["panels"])
    assert "Saturation" in titles
    assert "Database" in titles
