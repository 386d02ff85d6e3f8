"""``healthstack check --graph out.svg``: who can reach whom, drawn with Graphviz ``dot``.

Nodes are workloads (one box per namespace cluster), the probes and the internet. Edges:

* **allowed** (green, solid): the policies admit the flow (label: the ports);
* **intended but missing** (orange, dashed, bold): the intent says allow, the policies deny;
* **allowed against the intent** (red, bold): the intent says deny, the policies admit;
* **denied as intended** (grey, dotted): the intent names the flow as denied and it is.

Pairs with no edge are denied and not named by the intent (drawing every denied pair would bury
the picture). The intent is the ``--intent`` file or the one inferred from the manifests.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

from healthstack.check.policies.base import Context
from healthstack.check.policies.np_intent import judged
from healthstack.check.reachability import Endpoint, matrix
from healthstack.errors import HealthstackError

STYLES = {
    "allowed": 'color="#1b7a1b" fontcolor="#1b7a1b"',
    "missing": 'color="#c25e00" fontcolor="#8a4300" style="dashed,bold" penwidth=2',
    "violates": 'color="#b00000" fontcolor="#b00000" style=bold penwidth=2',
    "denied": 'color="#6e6e6e" fontcolor="#5a5a5a" style=dotted',
}
COLOURS = {"allowed": "#1b7a1b", "missing": "#8a4300", "violates": "#b00000", "denied": "#5a5a5a"}
LEGEND = {"allowed": "allowed", "missing": "intended but missing",
          "violates": "allowed, intent says deny", "denied": "denied, as intended"}  # fmt: skip
Edges = dict[tuple[str, str, str], set[str]]  # (src, dst, kind) -> ports


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def edges(ctx: Context) -> Edges:
    found: Edges = defaultdict(set)
    for (src_key, dst_key, port_text), verdict in matrix(ctx.net).items():
        if verdict.allowed:
            found[(src_key, dst_key, "allowed")].add(port_text)
    for flow, src, dst, port, verdict in judged(ctx):
        if flow.allowed and not verdict.allowed:
            found[(src.key, dst.key, "missing")].add(str(port))
        elif not flow.allowed and verdict.allowed:
            found[(src.key, dst.key, "allowed")].discard(str(port))
            found[(src.key, dst.key, "violates")].add(str(port))
        elif not flow.allowed:
            found[(src.key, dst.key, "denied")].add(str(port))
    return {key: ports for key, ports in found.items() if ports}


def to_dot(ctx: Context) -> str:
    drawn = edges(ctx)
    used = {k for (s, d, _) in drawn for k in (s, d)}
    endpoints = [
        e for e in [*ctx.net.endpoints, *ctx.net.probes, ctx.net.internet] if e.key in used
    ]
    lines = ["digraph reachability {", 'rankdir=LR; fontname="sans-serif"; node [fontname='
             '"sans-serif" shape=box style=rounded]; edge [fontname="sans-serif" fontsize=10];']  # fmt: skip
    by_namespace: dict[str, list[Endpoint]] = defaultdict(list)
    for endpoint in endpoints:
        by_namespace[endpoint.namespace or ""].append(endpoint)
    for number, (namespace, members) in enumerate(sorted(by_namespace.items())):
        nodes = " ".join(f"{_quote(e.key)};" for e in members)
        if namespace:
            lines.append(f"subgraph cluster_{number} {{ label={_quote(namespace)}; {nodes} }}")
        else:
            lines.append(nodes)
    for (src, dst, kind), ports in sorted(drawn.items()):
        label = ", ".join(sorted(ports))
        lines.append(f"{_quote(src)} -> {_quote(dst)} [label={_quote(label)} "
                     f"tooltip={_quote(LEGEND[kind])} {STYLES[kind]}];")  # fmt: skip
    legend = "".join(f'<tr><td><font color="{COLOURS[k]}">{v}</font></td></tr>'
                     for k, v in LEGEND.items())  # fmt: skip
    lines.append(f'legend [shape=plaintext label=<<table border="0">{legend}</table>>];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_svg(ctx: Context, out: Path) -> None:
    dot = shutil.which("dot")
    if dot is None:
        raise HealthstackError("--graph needs Graphviz `dot` (apt-get install graphviz)")
    if not out.parent.is_dir():
        raise HealthstackError(f"--graph {out}: no folder {out.parent}")
    done = subprocess.run([dot, "-Tsvg"], input=to_dot(ctx), capture_output=True, text=True,
                          check=False, timeout=120)  # fmt: skip
    if done.returncode != 0:
        raise HealthstackError(f"--graph: dot failed: {done.stderr.strip()[:300]}")
    try:
        out.write_text(done.stdout, encoding="utf-8")
    except OSError as exc:
        raise HealthstackError(f"--graph {out}: cannot write ({exc.strerror})") from None
