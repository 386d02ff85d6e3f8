"""Plain data: what a plugin is, what it may run for, and the limits of one call."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, get_args

Trigger = Literal["validate", "derive", "operation"]
TRIGGERS: tuple[str, ...] = get_args(Trigger)


@dataclass(frozen=True)
class Limits:
    """Per-call resource limits. Defaults suit a scoring rule; a loop that never ends hits them."""

    fuel: int = 200_000_000  # wasm instructions (roughly); stops CPU-bound loops deterministically
    memory_bytes: int = 32 * 1024 * 1024  # linear memory cap; memory.grow beyond it fails
    timeout_ms: int = 1000  # wall clock, enforced by epoch interruption
    max_input_bytes: int = 4 * 1024 * 1024
    max_output_bytes: int = 1024 * 1024


@dataclass(frozen=True)
class Plugin:
    """A registered plugin: identity (name, version, sha256), code, where it runs and its grants."""

    name: str
    version: str
    wasm: bytes = field(repr=False)
    triggers: frozenset[str] = frozenset()
    resource_types: frozenset[str] = frozenset()
    grants: frozenset[str] = frozenset()
    enabled: bool = True
    sha256: str = ""

    def __post_init__(self) -> None:
        # The hash is always the hash of these bytes, so a stored value can never disagree.
        object.__setattr__(self, "sha256", sha256_hex(self.wasm))

    def runs_for(self, trigger: str, resource_type: str) -> bool:
        return self.enabled and trigger in self.triggers and resource_type in self.resource_types

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
