"""A PostgreSQL database the store cannot open: the message names it and says what to check."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy.engine import make_url

from bot.store.base import StoreError
from bot.store.sql import SqlStore
from tests.helpers.postgres import fresh_database


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_server_that_does_not_answer() -> None:
    port = closed_port()
    store = SqlStore(f"postgresql+asyncpg://bot:hunter2-secret@127.0.0.1:{port}/cde")
    with pytest.raises(StoreError) as caught:
        await store.open()
    await store.close()
    message = str(caught.value)
    assert message.startswith(f"cannot open the database postgresql+asyncpg://bot:***@127.0.0.1:{port}/cde: ")
    assert "check that the PostgreSQL server is up" in message and "DATABASE_URL" in message
    assert "hunter2" not in message


async def test_a_database_that_does_not_exist() -> None:
    async with fresh_database() as url:
        missing = make_url(url).set(database="no_such_database").render_as_string(hide_password=False)
    store = SqlStore(missing)
    with pytest.raises(StoreError) as caught:
        await store.open()
    await store.close()
    message = str(caught.value)
    assert "no_such_database" in message and "does not exist" in message
    assert "create the database first" in message
