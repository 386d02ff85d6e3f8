"""Search result parameters: ``_include``, ``_revinclude``, ``_summary``, ``_elements``, ``_total``.

Parsed here into :class:`Shape`; :mod:`healthstack.fhir.ops` applies them. Included resources are
read under the same compartment as the match (an ``_include`` never pulls a resource from another
patient's compartment), need the caller's read permission on their type, and are audited as the
reads they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from healthstack.core.outcome import FhirError
from healthstack.fhir import searchdefs

SUMMARY_MODES = ("true", "false", "count", "data", "text")
TOTAL_MODES = ("none", "estimate", "accurate")
MAX_INCLUDED = 500  # included resources per page, whatever the includes ask for
ALWAYS_KEPT = ("resourceType", "id", "meta")
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
             "code": "SUBSETTED"}  # fmt: skip
RESULT_PARAMS = frozenset({"_include", "_revinclude", "_summary", "_elements", "_total",
                           "_format", "_pretty", "_contained", "_containedType"})  # fmt: skip
# Contained resources are stored, encrypted, inside their container and returned with it; they
# are not searched as resources of their own (R4 3.1.1.5.9): only the defaults are answered.
CONTAINED_DEFAULTS = {"_contained": "false", "_containedType": "container"}
CONTAINED_VALUES = {"_contained": ("false", "true", "both"),
                    "_containedType": ("container", "contained")}  # fmt: skip


def bad(param: str, message: str) -> FhirError:
    return FhirError(400, "invalid", f"search parameter {param}: {message}")


@dataclass(frozen=True)
class Include:
    source: str  # the type whose reference is followed
    param: str  # reference parameter code, or "*"
    target: str | None  # optional target type
    iterate: bool
    reverse: bool


@dataclass
class Shape:
    includes: list[Include] = field(default_factory=list)
    summary: str = "false"
    elements: tuple[str, ...] = ()
    total: str = "none"

    def add(self, rtype: str, name: str, value: str) -> None:
        base, _, modifier = name.partition(":")
        if base in ("_include", "_revinclude"):
            self.includes.append(parse_include(rtype, name, value, base == "_revinclude",
                                               modifier))  # fmt: skip
        elif modifier:
            raise bad(name, "takes no modifier")
        elif base == "_summary":
            if value not in SUMMARY_MODES:
                raise bad(name, f"expected one of {', '.join(SUMMARY_MODES)}")
            self.summary = value
        elif base == "_elements":
            self.elements = tuple(e.strip() for e in value.split(",") if e.strip())
        elif base in CONTAINED_DEFAULTS:
            if value not in CONTAINED_VALUES[base]:
                raise bad(name, f"expected one of {', '.join(CONTAINED_VALUES[base])}")
            if value != CONTAINED_DEFAULTS[base]:
                raise FhirError(400, "not-supported", f"search parameter {base}={value}: contained "
                                "resources are searched only as part of their container "
                                f"({base}={CONTAINED_DEFAULTS[base]})")  # fmt: skip
        elif base == "_total":
            if value not in TOTAL_MODES:
                raise bad(name, f"expected one of {', '.join(TOTAL_MODES)}")
            self.total = value
        # _format and _pretty: representation switches, handled by the HTTP layer

    @property
    def reduces(self) -> bool:
        """Whether entries are subsets of the stored JSON (else they go out as stored)."""
        return bool(self.elements) or self.summary in ("true", "text", "data")

    @property
    def counts(self) -> bool:
        return self.total in ("accurate", "estimate") or self.summary == "count"

    def subset(self, rtype: str, body: bytes) -> bytes:
        """The stored JSON, reduced per ``_summary``/``_elements`` (and tagged SUBSETTED)."""
        if self.summary == "data" and not self.elements:
            return subset_data(body)
        keep = self._kept(rtype)
        if keep is None:
            return body
        resource = orjson.loads(body)
        reduced = {k: v for k, v in resource.items() if k in ALWAYS_KEPT or keeps(keep, k)}
        meta = dict(reduced.get("meta", {}))
        meta["tag"] = [*meta.get("tag", []), SUBSETTED]
        reduced["meta"] = meta
        return orjson.dumps(reduced)

    def _kept(self, rtype: str) -> set[str] | None:
        if self.elements:
            return set(self.elements)
        declared = searchdefs.elements_of(rtype)
        if self.summary == "true":
            return _expand(declared["summary"])
        if self.summary == "text":
            return {"text", *_expand(declared["mandatory"])}
        return None


def _expand(names: list[str]) -> set[str]:
    """Element names as JSON keys: a choice ``value[x]`` keeps every ``valueX``."""
    return {n.removesuffix("[x]") + "*" if n.endswith("[x]") else n for n in names}


def keeps(keep: set[str], key: str) -> bool:
    if key in keep:
        return True
    return any(k.endswith("*") and key.startswith(k[:-1]) for k in keep)


def parse_include(rtype: str, name: str, value: str, reverse: bool, modifier: str) -> Include:
    if modifier not in ("", "iterate"):
        raise bad(name, "supported modifier: :iterate")
    parts = value.split(":")
    if len(parts) not in (2, 3):
        raise bad(name, "expected Type:parameter[:targetType]")
    source, param = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    if source not in searchdefs.resource_types():
        raise bad(name, f"unknown resource type {source[:64]!r}")
    if not reverse and source != rtype and modifier != "iterate":
        raise bad(name, f"_include must start with {rtype} (or use :iterate)")
    if param != "*":
        definition = searchdefs.params_of(source).get(param)
        if definition is None or definition.type != "reference":
            raise bad(name, f"{param[:64]!r} is not a reference parameter of {source}")
        if target is not None and definition.targets and target not in definition.targets:
            raise bad(name, f"{target[:64]!r} is not a target of {source}.{param}")
    return Include(source, param, target, modifier == "iterate", reverse)


def subset_data(body: bytes) -> bytes:
    """``_summary=data``: everything but the narrative."""
    resource: dict[str, Any] = orjson.loads(body)
    resource.pop("text", None)
    meta = dict(resource.get("meta", {}))
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    resource["meta"] = meta
    return orjson.dumps(resource)
