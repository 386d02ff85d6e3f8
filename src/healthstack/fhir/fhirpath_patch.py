"""FHIRPath Patch (R4 2.1.0.6.2): a ``Parameters`` body of ``operation`` parts.

Each operation is ``add``, ``insert``, ``delete``, ``replace`` or ``move`` with a FHIRPath
``path`` evaluated by ``fhirpathpy``. fhirpathpy answers with copies, so the document is copied
once per operation with a marker in every object; a selected object's marker says where it sits
in the working document. A path ending in an element name (``Patient.name.given``,
``Patient.name[0]``) is resolved as its parent objects plus that name, which also reaches
primitive values. The patched resource is then stored by :func:`patch.apply` (validated like an
update, ``If-Match`` honoured); any failure changes nothing. Diagnostics never echo values.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from fhirpathpy import evaluate
from fhirpathpy.models import models

from healthstack.core.outcome import FhirError
from healthstack.fhir import structure
from healthstack.numbers import ascii_int

MAX_OPERATIONS = 100  # each one copies and walks the resource once
MAX_PATH = 1024
TYPES = ("add", "insert", "delete", "replace", "move")
MARK = "hsPatchMarker"  # not a FHIR element name: never collides with content
# Functions whose cost grows with the resource at each use (a chain of descendants() multiplies
# it), that run a client's regular expression (Python's re backtracks: '(a+)+$' on 40 characters
# holds the event loop for hours), or that reach outside the resource: not needed to locate an
# element, refused.
_REFUSED = re.compile(r"\b(descendants|repeat|aggregate|combine|trace|resolve|memberOf|conformsTo|"
                      r"subsumes|subsumedBy|htmlChecks|matches|replaceMatches)\s*\(|%|`")  # fmt: skip
_TAIL = re.compile(r"^(?P<parent>.+)\.(?P<name>[a-z][A-Za-z0-9]{0,63})(?:\[(?P<index>\d{1,6})\])?$")


@dataclass
class Operation:
    index: int
    type: str
    path: str
    name: str | None = None
    value: Any = None
    suffix: str | None = None  # the value[x] type of the value (Quantity), for choice elements
    numbers: dict[str, int] = field(default_factory=dict)  # index, source, destination


@dataclass
class Node:
    """Where an object of the working document sits: ``parent[key]`` or ``parent[key][index]``."""

    obj: dict[str, Any]
    table: structure.Table | None
    parent: dict[str, Any] | None
    key: str | None
    index: int | None


def bad(index: int, message: str) -> FhirError:
    return FhirError(400, "invalid", f"FHIRPath Patch operation {index}: {message}")


# -- parsing --------------------------------------------------------------------------------------


def parse(body: Any) -> list[Operation]:
    """The operations of a ``Parameters`` body, checked for shape before anything is read."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError(400, "invalid", "a FHIRPath Patch is a Parameters resource")
    parameters = body.get("parameter", [])
    if not isinstance(parameters, list) or not 0 < len(parameters) <= MAX_OPERATIONS:
        raise FhirError(400, "invalid", f"a FHIRPath Patch has 1 to {MAX_OPERATIONS} operations")
    return [_operation(i, p) for i, p in enumerate(parameters)]


def _operation(index: int, raw: Any) -> Operation:
    if not isinstance(raw, dict) or raw.get("name") != "operation":
        raise bad(index, "each parameter must be named operation")
    parts = raw.get("part")
    if not isinstance(parts, list):
        raise bad(index, "an operation needs parts (type, path, ...)")
    found: dict[str, dict[str, Any]] = {}
    for part in parts:
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            raise bad(index, "each part needs a name")
        if part["name"] in found:
            raise bad(index, "a part is repeated")
        found[part["name"]] = part
    kind = _primitive(index, found, "type", "valueCode")
    if kind not in TYPES:
        raise bad(index, f"type must be one of {', '.join(TYPES)}")
    path = _primitive(index, found, "path", "valueString")
    if not isinstance(path, str) or not 0 < len(path) <= MAX_PATH or "\x00" in path:
        raise bad(index, f"path must be a FHIRPath expression of at most {MAX_PATH} characters")
    if _REFUSED.search(path):
        raise bad(index, "path uses a function or variable patch paths may not use "
                  "(descendants, repeat, aggregate, combine, trace, resolve, terminology functions, %)")  # fmt: skip
    operation = Operation(index, kind, path)
    if kind == "add":
        operation.name = _primitive(index, found, "name", "valueString")
        if not isinstance(operation.name, str) or not re.fullmatch(r"[a-z][A-Za-z0-9]{0,63}",
                                                                   operation.name):  # fmt: skip
            raise bad(index, "add needs a name: the element to add")
    if kind in ("add", "insert", "replace"):
        if "value" not in found:
            raise bad(index, f"{kind} needs a value")
        operation.value, operation.suffix = _value(index, found["value"], 0)
    wanted = {"insert": ("index",), "move": ("source", "destination")}.get(kind, ())
    for name in wanted:
        number = _primitive(index, found, name, "valueInteger")
        if not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise bad(index, f"{kind} needs {name}: an integer from 0")
        operation.numbers[name] = number
    return operation


def _primitive(index: int, found: dict[str, dict[str, Any]], name: str, key: str) -> Any:
    part = found.get(name)
    if part is None:
        return None
    value = part.get(key, part.get("valueString" if key == "valueCode" else key))
    if value is None:
        raise bad(index, f"part {name} needs {key}")
    return value


def _value(index: int, part: dict[str, Any], depth: int) -> tuple[Any, str | None]:
    """A part's value: ``value[x]`` (and its type), a ``resource``, or nested parts (a backbone
    element built from its elements' parts, R4 2.1.0.6.2)."""
    if depth > structure.MAX_DEPTH:
        raise bad(index, "the value is nested too deeply")
    keys = [k for k in part if k.startswith("value") and len(k) > 5 and k[5].isupper()]
    if len(keys) == 1 and "part" not in part and "resource" not in part:
        return copy.deepcopy(part[keys[0]]), keys[0][5:]
    if not keys and isinstance(part.get("resource"), dict) and "part" not in part:
        return copy.deepcopy(part["resource"]), None
    if not keys and isinstance(part.get("part"), list) and "resource" not in part:
        built: dict[str, Any] = {}
        for sub in part["part"]:
            if not isinstance(sub, dict) or not isinstance(sub.get("name"), str):
                raise bad(index, "each part of a value needs a name")
            value, suffix = _value(index, sub, depth + 1)
            key = sub["name"] + (suffix if sub["name"].endswith("[x]") and suffix else "")
            key = key.replace("[x]", "")
            if key in built:
                built[key] = [*(built[key] if isinstance(built[key], list) else [built[key]]),
                              value]  # fmt: skip
            else:
                built[key] = value
        return built, None
    raise bad(index, "a value part has exactly one of value[x], resource or part")


# -- locating -------------------------------------------------------------------------------------


class Document:
    """The working document and, per operation, a marked copy for fhirpathpy."""

    def __init__(self, resource: dict[str, Any], rtype: str) -> None:
        self.resource, self.rtype = resource, rtype
        self.nodes: list[Node] = []
        self.marked: dict[str, Any] = {}

    def refresh(self) -> None:
        self.nodes = []
        self.marked = self._mark(self.resource, _table(self.rtype), None, None, None)

    def _mark(self, obj: dict[str, Any], table: structure.Table | None,
              parent: dict[str, Any] | None, key: str | None, index: int | None) -> dict[str, Any]:  # fmt: skip
        self.nodes.append(Node(obj, table, parent, key, index))
        out: dict[str, Any] = {MARK: len(self.nodes) - 1}
        for name, value in obj.items():
            spec = table.fields.get(name) if table is not None else None
            sub = spec.table if spec is not None else None
            if isinstance(value, dict):
                out[name] = self._mark(value, sub, obj, name, None)
            elif isinstance(value, list):
                out[name] = [self._mark(item, sub, obj, name, i) if isinstance(item, dict)
                             else item for i, item in enumerate(value)]  # fmt: skip
            else:
                out[name] = value
        return out

    def nodes_at(self, operation: Operation, path: str) -> list[Node]:
        try:
            found = evaluate(self.marked, path, {}, models["r4"])
        except Exception:  # fhirpathpy raises bare Exceptions for syntax and unknown functions
            raise bad(operation.index, "the path is not a FHIRPath expression this server "
                      "evaluates") from None  # fmt: skip
        nodes = []
        for item in found:
            if not isinstance(item, dict) or not isinstance(item.get(MARK), int):
                raise bad(operation.index, "the path selects values that cannot be changed in "
                          "place; end it with the element's name")  # fmt: skip
            nodes.append(self.nodes[item[MARK]])
        return nodes

    def slots(self, operation: Operation) -> list[tuple[dict[str, Any], str, int | None]]:
        """Every element the path selects, as (object, key, index in the key's array)."""
        tail = _TAIL.match(operation.path)
        if tail is None:
            found = self.nodes_at(operation, operation.path)
            if any(n.parent is None or n.key is None for n in found):
                raise bad(operation.index, "the resource itself cannot be deleted or replaced")
            return [(n.parent, n.key, n.index) for n in found]  # type: ignore[misc]
        wanted = ascii_int(tail["index"]) if tail["index"] is not None else None
        out: list[tuple[dict[str, Any], str, int | None]] = []
        for node in self.nodes_at(operation, tail["parent"]):
            key = _key(node, tail["name"])
            value = node.obj.get(key) if key is not None else None
            if key is None or value is None:
                continue
            if isinstance(value, list):
                out.extend((node.obj, key, i) for i in range(len(value)))
            else:
                out.append((node.obj, key, None))
        if wanted is None:
            return out
        return out[wanted : wanted + 1]  # FHIRPath indexes the whole collection, flattened

    def array(self, operation: Operation) -> tuple[dict[str, Any], str]:
        """insert and move: the path names one repeating element (``Patient.identifier``)."""
        tail = _TAIL.match(operation.path)
        if tail is None or tail["index"] is not None:
            raise bad(operation.index, "the path must end with the repeating element's name")
        parents = self.nodes_at(operation, tail["parent"])
        if len(parents) != 1:
            raise bad(operation.index, "the path's parent must select exactly one element")
        node = parents[0]
        key = _key(node, tail["name"]) or tail["name"]
        spec = node.table.fields.get(key) if node.table is not None else None
        if (spec is not None and not spec.many) or not isinstance(node.obj.get(key, []), list):
            raise bad(operation.index, "the path does not name a repeating element")
        return node.obj, key


def _table(type_name: str) -> structure.Table | None:
    try:
        return structure.table(type_name)
    except KeyError:
        return None


def _key(node: Node, name: str) -> str | None:
    """The JSON property for an element name: itself, or ``valueQuantity`` for ``value``."""
    if name in node.obj:
        return name
    for key in node.obj:
        spec = node.table.fields.get(key) if node.table is not None else None
        if spec is not None and spec.base == name:
            return key
    return None


# -- applying -------------------------------------------------------------------------------------


def apply(resource: dict[str, Any], rtype: str, operations: list[Operation]) -> dict[str, Any]:
    doc = Document(copy.deepcopy(resource), rtype)
    for operation in operations:
        doc.refresh()
        STEPS[operation.type](doc, operation)
    return doc.resource


def _add(doc: Document, operation: Operation) -> None:
    containers = doc.nodes_at(operation, operation.path)
    if len(containers) != 1:
        raise bad(operation.index, "add's path must select exactly one element")
    node, name = containers[0], operation.name or ""
    key = name
    if node.table is not None and operation.suffix is not None:
        choice = f"{name}{operation.suffix}"
        spec = node.table.fields.get(choice)
        key = choice if spec is not None and spec.base == name else name
    spec = node.table.fields.get(key) if node.table is not None else None
    current = node.obj.get(key)
    if isinstance(current, list) or (current is None and spec is not None and spec.many):
        node.obj[key] = [*(current or []), operation.value]
    elif current is None:
        node.obj[key] = operation.value
    else:
        raise bad(operation.index, "the element already has a value; use replace")


def _insert(doc: Document, operation: Operation) -> None:
    obj, key = doc.array(operation)
    items = obj.setdefault(key, [])
    position = operation.numbers["index"]
    if position > len(items):
        raise bad(operation.index, "index is past the end of the list")
    items.insert(position, operation.value)


def _delete(doc: Document, operation: Operation) -> None:
    slots = doc.slots(operation)
    if len(slots) > 1:
        raise bad(operation.index, "delete's path must select at most one element")
    for obj, key, position in slots:  # none selected: nothing to do (R4)
        if position is None:
            del obj[key]
        else:
            del obj[key][position]
            if not obj[key]:
                del obj[key]


def _replace(doc: Document, operation: Operation) -> None:
    slots = doc.slots(operation)
    if len(slots) != 1:
        raise bad(operation.index, "replace's path must select exactly one element")
    obj, key, position = slots[0]
    if position is not None:
        obj[key][position] = operation.value
        return
    table = next((n.table for n in doc.nodes if n.obj is obj), None)
    spec = table.fields.get(key) if table is not None else None
    if spec is not None and spec.base is not None and operation.suffix is not None:
        del obj[key]  # a choice element may change type: valueQuantity -> valueString
        key = f"{spec.base}{operation.suffix}"
    obj[key] = operation.value


def _move(doc: Document, operation: Operation) -> None:
    obj, key = doc.array(operation)
    items = obj.get(key, [])
    source, destination = operation.numbers["source"], operation.numbers["destination"]
    if source >= len(items) or destination >= len(items):
        raise bad(operation.index, "source and destination must be positions in the list")
    items.insert(destination, items.pop(source))


STEPS = {"add": _add, "insert": _insert, "delete": _delete, "replace": _replace, "move": _move}
