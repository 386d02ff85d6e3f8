"""Issue 17, SLO rules beyond the registry fixtures: an alert that states no SLO is held to the
SLO the stack's other alerts on the same recorded SLI declare (not skipped)."""

from __future__ import annotations

from .test_semantics import findings

RULES = """
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {{name: slo, namespace: app}}
spec:
  groups:
    - name: slo
      rules:
        - alert: Burn1h
          expr: job:slo_errors:ratio_rate1h > (14.4 * 0.0005) and job:slo_errors:ratio_rate5m > (14.4 * 0.0005)
          labels: {{slo: availability-99.95}}
        - alert: Burn6h
          expr: job:slo_errors:ratio_rate6h > (6 * {budget}) and job:slo_errors:ratio_rate30m > (6 * {budget})
        - alert: LatencyBurn6h
          expr: job:slo_slow:ratio_rate6h > (6 * 0.01)
"""


def test_unlabelled_alert_inherits_the_slo_declared_for_its_sli() -> None:
    [found] = findings(RULES.format(budget="0.005"), "HS-SLO-001")
    assert found.endswith(
        "alert Burn6h: threshold uses error budget 0.005 (SLO 99.5%) but declares SLO 99.95% "
        "(budget 0.0005)"
    )


def test_alerts_on_an_sli_without_a_declared_slo_are_not_judged() -> None:
    # LatencyBurn6h reads another SLI, for which the stack declares nothing.
    assert findings(RULES.format(budget="0.0005"), "HS-SLO-001") == []
