"""HS-DH-001: no secret values in ConfigMaps or plain env literals."""

from __future__ import annotations

import re
from collections.abc import Iterator

from healthstack.check.model import Severity
from healthstack.check.policies.base import Check, Context, Violation, own_containers

# Names that end like a secret (TOKEN_MAX_LIFETIME_SECONDS is a setting, API_TOKEN is not).
SECRET_NAME = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIALS?|"
    r"_KEY|KEY_BASE|_KEYS)$",
    re.IGNORECASE,
)
SECRET_VALUE = re.compile(
    r"(://[^/\s:@]+:[^/\s@]+@|-----BEGIN [A-Z ]*PRIVATE KEY|\bsk-[A-Za-z0-9])"
)


def is_secret(name: str, value: str) -> bool:
    """A name that says secret (with a value, not a *_FILE path) or a value that is one."""
    if name.upper().endswith("_FILE"):
        return bool(SECRET_VALUE.search(value))
    return (bool(value) and bool(SECRET_NAME.search(name))) or bool(SECRET_VALUE.search(value))


def evaluate(ctx: Context) -> Iterator[Violation]:
    for cm in ctx.inv.of_kind("ConfigMap"):
        for key, value in (cm.doc.get("data") or {}).items():
            if is_secret(str(key), str(value)):
                yield Violation(cm, f"key {key} looks like a secret (value not shown)")
    for w in ctx.inv.workloads:
        for c in own_containers(w):
            for env in c.get("env") or []:
                if "value" in env and is_secret(str(env.get("name")), str(env.get("value"))):
                    yield Violation(
                        w.obj,
                        f"container {c.get('name')} env {env.get('name')} "
                        "holds a secret literal (value not shown)",
                    )


CHECK = Check(
    id="HS-DH-001",
    title="No secrets in ConfigMaps or env literals",
    severity=Severity.CRITICAL,
    scope=("ConfigMap", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"),
    references=(
        "HIPAA 164.312(a)(2)(iv)",
        "HIPAA 164.312(d)",
        "NIST SP 800-53 IA-5(7)",
        "CIS Kubernetes Benchmark 5.4.1",
    ),
    remediation="Move the value to a Secret delivered by External Secrets and mount it as a file.",
    evaluate=evaluate,
    family="HIPAA data handling",
)
