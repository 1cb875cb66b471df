"""The transport to give a `CdeClient` whose API a test mocks with pytest-httpx."""

from __future__ import annotations

import httpx


def mockable() -> httpx.AsyncHTTPTransport:
    """httpx's own transport: the one pytest-httpx intercepts. The client's default (httpx
    over aiohttp, `bot.cde.transport`) sends real requests, so tests of it use stand-ins.
    """
    return httpx.AsyncHTTPTransport()
