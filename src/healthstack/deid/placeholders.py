"""Placeholders and the re-identification map: what stands in for an identifier, and its way back.

A placeholder is ``[[KIND-n]]``: ASCII (models copy it faithfully), unlike clinical prose, and
parsed back with one regular expression. The map from placeholder to original value lives only in
the memory of the request that made it; it is never logged, stored or sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PLACEHOLDER = re.compile(r"\[\[([A-Z]{2,10})-(\d{1,6})\]\]")
# Anything shaped like a placeholder, even malformed (a model may write `[[NAME-1]` or `[[name 1]]`).
LOOSE = re.compile(r"\[\[[^\[\]]{0,40}\]\]?|\[\[")


@dataclass
class Placeholders:
    """Consistent stand-ins for one request: the same value always gets the same placeholder."""

    by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    reid: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def of(self, kind: str, value: str) -> str:
        key = (kind, value)
        existing = self.by_value.get(key)
        if existing is not None:
            return existing
        number = self.counts.get(kind, 0) + 1
        self.counts[kind] = number
        token = f"[[{kind}-{number}]]"
        self.by_value[key] = token
        self.reid[token] = value
        return token


class UnknownPlaceholder(ValueError):
    """The text holds a placeholder the request never made: refused, never guessed."""


def reidentify_text(text: str, reid: dict[str, str]) -> str:
    """Every placeholder back to its value; :class:`UnknownPlaceholder` for any other, and for
    anything shaped like a damaged one (checked before restoring: values may hold brackets)."""
    rest = PLACEHOLDER.sub(lambda m: "" if m.group(0) in reid else m.group(0), text)
    if LOOSE.search(rest):
        raise UnknownPlaceholder("the text holds a placeholder that was never given")
    return PLACEHOLDER.sub(lambda m: reid[m.group(0)], text)
