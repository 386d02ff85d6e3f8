"""Issue 17, backup semantics beyond the registry fixtures: a paused Velero Schedule backs
nothing up, and a Schedule whose resources leave out the claims (or, for file-system backup, the
pods) holds no volume data."""

from __future__ import annotations

import pytest

from .test_semantics import findings

SCHEDULE = """
apiVersion: velero.io/v1
kind: Schedule
metadata: {{name: daily, namespace: velero}}
spec:
  {paused}
  schedule: "0 2 * * *"
  template:
    ttl: 720h
    includedNamespaces: [app]
    hooks:
      resources:
        - name: dump
          includedNamespaces: [app]
          pre: [{{exec: {{command: [/bin/sh, -c, pg_dump]}}}}]
"""


def test_paused_schedule_is_reported() -> None:
    [found] = findings(SCHEDULE.format(paused="paused: true"), "HS-DH-003")
    assert found == "Schedule/velero/daily: paused: true (it runs no backups)"
    assert findings(SCHEDULE.format(paused="paused: false"), "HS-DH-003") == []


def test_dump_hook_that_continues_on_error_is_reported() -> None:
    continuing = SCHEDULE.replace("pg_dump]}}", "pg_dump], onError: Continue}}")
    [found] = findings(continuing.format(paused=""), "HS-DH-003")
    assert "onError: Continue" in found
    failing = SCHEDULE.replace("pg_dump]}}", "pg_dump], onError: Fail}}")
    assert findings(failing.format(paused=""), "HS-DH-003") == []


DATABASE = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: postgres, namespace: app}}
spec:
  serviceName: postgres
  selector: {{matchLabels: {{app: postgres}}}}
  template:
    metadata: {{labels: {{app: postgres}}}}
    spec: {{containers: [{{name: pg, image: postgres, ports: [{{containerPort: 5432}}]}}]}}
  volumeClaimTemplates:
    - metadata: {{name: data}}
      spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
---
apiVersion: velero.io/v1
kind: Schedule
metadata: {{name: daily, namespace: velero}}
spec: {{schedule: "0 2 * * *", template: {{ttl: 720h, includedNamespaces: [app], {extra}}}}}
"""


@pytest.mark.parametrize(
    ("extra", "missing"),
    [
        ("excludedResources: [pvc]", "persistentvolumeclaims"),
        ("excludedResources: [persistentvolumes]", "persistentvolumes"),
        ("includedResources: [statefulsets, configmaps]", "persistentvolumeclaims"),
        (
            "snapshotVolumes: false, defaultVolumesToFsBackup: true, excludedResources: [pods]",
            "pods",
        ),
    ],
)
def test_backup_that_leaves_out_the_volumes_resources_is_reported(extra: str, missing: str) -> None:
    [found] = findings(DATABASE.format(extra=extra), "HS-BK-002")
    assert found.endswith(f"app/postgres volume data: the template leaves out {missing}")


@pytest.mark.parametrize(
    "extra",
    [
        "excludedResources: [secrets]",
        "excludedResources: [pods]",  # snapshots do not need the pods
        "includedResources: [statefulsets, persistentvolumeclaims]",
    ],
)
def test_backup_keeping_the_volumes_resources_passes(extra: str) -> None:
    assert findings(DATABASE.format(extra=extra), "HS-BK-002") == []


CLUSTER = """
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {{name: pg, namespace: app}}
spec:
  instances: 3
  {backup}
---
apiVersion: postgresql.cnpg.io/v1
kind: ScheduledBackup
metadata: {{name: pg-base, namespace: app}}
spec: {{schedule: "{schedule}", cluster: {{name: pg}}, {extra}}}
"""
OBJECT_STORE = "backup: {retentionPolicy: 1w, barmanObjectStore: {destinationPath: s3://b/pg}}"
PLUGIN = "plugins: [{name: barman-cloud.cloudnative-pg.io}]"


def cluster(backup: str = OBJECT_STORE, schedule: str = "0 0 1 * * *", extra: str = "") -> str:
    return CLUSTER.format(backup=backup, schedule=schedule, extra=extra)


def test_wal_archive_without_an_active_scheduled_backup_is_reported() -> None:
    for yaml in (cluster(extra="suspend: true"), cluster(backup=PLUGIN, extra="suspend: true")):
        [found] = findings(yaml, "HS-BK-004")
        assert "archives WAL but no active ScheduledBackup takes base backups" in found


def test_base_backups_must_outlive_their_interval() -> None:
    [found] = findings(cluster(schedule="0 0 1 1 * *"), "HS-BK-004")  # monthly, kept a week
    assert "run every 31 day(s) but cluster pg keeps them 7 day(s)" in found
    assert findings(cluster(), "HS-BK-004") == []
    assert findings(cluster(backup=PLUGIN), "HS-BK-004") == []
