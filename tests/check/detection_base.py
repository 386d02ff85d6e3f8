"""Helpers and registry of the detection corpus (single-defect mutations of the prod overlay).

Each mutation takes the overlay's objects (plain dicts, already deep-copied) and returns them
with ONE realistic mistake a reviewer would flag; ``expect`` is the check id that should report
it when one is natural (None: any finding counts). Benign mutations must produce no finding.
Written by the checker's authors, so the rate measured on it is an upper bound (see
docs/checks-detection.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]
Mutate = Callable[[list[Doc]], list[Doc]]

NS = "healthcare-prod"
RELOAD = "secret.reloader.stakater.com/reload"
APP = "healthcare-app"


@dataclass(frozen=True)
class Mutation:
    cls: str
    name: str
    fn: Mutate
    expect: str | None = None


DEFECTS: list[Mutation] = []
BENIGN: list[Mutation] = []


def defect(cls: str, expect: str | None = None) -> Callable[[Mutate], Mutate]:
    def register(fn: Mutate) -> Mutate:
        DEFECTS.append(Mutation(cls, fn.__name__, fn, expect))
        return fn

    return register


def benign(fn: Mutate) -> Mutate:
    BENIGN.append(Mutation("benign", fn.__name__, fn))
    return fn


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    """The single object of ``kind`` (and ``name``, when given) in the render."""
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


def drop(docs: list[Doc], kind: str, name: str) -> list[Doc]:
    target = one(docs, kind, name)
    return [d for d in docs if d is not target]


def pod_spec(docs: list[Doc]) -> Doc:
    spec: Doc = one(docs, "Deployment", APP)["spec"]["template"]["spec"]
    return spec


def app_container(docs: list[Doc]) -> Doc:
    return next(c for c in pod_spec(docs)["containers"] if c["name"] == APP)


def netpol(docs: list[Doc], name: str) -> Doc:
    spec: Doc = one(docs, "NetworkPolicy", name)["spec"]
    return spec


def ns_labels(docs: list[Doc]) -> Doc:
    labels: Doc = one(docs, "Namespace")["metadata"]["labels"]
    return labels


def added(docs: list[Doc], *new: Doc) -> list[Doc]:
    return [*docs, *new]


def meta(name: str, ns: str = NS, **labels: str) -> Doc:
    return {"name": name, "namespace": ns, **({"labels": labels} if labels else {})}


# Mutations that name nothing prod-only, also applied to the staging overlay.
PORTABLE = {
    "peer_auth_permissive",
    "destination_rule_tls_disable_for_app",
    "sidecar_allow_any",
    "injection_label_disabled",
    "default_deny_removed",
    "default_deny_empty_egress_without_policy_types",
    "velero_ttl_shorter_than_interval",
    "capabilities_add_net_admin",
    "psa_enforce_baseline",
    "seccomp_unconfined",
    "service_type_load_balancer",
    "image_by_tag",
    "prestop_removed",
    "service_selector_typo",
    "burn_rate_budget_of_99_5_in_1h",
    "burn_rate_alert_removed",
}

# The classes of issue 17 (docs/checks-detection.md reports one line per class).
ISTIO = "istio cross-object semantics"
INTENT = "intent and reachability"
NETPOL = "NetworkPolicy spec exactness"
BACKUP = "backup semantics"
PODSEC = "pod security and exposure"
REFS = "reference integrity and availability"
SLO = "SLO rules"
ALARMS = "false-alarm controls"
CLASSES = [ISTIO, INTENT, NETPOL, BACKUP, PODSEC, REFS, SLO, ALARMS]
