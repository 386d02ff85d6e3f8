"""The serving process tunes the garbage collector before it serves (docs/performance.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette

from healthstack.config import Settings
from healthstack.service import server
from healthstack.service.state import ServiceState


@pytest.fixture
def collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("collector")
def test_run_freezes_start_up_objects_and_collects_the_young_generation_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: list[tuple[int, ...]] = []
    monkeypatch.setattr(
        server.DrainingServer, "run", lambda self: served.append(gc.get_threshold())
    )
    app = Starlette()
    settings = Settings.from_env({"HEALTHSTACK_ENV": "test", "SECRET_KEY_BASE": "b" * 64})
    app.state.service = ServiceState(settings=settings, database_url="postgresql://x")
    gc.unfreeze()
    _, middle, oldest = gc.get_threshold()
    server.run(app, "127.0.0.1", 0)
    assert served == [(server.GC_YOUNG_THRESHOLD, middle, oldest)]  # in place before serving
    assert gc.get_freeze_count() > 0
