"""DATABASE_URL, read once: which driver it needs, where an SQLite file lives, and how to
show it without its password.

SQLAlchemy is slow to import, and `cde-bot check` imports this module only when it checks
the store; the bot imports it with the store.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.config import ASYNC_DRIVERS
from bot.store.base import StoreError

# The Python package each async driver needs, and the cde-bot extra that installs it.
EXTRAS = {"asyncpg": "postgres"}


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
    except (SQLAlchemyError, ValueError) as exc:  # ValueError: a port that is not a number
        raise StoreError(f"DATABASE_URL is not a valid SQLAlchemy URL: {exc}") from exc
    if url.drivername in ASYNC_DRIVERS:
        url = url.set(drivername=ASYNC_DRIVERS[url.drivername])
    return url.render_as_string(hide_password=False)


def check_driver(url: URL) -> None:
    """Refuse an SQLite or PostgreSQL URL with a driver the store does not run on (a
    synchronous one such as psycopg2 or pysqlite, or another async one it is not tested
    with), saying which URL to use instead. Other databases are left to SQLAlchemy.

    Raises `StoreError`.
    """
    backend = url.get_backend_name()
    wanted = ASYNC_DRIVERS.get(backend)
    if wanted is None or url.drivername in (backend, wanted):
        return
    instead = url.set(drivername=wanted).render_as_string(hide_password=True)
    raise StoreError(
        f"DATABASE_URL {display_url(url)} uses the driver {url.get_driver_name()!r}, which "
        f"cde-bot does not run on: it needs the async driver {wanted.split('+')[1]}; "
        f"use {instead}")


def missing_package(database_url: str | URL, package: str | None) -> str:
    """What to tell when the driver of `database_url` needs `package`, not installed."""
    extra = EXTRAS.get(package or "")
    install = (f"pip install 'cde-bot[{extra}]' (the Docker image has it)" if extra
               else f"install {package!r}")
    return (f"DATABASE_URL {display_url(database_url)} needs the Python package {package!r}, "
            f"which is not installed: {install}; or use sqlite+aiosqlite:///cde-bot.db for "
            "one replica")


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
