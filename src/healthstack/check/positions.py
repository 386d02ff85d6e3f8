"""The line of a field inside an object's source file, for SARIF regions that point at the
offending field rather than at the object's first line."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml


@lru_cache(maxsize=64)
def _documents(file: str) -> tuple[yaml.Node, ...]:
    try:
        text = Path(file).read_text(encoding="utf-8")
        return tuple(n for n in yaml.compose_all(text, Loader=yaml.SafeLoader) if n is not None)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ()


def _child(node: yaml.Node, part: str) -> tuple[int, yaml.Node] | None:
    """(1-based line where the entry starts, its value node)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return key.start_mark.line + 1, value
    if isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
        item: yaml.Node = node.value[int(part)]
        return item.start_mark.line + 1, item
    return None


def _kind(doc: yaml.Node) -> str | None:
    found = _child(doc, "kind")
    return str(found[1].value) if found and isinstance(found[1], yaml.ScalarNode) else None


def field_line(file: str, object_line: int, kind: str, field: str) -> int:
    """1-based line of ``field`` (dotted, list indices as numbers) in the object of ``kind``
    starting at ``object_line`` of ``file``; the deepest existing parent's line when the field
    is absent; ``object_line`` when the file or object cannot be read."""
    doc = next((d for d in _documents(file) if d.start_mark.line + 1 == object_line), None)
    if doc is None or _kind(doc) != kind:
        return object_line
    line, node = object_line, doc
    for part in field.split("."):
        found = _child(node, part)
        if found is None:
            break
        line, node = found
    return line
