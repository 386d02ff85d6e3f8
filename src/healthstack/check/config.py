"""``--config`` file: severity overrides and exclusions.

severity:            # check id -> low|medium|high|critical
  HS-AV-005: medium
exclude:
  checks: [HS-WL-004]            # never run these
  objects:                       # skip findings on these (Kind/namespace/name; * globs)
    - check: HS-AV-001
      object: Deployment/healthcare/debug-*
      reason: one-off debugging pod
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from healthstack.check.model import Finding, Severity
from healthstack.errors import HealthstackError

# The file's shape, checked before use so a typo is an error naming the key, not a traceback.
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "severity": {"type": "object", "additionalProperties": {"type": "string"}},
        "exclude": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "checks": {"type": "array", "items": {"type": "string"}},
                "objects": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["object", "reason"],
                        "properties": {
                            "check": {"type": "string"},
                            "object": {"type": "string", "minLength": 1},
                            "reason": {"type": "string", "minLength": 1},
                        },
                    },
                },
            },
        },
    },
}


@dataclass(frozen=True)
class Config:
    severity: dict[str, Severity] = field(default_factory=dict)
    excluded_checks: frozenset[str] = frozenset()
    excluded_objects: tuple[tuple[str, str], ...] = ()  # (check id or *, object glob)

    def excludes(self, finding: Finding) -> bool:
        return any(
            fnmatch.fnmatchcase(finding.check_id, c) and fnmatch.fnmatchcase(finding.object_ref, o)
            for c, o in self.excluded_objects
        )


def load_config(path: str | None, known_ids: set[str]) -> Config:
    if path is None:
        return Config()
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise HealthstackError(f"{path}: cannot read config: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise HealthstackError(f"{path}: malformed YAML: {exc}") from None
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft7Validator(CONFIG_SCHEMA).iter_errors(data)
    )
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise HealthstackError(f"{path}: {where}: {error.message}")
    return Config(
        _severities(data.get("severity") or {}, known_ids, path),
        frozenset(_ids(data, known_ids, path)),
        _objects(data, path),
    )


def _severities(raw: Any, known: set[str], path: str) -> dict[str, Severity]:
    result = {}
    for check_id, level in dict(raw).items():
        if check_id not in known:
            raise HealthstackError(f"{path}: severity: unknown check id {check_id!r}")
        try:
            result[str(check_id)] = Severity.parse(str(level))
        except ValueError as exc:
            raise HealthstackError(f"{path}: severity.{check_id}: {exc}") from None
    return result


def _ids(data: dict[str, Any], known: set[str], path: str) -> list[str]:
    ids = [str(i) for i in (data.get("exclude") or {}).get("checks") or []]
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise HealthstackError(f"{path}: exclude.checks: unknown check id(s) {unknown}")
    return ids


def _objects(data: dict[str, Any], path: str) -> tuple[tuple[str, str], ...]:
    entries = (data.get("exclude") or {}).get("objects") or []
    result = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("object") or not entry.get("reason"):
            raise HealthstackError(f"{path}: exclude.objects[{index}] needs object and reason")
        result.append((str(entry.get("check", "*")), str(entry["object"])))
    return tuple(result)
