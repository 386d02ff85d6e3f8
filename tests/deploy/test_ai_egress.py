"""The AI provider hosts the service accepts in production are the ones the mesh lets it reach."""

from __future__ import annotations

from tests.deploy.conftest import Rendered

from healthstack.ai.settings import ALLOWED_HOSTS, AiSettings


def test_allowed_ai_hosts_are_in_the_service_entry(overlay: Rendered) -> None:
    hosts = set(overlay.one("ServiceEntry", "external-https")["spec"]["hosts"])
    assert hosts >= ALLOWED_HOSTS
    assert AiSettings().host in hosts  # the default base URL too
