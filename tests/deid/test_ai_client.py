"""The provider client's breaker, the token budget and the AI settings, in-process against the
loopback fake provider (real HTTP), without a service."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest
from tests.conftest import Database
from tests.deid.fake_openai import FakeOpenAI

from healthstack.ai.budget import Budget, BudgetExceeded
from healthstack.ai.client import ChatClient, ProviderError, _delay
from healthstack.ai.settings import DEFAULT_BASE_URL, AiSettings
from healthstack.errors import HealthstackError
from healthstack.fhir.ai_gather import _opts_out, parse

BODY = b'{"model": "m", "messages": []}'


async def nothing(_attempt: int) -> None:
    return None


def run(client: ChatClient) -> ProviderError | str:
    try:
        return asyncio.run(client.complete(BODY, nothing)).text
    except ProviderError as error:
        return error


def test_the_circuit_opens_after_consecutive_failures_and_recovers() -> None:
    with FakeOpenAI().running() as fake:
        settings = AiSettings(
            base_url=fake.base_url,
            max_retries=0,
            backoff=0,
            breaker_threshold=2,
            breaker_cooldown=3600,
        )
        client = ChatClient(settings, "key")
        fake.script[:] = ["500", "500"]
        assert [getattr(run(client), "status", None) for _ in range(2)] == [502, 502]
        opened = run(client)
        assert isinstance(opened, ProviderError)
        assert opened.status == 503
        assert "circuit open" in opened.message
        assert len(fake.bodies) == 2  # the open circuit sent nothing
        client.breaker.cooldown = 0  # the cooldown is over: one call may try, and succeeds
        assert isinstance(run(client), str)
        assert client.breaker.failures == 0


def test_no_key_means_no_call() -> None:
    with FakeOpenAI().running() as fake:
        refused = run(ChatClient(AiSettings(base_url=fake.base_url), None))
        assert isinstance(refused, ProviderError)
        assert refused.status == 503
        assert "OPENAI_API_KEY" in refused.message
        assert fake.bodies == []


def test_budget_reserves_settles_and_refuses(database: Database) -> None:
    async def scenario() -> int:
        conn = await asyncpg.connect(database.url)
        try:
            budget = Budget(1000)
            await budget.reserve(conn, 600)
            with pytest.raises(BudgetExceeded):
                await budget.reserve(conn, 600)
            await budget.settle(conn, 600, 120)  # the provider reported less than the estimate
            await budget.reserve(conn, 600)
            with pytest.raises(BudgetExceeded):
                await Budget(0).reserve(conn, 1)
            return int(await conn.fetchval("SELECT used FROM ai_token_budget"))
        finally:
            await conn.close()

    assert asyncio.run(scenario()) == 720


def test_settings_defaults_and_production_allow_list() -> None:
    assert AiSettings.from_env({}).base_url == DEFAULT_BASE_URL
    assert AiSettings.from_env({}, production=True).host == "api.openai.com"
    for url in ("http://api.openai.com/v1", "https://evil.example.com/v1"):
        with pytest.raises(HealthstackError, match="OPENAI_BASE_URL"):
            AiSettings.from_env({"OPENAI_BASE_URL": url}, production=True)
    with pytest.raises(HealthstackError, match="OPENAI_BASE_URL"):
        AiSettings.from_env({"OPENAI_BASE_URL": "file:///etc/passwd"})
    with pytest.raises(HealthstackError, match="AI_MAX_RETRIES"):
        AiSettings.from_env({"AI_MAX_RETRIES": "50"})
    assert AiSettings.from_env({"AI_SUMMARY_TYPES": "Condition, Encounter"}).types == (
        "Condition",
        "Encounter",
    )


def test_backoff_doubles_and_honours_retry_after_within_bounds() -> None:
    assert [_delay(0.5, n, None) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert _delay(0.5, 1, 3.0) == 3.0  # the provider asked for longer
    assert _delay(0.5, 1, 3600.0) == 5.0  # never more than 10x the backoff


def test_what_counts_as_an_opt_out() -> None:
    def consent(status: str, kind: str, *codes: str) -> dict[str, object]:
        actions = [{"coding": [{"code": c}]} for c in codes]
        provision: dict[str, object] = {"type": kind, **({"action": actions} if codes else {})}
        return {"resourceType": "Consent", "status": status, "provision": provision}

    assert _opts_out(consent("active", "deny"))  # denies everything
    assert _opts_out(consent("active", "deny", "disclose"))
    assert _opts_out(consent("active", "deny", "ai-summary"))
    assert not _opts_out(consent("active", "deny", "access"))
    assert not _opts_out(consent("inactive", "deny"))
    assert not _opts_out(consent("active", "permit"))


def test_the_window_and_since() -> None:
    settings = AiSettings(window_days=10)
    window = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    assert abs(parse(settings, "p", []).since - window) < dt.timedelta(minutes=5)
    wide = parse(settings, "p", [("_since", "2000-01-01")]).since
    assert abs(wide - window) < dt.timedelta(minutes=5)  # never wider than the window
    narrow = parse(settings, "p", [("_since", "2999-01-01")]).since
    assert narrow.year == 2999
