"""The CDE client's HTTP transport: httpx's API over aiohttp's connection pool.

Why not httpx's own transport: httpcore's pool walks every connection it holds, and asks
each whether it has expired (an anyio attribute lookup per connection), every time a
request starts or ends. With tens of lookups in flight that bookkeeping took most of the
bot's CPU (`python -m bench.load --profile DIR` shows it). aiohttp's pool keeps idle
connections in a queue per host and costs the same however many are busy; aiohttp is
already here (Bolt's and slack_sdk's async HTTP).

Why not the httpx-aiohttp package: it maps aiohttp's errors onto the wrong httpx ones (a
refused connection becomes a ConnectTimeout, since every connection error is one there).
The mapping is the part that matters to this client, so it is kept here, next to the
`CdeClient` that maps httpx's errors onto the domain's (`bot.cde.client._request`).

Tests that mock the API with pytest-httpx give the client httpx's own transport
(`httpx.AsyncHTTPTransport()`), which is what pytest-httpx intercepts.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import urllib.request

import aiohttp
import httpx

# Idle connections are closed after this long, as httpx's default pool does.
KEEPALIVE_SECONDS = 5.0
MAX_CONNECTIONS = 100
# h11 (httpx's parser) accepts a header block up to 16 KiB; aiohttp's default is 8 KiB a
# line. The same answers are read as before.
MAX_HEADER_BYTES = 16 * 1024


@functools.cache
def shared_tls() -> ssl.SSLContext:
    """The TLS settings every client shares, httpx's defaults (certifi's CAs, or
    SSL_CERT_FILE / SSL_CERT_DIR). Made once: loading the CAs takes some 40 ms, and start-up
    makes two clients (the bot's, and the probe's that checks the token first).
    """
    return httpx.create_ssl_context()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests with one long-lived `aiohttp.ClientSession`, made on first use
    (a session belongs to the event loop it was made in).

    Proxies come from HTTP(S)_PROXY / NO_PROXY as with httpx, and TLS is verified with
    httpx's context (certifi, or SSL_CERT_FILE), so moving between transports changes
    neither. The proxy is looked up once per host: aiohttp's own `trust_env` reads the
    environment and ~/.netrc, in a thread, on every request.
    """

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=KEEPALIVE_SECONDS,
                ssl=shared_tls(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False,
                # httpx keeps the cookies (if any); a second jar could disagree with it.
                cookie_jar=aiohttp.DummyCookieJar(),
                max_line_size=MAX_HEADER_BYTES, max_field_size=MAX_HEADER_BYTES,
                # httpx sets every header it means to send; aiohttp adds none of its own.
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        try:
            async with self._client().request(
                request.method, _without_userinfo(request.url), headers=request.headers.multi_items(),
                data=await request.aread() or None, allow_redirects=False,
                proxy=self._proxy(request.url),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"), sock_read=timeout.get("read"),
                ),
            ) as answer:
                content = await answer.read()
                # Left encoded: httpx decodes it (and says so when it cannot), as before.
                return httpx.Response(
                    answer.status, headers=answer.raw_headers, content=content, request=request,
                    extensions={"http_version": b"HTTP/1.1",
                                "reason_phrase": (answer.reason or "").encode("latin-1", "replace")},
                )
        except aiohttp.ClientError as exc:
            raise _as_httpx(exc, request) from exc
        except TimeoutError as exc:
            # aiohttp names its timeouts (ClientError, above); should a bare asyncio timeout
            # come through all the same, it is still an httpx error, never a foreign one.
            raise httpx.ReadTimeout(type(exc).__name__, request=request) from exc

    def _proxy(self, url: httpx.URL) -> str | None:
        key = (url.scheme, url.host)
        if key not in self._proxies:
            self._proxies[key] = environment_proxy(url.scheme, url.host)
        return self._proxies[key]

    async def aclose(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None


def _without_userinfo(url: httpx.URL) -> str:
    """`url` without credentials: httpx has made them the Authorization header already, and
    aiohttp refuses a request that carries both."""
    if url.userinfo:
        url = url.copy_with(username=None, password=None)
    return str(url)


def environment_proxy(scheme: str, host: str) -> str | None:
    """The proxy HTTP(S)_PROXY (or ALL_PROXY) names for `host`, unless NO_PROXY exempts it."""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


# What aiohttp met, as the httpx error httpcore would have raised for it; the first match
# wins, so the narrower classes come first (aiohttp's timeouts are connection errors too).
_ERRORS: tuple[tuple[tuple[type[Exception], ...], type[httpx.TransportError]], ...] = (
    ((aiohttp.ConnectionTimeoutError,), httpx.ConnectTimeout),
    ((aiohttp.ServerTimeoutError,), httpx.ReadTimeout),  # no byte within the read timeout
    ((aiohttp.ClientConnectorError, aiohttp.ClientProxyConnectionError), httpx.ConnectError),
    # Closed mid-answer, a body cut short, a status line or header that is no HTTP.
    ((aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError),
     httpx.RemoteProtocolError),
    ((aiohttp.InvalidURL,), httpx.UnsupportedProtocol),
    ((aiohttp.ClientOSError,), httpx.ReadError),
)


def _as_httpx(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    """The httpx error for `exc`, named by aiohttp's class (its message may quote the URL)."""
    for causes, error in _ERRORS:
        if isinstance(exc, causes):
            return error(type(exc).__name__, request=request)
    return httpx.TransportError(type(exc).__name__, request=request)
