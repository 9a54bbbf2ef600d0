"""Fixtures for the delivery suite: a receiver on 127.0.0.1, a store in ``tmp_path``.

- ``receiver``: a ``deliverykit.Receiver`` (answers 200), closed after the test;
  ``make_receiver(plan, default)`` builds more.
- ``settings``: the webhook sink pointed at ``receiver``, 0.5 s per request.
- ``store``: a real DuckDB store at those settings' path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deliverykit import Receiver, webhook_settings

from chalicelib.config import Settings
from chalicelib.write.store import Store


@pytest.fixture
def make_receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(plan: dict[int, str] | None = None, default: str = "ok", **kw: Any) -> Receiver:
        receiver = Receiver(plan or {}, default, **kw)
        made.append(receiver)
        return receiver

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def receiver(make_receiver: Callable[..., Receiver]) -> Receiver:
    return make_receiver()


@pytest.fixture
def settings(tmp_path: Path, receiver: Receiver) -> Settings:
    return webhook_settings(tmp_path / "data", receiver)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store(settings.database) as opened:
        yield opened
