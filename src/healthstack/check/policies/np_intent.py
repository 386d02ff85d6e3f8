"""HS-NP-001: computed reachability agrees with the intent: the ``--intent`` file, or the flows
inferred from the manifests when none is given (see :mod:`healthstack.check.inference`)."""

from __future__ import annotations

from collections.abc import Iterator

from healthstack.check.intent import Flow, Intent
from healthstack.check.model import K8sObject, Severity
from healthstack.check.policies.base import Check, Context, Violation
from healthstack.check.reachability import Endpoint, Network, Port, Verdict
from healthstack.errors import HealthstackError


def _endpoint(net: Network, key: str, intent: Intent, flow: Flow) -> Endpoint:
    found = net.by_key(key)
    if found is None:
        raise HealthstackError(
            f"{intent.file}:{flow.line}: unknown endpoint {key!r} (known: "
            "namespace/workload, namespace/*, any, dns, istiod, "
            "ingressgateway, prometheus, internet)"
        )
    return found


def _sources(net: Network, flow: Flow, intent: Intent) -> list[Endpoint]:
    if flow.src != "*":
        return [_endpoint(net, flow.src, intent, flow)]
    return [
        e for e in [*net.endpoints, *net.probes] if e.key != flow.dst and e.key not in flow.excluded
    ]


def _anchor(flow: Flow, verdict: Verdict, src: Endpoint, dst: Endpoint, file: str) -> K8sObject:
    for candidate in (*verdict.blamed, dst.obj, src.obj):
        if candidate is not None:
            return candidate
    doc = {"kind": "Intent", "metadata": {"name": f"{flow.src}->{flow.dst}"}}
    return K8sObject(doc, file, flow.line)


def judged(ctx: Context) -> Iterator[tuple[Flow, Endpoint, Endpoint, Port, Verdict]]:
    """Each flow of the intent, per source, with the verdict the manifests give it (also drawn
    by ``check --graph``)."""
    intent = ctx.intent
    if intent is None:
        return
    for flow in intent.flows:
        dst = _endpoint(ctx.net, flow.dst, intent, flow)
        port = next(
            (
                p
                for p in dst.ports
                if (p.number, p.protocol) == (flow.port.number, flow.port.protocol)
            ),
            flow.port,
        )
        for src in _sources(ctx.net, flow, intent):
            if flow.ingress_only:
                verdict = ctx.net.ingress_verdict(src, dst, port)
            else:
                verdict = ctx.net.verdict(src, dst, port)
            yield flow, src, dst, port, verdict


def evaluate(ctx: Context) -> Iterator[Violation]:
    intent = ctx.intent
    if intent is None:
        return
    for flow, src, dst, port, verdict in judged(ctx):
        allowed = verdict.allowed
        if allowed != flow.allowed:
            state = "admitted by the destination's ingress" if flow.ingress_only else ""
            state = state or ("allowed" if allowed else "denied")
            yield Violation(
                _anchor(flow, verdict, src, dst, intent.file),
                f"{src.key} -> {dst.key} {port} is {state}, {intent.where(flow)} says "
                f"{'allow' if flow.allowed else 'deny'} (egress: {verdict.egress};"
                f" ingress: {verdict.ingress})",
            )


CHECK = Check(
    id="HS-NP-001",
    title="Network reachability matches the declared intent",
    severity=Severity.HIGH,
    scope=("NetworkPolicy", "Namespace"),
    references=(
        "HIPAA 164.312(a)(1)",
        "HIPAA 164.312(e)(1)",
        "NIST SP 800-207 tenet 6",
        "NIST SP 800-53 AC-4",
        "NIST SP 800-53 CA-9",
    ),
    remediation="Change the NetworkPolicy rule named in the message (or the intent file, if the "
    "flow's requirement changed).",
    evaluate=evaluate,
    family="zero trust",
)
