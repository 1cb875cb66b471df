"""bot/store/urls.py: DATABASE_URL read for the store and shown without its password."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.store import urls
from bot.store.base import StoreError


def test_plain_schemes_get_their_async_drivers() -> None:
    assert urls.async_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert urls.async_url("postgres://u:pw@db/cde") == "postgresql+asyncpg://u:pw@db/cde"
    assert urls.async_url("postgresql+asyncpg://u:pw@db/cde") == "postgresql+asyncpg://u:pw@db/cde"


def test_an_invalid_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="DATABASE_URL"):
        urls.async_url("not a database url")


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
