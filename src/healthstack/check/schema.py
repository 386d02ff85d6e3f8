"""Schema validation: Kubernetes 1.31 (strict) for built-in kinds, CRDs for custom resources.

``kubernetes_validate.validate`` re-reads the 1.3 MB definitions file on every call; we use the
package's own schema files through its ``schema_contents`` helper and cache one validator per
(apiVersion, kind), so a whole overlay validates in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

from healthstack.check.model import Finding, K8sObject, Severity

K8S_VERSION = "1.31.0"
SCHEMA_CHECK_ID = "HS-SC-001"
SCHEMA_TITLE = "Object matches the Kubernetes 1.31 or CRD schema (strict)"
SCHEMA_REMEDIATION = (
    "Fix or remove the field the API server would reject; pass --crds for custom resources."
)
SCHEMA_REFERENCES = ("HIPAA 164.312(c)(1)", "NIST SP 800-53 CM-6", "CIS Kubernetes Benchmark 5.7")
_MAX_ERRORS_PER_OBJECT = 5

Validator = jsonschema.protocols.Validator


@cache
def _k8s_registry() -> Registry:
    defs = kv.schema_contents(f"kubernetes-json-schema/{_dir()}/_definitions.json", K8S_VERSION)
    return Resource.from_contents(defs) @ Registry()


def _dir() -> str:
    return f"v{K8S_VERSION}-local-strict"


@cache
def k8s_validator(api_version: str, kind: str) -> Validator | None:
    """The strict validator for a built-in kind, None when the package has no such schema."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv.schema_contents(
            f"kubernetes-json-schema/{_dir()}/{kind.lower()}-{group_version}.json", K8S_VERSION
        )
    except FileNotFoundError:
        return None
    registry = Resource.from_contents(schema) @ _k8s_registry()
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _strict(schema: Any) -> Any:
    """OpenAPI v3 structural schema -> JSON Schema rejecting unknown fields, as the API server
    prunes/rejects them (except where the CRD says ``x-kubernetes-preserve-unknown-fields``)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def _crd_schemas(crd: dict[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    spec = crd.get("spec") or {}
    group, kind = spec.get("group", ""), (spec.get("names") or {}).get("kind", "")
    for version in spec.get("versions") or []:
        schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or None
        if version.get("served", True) and schema:
            yield f"{group}/{version['name']}", kind, schema


def _crd_files(crds_dir: Path) -> list[Path]:
    return sorted(p for p in crds_dir.rglob("*") if p.suffix in (".yaml", ".yml"))


def _parse_crds(files: list[Path]) -> dict[str, dict[str, Any]]:
    """ "apiVersion|kind" -> strict JSON schema, for every served version of every CRD."""
    found: dict[str, dict[str, Any]] = {}
    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for file in files:
        for doc in yaml.load_all(file.read_text(encoding="utf-8"), Loader=loader):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                for api_version, kind, schema in _crd_schemas(doc):
                    strict = _strict(schema)
                    # metadata is validated by the API server, not by the CRD schema.
                    props = strict.setdefault("properties", {})
                    props.update(
                        metadata={"type": "object"},
                        apiVersion={"type": "string"},
                        kind={"type": "string"},
                    )
                    found[f"{api_version}|{kind}"] = strict
    return found


def _cache_file(files: list[Path]) -> Path:
    """Parsing the CRD YAML dominates a run; its JSON is cached, keyed by the files' identity."""
    digest = hashlib.sha256()
    for f in files:
        stat = f.stat()
        digest.update(f"{f.resolve()}|{stat.st_mtime_ns}|{stat.st_size}\n".encode())
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "healthstack"
    return base / f"crd-schemas-{digest.hexdigest()[:24]}.json"


def _cached_crds(crds_dir: Path) -> dict[str, dict[str, Any]]:
    files = _crd_files(crds_dir)
    cache_file = _cache_file(files)
    try:
        return json.loads(cache_file.read_text(encoding="utf-8"))  # type: ignore[no-any-return]
    except (OSError, ValueError):
        pass
    schemas = _parse_crds(files)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(schemas), encoding="utf-8")
        tmp.replace(cache_file)
    except OSError:
        pass  # a read-only home only costs speed
    return schemas


@cache
def crd_validators(crds_dir: Path) -> dict[tuple[str, str], Validator]:
    """(apiVersion, kind) -> validator for every served version of every CRD under the folder."""
    found: dict[tuple[str, str], Validator] = {}
    for key, schema in _cached_crds(crds_dir).items():
        api_version, kind = key.split("|")
        found[(api_version, kind)] = jsonschema.Draft7Validator(schema)
    return found


def validate_objects(objects: Iterable[K8sObject], crds_dir: Path | None) -> list[Finding]:
    """Schema findings for every object (usable outside the ``check`` command, e.g. in tests)."""
    crds = crd_validators(crds_dir.resolve()) if crds_dir is not None else {}
    findings: list[Finding] = []
    for obj in objects:
        findings.extend(_validate_one(obj, crds, crds_dir is not None))
    return findings


def _validate_one(
    obj: K8sObject, crds: dict[tuple[str, str], Validator], have_crds: bool
) -> list[Finding]:
    validator = crds.get((obj.api_version, obj.kind)) or k8s_validator(obj.api_version, obj.kind)
    if validator is None:
        if "." in obj.api_version.split("/")[0] and not have_crds:
            return []  # custom resource without --crds: nothing to validate against
        return [
            _finding(
                obj,
                f"no schema for {obj.api_version} {obj.kind} in Kubernetes "
                f"1.31{' or the given CRDs' if have_crds else ''}",
            )
        ]
    errors = sorted(validator.iter_errors(obj.doc), key=lambda e: list(e.absolute_path))
    return [_finding(obj, _describe(e)) for e in errors[:_MAX_ERRORS_PER_OBJECT]]


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(root)"
    if error.validator == "additionalProperties":
        return f"{path}: unknown field(s): {error.message.split('(')[-1].rstrip(')')}"
    return f"{path}: {error.message[:200]}"


def _finding(obj: K8sObject, message: str) -> Finding:
    return Finding(
        SCHEMA_CHECK_ID,
        SCHEMA_TITLE,
        Severity.HIGH,
        obj.ref,
        obj.file,
        obj.line,
        message,
        SCHEMA_REMEDIATION,
        SCHEMA_REFERENCES,
    )
