"""bot/store/urls.py: DATABASE_URL read for the store and shown without its password."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.store import urls
from bot.store.base import StoreError
from bot.store.database import Database
from bot.store.sql import SqlStore
from tests.helpers.postgres import fresh_database


def test_plain_schemes_get_their_async_drivers() -> None:
    assert urls.async_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert urls.async_url("postgres://u:pw@db/cde") == "postgresql+asyncpg://u:pw@db/cde"
    assert urls.async_url("postgresql+asyncpg://u:pw@db/cde") == "postgresql+asyncpg://u:pw@db/cde"


@pytest.mark.parametrize("given", ["not a database url", "postgresql+asyncpg://u@db:not-a-port/cde"])
def test_an_invalid_url_is_a_store_error(given: str) -> None:
    with pytest.raises(StoreError, match="DATABASE_URL is not a valid SQLAlchemy URL"):
        urls.async_url(given)


def test_sqlite_file_and_memory() -> None:
    assert urls.sqlite_file(make_url("sqlite+aiosqlite:///data/bot.db")) == Path("data/bot.db")
    for memory in ("sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"):
        url = make_url(memory)
        assert urls.sqlite_file(url) is None and urls.is_sqlite_memory(url)
    assert urls.sqlite_file(make_url("sqlite+aiosqlite:///file:x?mode=memory&uri=true")) is None
    assert urls.sqlite_file(make_url("postgresql+asyncpg://db/cde")) is None


def test_public_url_hides_the_password_and_query(tmp_path: Path) -> None:
    shown = urls.public_url("postgresql+asyncpg://bot:s3cret-pw@db:5432/cde?ssl=require")
    assert shown == "postgresql+asyncpg://bot:***@db:5432/cde"
    assert urls.public_url("sqlite+aiosqlite:///:memory:") == "sqlite+aiosqlite:///:memory:"
    assert urls.public_url("nonsense") == "(unparseable DATABASE_URL)"
    assert urls.display_url("nonsense") == "(unparseable)"


def test_public_url_makes_an_sqlite_path_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert urls.public_url("sqlite+aiosqlite:///bot.db") == f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"


def test_whether_an_sqlite_file_exists(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    assert urls.sqlite_file_exists(f"sqlite+aiosqlite:///{path}") is False
    path.write_bytes(b"")
    assert urls.sqlite_file_exists(f"sqlite+aiosqlite:///{path}") is True
    assert urls.sqlite_file_exists("sqlite+aiosqlite:///:memory:") is None
    assert urls.sqlite_file_exists("postgresql+asyncpg://db/cde") is None
    assert urls.sqlite_file_exists("nonsense") is None


@pytest.mark.parametrize(("given", "instead"), [
    ("postgresql+psycopg2://u:secret@db/cde", "postgresql+asyncpg://u:***@db/cde"),
    ("postgresql+pg8000://u:secret@db:5433/cde", "postgresql+asyncpg://u:***@db:5433/cde"),
    ("sqlite+pysqlite:///x.db", "sqlite+aiosqlite:///x.db"),
])
def test_a_driver_the_store_does_not_run_on_is_refused_naming_the_url_to_use(
        given: str, instead: str) -> None:
    with pytest.raises(StoreError) as caught:
        SqlStore(given)
    message = str(caught.value)
    assert f"use {instead}" in message
    assert make_url(given).get_driver_name() in message  # the driver it found
    assert "secret" not in message


@pytest.mark.parametrize("given", ["postgresql://u:secret@db/cde", "postgres://u:secret@db/cde"])
def test_a_plain_postgresql_url_runs_on_asyncpg(given: str) -> None:
    where = Database(given).where
    assert where == "the database postgresql+asyncpg://u:***@db/cde"


async def test_a_store_opens_on_a_plain_postgresql_url() -> None:
    async with fresh_database() as url:
        plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        store = SqlStore(plain)
        try:
            await store.open()
            await store.set_state("k", "v")
            assert await store.get_state("k") == "v"
        finally:
            await store.close()


def test_a_postgresql_url_without_asyncpg_installed_says_which_extra_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # as if it were not installed
    with pytest.raises(StoreError) as caught:
        SqlStore("postgresql+asyncpg://u:secret@db/cde")
    message = str(caught.value)
    assert "needs the Python package 'asyncpg', which is not installed" in message
    assert "pip install 'cde-bot[postgres]'" in message
    assert "postgresql+asyncpg://u:***@db/cde" in message and "secret" not in message
