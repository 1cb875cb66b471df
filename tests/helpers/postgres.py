"""PostgreSQL for the tests: the server `.ci/run` starts (`bash .ci/postgres` prints its URL
for `CDE_TEST_POSTGRES_URL`), and a database of its own for each test, dropped after it.

Without the variable the PostgreSQL cases are skipped, saying how to run them; CI sets
`CDE_TEST_REQUIRE_POSTGRES=1`, which makes a missing server an error instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.engine import make_url

# Read once at import: the tests' clean environment must not hide it.
SERVER_URL = os.environ.get("CDE_TEST_POSTGRES_URL")
REQUIRED = os.environ.get("CDE_TEST_REQUIRE_POSTGRES") == "1"
HOW = "set CDE_TEST_POSTGRES_URL to a server's URL (`bash .ci/postgres` starts one and prints it)"


def server_or_skip() -> str:
    """The server's URL; skips the test (fails it, when required) without one."""
    if SERVER_URL:
        return SERVER_URL
    if REQUIRED:
        pytest.fail(f"PostgreSQL is required here: {HOW}")
    pytest.skip(f"PostgreSQL cases: {HOW}")


def _dsn(url: str) -> str:
    """The asyncpg DSN of an SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# This process's database on the server: created once, emptied for each test (far
# cheaper than a database per test, and each xdist worker is a process of its own).
_database: str | None = None


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """The SQLAlchemy URL of an empty database: its public schema dropped and made anew."""
    import asyncpg  # the postgres extra: only where PostgreSQL is tested

    global _database
    server = server_or_skip()
    if _database is None:
        name = f"t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(_dsn(server))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        _database = name
    url = make_url(server).set(database=_database).render_as_string(hide_password=False)
    conn = await asyncpg.connect(_dsn(url))
    try:
        # Connections a previous test left open (a bot killed mid-test) must not hold locks.
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    yield url
