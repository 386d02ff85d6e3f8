"""HS-LIM-004: a changed ConfigMap or Secret rolls the pods that read it.

The service reads settings and secrets once, at start. If nothing in the pod template changes
when they do, a rotation silently waits for the next unrelated rollout. Accepted: a ConfigMap whose
name carries kustomize's content hash (``configMapGenerator``), a ``checksum/*`` pod annotation,
or Stakater Reloader's annotations on the Deployment naming the object (or ``auto``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from healthstack.check.inventory import Workload
from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation

_HASHED = re.compile(r"-[bcdfghkmt2-9]{10}$")  # kustomize's name-suffix alphabet
RELOADER = "reloader.stakater.com"


def _references(w: Workload) -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    for c in w.all_containers:
        for src in c.get("envFrom") or []:
            for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if src.get(field):
                    refs.add((kind, str(src[field].get("name"))))
        for env in c.get("env") or []:
            source = env.get("valueFrom") or {}
            for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if source.get(field):
                    refs.add((kind, str(source[field].get("name"))))
    for vol in w.pod_spec.get("volumes") or []:
        if (vol.get("configMap") or {}).get("name"):
            refs.add(("ConfigMap", str(vol["configMap"]["name"])))
        if (vol.get("secret") or {}).get("secretName"):
            refs.add(("Secret", str(vol["secret"]["secretName"])))
    return refs


def _reloaded(w: Workload, kind: str, name: str) -> bool:
    ann = w.obj.annotations
    if (
        ann.get(f"{RELOADER}/auto") == "true"
        or ann.get(f"{kind.lower()}.{RELOADER}/auto") == "true"
    ):
        return True
    listed = ann.get(f"{kind.lower()}.{RELOADER}/reload", "")
    return name in {n.strip() for n in listed.split(",")}


def evaluate(ctx: Context) -> Iterator[Violation]:
    for w in ctx.inv.workloads:
        if w.synthetic or w.obj.kind != "Deployment":
            continue
        if any(k.startswith("checksum/") for k in w.pod_annotations):
            continue
        for kind, name in sorted(_references(w)):
            if kind == "ConfigMap" and _HASHED.search(name):
                continue
            if not _reloaded(w, kind, name):
                yield Violation(w.obj, f"a change to {kind}/{name} does not roll the pods")


CHECK = Check(
    id="HS-LIM-004",
    title="Config and secret changes roll the pods",
    severity=Severity.MEDIUM,
    scope=("Deployment", "ConfigMap", "Secret"),
    references=("HIPAA 164.308(a)(5)(ii)(D)", "NIST SP 800-53 CM-3", "NIST SP 800-53 IA-5"),
    remediation="Generate ConfigMaps with kustomize (content hash in the name), and annotate the "
    "Deployment with secret.reloader.stakater.com/reload naming its Secrets (or a checksum/* pod "
    "annotation).",
    evaluate=evaluate,
    family="deployment limits",
)
