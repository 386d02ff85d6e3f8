"""FHIR R4 XML <-> FHIR JSON (https://hl7.org/fhir/R4/xml.html), driven by the shipped definitions.

XML is order-sensitive: elements are written in definition order (``r4-order.json.gz``, see
scripts/fhir_xml_order.py). Primitives are ``value`` attributes, their ``id``/``extension`` come
from and go to the JSON ``_name`` siblings; ``id`` of a datatype and ``url`` of an Extension are
attributes; resources inside ``contained``, ``Bundle.entry.resource`` and ``Parameters`` are
wrapped in an element named by their type; ``Narrative.div`` stays XHTML. JSON types of
primitives read from XML (boolean, integer, decimal) come from the same definitions.

Parsing goes through defusedxml: a DOCTYPE, an entity or an external reference is refused (never
expanded), and nesting beyond ``MAX_DEPTH`` is refused; the body size is bounded upstream by the
request middleware's body limit.
"""

from __future__ import annotations

import functools
import gzip
import xml.etree.ElementTree as ET
from importlib import resources
from typing import Any

import defusedxml
import defusedxml.ElementTree as SafeET
import orjson

from healthstack.core.outcome import FhirError
from healthstack.fhir import definitions, structure

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
MAX_DEPTH = 100
_F = f"{{{FHIR_NS}}}"
_INTEGERS = frozenset({"integer", "positiveInt", "unsignedInt"})


@functools.cache
def _order() -> dict[str, list[str]]:
    raw = resources.files(definitions).joinpath("r4-order.json.gz").read_bytes()
    loaded: dict[str, list[str]] = orjson.loads(gzip.decompress(raw))
    return loaded


def _bad(message: str) -> FhirError:
    return FhirError(400, "structure", f"XML body: {message}")


# -- JSON -> XML ----------------------------------------------------------------------------------


def to_xml(resource: dict[str, Any]) -> bytes:
    """A FHIR JSON resource (already valid or produced by the server) as FHIR XML bytes."""
    divs: list[str] = []
    root = _resource(resource, divs)
    root.set("xmlns", FHIR_NS)
    text = ET.tostring(root, encoding="unicode")
    # Narratives are spliced in as they are (already checked well-formed XHTML) so that they keep
    # the XHTML namespace as their default, as the spec shows them.
    for index, div in enumerate(divs):
        text = text.replace(f"<hs-div-{index} />", div, 1)
    return b'<?xml version="1.0" encoding="UTF-8"?>' + text.encode()


def _resource(resource: dict[str, Any], divs: list[str]) -> ET.Element:
    rtype = resource.get("resourceType")
    if not definitions.is_r4_resource_type(rtype):
        raise FhirError(500, "exception", "cannot render this resource as XML")
    element = ET.Element(rtype)
    _fill(element, rtype, resource, divs)
    return element


def _keys(type_name: str, name: str, obj: dict[str, Any]) -> list[str]:
    if not name.endswith("[x]"):
        return [name]
    base = name[:-3]
    return [k for k in obj if k.startswith(base) and k[len(base) : len(base) + 1].isupper()]


def _fill(element: ET.Element, type_name: str, obj: dict[str, Any], divs: list[str]) -> None:
    fields = structure.table(type_name).fields
    is_resource = definitions.is_r4_resource_type(type_name)
    for name in _order().get(type_name, []):
        for key in _keys(type_name, name, obj):
            field = fields.get(key)
            if field is None:
                continue
            if (key == "id" and not is_resource) or (key == "url" and type_name == "Extension"):
                if isinstance(obj.get(key), str):
                    element.set(key, obj[key])
                continue
            _write(element, field, obj.get(key), obj.get(f"_{key}"), divs)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _write(
    parent: ET.Element, field: structure.Field, value: Any, ext: Any, divs: list[str]
) -> None:
    values, exts = _listed(value), _listed(ext)
    for index in range(max(len(values), len(exts))):
        item = values[index] if index < len(values) else None
        item_ext = exts[index] if index < len(exts) else None
        if item is None and item_ext is None:
            continue
        if field.kind == structure.PRIMITIVE and field.type == "xhtml":
            ET.SubElement(parent, f"hs-div-{len(divs)}")
            divs.append(_xhtml(item))
            continue
        child = ET.SubElement(parent, field.name)
        if field.kind == structure.PRIMITIVE:
            if item is not None:
                child.set("value", _text(item))
            if isinstance(item_ext, dict):
                _fill(child, "Element", item_ext, divs)
        elif field.kind == structure.RESOURCE and isinstance(item, dict):
            child.append(_resource(item, divs))
        elif isinstance(item, dict):
            _fill(child, field.type, item, divs)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _xhtml(text: Any) -> str:
    """The narrative as stored, once known safe to splice: one XHTML ``div`` element and nothing
    before it (no XML declaration, DOCTYPE or processing instruction that would break the
    enclosing document)."""
    div = None
    if isinstance(text, str) and text.startswith("<div"):
        try:
            div = SafeET.fromstring(text, forbid_dtd=True)
        except (ET.ParseError, defusedxml.DefusedXmlException):
            div = None
    if div is None or div.tag != f"{{{XHTML_NS}}}div":
        raise FhirError(500, "exception", "a narrative is not well-formed XHTML")
    return str(text)


# -- XML -> JSON ----------------------------------------------------------------------------------


def from_xml(body: bytes) -> dict[str, Any]:
    """Parse a FHIR XML resource into FHIR JSON; 400 OperationOutcome for anything unsafe/wrong."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden:
        raise _bad("a DOCTYPE is not allowed") from None
    except defusedxml.EntitiesForbidden:
        raise _bad("entity declarations are not allowed") from None
    except defusedxml.ExternalReferenceForbidden:
        raise _bad("external references are not allowed") from None
    except (ET.ParseError, defusedxml.DefusedXmlException, ValueError):
        raise _bad("not well-formed XML") from None
    _check_depth(root)
    return _read_resource(root)


def _check_depth(root: ET.Element) -> None:
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _bad(f"nested more than {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in element)


def _local(element: ET.Element) -> str:
    if not element.tag.startswith(_F):
        raise _bad(f"element {element.tag!r} is not in the FHIR namespace {FHIR_NS}")
    return element.tag[len(_F) :]


def _read_resource(element: ET.Element) -> dict[str, Any]:
    rtype = _local(element)
    if not definitions.is_r4_resource_type(rtype):
        raise _bad(f"{rtype!r} is not an R4 resource type")
    return {"resourceType": rtype, **_read(element, rtype)}


def _read(element: ET.Element, type_name: str) -> dict[str, Any]:
    fields = structure.table(type_name).fields
    out: dict[str, Any] = {}
    for attr in ("id", "url"):
        if attr in element.attrib and not definitions.is_r4_resource_type(type_name):
            out[attr] = element.attrib[attr]
    primitives: dict[str, list[tuple[Any, dict[str, Any] | None]]] = {}
    for child in element:
        if child.tag == f"{{{XHTML_NS}}}div" and "div" in fields:
            out["div"] = _xhtml_text(child)
            continue
        name = _local(child)
        field = fields.get(name)
        if field is None or name.startswith("_") or field.kind == structure.SKIP:
            raise _bad(f"unknown element {name!r} in {type_name}")
        if field.kind == structure.PRIMITIVE:
            primitives.setdefault(name, []).append(_primitive(child, field))
            continue
        if field.kind == structure.RESOURCE:
            inner = list(child)
            if len(inner) != 1:
                raise _bad(f"{name} must hold exactly one resource")
            item: Any = _read_resource(inner[0])
        else:
            item = _read(child, field.type)
        _put(out, name, item, field.many)
    for name, pairs in primitives.items():
        _put_primitive(out, name, pairs, fields[name].many)
    return out


def _put(out: dict[str, Any], name: str, item: Any, many: bool) -> None:
    if many:
        out.setdefault(name, []).append(item)
    elif name in out:
        raise _bad(f"{name} repeats but allows one value")
    else:
        out[name] = item


def _put_primitive(
    out: dict[str, Any], name: str, pairs: list[tuple[Any, dict[str, Any] | None]], many: bool
) -> None:
    if not many and len(pairs) > 1:
        raise _bad(f"{name} repeats but allows one value")
    values = [value for value, _ in pairs]
    exts = [ext for _, ext in pairs]
    if any(v is not None for v in values):
        out[name] = values if many else values[0]
    if any(e is not None for e in exts):
        out[f"_{name}"] = exts if many else exts[0]


def _primitive(element: ET.Element, field: structure.Field) -> tuple[Any, dict[str, Any] | None]:
    raw = element.attrib.get("value")
    extra = _read(element, "Element") if (len(element) or "id" in element.attrib) else None
    return (None if raw is None else _typed(raw, field.type)), (extra or None)


def _typed(raw: str, type_name: str) -> Any:
    try:
        if type_name == "boolean":
            if raw not in ("true", "false"):
                raise ValueError
            return raw == "true"
        if type_name in _INTEGERS:
            return int(raw)
        if type_name == "decimal":
            return orjson.loads(raw) if raw.strip() == raw else float("x")
    except (ValueError, orjson.JSONDecodeError):
        raise _bad(f"{raw[:40]!r} is not a valid {type_name}") from None
    return raw


def _xhtml_text(div: ET.Element) -> str:
    copy = ET.Element(div.tag, div.attrib)
    copy.text = div.text
    copy.extend(list(div))
    return ET.tostring(copy, encoding="unicode", default_namespace=XHTML_NS)
