"""DATABASE_URL, read once: which driver it needs, where an SQLite file lives, and how to
show it without its password.

SQLAlchemy is slow to import, and `cde-bot check` imports this module only when it checks
the store; the bot imports it with the store.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.store.base import StoreError

# Plain scheme -> the async driver the store runs on.
ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def parse(database_url: str | URL) -> URL | None:
    """The parsed URL, or None when it is not an SQLAlchemy URL at all."""
    try:
        return make_url(database_url)
    except (SQLAlchemyError, ValueError):
        return None


def async_url(database_url: str) -> str:
    """`database_url` with the async driver for a plain `sqlite://` or `postgresql://` URL.

    Raises `StoreError` when it is not a valid SQLAlchemy URL.
    """
    try:
        url = make_url(database_url)
    except SQLAlchemyError as exc:
        raise StoreError(f"DATABASE_URL is not a valid SQLAlchemy URL: {exc}") from exc
    if url.drivername in ASYNC_DRIVERS:
        url = url.set(drivername=ASYNC_DRIVERS[url.drivername])
    return url.render_as_string(hide_password=False)


def sqlite_file(url: URL) -> Path | None:
    """The database file of an SQLite URL, or None for memory and URI-style databases."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("uri"):
        return None
    return Path(database)


def is_sqlite_memory(url: URL) -> bool:
    """An SQLite database that lives in memory only, gone when the process ends."""
    return url.get_backend_name() == "sqlite" and (url.database or "") in ("", ":memory:")


def display_url(database_url: str | URL) -> str:
    """The URL as SQLAlchemy writes it, with the password masked."""
    url = parse(database_url)
    return "(unparseable)" if url is None else url.render_as_string(hide_password=True)


def public_url(database_url: str) -> str:
    """DATABASE_URL without its password or query; an SQLite file's path made absolute."""
    url = parse(database_url)
    if url is None:
        return "(unparseable DATABASE_URL)"
    url = url.set(query={})
    if is_sqlite_memory(url):
        return f"{url.drivername}:///:memory:"
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and not database.startswith("file:"):
        url = url.set(database=str(Path(database).resolve()))
    return url.render_as_string(hide_password=True)


def sqlite_file_exists(database_url: str) -> bool | None:
    """Whether an SQLite database file is there already; None for other databases, and for
    SQLite in memory or named by a `file:` URI (whose own `mode=` says what may be created)."""
    url = parse(database_url)
    path = sqlite_file(url) if url is not None else None
    return None if path is None else path.exists()
