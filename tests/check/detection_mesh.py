"""Detection corpus, classes 1-4: Istio, intent and reachability, NetworkPolicy, backups."""

from __future__ import annotations

from .detection_base import (
    APP,
    BACKUP,
    INTENT,
    ISTIO,
    NETPOL,
    Doc,
    added,
    defect,
    drop,
    meta,
    netpol,
    ns_labels,
    one,
)


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


@defect(BACKUP, "HS-BK-003")
def phi_statefulset_pvc_deleted_on_scale_down(docs: list[Doc]) -> list[Doc]:
    return added(docs, *phi_statefulset({"whenDeleted": "Delete", "whenScaled": "Delete"}))


@defect(BACKUP)
def cnpg_retention_one_day(docs: list[Doc]) -> list[Doc]:
    one(docs, "Cluster", "postgres")["spec"]["backup"]["retentionPolicy"] = "1d"
    return docs


def phi_statefulset(retention: Doc, service: str = "audit-cache") -> list[Doc]:
    """A small PHI-holding StatefulSet added to the stack (other checks report its other gaps;
    the mutation expects the PVC-retention check)."""
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
