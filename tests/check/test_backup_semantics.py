"""Issue 17, backup semantics beyond the registry fixtures: a paused Velero Schedule backs
nothing up, so it does not cover a PHI namespace."""

from __future__ import annotations

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
