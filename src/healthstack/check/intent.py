"""The reachability intent file: flows that must be allowed and flows that must be denied.

    internet_ip: 8.8.8.8          # optional: the public address standing for "internet"
    allow:
      - {from: healthcare/healthcare-app, to: dns, ports: [53/UDP, 53/TCP]}
    deny:
      - {from: "*", except: [healthcare/healthcare-app], to: healthcare/postgres, ports: [5432]}

Endpoints: ``namespace/workload``, ``namespace/*`` (an unlabeled pod there), ``any`` (a pod in a
new namespace), ``dns``, ``istiod``, ``ingressgateway``, ``prometheus``, ``internet``; ``from: "*"``
means every source except the destination and the ``except`` list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from healthstack.check.reachability import Port
from healthstack.errors import HealthstackError


@dataclass(frozen=True)
class Flow:
    src: str
    dst: str
    port: Port
    allowed: bool  # what the intent requires
    line: int
    excluded: tuple[str, ...] = ()
    # Judge only the destination's ingress rule (a database's own policy must not admit the
    # source, whether or not the source's egress is open).
    ingress_only: bool = False


@dataclass(frozen=True)
class Intent:
    file: str
    flows: tuple[Flow, ...]
    internet_ip: str | None
    inferred: bool = False  # derived from the manifests (no --intent given)

    def where(self, flow: Flow) -> str:
        return "the inferred intent" if self.inferred else f"intent {self.file}:{flow.line}"


def _port(raw: Any, where: str) -> Port:
    text = str(raw)
    number, _, proto = text.partition("/")
    if not number.isdigit() or (proto and proto.upper() not in ("TCP", "UDP", "SCTP")):
        raise HealthstackError(f"{where}: port {text!r} is not N or N/TCP|UDP|SCTP")
    return Port(int(number), proto.upper() or "TCP")


def _flows(entries: Any, allowed: bool, file: str) -> list[Flow]:
    flows: list[Flow] = []
    for index, entry in enumerate(entries or []):
        where = f"{file}: {'allow' if allowed else 'deny'}[{index}]"
        if not isinstance(entry, dict) or not entry.get("from") or not entry.get("to"):
            raise HealthstackError(f"{where}: needs 'from', 'to' and 'ports'")
        ports = entry.get("ports") or ([entry["port"]] if "port" in entry else [])
        if not ports:
            raise HealthstackError(f"{where}: needs 'ports'")
        line = int(entry.get("__line__", 1))
        for raw in ports:
            flows.append(
                Flow(
                    str(entry["from"]),
                    str(entry["to"]),
                    _port(raw, where),
                    allowed,
                    line,
                    tuple(str(e) for e in entry.get("except") or []),
                )
            )
    return flows


class _LineLoader(yaml.SafeLoader):
    """Records each mapping's line as ``__line__`` so findings can point into the intent file."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping


def load_intent(path: str) -> Intent:
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_LineLoader)  # noqa: S506
    except OSError as exc:
        raise HealthstackError(f"{path}: cannot read intent file: {exc.strerror}") from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise HealthstackError(f"{path}:{line}: malformed YAML: {exc.problem}") from None
    if not isinstance(data, dict):
        raise HealthstackError(f"{path}: intent file must be a mapping with allow/deny lists")
    flows = _flows(data.get("allow"), True, path) + _flows(data.get("deny"), False, path)
    ip = data.get("internet_ip")
    return Intent(path, tuple(flows), str(ip) if ip else None)
