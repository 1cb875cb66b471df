"""Shared fixtures: a clean environment for every test, the API's example payloads, and the
Slack stand-in and sample CDE API that tests talk to over loopback."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import logs
from bot.demo.api import SampleCdeApi
from bot.logs import NOISY_LOGGERS
from tests.helpers.counting_server import Handler, Serve, Server
from tests.helpers.environment import reset_environment
from tests.helpers.fixtures import load_fixture
from tests.helpers.postgres import fresh_database
from tests.helpers.sample import new_cde, new_slack
from tests.standins.slack import SlackStandIn


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting of the bot comes from the shell running the tests, nor from a `.env`."""
    reset_environment(monkeypatch)
    # A stray .env in the working directory must not configure the tests.
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`logs.configure()` replaces the root logger's handlers and quietens some libraries:
    give every test the logging it started with back.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    # The writer thread `configure` started writes to this test's captured stderr: it
    # writes what it holds now, and stops.
    logs.shut_down()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    """A Slack stand-in of its own for this test."""
    async with new_slack() as standin:
        yield standin


@pytest.fixture
async def cde() -> AsyncIterator[SampleCdeApi]:
    """The sample CDE API, serving the sample runs, for this test."""
    async with new_cde() as api:
        yield api


@pytest.fixture
def runs_list_body() -> dict[str, Any]:
    body: dict[str, Any] = load_fixture("runs-list-200.json")
    return body


@pytest.fixture
def reference_runs(runs_list_body: dict[str, Any]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = runs_list_body["data"]
    return runs


def pytest_report_header() -> str:
    return f"cde-bot tests; cwd={os.getcwd()}"


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database on each backend the store supports: a SQLite file, and a
    PostgreSQL database of its own (see `tests.helpers.postgres`).
    """
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
        return
    async with fresh_database() as url:
        yield url


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start loopback servers that count their connections; stopped after the test."""
    servers: list[Server] = []

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


