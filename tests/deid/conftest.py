"""Shared by the live AI tests: a fake provider per module and a service pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.conftest import Database, Service, start_service
from tests.deid.fake_openai import FakeOpenAI
from tests.fhir.conftest import FULL_SCOPES, client_for

SCOPES = f"{FULL_SCOPES} user/Patient.$summarize"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI().running() as server:
        yield server


@pytest.fixture(scope="module")
def service(
    request: pytest.FixtureRequest,
    module_database: Database,
    fake: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    """A service whose provider is ``fake``, configured by the module's ``AI_ENV``."""
    svc = start_service(
        module_database,
        tmp_path_factory.mktemp("ai") / "service.log",
        OPENAI_API_KEY="test-provider-key",
        OPENAI_BASE_URL=fake.base_url,
        AI_MODEL="test-model",
        **request.module.AI_ENV,
    )
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def fhir(service: Service) -> Iterator[httpx.Client]:
    with client_for(service, SCOPES) as client:
        yield client
