"""Single-defect mutations of the rendered prod overlay, for the checker's detection rate.

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


# --- 1. Istio cross-object semantics ---------------------------------------------------------
@defect(ISTIO)
def peer_auth_permissive(docs: list[Doc]) -> list[Doc]:
    one(docs, "PeerAuthentication", "default")["spec"]["mtls"]["mode"] = "PERMISSIVE"
    return docs


@defect(ISTIO)
def peer_auth_removed(docs: list[Doc]) -> list[Doc]:
    return drop(docs, "PeerAuthentication", "default")


@defect(ISTIO)
def destination_rule_tls_disable_for_app(docs: list[Doc]) -> list[Doc]:
    one(docs, "DestinationRule", "healthcare-service")["spec"]["trafficPolicy"]["tls"] = {
        "mode": "DISABLE"
    }
    return docs


@defect(ISTIO)
def destination_rule_simple_tls_for_app(docs: list[Doc]) -> list[Doc]:
    one(docs, "DestinationRule", "healthcare-service")["spec"]["trafficPolicy"]["tls"] = {
        "mode": "SIMPLE"
    }
    return docs


@defect(ISTIO)
def sidecar_allow_any(docs: list[Doc]) -> list[Doc]:
    one(docs, "Sidecar", "default")["spec"]["outboundTrafficPolicy"]["mode"] = "ALLOW_ANY"
    return docs


@defect(ISTIO)
def injection_label_disabled(docs: list[Doc]) -> list[Doc]:
    ns_labels(docs)["istio-injection"] = "disabled"
    return docs


@defect(ISTIO)
def injection_off_on_app_pods(docs: list[Doc]) -> list[Doc]:
    tpl = one(docs, "Deployment", APP)["spec"]["template"]["metadata"]
    tpl.setdefault("annotations", {})["sidecar.istio.io/inject"] = "false"
    return docs


@defect(ISTIO)
def gateway_selector_typo(docs: list[Doc]) -> list[Doc]:
    one(docs, "Gateway", "healthcare-gateway")["spec"]["selector"] = {"istio": "ingress-gw"}
    return docs


@defect(ISTIO)
def service_monitor_plain_http(docs: list[Doc]) -> list[Doc]:
    endpoint = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    endpoint["scheme"] = "http"
    endpoint.pop("tlsConfig")
    return docs


@defect(ISTIO)
def authz_ingress_path_narrowed(docs: list[Doc]) -> list[Doc]:
    rule = one(docs, "AuthorizationPolicy", "healthcare-app-from-ingress")["spec"]["rules"][0]
    rule["to"][0]["operation"]["paths"] = ["/api/v2/*"]
    return docs


@defect(ISTIO)
def authz_app_from_ingress_removed(docs: list[Doc]) -> list[Doc]:
    return drop(docs, "AuthorizationPolicy", "healthcare-app-from-ingress")


@defect(ISTIO, "HS-MS-006")
def authz_prometheus_port_wrong(docs: list[Doc]) -> list[Doc]:
    rule = one(docs, "AuthorizationPolicy", "healthcare-app-from-prometheus")["spec"]["rules"][0]
    rule["to"][0]["operation"]["ports"] = ["9090"]
    return docs


@defect(ISTIO)
def authz_allow_all_principals(docs: list[Doc]) -> list[Doc]:
    rule = one(docs, "AuthorizationPolicy", "healthcare-app-from-ingress")["spec"]["rules"][0]
    rule.pop("from")
    return docs


@defect(ISTIO)
def wildcard_service_entry(docs: list[Doc]) -> list[Doc]:
    one(docs, "ServiceEntry", "external-https")["spec"]["hosts"] = ["*.com"]
    return docs


@defect(ISTIO)
def gateway_plain_http(docs: list[Doc]) -> list[Doc]:
    server = one(docs, "Gateway", "healthcare-gateway")["spec"]["servers"][0]
    server["port"] = {"name": "http", "number": 80, "protocol": "HTTP"}
    server.pop("tls")
    return docs


# --- 2. Intent inferred and reachability ------------------------------------------------------
@defect(INTENT)
def app_ingress_port_wrong(docs: list[Doc]) -> list[Doc]:
    for rule in netpol(docs, "healthcare-app")["ingress"]:
        for port in rule.get("ports", []):
            if port.get("port") in (4000, "http"):
                port["port"] = 8080
    return docs


@defect(INTENT)
def app_egress_to_postgres_removed(docs: list[Doc]) -> list[Doc]:
    egress = netpol(docs, "healthcare-app")["egress"]
    egress[:] = [r for r in egress if {"port": 5432, "protocol": "TCP"} not in r.get("ports", [])]
    return docs


@defect(INTENT)
def app_dns_egress_removed(docs: list[Doc]) -> list[Doc]:
    egress = netpol(docs, "healthcare-app")["egress"]
    egress[:] = [r for r in egress if {"port": 53, "protocol": "UDP"} not in r.get("ports", [])]
    return docs


@defect(INTENT)
def app_istiod_egress_removed(docs: list[Doc]) -> list[Doc]:
    egress = netpol(docs, "healthcare-app")["egress"]
    egress[:] = [r for r in egress if {"port": 15012, "protocol": "TCP"} not in r.get("ports", [])]
    return docs


@defect(INTENT)
def app_external_https_removed(docs: list[Doc]) -> list[Doc]:
    egress = netpol(docs, "healthcare-app")["egress"]
    egress[:] = [r for r in egress if {"port": 443, "protocol": "TCP"} not in r.get("ports", [])]
    return docs


@defect(INTENT)
def postgres_ingress_from_everyone(docs: list[Doc]) -> list[Doc]:
    netpol(docs, "postgres")["ingress"][0]["from"] = [{"namespaceSelector": {}}]
    return docs


@defect(INTENT, "HS-DH-004")
def postgres_ingress_any_pod_in_namespace(docs: list[Doc]) -> list[Doc]:
    netpol(docs, "postgres")["ingress"][0]["from"] = [{"podSelector": {}}]
    return docs


@defect(INTENT)
def app_egress_internet_without_except(docs: list[Doc]) -> list[Doc]:
    for rule in netpol(docs, "healthcare-app")["egress"]:
        for peer in rule.get("to", []):
            if "ipBlock" in peer:
                peer["ipBlock"].pop("except")
    return docs


@defect(INTENT)
def app_egress_to_everything(docs: list[Doc]) -> list[Doc]:
    netpol(docs, "healthcare-app")["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})
    return docs


@defect(INTENT)
def prometheus_ingress_removed(docs: list[Doc]) -> list[Doc]:
    ingress = netpol(docs, "healthcare-app")["ingress"]
    ingress[:] = [r for r in ingress if "monitoring" not in repr(r.get("from"))]
    return docs


# --- 3. NetworkPolicy spec exactness ----------------------------------------------------------
@defect(NETPOL)
def default_deny_removed(docs: list[Doc]) -> list[Doc]:
    return drop(docs, "NetworkPolicy", "default-deny")


@defect(NETPOL)
def default_deny_empty_egress_without_policy_types(docs: list[Doc]) -> list[Doc]:
    spec = netpol(docs, "default-deny")
    spec.pop("policyTypes")
    spec["egress"] = []
    return docs


@defect(NETPOL)
def default_deny_ingress_only(docs: list[Doc]) -> list[Doc]:
    netpol(docs, "default-deny")["policyTypes"] = ["Ingress"]
    return docs


@defect(NETPOL)
def default_deny_selects_only_app(docs: list[Doc]) -> list[Doc]:
    netpol(docs, "default-deny")["podSelector"] = {"matchLabels": {"app": "healthcare"}}
    return docs


@defect(NETPOL)
def postgres_policy_allows_all_ingress(docs: list[Doc]) -> list[Doc]:
    netpol(docs, "postgres")["ingress"] = [{}]
    return docs


@defect(NETPOL)
def postgres_policy_selector_typo(docs: list[Doc]) -> list[Doc]:
    netpol(docs, "postgres")["podSelector"] = {"matchLabels": {"app": "postgresql"}}
    return docs


@defect(NETPOL, "HS-NP-003")
def app_policy_egress_empty_peer(docs: list[Doc]) -> list[Doc]:
    netpol(docs, "healthcare-app")["egress"].append({"to": [{}]})
    return docs


@defect(NETPOL)
def dns_namespace_selector_name_label(docs: list[Doc]) -> list[Doc]:
    for rule in netpol(docs, "healthcare-app")["egress"]:
        for peer in rule.get("to", []):
            labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
            if labels.get("kubernetes.io/metadata.name") == "kube-system":
                peer["namespaceSelector"] = {"matchLabels": {"name": "kube-system"}}
    return docs


@defect(NETPOL)
def postgres_ingress_wrong_port(docs: list[Doc]) -> list[Doc]:
    netpol(docs, "postgres")["ingress"][0]["ports"] = [{"port": 5433, "protocol": "TCP"}]
    return docs


# --- 4. Backup semantics ----------------------------------------------------------------------
def velero(docs: list[Doc]) -> Doc:
    return one(docs, "Schedule")


@defect(BACKUP)
def velero_ttl_shorter_than_interval(docs: list[Doc]) -> list[Doc]:
    velero(docs)["spec"]["template"]["ttl"] = "12h0m0s"
    return docs


@defect(BACKUP)
def velero_schedule_removed(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d["kind"] != "Schedule"]


@defect(BACKUP)
def velero_hooks_removed(docs: list[Doc]) -> list[Doc]:
    velero(docs)["spec"]["template"].pop("hooks")
    return docs


@defect(BACKUP)
def velero_wrong_namespace(docs: list[Doc]) -> list[Doc]:
    velero(docs)["spec"]["template"]["includedNamespaces"] = ["healthcare-staging"]
    return docs


@defect(BACKUP, "HS-DH-003")
def velero_hook_on_error_continue(docs: list[Doc]) -> list[Doc]:
    for hook in velero(docs)["spec"]["template"]["hooks"]["resources"]:
        for pre in hook.get("pre", []):
            pre["exec"]["onError"] = "Continue"
    return docs


@defect(BACKUP)
def cnpg_scheduled_backup_suspended(docs: list[Doc]) -> list[Doc]:
    one(docs, "ScheduledBackup", "postgres-daily")["spec"]["suspend"] = True
    return docs


@defect(BACKUP)
def cnpg_base_backup_monthly_kept_30d(docs: list[Doc]) -> list[Doc]:
    one(docs, "ScheduledBackup", "postgres-daily")["spec"]["schedule"] = "0 0 1 1 * *"
    return docs


@defect(BACKUP)
def cnpg_scheduled_backup_removed(docs: list[Doc]) -> list[Doc]:
    return drop(docs, "ScheduledBackup", "postgres-daily")


@defect(BACKUP)
def phi_statefulset_pvc_deleted_on_scale_down(docs: list[Doc]) -> list[Doc]:
    return added(docs, *phi_statefulset({"whenDeleted": "Delete", "whenScaled": "Delete"}))


@defect(BACKUP)
def cnpg_retention_one_day(docs: list[Doc]) -> list[Doc]:
    one(docs, "Cluster", "postgres")["spec"]["backup"]["retentionPolicy"] = "1d"
    return docs


def phi_statefulset(retention: Doc, service: str = "audit-cache") -> list[Doc]:
    """A small PHI-holding StatefulSet (with its headless Service) to mutate."""
    labels = {"app": "audit-cache"}
    sts: Doc = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta("audit-cache", app="audit-cache"),
        "spec": {
            "serviceName": service,
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "persistentVolumeClaimRetentionPolicy": retention,
            "template": {"metadata": {"labels": labels}, "spec": {"containers": []}},
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    return [sts]


# --- 5. Pod security and exposure -------------------------------------------------------------
@defect(PODSEC)
def capabilities_add_net_admin(docs: list[Doc]) -> list[Doc]:
    app_container(docs)["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]
    return docs


@defect(PODSEC)
def psa_enforce_baseline(docs: list[Doc]) -> list[Doc]:
    ns_labels(docs)["pod-security.kubernetes.io/enforce"] = "baseline"
    return docs


@defect(PODSEC)
def psa_labels_removed(docs: list[Doc]) -> list[Doc]:
    labels = ns_labels(docs)
    for key in [k for k in labels if k.startswith("pod-security.kubernetes.io/")]:
        del labels[key]
    return docs


@defect(PODSEC)
def seccomp_unconfined(docs: list[Doc]) -> list[Doc]:
    app_container(docs)["securityContext"]["seccompProfile"] = {"type": "Unconfined"}
    return docs


@defect(PODSEC)
def service_type_load_balancer(docs: list[Doc]) -> list[Doc]:
    one(docs, "Service", "healthcare-service")["spec"]["type"] = "LoadBalancer"
    return docs


@defect(PODSEC)
def service_type_node_port(docs: list[Doc]) -> list[Doc]:
    one(docs, "Service", "healthcare-service")["spec"]["type"] = "NodePort"
    return docs


@defect(PODSEC)
def privileged_container(docs: list[Doc]) -> list[Doc]:
    app_container(docs)["securityContext"]["privileged"] = True
    return docs


@defect(PODSEC)
def privilege_escalation_allowed(docs: list[Doc]) -> list[Doc]:
    app_container(docs)["securityContext"]["allowPrivilegeEscalation"] = True
    return docs


@defect(PODSEC)
def writable_root_filesystem(docs: list[Doc]) -> list[Doc]:
    app_container(docs)["securityContext"]["readOnlyRootFilesystem"] = False
    return docs


@defect(PODSEC)
def runs_as_root(docs: list[Doc]) -> list[Doc]:
    context = app_container(docs)["securityContext"]
    context["runAsNonRoot"] = False
    context["runAsUser"] = 0
    return docs


@defect(PODSEC)
def host_network(docs: list[Doc]) -> list[Doc]:
    pod_spec(docs)["hostNetwork"] = True
    return docs


@defect(PODSEC)
def token_automounted(docs: list[Doc]) -> list[Doc]:
    pod_spec(docs)["automountServiceAccountToken"] = True
    return docs


@defect(PODSEC)
def image_by_tag(docs: list[Doc]) -> list[Doc]:
    app_container(docs)["image"] = "ghcr.io/example/healthstack:latest"
    return docs


# --- 6. Reference integrity and availability --------------------------------------------------
@defect(REFS)
def prestop_removed(docs: list[Doc]) -> list[Doc]:
    app_container(docs).pop("lifecycle")
    return docs


@defect(REFS)
def pdb_removed(docs: list[Doc]) -> list[Doc]:
    return drop(docs, "PodDisruptionBudget", "healthcare-app-pdb")


@defect(REFS)
def pdb_selector_typo(docs: list[Doc]) -> list[Doc]:
    one(docs, "PodDisruptionBudget")["spec"]["selector"] = {"matchLabels": {"app": "healthcar"}}
    return docs


@defect(REFS)
def service_selector_typo(docs: list[Doc]) -> list[Doc]:
    one(docs, "Service", "healthcare-service")["spec"]["selector"] = {"app": "health-care"}
    return docs


@defect(REFS)
def hpa_target_typo(docs: list[Doc]) -> list[Doc]:
    one(docs, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"] = "healthcare"
    return docs


@defect(REFS)
def config_map_ref_typo(docs: list[Doc]) -> list[Doc]:
    app_container(docs)["envFrom"] = [{"configMapRef": {"name": "healthcare-app-config"}}]
    return docs


@defect(REFS)
def service_account_typo(docs: list[Doc]) -> list[Doc]:
    pod_spec(docs)["serviceAccountName"] = "healthcare-ap"
    return docs


@defect(REFS)
def readiness_probe_removed(docs: list[Doc]) -> list[Doc]:
    app_container(docs).pop("readinessProbe")
    return docs


@defect(REFS)
def probe_port_typo(docs: list[Doc]) -> list[Doc]:
    app_container(docs)["readinessProbe"]["httpGet"]["port"] = "https"
    return docs


@defect(REFS)
def grace_period_too_short(docs: list[Doc]) -> list[Doc]:
    pod_spec(docs)["terminationGracePeriodSeconds"] = 10
    return docs


@defect(REFS)
def max_unavailable_all(docs: list[Doc]) -> list[Doc]:
    one(docs, "Deployment", APP)["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = "100%"
    return docs


@defect(REFS)
def resources_removed(docs: list[Doc]) -> list[Doc]:
    app_container(docs).pop("resources")
    return docs


@defect(REFS)
def spread_selector_selects_nothing(docs: list[Doc]) -> list[Doc]:
    spec = pod_spec(docs)
    spec["topologySpreadConstraints"] = [
        {
            "labelSelector": {"matchLabels": {"app": "healthcare-api"}},
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
        }
    ]
    return docs


@defect(REFS)
def virtual_service_host_typo(docs: list[Doc]) -> list[Doc]:
    route = one(docs, "VirtualService")["spec"]["http"][0]["route"][0]
    route["destination"]["host"] = "healthcare-svc"
    return docs


# --- 7. SLO rules -----------------------------------------------------------------------------
def alert(docs: list[Doc], name: str) -> Doc:
    for group in one(docs, "PrometheusRule")["spec"]["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                return rule
    raise AssertionError(name)


def retarget(docs: list[Doc], name: str, old: str, new: str) -> list[Doc]:
    rule = alert(docs, name)
    assert old in rule["expr"], (name, rule["expr"])
    rule["expr"] = rule["expr"].replace(old, new)
    return docs


AVAIL = "HealthstackAvailabilityBurnRate"
LATENCY = "HealthstackLatencyBurnRate"


@defect(SLO, "HS-SLO-001")
def burn_rate_budget_of_99_5_in_1h(docs: list[Doc]) -> list[Doc]:
    return retarget(docs, AVAIL + "1h", "0.0005", "0.005")


@defect(SLO)
def burn_rate_budget_of_99_5_in_6h(docs: list[Doc]) -> list[Doc]:
    return retarget(docs, AVAIL + "6h", "0.0005", "0.005")


@defect(SLO)
def burn_rate_budget_of_99_9_in_1d(docs: list[Doc]) -> list[Doc]:
    return retarget(docs, AVAIL + "1d", "0.0005", "0.001")


@defect(SLO)
def burn_rate_budget_of_99_5_in_3d(docs: list[Doc]) -> list[Doc]:
    return retarget(docs, AVAIL + "3d", "0.0005", "0.005")


@defect(SLO, "HS-SLO-002")
def burn_rate_factor_1h_of_6h_alert(docs: list[Doc]) -> list[Doc]:
    return retarget(docs, AVAIL + "1h", "14.4 *", "6 *")


@defect(SLO, "HS-SLO-002")
def burn_rate_factor_swapped_6h(docs: list[Doc]) -> list[Doc]:
    return retarget(docs, AVAIL + "6h", "6 *", "14.4 *")


@defect(SLO)
def latency_budget_of_90_percent(docs: list[Doc]) -> list[Doc]:
    return retarget(docs, LATENCY + "1h", "0.01", "0.1")


@defect(SLO, "HS-SLO-002")
def burn_rate_short_window_factor_mismatch(docs: list[Doc]) -> list[Doc]:
    return retarget(docs, AVAIL + "1d", "ratio_rate2h > (3 *", "ratio_rate2h > (1 *")


@defect(SLO, "HS-SLO-002")
def burn_rate_alert_removed(docs: list[Doc]) -> list[Doc]:
    for group in one(docs, "PrometheusRule")["spec"]["groups"]:
        group["rules"] = [r for r in group["rules"] if r.get("alert") != AVAIL + "1h"]
    return docs


# --- 8. False-alarm controls: defects hidden behind what looks like a correct stack -----------
@defect(ALARMS)
def committed_secret_with_values(docs: list[Doc]) -> list[Doc]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta("legacy-db"),
        "stringData": {"password": "hunter2"},
    }
    return added(docs, secret)


@defect(ALARMS)
def secret_reference_without_producer(docs: list[Doc]) -> list[Doc]:
    volumes = pod_spec(docs)["volumes"]
    volumes.append({"name": "legacy", "secret": {"secretName": "legacy-credentials"}})
    app_container(docs)["volumeMounts"].append({"mountPath": "/legacy", "name": "legacy"})
    return docs


@defect(ALARMS)
def external_secret_target_renamed(docs: list[Doc]) -> list[Doc]:
    spec = one(docs, "ExternalSecret", "healthcare-app-secrets")["spec"]
    spec["target"]["name"] = "healthcare-app-secret"
    return docs


@defect(ALARMS)
def secret_as_env_var(docs: list[Doc]) -> list[Doc]:
    env = app_container(docs).setdefault("env", [])
    ref = {"secretKeyRef": {"name": "healthcare-app-secrets", "key": "DATABASE_URL"}}
    env.append({"name": "DATABASE_URL", "valueFrom": ref})
    return docs


@defect(ALARMS)
def password_in_config_map(docs: list[Doc]) -> list[Doc]:
    config = next(d for d in docs if d["metadata"]["name"].startswith("healthcare-app-config"))
    config["data"]["DATABASE_URL"] = "postgres://healthstack:s3cret@postgres-rw:5432/healthcare"
    return docs


@defect(ALARMS)
def suppression_without_reason(docs: list[Doc]) -> list[Doc]:
    deployment = one(docs, "Deployment", APP)
    deployment["metadata"].setdefault("annotations", {})["healthstack.io/check-ignore"] = (
        "HS-WL-001"
    )
    app_container(docs)["securityContext"]["readOnlyRootFilesystem"] = False
    return docs


@defect(ALARMS, "HS-RI-005")
def external_secret_store_renamed(docs: list[Doc]) -> list[Doc]:
    one(docs, "SecretStore", "vault")["metadata"]["name"] = "vault-prod"
    return docs


@defect(ALARMS)
def pdb_blocks_all_evictions(docs: list[Doc]) -> list[Doc]:
    spec = one(docs, "PodDisruptionBudget")["spec"]
    spec.pop("maxUnavailable")
    spec["minAvailable"] = "100%"
    return docs


@defect(ALARMS)
def hpa_beside_fixed_replicas(docs: list[Doc]) -> list[Doc]:
    one(docs, "Deployment", APP)["spec"]["replicas"] = 3
    return docs


# --- Benign changes: none of these may produce a finding --------------------------------------
@benign
def reorder_objects(docs: list[Doc]) -> list[Doc]:
    return list(reversed(docs))


@benign
def unrelated_config_map(docs: list[Doc]) -> list[Doc]:
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta("feature-flags", environment="prod"),
        "data": {"NEW_SEARCH": "false"},
    }
    return added(docs, config)


@benign
def raise_hpa_replicas_within_quota(docs: list[Doc]) -> list[Doc]:
    spec = one(docs, "HorizontalPodAutoscaler")["spec"]
    spec["minReplicas"], spec["maxReplicas"] = 4, 12
    return docs


@benign
def rename_environment_label(docs: list[Doc]) -> list[Doc]:
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        if "environment" in labels:
            labels["env"] = labels.pop("environment")
    return docs


@benign
def external_secret_produced_reference(docs: list[Doc]) -> list[Doc]:
    store = {"kind": "SecretStore", "name": "vault"}
    producer = {
        "apiVersion": "external-secrets.io/v1",
        "kind": "ExternalSecret",
        "metadata": meta("report-signing"),
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": store,
            "target": {"name": "report-signing", "creationPolicy": "Owner"},
            "data": [{"secretKey": "KEY", "remoteRef": {"key": "report", "property": "KEY"}}],
        },
    }
    pod_spec(docs)["volumes"].append(
        {"name": "signing", "secret": {"secretName": "report-signing"}}
    )
    mount = {"mountPath": "/var/run/secrets/signing", "name": "signing", "readOnly": True}
    app_container(docs)["volumeMounts"].append(mount)
    # As the existing secret does: Reloader rolls the pods when it rotates.
    annotations = one(docs, "Deployment", APP)["metadata"]["annotations"]
    annotations[RELOAD] += ",report-signing"
    return added(docs, producer)


@benign
def rename_version_label_value(docs: list[Doc]) -> list[Doc]:
    one(docs, "Deployment", APP)["spec"]["template"]["metadata"]["labels"]["version"] = "v2"
    return docs


@benign
def longer_grace_and_prestop(docs: list[Doc]) -> list[Doc]:
    spec = pod_spec(docs)
    spec["terminationGracePeriodSeconds"] = spec.get("terminationGracePeriodSeconds", 60) + 10
    return docs


@benign
def tighter_log_level(docs: list[Doc]) -> list[Doc]:
    config = next(d for d in docs if d["metadata"]["name"].startswith("healthcare-app-config"))
    config["data"]["LOG_LEVEL"] = "warning"
    return docs
