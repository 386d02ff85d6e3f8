"""Issue 17: without --intent the checker infers the flows the stack needs, says so, and an
explicit --intent still wins."""

from __future__ import annotations

import json
import textwrap

import pytest

from healthstack.check.engine import make_context, run_checks
from healthstack.check.inference import infer_intent
from healthstack.check.inventory import Inventory
from healthstack.check.loader import load_kustomize, parse_stream
from healthstack.check.registry import by_id
from healthstack.cli import main

from .conftest import REPO

PROD = REPO / "deploy/overlays/prod"


@pytest.fixture(scope="module")
def prod_flows() -> set[tuple[str, str, str, bool]]:
    intent = infer_intent(Inventory(load_kustomize(str(PROD))))
    assert intent.inferred
    return {(f.src, f.dst, str(f.port), f.allowed) for f in intent.flows}


def test_prod_flows_are_inferred_from_its_objects(prod_flows: set) -> None:  # type: ignore[type-arg]
    app = "healthcare-prod/healthcare-app"
    assert {
        ("ingressgateway", app, "4000/TCP", True),  # VirtualService via the Gateway
        ("prometheus", app, "4000/TCP", True),  # ServiceMonitor
        ("prometheus", app, "15090/TCP", True),  # PodMonitor on the sidecar
        (app, "healthcare-prod/postgres", "5432/TCP", True),  # DATABASE_URL_FILE -> the Cluster
        (app, "dns", "53/UDP", True),
        (app, "dns", "53/TCP", True),
        (app, "istiod", "15012/TCP", True),
        (app, "internet", "443/TCP", True),  # ServiceEntry external-https
        ("healthcare-prod/postgres", "internet", "443/TCP", True),  # barman object store
        ("*", "healthcare-prod/postgres", "5432/TCP", False),
    } <= prod_flows
    # The audit-anchor CronJob names no ServiceEntry host: it needs no internet.
    assert not {f for f in prod_flows if f[0].endswith("/audit-anchor") and f[1] == "internet"}


def test_report_says_the_intent_was_inferred(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "--kustomize", str(PROD), "--format", "json"])
    captured = capsys.readouterr()
    assert code == 0
    assert json.loads(captured.out)["intent"] == "inferred"
    assert "inferred from the manifests" in captured.err


def test_explicit_intent_wins(capsys: pytest.CaptureFixture[str]) -> None:
    intent = str(REPO / "deploy/intent.yaml")
    main(["check", "--kustomize", str(PROD), "--format", "json", "--intent", intent])
    captured = capsys.readouterr()
    assert json.loads(captured.out)["intent"] == intent
    assert "inferred" not in captured.err


STACK = """
apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: app}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - {name: web, image: x, env: [{name: DATABASE_URL_FILE, value: /run/db}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker, namespace: app}
spec:
  selector: {matchLabels: {app: worker}}
  template:
    metadata: {labels: {app: worker}}
    spec:
      containers: [{name: worker, image: x}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: app}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: x, ports: [{name: pg, containerPort: 5432}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: app}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: app}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {}}], ports: [{port: 5432}]}]
"""


def test_database_ingress_is_judged_on_its_own_rule() -> None:
    # worker's egress is closed by default-deny, but the database's rule admits every pod of the
    # namespace: the rule itself is the defect, and the finding names it.
    ctx = make_context(parse_stream(textwrap.dedent(STACK), "s.yaml"))
    found = run_checks(ctx, checks=[by_id()["HS-NP-001"]])
    denied = [f for f in found if "-> app/db 5432/TCP is admitted" in f.message]
    assert {f.message.split(" ->")[0] for f in denied} == {"app/worker", "app/*"}
    assert {f.object_ref for f in denied} == {"NetworkPolicy/app/db"}  # the rule to fix
    allowed = STACK.replace("podSelector: {}}]", "podSelector: {matchLabels: {app: web}}}]")
    ctx = make_context(parse_stream(textwrap.dedent(allowed), "s.yaml"))
    found = run_checks(ctx, checks=[by_id()["HS-NP-001"]])
    assert not [f for f in found if "is admitted" in f.message]
