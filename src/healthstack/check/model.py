"""The data every layer shares: objects with their source position, severities and findings."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

# What code hits when an object has a field of the wrong type (a string where the schema says
# mapping): the schema check reports the field; other checks report that they could not judge.
MALFORMED = (AttributeError, TypeError, ValueError, KeyError, IndexError)


class Severity(enum.IntEnum):
    """Ordered so that ``finding.severity >= threshold`` means "report"."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of {names})") from None


@dataclass(frozen=True)
class K8sObject:
    """One Kubernetes object plus where it came from (for SARIF and error messages)."""

    doc: dict[str, Any]
    file: str
    line: int  # 1-based line of the document's first key

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.doc.get("apiVersion", ""))

    @property
    def metadata(self) -> dict[str, Any]:
        meta = self.doc.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace") or "default")

    @property
    def labels(self) -> dict[str, str]:
        labels = self.metadata.get("labels")
        return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}

    @property
    def annotations(self) -> dict[str, str]:
        ann = self.metadata.get("annotations")
        return {str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else {}

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.doc.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def ref(self) -> str:
        """``Kind/namespace/name`` (cluster-scoped kinds have no namespace part)."""
        if self.kind in CLUSTER_SCOPED:
            return f"{self.kind}/{self.name}"
        return f"{self.kind}/{self.namespace}/{self.name}"


CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterSecretStore",
        "PriorityClass",
        "StorageClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "PersistentVolume",
    }
)


@dataclass(frozen=True)
class Finding:
    """One problem: which check, which object, what is wrong and how to fix it."""

    check_id: str
    title: str
    severity: Severity
    object_ref: str
    file: str
    line: int
    message: str
    remediation: str
    references: tuple[str, ...] = field(default=())
    field_path: str = ""  # dotted path of the offending field inside the object, when known

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check_id,
            "title": self.title,
            "severity": self.severity.name.lower(),
            "object": self.object_ref,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "remediation": self.remediation,
            "references": list(self.references),
            **({"field": self.field_path} if self.field_path else {}),
        }
