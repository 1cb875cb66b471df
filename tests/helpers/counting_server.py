"""An aiohttp server on loopback that records its requests and counts the connections
they came on, for tests of what reuses connections.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An aiohttp server on loopback that counts the connections it was opened."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.peers: set[tuple[str, int]] = set()
        self.requests: list[web.Request] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer is not None:
            self.peers.add(peer)
        self.requests.append(request)
        return await self.handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/"

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


Serve = Callable[[Handler], Awaitable[Server]]
