"""HS-CO-008: ConfigMap/Secret keys pods reference exist, or are declared external/generated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from healthstack.check.inventory import Workload
from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.selectors import matches

# On the workload or its pod template: "Secret/a, ConfigMap/b" or "Secret/a: k1,k2; Secret/b".
EXTERNAL_ANNOTATION = "healthstack.io/external-keys"
CNPG_SECRETS = ("-app", "-superuser", "-ca", "-server", "-replication")


def _references(w: Workload) -> Iterator[tuple[str, str, str | None, bool]]:
    """(kind, name, key or None for a whole object, optional) for every reference."""
    for c in w.all_containers:
        for env in c.get("env") or []:
            source = env.get("valueFrom") or {}
            for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                ref = source.get(field)
                if ref:
                    yield kind, str(ref.get("name")), str(ref.get("key")), bool(ref.get("optional"))
        for src in c.get("envFrom") or []:
            for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if src.get(field):
                    yield kind, str(src[field].get("name")), None, bool(src[field].get("optional"))
    for vol in w.pod_spec.get("volumes") or []:
        yield from _volume_refs(vol)


def _volume_refs(vol: dict[str, Any]) -> Iterator[tuple[str, str, str | None, bool]]:
    sources = [vol, *((vol.get("projected") or {}).get("sources") or [])]
    for src in sources:
        for field, kind, name_key in (
            ("configMap", "ConfigMap", "name"),
            ("secret", "Secret", "secretName"),
        ):
            ref = src.get(field)
            if not ref:
                continue
            name, optional = str(ref.get(name_key) or ref.get("name")), bool(ref.get("optional"))
            items = ref.get("items") or []
            if not items:
                yield kind, name, None, optional
            for item in items:
                yield kind, name, str(item.get("key")), optional


def _produced_keys(spec: dict[str, Any]) -> set[str] | None:
    """Keys of the Secret an ExternalSecret spec produces; None when not knowable offline
    (``dataFrom`` or ``templateFrom`` fill keys from the store)."""
    template = (spec.get("target") or {}).get("template") or {}
    if spec.get("dataFrom") or template.get("templateFrom"):
        return None
    data_keys = {str(d.get("secretKey")) for d in spec.get("data") or []}
    template_keys = {str(k) for k in template.get("data") or {}}
    if template_keys and template.get("mergePolicy", "Replace") == "Replace":
        return template_keys
    return data_keys | template_keys


def _external_keys(ctx: Context, namespace: str) -> dict[tuple[str, str], set[str] | None]:
    """Secrets an ExternalSecret (or a ClusterExternalSecret selecting the namespace) creates:
    name -> keys (None: keys unknown)."""
    found: dict[tuple[str, str], set[str] | None] = {}
    specs = [
        (es.name, es.spec) for es in ctx.inv.of_kind("ExternalSecret") if es.namespace == namespace
    ]
    for ces in ctx.inv.of_kind("ClusterExternalSecret"):
        if _selects_namespace(ctx, ces.spec, namespace):
            specs.append((ces.name, ces.spec.get("externalSecretSpec") or {}))
    for default_name, spec in specs:
        name = str((spec.get("target") or {}).get("name") or default_name)
        found[("Secret", name)] = _produced_keys(spec)
    found.update(_operator_secrets(ctx, namespace))
    return found


def _operator_secrets(ctx: Context, namespace: str) -> dict[tuple[str, str], set[str] | None]:
    """Secrets other controllers create from objects in the set: cert-manager Certificates,
    Sealed Secrets, and CloudNativePG clusters (``<name>-app`` and friends)."""
    found: dict[tuple[str, str], set[str] | None] = {}
    for obj in ctx.inv.of_kind("Certificate", "SealedSecret", "Cluster"):
        if obj.namespace != namespace:
            continue
        group = obj.api_version.split("/")[0]
        if obj.kind == "Certificate" and group == "cert-manager.io":
            found[("Secret", str(obj.spec.get("secretName")))] = {"tls.crt", "tls.key", "ca.crt"}
        elif obj.kind == "SealedSecret" and group == "bitnami.com":
            found[("Secret", obj.name)] = set(obj.spec.get("encryptedData") or {}) or None
        elif obj.kind == "Cluster" and group == "postgresql.cnpg.io":
            for suffix in CNPG_SECRETS:
                found[("Secret", obj.name + suffix)] = None
    return found


def _selects_namespace(ctx: Context, spec: dict[str, Any], namespace: str) -> bool:
    if namespace in [str(n) for n in spec.get("namespaces") or []]:
        return True
    labels = ctx.inv.namespace_labels(namespace)
    selectors = [*(spec.get("namespaceSelectors") or []), spec.get("namespaceSelector")]
    return any(s is not None and matches(s, labels) for s in selectors)


def declared_external(annotations: dict[str, str]) -> set[tuple[str, str]]:
    """``Kind/name`` entries of the annotation, in either documented form:
    ``"Secret/a, ConfigMap/b"`` or ``"Secret/a: k1,k2; Secret/b"`` (keys are informative)."""
    raw = annotations.get(EXTERNAL_ANNOTATION, "")
    found: set[tuple[str, str]] = set()
    for entry in raw.split(";"):
        head = entry.split(":", 1)[0] if ":" in entry else entry
        for part in head.split(","):
            kind, slash, name = part.strip().partition("/")
            if slash and kind and name:
                found.add((kind, name))
    return found


def _declared(w: Workload) -> set[tuple[str, str]]:
    # The annotation may sit on the workload or on its pod template.
    return declared_external(w.obj.annotations) | declared_external(w.pod_annotations)


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in ctx.inv.workloads:
        external, declared = _external_keys(ctx, w.namespace), _declared(w)
        for kind, name, key, optional in _references(w):
            if optional or (kind, name) in declared:
                continue
            obj = ctx.inv.get(kind, w.namespace, name)
            if obj is not None:
                keys = (
                    set(obj.doc.get("data") or {})
                    | set(obj.doc.get("stringData") or {})
                    | set(obj.doc.get("binaryData") or {})
                )
            elif (kind, name) in external:
                keys = external[(kind, name)] or {key}  # dataFrom: keys not knowable offline
            else:
                yield Violation(
                    w.obj,
                    f"{kind} {name} does not exist in the set and is not "
                    f"declared external ({EXTERNAL_ANNOTATION})",
                )
                continue
            if key is not None and key not in keys:
                yield Violation(w.obj, f"{kind} {name} has no key {key!r}")


CHECK = Check(
    id="HS-CO-008",
    title="Referenced ConfigMap/Secret keys exist or are declared external",
    severity=Severity.HIGH,
    scope=(
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "Pod",
        "ConfigMap",
        "Secret",
        "ExternalSecret",
        "ClusterExternalSecret",
        "Certificate",
        "SealedSecret",
    ),
    references=("HIPAA 164.308(a)(7)(ii)(C)", "NIST SP 800-53 CM-6"),
    remediation="Add the key, create the Secret with an ExternalSecret, or list it in the "
    'workload annotation healthstack.io/external-keys: "Secret/name,...".',
    evaluate=evaluate,
    family="consistency",
)
