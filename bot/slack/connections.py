"""One aiohttp session for the bot's HTTP calls to Slack, kept for the process's life.

Given no session, slack_sdk makes one per call (and Bolt's `respond()` one per answer):
every Web API call and every `response_url` answer then opens its own TCP and TLS
connection and closes it. Sharing one session keeps connections alive between calls;
`python -m bench.load` shows what the handshakes cost.
"""

from __future__ import annotations

import asyncio

import aiohttp

# Slack's edge keeps idle connections for about a minute; closing ours a little sooner
# avoids reusing one the other side is closing.
KEEPALIVE_SECONDS = 30.0


class KeptSession:
    """A session made on first use in a running event loop (an aiohttp session belongs to
    the loop it was made in; a new loop, as in tests, gets a new one) and closed by `aclose()`.
    Every request over it is bounded by `timeout` seconds, the client's own timeout.
    """

    def __init__(self, timeout: float) -> None:
        # slack_sdk sets its client's timeout only on sessions it makes itself: a kept one
        # carries it, as the bound of each request (retries and Retry-After waits aside).
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession | None:
        """The session, or None outside an event loop (slack_sdk then makes its own)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        if self._session is None or self._session.closed or self._loop is not loop:
            # Like slack_sdk's own sessions: no proxy or netrc from the environment (the
            # client passes its `proxy` on each call).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS),
                timeout=self._timeout)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed \
                and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None
