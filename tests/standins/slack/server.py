"""The Slack stand-in as one aiohttp server on 127.0.0.1: Web API, response_urls and
Socket Mode together.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType

from aiohttp import web

from tests.standins.slack.socket_mode import SocketMode
from tests.standins.slack.web_api import WebApi


class SlackStandIn(WebApi, SocketMode):
    """Slack on 127.0.0.1: Web API under /api/, response_urls, Socket Mode at /socket."""

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        app_token: str = "xapp-test",
        signing_secret: str = "test-secret",
    ) -> None:
        super().__init__(bot_token, app_token, signing_secret)
        self._runner: web.AppRunner | None = None
        # The client ends of the connections requests came on: how many a client opened.
        self.connections: set[tuple[str, int]] = set()

    @web.middleware
    async def _count_connections(self, request: web.Request,
                                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                                 ) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer is not None:
            self.connections.add(tuple(peer[:2]))
        return await handler(request)

    async def start(self) -> None:
        """Start listening on a free port on 127.0.0.1."""
        app = web.Application(middlewares=[self._count_connections])
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/respond/{rid}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close WebSockets and stop the server."""
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"server shutting down")
        for fut in self._pending_acks.values():
            fut.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackStandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
