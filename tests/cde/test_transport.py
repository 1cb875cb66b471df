"""The CDE client over its own transport (httpx over aiohttp), against servers on loopback:
what it sends, what it reads, how each way of failing is named, and that connections
are kept and reused.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.cde.client import NO_WAIT_RETRY, CdeClient, RetryPolicy
from bot.cde.errors import CdeConnectionError, CdeProtocolError, CdeTimeout
from bot.cde.transport import AiohttpTransport, environment_proxy
from bot.demo.runs import make_run
from tests.helpers.counting_server import Serve, Server

TOKEN = "transport-token-0123456789"


def client(url: str, **kwargs: object) -> CdeClient:
    return CdeClient(url, SecretStr(TOKEN), retry=kwargs.pop("retry", NO_WAIT_RETRY), **kwargs)  # type: ignore[arg-type]


def run_body(run_id: str = "019a3a3c-0000-7000-8000-000000000001") -> dict[str, object]:
    return {"message": "run", "data": make_run(run_id=run_id)}


async def test_a_run_is_asked_with_the_token_and_read(serve: Serve) -> None:
    async def answer(request: web.Request) -> web.Response:
        tail = request.match_info["tail"]
        if tail == "runs":
            return web.json_response({"data": [], "metadata": {"from": 20, "count": 0, "total": 20}})
        return web.json_response(run_body(tail.removeprefix("runs/")))

    server = await serve(answer)
    async with client(server.url) as cde:
        run = await cde.get_run("019a3a3c-0000-7000-8000-00000000abcd")
        page = await cde.list_runs(offset=20, limit=5)
    assert run.id == "019a3a3c-0000-7000-8000-00000000abcd"
    assert page is not None
    first, second = server.requests
    assert first.path == "/runs/019a3a3c-0000-7000-8000-00000000abcd"
    assert first.headers["Authorization"] == f"Bearer {TOKEN}"
    assert first.headers["Accept"] == "application/json"
    assert first.headers["User-Agent"].startswith("cde-bot/")
    assert second.path == "/runs" and second.query["from"] == "20" and second.query["limit"] == "5"


async def test_connections_are_kept_and_reused(serve: Serve) -> None:
    async def answer(request: web.Request) -> web.Response:
        await asyncio.sleep(0.01)
        return web.json_response(run_body())

    server = await serve(answer)
    async with client(server.url) as cde:
        for _ in range(10):
            await cde.get_run("019a3a3c-0000-7000-8000-000000000001")
        assert len(server.peers) == 1
        await asyncio.gather(*(cde.get_run("019a3a3c-0000-7000-8000-000000000001") for _ in range(30)))
    assert len(server.requests) == 40
    # Thirty at once need thirty connections; the first one is among them again.
    assert len(server.peers) <= 31


async def test_a_gzipped_answer_is_decoded_and_a_broken_one_is_unreadable(
    serve: Serve,
) -> None:
    good = gzip.compress(json.dumps(run_body()).encode())
    bodies = [good, b"\x1f\x8b not gzip at all"]

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=bodies.pop(0), headers={"Content-Encoding": "gzip",
                                                         "Content-Type": "application/json"})

    server = await serve(answer)
    async with client(server.url) as cde:
        run = await cde.get_run("019a3a3c-0000-7000-8000-000000000001")
        with pytest.raises(CdeProtocolError, match="DecodingError"):
            await cde.get_run("019a3a3c-0000-7000-8000-000000000001")
    assert run.id == "019a3a3c-0000-7000-8000-000000000001"


async def test_a_refused_connection_is_a_connection_error() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with client(f"http://127.0.0.1:{port}/") as cde:
        with pytest.raises(CdeConnectionError, match=r"cannot reach the CDE API \(ConnectError\)"):
            await cde.get_run("019a3a3c-0000-7000-8000-000000000001")


async def test_no_answer_within_the_timeout_is_a_read_timeout(
    serve: Serve,
) -> None:
    async def silent(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response(run_body())

    server = await serve(silent)
    # The deadline clips each attempt's timeout (`_clip_timeout`): 1 s here.
    async with client(server.url, retry=RetryPolicy(attempts=1, deadline=1.0)) as cde:
        with pytest.raises(CdeTimeout, match="ReadTimeout"):
            await cde.get_run("019a3a3c-0000-7000-8000-000000000001")


async def test_a_server_that_hangs_up_or_speaks_no_http_is_named(
    serve: Serve,
) -> None:
    async def hang_up(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    server = await serve(hang_up)
    async with client(server.url) as cde:
        with pytest.raises(CdeConnectionError, match="RemoteProtocolError"):
            await cde.get_run("019a3a3c-0000-7000-8000-000000000001")

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 banana\r\n\r\n")
        await writer.drain()
        writer.close()

    raw = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = raw.sockets[0].getsockname()[1]
    try:
        async with client(f"http://127.0.0.1:{port}/") as cde:
            with pytest.raises(CdeConnectionError, match="RemoteProtocolError"):
                await cde.get_run("019a3a3c-0000-7000-8000-000000000001")
    finally:
        raw.close()
        await raw.wait_closed()


async def test_a_redirect_is_not_followed(serve: Serve) -> None:
    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://elsewhere.invalid/"})

    server = await serve(moved)
    async with client(server.url) as cde:
        with pytest.raises(CdeProtocolError, match="unexpected HTTP 302"):
            await cde.get_run("019a3a3c-0000-7000-8000-000000000001")
    assert len(server.requests) == 1


async def test_a_long_header_is_read_as_httpx_reads_it(serve: Serve) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response(run_body(), headers={"X-Trace": "t" * 12_000})

    server = await serve(answer)
    async with client(server.url) as cde:
        run = await cde.get_run("019a3a3c-0000-7000-8000-000000000001")
    assert run.id == "019a3a3c-0000-7000-8000-000000000001"


async def test_the_transport_outlives_its_event_loop() -> None:
    """A transport used in one event loop and then another (tests, the console) makes a
    new session for the new loop instead of failing on the old one's.
    """
    transport = AiohttpTransport()

    async def once() -> int:
        async def answer(request: web.Request) -> web.Response:
            return web.json_response(run_body())

        server = Server(answer)
        await server.start()
        try:
            cde = CdeClient(server.url, SecretStr(TOKEN), retry=NO_WAIT_RETRY, transport=transport)
            await cde.get_run("019a3a3c-0000-7000-8000-000000000001")
            return len(server.requests)
        finally:
            await server.stop()

    assert await asyncio.to_thread(asyncio.run, once()) == 1
    assert await asyncio.to_thread(asyncio.run, once()) == 1


def test_proxies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,.example.org")
    assert environment_proxy("https", "cde.productsup.com") == "http://proxy.internal:3128"
    assert environment_proxy("https", "api.example.org") is None
    assert environment_proxy("http", "cde.productsup.com") is None


async def test_credentials_in_the_url_are_sent_once(serve: Serve) -> None:
    """httpx turns a URL's user and password into the Authorization header; aiohttp would
    refuse the request if the URL still carried them."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(run_body())

    server = await serve(answer)
    url = server.url.replace("http://", "http://user:pass@")
    cde = CdeClient(url, SecretStr(TOKEN), retry=NO_WAIT_RETRY)
    try:
        await cde.get_run("019a3a3c-0000-7000-8000-000000000001")
    finally:
        await cde.aclose()
    assert len(server.requests) == 1
