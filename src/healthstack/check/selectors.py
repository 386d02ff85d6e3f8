"""Kubernetes label-selector semantics (``matchLabels`` + ``matchExpressions``, and plain maps)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A ``LabelSelector``: None matches nothing, ``{}`` matches everything."""
    if selector is None:
        return False
    match_labels = selector.get("matchLabels") or {}
    if any(labels.get(str(k)) != str(v) for k, v in match_labels.items()):
        return False
    return all(_expression(e, labels) for e in selector.get("matchExpressions") or [])


def matches_map(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A Service-style plain selector map; an empty or absent map selects nothing here."""
    if not selector:
        return False
    return all(labels.get(str(k)) == str(v) for k, v in selector.items())


def _expression(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op = str(expr.get("key")), expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False


def required_pairs(selector: Mapping[str, Any] | None) -> list[tuple[str, str | None]]:
    """(key, value) pairs a selector insists on; value None means "key must exist"."""
    if not selector:
        return []
    pairs: list[tuple[str, str | None]] = [
        (str(k), str(v)) for k, v in (selector.get("matchLabels") or {}).items()
    ]
    for expr in selector.get("matchExpressions") or []:
        if expr.get("operator") in ("In", "Exists"):
            pairs.append((str(expr.get("key")), None))
    return pairs
