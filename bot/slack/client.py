"""The Slack Web API client, built once from settings, and the check of its tokens.

`SLACK_API_URL` is honoured everywhere (Web API calls and Socket Mode's
`apps.connections.open`), so the bot runs against Slack, GovSlack or a local stand-in.
Every call the client makes is redacted of the configured secrets (`RedactingWebClient`).
Start-up and `cde-bot check` verify the tokens with the same calls and say the same things
when Slack refuses them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from typing_extensions import override

from bot.config import Settings, fix_by_setting
from bot.redact import Redactor, for_settings
from bot.slack.connections import KeptSession

WEB_API_TIMEOUT = 15  # seconds per call
RATE_LIMIT_RETRIES = 5  # each waits as long as Slack's Retry-After says
# Where Slack POSTs events, commands and interactions in HTTP mode (the request URLs of
# manifest.yml); served by bot.ops.http and named by `cde-bot check`.
EVENTS_PATH = "/slack/events"

BOT_TOKEN_FIX = fix_by_setting("slack_bot_token") + " (reinstall the app if it was revoked)"
APP_TOKEN_FIX = fix_by_setting("slack_app_token")
NOT_SLACK_FIX = "leave SLACK_API_URL unset for Slack, or give the Web API's base URL ending in /api/"
UNREACHABLE_SLACK_FIX = "check SLACK_API_URL and that this machine can reach it (network, proxy, firewall)"
RATE_LIMITED_FIX = "wait a minute and check again"
# Slack errors that mean the token itself is no good.
BAD_TOKEN_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
    "not_allowed_token_type", "invalid_token", "no_permission", "missing_scope", "ekm_access_denied",
})


def web_client(settings: Settings, *, on_rate_limited: Callable[[str], None] | None = None,
               keep_session: bool = True) -> RedactingWebClient:
    """A `RedactingWebClient` with the bot token that retries connection errors and 429s;
    `on_rate_limited` is told the API method of each 429 (for metrics). It keeps one HTTP
    session (close it with `aclose()`), unless `keep_session` is False: a client for a call
    or two, which then need no closing.
    """
    base_url = str(settings.slack_api_url)
    return RedactingWebClient(
        for_settings(settings), kept=KeptSession(WEB_API_TIMEOUT) if keep_session else None,
        token=settings.slack_bot_token.get_secret_value(),
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=WEB_API_TIMEOUT,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            CountingRateLimitHandler(on_rate_limited, max_retry_count=RATE_LIMIT_RETRIES),
        ],
    )


# The parameters that carry a credential to Slack on purpose (`apps.connections.open` sends
# the app-level token as `token`); everything else the bot sends is redacted.
CREDENTIAL_PARAMS = frozenset({"token", "client_id", "client_secret"})


class RedactingWebClient(AsyncWebClient):
    """slack_sdk's `AsyncWebClient` that redacts every configured secret from whatever a
    call sends: every method (chat.postMessage, chat.update, chat.postEphemeral, views.*,
    Bolt's `say()`, ...) ends in `api_call`, so each text, block and metadata string is
    redacted there, in the parameters, the form data and the JSON body alike.
    """

    def __init__(self, redactor: Redactor, *, kept: KeptSession | None = None, **kwargs: Any) -> None:
        # Before `super().__init__`, which sets `session` (the property below).
        self.kept = kept
        super().__init__(**kwargs)
        self.redactor = redactor

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session given, else the kept one (see `bot.slack.connections`)."""
        if self._given_session is not None or self.kept is None:
            return self._given_session
        return self.kept.get()

    @session.setter
    def session(self, value: aiohttp.ClientSession | None) -> None:
        self._given_session = value

    async def aclose(self) -> None:
        """Close the kept session, if this client keeps one."""
        if self.kept is not None:
            await self.kept.aclose()

    @override
    async def api_call(
        self, api_method: str, *, http_verb: str = "POST", files: dict[str, Any] | None = None,
        data: dict[str, Any] | aiohttp.FormData | None = None, params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None, headers: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> AsyncSlackResponse:
        keep = CREDENTIAL_PARAMS
        return await super().api_call(
            api_method, http_verb=http_verb, files=files,
            data=self.redactor.value(data, keep=keep) if isinstance(data, dict) else data,
            params=self.redactor.value(params, keep=keep), json=self.redactor.value(json, keep=keep),
            headers=headers, auth=auth,
        )


def redactor_of(client: AsyncWebClient) -> Redactor:
    """The redactor a client applies, for the exits that do not go through it (acks over
    Socket Mode); none for a plain `AsyncWebClient`.
    """
    return client.redactor if isinstance(client, RedactingWebClient) else Redactor(())


def redacting(client: AsyncWebClient, redactor: Redactor) -> RedactingWebClient:
    """`client` as a `RedactingWebClient`: the same token, URL, session, retries and team.

    Bolt gives each request a new, plain `AsyncWebClient` (`context.client`, behind `say()`
    too), built from the app's client but not of its class: without this, whatever a
    listener sent through it would go out unredacted.
    """
    if isinstance(client, RedactingWebClient) and client.redactor is redactor:
        return client
    return RedactingWebClient(
        redactor, token=client.token, base_url=client.base_url, timeout=client.timeout,
        ssl=client.ssl, proxy=client.proxy, session=client.session,
        trust_env_in_session=client.trust_env_in_session, headers=client.headers,
        team_id=client.default_params.get("team_id"), logger=client.logger,
        retry_handlers=list(client.retry_handlers) if client.retry_handlers is not None else None,
    )


class CountingRateLimitHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handling (wait for Retry-After, try again), telling `on_rate_limited`
    about every 429 first, including the last one that is not retried.
    """

    def __init__(self, on_rate_limited: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_rate_limited = on_rate_limited

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if self._on_rate_limited is not None and response is not None and response.status_code == 429:
            self._on_rate_limited(api_method(request.url))
        return await super().can_retry_async(state=state, request=request, response=response, error=error)


def api_method(url: str) -> str:
    """The Web API method a request URL calls: `.../api/chat.postMessage` -> `chat.postMessage`."""
    return urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "unknown"


# -- verifying the tokens -----------------------------------------------------------------------


class TokenCheckFailed(Exception):
    """Slack refused a token, or could not be asked. `detail` says which and why, built from
    Slack's error codes, HTTP statuses and class names only (never an exception's text, which
    may quote a URL or a header); `fix` says what to do.
    """

    def __init__(self, detail: str, fix: str, *, transient: str | None = None) -> None:
        super().__init__(f"{detail}: {fix}")
        self.detail = detail
        self.fix = fix
        # Set when Slack could not be asked, or answered "not now" (a network error, a timeout,
        # a 5xx, a rate limit): what went wrong, in a few words. Asking again later may work;
        # a token Slack rejected stays rejected.
        self.transient = transient


async def verify_tokens(client: AsyncWebClient, app_token: str | None = None, *,
                        shown_url: str | None = None) -> AsyncSlackResponse:
    """Check the bot token with `auth.test` and, when given, the app-level token with
    `apps.connections.open` (which Socket Mode would otherwise retry for ever).

    The `auth.test` answer, or `TokenCheckFailed`. `shown_url` is SLACK_API_URL as it may be
    shown (without credentials); without it, messages name the setting only.
    """
    identity = await verify_bot_token(client, shown_url=shown_url)
    if app_token is not None:
        await verify_app_token(client, app_token, shown_url=shown_url)
    return identity


async def verify_bot_token(client: AsyncWebClient, *, shown_url: str | None = None,
                           timeout: float | None = None) -> AsyncSlackResponse:
    """`auth.test` with the bot token, within `timeout` seconds when given."""
    where = _Where(shown_url, timeout, client.timeout)
    return await _ask(client.auth_test(), "SLACK_BOT_TOKEN", BOT_TOKEN_FIX, where)


async def verify_app_token(client: AsyncWebClient, app_token: str, *, shown_url: str | None = None,
                           timeout: float | None = None) -> AsyncSlackResponse:
    """`apps.connections.open` with the app-level token, within `timeout` seconds when given."""
    where = _Where(shown_url, timeout, client.timeout)
    return await _ask(client.apps_connections_open(app_token=app_token), "SLACK_APP_TOKEN",
                      APP_TOKEN_FIX, where)


class _Where:
    """How messages name the Web API, and how long a call may take: `timeout` for the whole
    call when given, else the client's own per-request timeout (and its retries) alone.
    """

    def __init__(self, shown_url: str | None, timeout: float | None, client_timeout: float) -> None:
        self.url = shown_url
        self.timeout = timeout
        self.seconds = timeout if timeout is not None else client_timeout

    @property
    def setting(self) -> str:
        return f"SLACK_API_URL {self.url}" if self.url else "SLACK_API_URL"

    @property
    def place(self) -> str:
        return self.url or "SLACK_API_URL"


async def _ask(call: Awaitable[AsyncSlackResponse], setting: str, fix: str,
               where: _Where) -> AsyncSlackResponse:
    try:
        async with asyncio.timeout(where.timeout):
            return await call
    except SlackApiError as exc:
        raise _refusal(exc, setting, fix, where) from None
    except TimeoutError:
        waited = f"within {where.seconds:.0f} s"
        raise TokenCheckFailed(f"no answer from {where.place} {waited}", UNREACHABLE_SLACK_FIX,
                               transient=f"no answer {waited}") from None
    # ValueError: aiohttp refuses some URLs (credentials in them, say) before connecting, and
    # no retry changes that.
    except (SlackClientError, aiohttp.ClientError, OSError, ValueError) as exc:
        cause = type(exc).__name__
        raise TokenCheckFailed(f"cannot reach Slack's Web API at {where.place} ({cause})",
                               UNREACHABLE_SLACK_FIX,
                               transient=None if isinstance(exc, ValueError) else cause) from None


def _refusal(exc: SlackApiError, setting: str, fix: str, where: _Where) -> TokenCheckFailed:
    """What Slack's refusal means for the token, or that this is not Slack at all."""
    data = exc.response.data if exc.response is not None else None
    status = exc.response.status_code if exc.response is not None else None
    # A 5xx is a server (or a proxy in front of it) having a bad moment, whatever its body.
    unavailable = f"HTTP {status}" if status is not None and status >= 500 else None
    if not isinstance(data, dict) or "ok" not in data:
        return TokenCheckFailed(
            f"{where.setting} does not answer like Slack's Web API (HTTP {status})", NOT_SLACK_FIX,
            transient=unavailable)
    error = str(data.get("error") or "unknown_error")
    if error in BAD_TOKEN_ERRORS:
        return TokenCheckFailed(f"Slack rejected {setting} ({error})", fix)
    if error == "ratelimited":
        return TokenCheckFailed("Slack is rate limiting this app (ratelimited)", RATE_LIMITED_FIX,
                                transient="rate limited")
    return TokenCheckFailed(f"Slack answered {error} (HTTP {status})", fix, transient=unavailable)
