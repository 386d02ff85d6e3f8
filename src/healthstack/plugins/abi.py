"""ABI v1: the JSON documents exchanged with a guest and the checks on what comes back.

Input  ``{"trigger": str, "resources": [resource...], "params": {...}}``
Output ``{"issues": [issue...]}`` for validate, ``{"resources": [resource...]}`` otherwise.
"""

from __future__ import annotations

from typing import Any

import orjson

from healthstack.plugins.errors import PluginError

ABI_VERSION = 1
REQUIRED_EXPORTS = ("memory", "hs_abi_version", "hs_alloc", "hs_invoke")
SEVERITIES = frozenset({"fatal", "error", "warning", "information"})
OUTPUT_KEY = {"validate": "issues", "derive": "resources", "operation": "resources"}


def encode_input(trigger: str, resources: list[dict[str, Any]], params: dict[str, Any]) -> bytes:
    return orjson.dumps({"trigger": trigger, "resources": resources, "params": params})


def split_result(packed: int) -> tuple[int, int]:
    """hs_invoke returns (ptr << 32 | len) as a signed i64; undo the sign, then split."""
    unsigned = packed & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def decode_output(trigger: str, raw: bytes) -> list[dict[str, Any]]:
    """Parse and shape-check the guest's output; returns the issues or the resources."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PluginError(
            "invalid-output", f"output is not valid JSON ({exc.msg} at byte {exc.pos})"
        ) from None
    key = OUTPUT_KEY[trigger]
    if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
        raise PluginError(
            "invalid-output",
            f"output for trigger {trigger!r} must be an object with a {key!r} array",
        )
    items: list[Any] = doc[key]
    check = _check_issue if key == "issues" else _check_resource
    for index, item in enumerate(items):
        check(index, item)
    return items


def _check_issue(index: int, item: Any) -> None:
    where = f"output issues[{index}]"
    if not isinstance(item, dict):
        raise PluginError("invalid-output", f"{where} must be an object")
    if item.get("severity") not in SEVERITIES:
        raise PluginError(
            "invalid-output", f"{where}.severity must be one of {', '.join(sorted(SEVERITIES))}"
        )
    if not isinstance(item.get("code"), str):
        raise PluginError("invalid-output", f"{where}.code must be a string (an IssueType code)")
    for optional in ("diagnostics",):
        if optional in item and not isinstance(item[optional], str):
            raise PluginError("invalid-output", f"{where}.{optional} must be a string")
    if "expression" in item and not (
        isinstance(item["expression"], list) and all(isinstance(e, str) for e in item["expression"])
    ):
        raise PluginError("invalid-output", f"{where}.expression must be an array of strings")


def _check_resource(index: int, item: Any) -> None:
    where = f"output resources[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("resourceType"), str):
        raise PluginError("invalid-output", f"{where} must be an object with a string resourceType")
    if not item["resourceType"][:1].isupper() or not item["resourceType"].isalnum():
        raise PluginError(
            "invalid-output", f"{where}.resourceType is not a FHIR resource type name"
        )
