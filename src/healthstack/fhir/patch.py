"""PATCH with JSON Patch (RFC 6902): applied to the current version, then stored as an update.

The patched resource is validated like any update, ``If-Match`` is honoured, and the write lands
only if every operation applied (``test`` included). PATCH needs both ``u`` and ``r``: its answer
(and a ``test`` operation's success or failure) discloses the current content. FHIRPath Patch
(a ``Parameters`` body, :mod:`fhirpath_patch`) goes through the same :func:`apply`.
"""

from __future__ import annotations

import base64
import copy
import functools
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson

from healthstack.core.outcome import FhirError
from healthstack.fhir import fhirpath_patch, ops
from healthstack.fhir.access import Caller
from healthstack.fhir.store import Version
from healthstack.numbers import ascii_int

MAX_OPERATIONS = 1000
OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")


def bad(index: int, message: str) -> FhirError:
    return FhirError(400, "invalid", f"patch operation {index}: {message}")


def from_resource(rtype: str, resource: dict[str, Any]) -> Callable[[Any], Any]:
    """A Bundle entry's patch (R4 3.1.0.11.3): a FHIRPath Patch ``Parameters``, or a ``Binary``
    holding a JSON Patch (``contentType`` application/json-patch+json, base64 ``data``)."""
    if resource.get("resourceType") == "Parameters":
        operations = fhirpath_patch.parse(resource)
        return functools.partial(fhirpath_patch.apply, rtype=rtype, operations=operations)
    if (resource.get("resourceType") != "Binary"
            or resource.get("contentType") != "application/json-patch+json"
            or not isinstance(resource.get("data"), str)):  # fmt: skip
        raise FhirError(400, "invalid", "a PATCH entry's resource is a Parameters (FHIRPath "
                        "Patch) or a Binary with contentType application/json-patch+json")  # fmt: skip
    try:
        operations = orjson.loads(base64.b64decode(resource["data"], validate=True))
    except (ValueError, orjson.JSONDecodeError):
        raise FhirError(400, "structure", "the Binary's data is not base64 JSON") from None
    return json_patch(operations)


def json_patch(patch: Any) -> Callable[[Any], Any]:
    """A JSON Patch's operations as one function of the resource (shape checked up front)."""
    if not isinstance(patch, list) or len(patch) > MAX_OPERATIONS:
        raise FhirError(400, "invalid", f"a JSON Patch is an array of at most {MAX_OPERATIONS} "
                        "operations")  # fmt: skip

    def run(resource: Any) -> Any:
        for index, operation in enumerate(patch):
            resource = _operation(resource, index, operation)
        return resource

    return run


async def apply(
    eng: ops.Engine, caller: Caller, conn: asyncpg.Connection, rtype: str, rid: str,
    change: Callable[[Any], Any], if_match: int | None,
) -> tuple[int, Version]:  # fmt: skip
    """Read the current version, ``change`` it (a copy) and store the result as an update."""
    await caller.authorize(rtype, "read", resource_id=rid)
    current = await ops.read(eng, caller, conn, rtype, rid)
    if current.body is None:
        raise ops.gone(current)
    resource = change(orjson.loads(current.body))
    if not isinstance(resource, dict) or resource.get("resourceType") != rtype:
        raise FhirError(422, "invalid", "the patch must leave a resource of the same type")
    return await ops.update(eng, caller, conn, rtype, rid, resource, if_match)


def _operation(doc: Any, index: int, operation: Any) -> Any:
    if not isinstance(operation, dict) or operation.get("op") not in OPERATIONS:
        raise bad(index, f"op must be one of {', '.join(OPERATIONS)}")
    op, path = operation["op"], _pointer(index, operation.get("path"))
    if op in ("add", "replace", "test") and "value" not in operation:
        raise bad(index, f"{op} needs a value")
    if op == "test":
        if _get(doc, path, index) != operation["value"]:
            raise FhirError(422, "processing", f"patch operation {index}: test failed")
        return doc
    if op == "remove":
        return _remove(doc, path, index)[0]
    if op == "add":
        return _add(doc, path, copy.deepcopy(operation["value"]), index)
    if op == "replace":
        doc, _ = _remove(doc, path, index)
        return _add(doc, path, copy.deepcopy(operation["value"]), index)
    source = _pointer(index, operation.get("from"))
    if op == "move":
        if path[: len(source)] == source and path != source:
            raise bad(index, "cannot move a value into itself")
        doc, value = _remove(doc, source, index)
        return _add(doc, path, value, index)
    return _add(doc, path, copy.deepcopy(_get(doc, source, index)), index)  # copy


def _pointer(index: int, raw: Any) -> list[str]:
    if not isinstance(raw, str) or (raw and not raw.startswith("/")):
        raise bad(index, "path and from must be JSON Pointers such as /name/0/family")
    if raw == "":
        raise bad(index, "the whole resource cannot be patched; use PUT")
    return [p.replace("~1", "/").replace("~0", "~") for p in raw[1:].split("/")]


def _parent(doc: Any, path: list[str], index: int) -> Any:
    node = doc
    for part in path[:-1]:
        node = _child(node, part, index)
    return node


def _child(node: Any, part: str, index: int) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    position = ascii_int(part) if isinstance(node, list) else None
    if position is not None and position < len(node):
        return node[position]
    raise bad(index, "the path does not exist in the resource")


def _get(doc: Any, path: list[str], index: int) -> Any:
    return _child(_parent(doc, path, index), path[-1], index)


def _remove(doc: Any, path: list[str], index: int) -> tuple[Any, Any]:
    parent, last = _parent(doc, path, index), path[-1]
    value = _child(parent, last, index)
    if isinstance(parent, dict):
        del parent[last]
    else:
        del parent[ascii_int(last) or 0]  # _child has checked it is a valid position
    return doc, value


def _add(doc: Any, path: list[str], value: Any, index: int) -> Any:
    parent, last = _parent(doc, path, index), path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif (position := ascii_int(last)) is not None and position <= len(parent):
            parent.insert(position, value)
        else:
            raise bad(index, "array index out of range")
    else:
        raise bad(index, "the path's parent is not an object or array")
    return doc
