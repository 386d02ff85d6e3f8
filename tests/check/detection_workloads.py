"""Detection corpus, classes 5-8 (pod security, references, SLO rules, false alarms) and the
benign changes."""

from __future__ import annotations

from .detection_base import (
    ALARMS,
    APP,
    PODSEC,
    REFS,
    RELOAD,
    SLO,
    Doc,
    added,
    app_container,
    benign,
    defect,
    drop,
    meta,
    ns_labels,
    one,
    pod_spec,
)


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
