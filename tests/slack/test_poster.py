"""bot/slack/poster.py: every way a post or an update can fail becomes one error of the
Slack error tree, with a `.code` fit for a log line and the original as its cause.

Against the Slack stand-in over real sockets; the few answers the stand-in cannot give (a
load balancer's text/plain page, JSON that does not parse, no answer at all) come from a
tiny server of their own.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.message import Message
from bot.slack.poster import (
    ChannelUnavailable,
    MessageRefused,
    PostRefused,
    RateLimited,
    SlackError,
    SlackPoster,
    SlackUnavailable,
)
from tests.standins.slack import SlackStandIn

TOKEN = "xoxb-test-token-4f1c9a"
NOTICE = Message("Failed: connector c1 on site 1001",
                 [{"type": "section", "text": {"type": "mrkdwn", "text": "*Failed*"}}])


def poster_for(base_url: str, *, token: str = TOKEN, timeout: int = 30,
               retry_handlers: list[Any] | None = None) -> SlackPoster:
    client = AsyncWebClient(token=token, base_url=base_url, timeout=timeout,
                            retry_handlers=retry_handlers or [])
    return SlackPoster(client, min_interval=0)


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(bot_token=TOKEN) as standin:
        yield standin


@pytest.fixture
def poster(slack: SlackStandIn) -> SlackPoster:
    return poster_for(slack.base_url)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start a tiny server answering every API call with `handler`; its base URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/api/"

    yield start
    for runner in runners:
        await runner.cleanup()


def assert_mapped(error: SlackError, kind: type[SlackError], code: str) -> None:
    assert type(error) is kind
    assert error.code == code
    assert isinstance(error.__cause__, Exception) and not isinstance(error.__cause__, SlackError)
    assert TOKEN not in error.code and TOKEN not in str(error)


# ------------------------------------------------------------------- Slack said no


async def test_a_post_slack_takes_gives_its_ts(slack: SlackStandIn, poster: SlackPoster) -> None:
    ts = await poster.post("C0001", NOTICE)
    assert [m["ts"] for m in slack.messages("C0001")] == [ts]


@pytest.mark.parametrize("code", ["channel_not_found", "not_in_channel", "is_archived"])
async def test_a_channel_the_bot_cannot_post_in_is_unavailable(slack: SlackStandIn, poster: SlackPoster,
                                                               code: str) -> None:
    slack.fail_next("chat.postMessage", status=200, error=code, retry_after=None)
    with pytest.raises(ChannelUnavailable) as caught:
        await poster.post("C0001", NOTICE)
    assert_mapped(caught.value, ChannelUnavailable, code)
    assert isinstance(caught.value.__cause__, SlackApiError)
    assert isinstance(caught.value, PostRefused) and caught.value.status == 200


async def test_blocks_slack_refuses_are_posted_as_text(slack: SlackStandIn, poster: SlackPoster) -> None:
    slack.fail_next("chat.postMessage", status=200, error="invalid_blocks", retry_after=None)
    ts = await poster.post("C0001", NOTICE)
    [posted] = slack.messages("C0001")
    assert (posted["ts"], posted["text"], "blocks" in posted) == (ts, NOTICE.text, False)


async def test_a_message_refused_as_text_too_is_refused(slack: SlackStandIn, poster: SlackPoster) -> None:
    slack.fail_next("chat.postMessage", times=2, status=200, error="msg_too_long", retry_after=None)
    with pytest.raises(MessageRefused) as caught:
        await poster.post("C0001", NOTICE)
    assert_mapped(caught.value, MessageRefused, "msg_too_long")
    assert len(slack.calls_to("chat.postMessage")) == 2


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_text_alone_slack_refuses_is_not_sent_twice(slack: SlackStandIn, poster: SlackPoster) -> None:
    slack.fail_next("chat.postMessage", status=200, error="no_text", retry_after=None)
    with pytest.raises(MessageRefused):
        await poster.post("C0001", Message("   "))
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_other_refusals_keep_slacks_code(slack: SlackStandIn, poster: SlackPoster) -> None:
    slack.fail_next("chat.postMessage", status=200, error="fatal_error", retry_after=None)
    with pytest.raises(PostRefused) as caught:
        await poster.post("C0001", NOTICE)
    assert_mapped(caught.value, PostRefused, "fatal_error")


async def test_a_bad_token_is_refused_with_its_code_and_not_its_value(slack: SlackStandIn) -> None:
    poster = poster_for(slack.base_url, token="xoxb-not-the-right-one")
    with pytest.raises(PostRefused) as caught:
        await poster.post("C0001", NOTICE)
    assert caught.value.code == "invalid_auth"
    assert "xoxb" not in str(caught.value)


async def test_an_update_is_mapped_too(slack: SlackStandIn, poster: SlackPoster) -> None:
    ts = await poster.post("C0001", NOTICE)
    slack.fail_next("chat.update", status=200, error="channel_not_found", retry_after=None)
    with pytest.raises(ChannelUnavailable):
        await poster.update("C0001", ts, NOTICE)
    slack.fail_next_html("chat.update", status=502)
    with pytest.raises(SlackUnavailable) as caught:
        await poster.update("C0001", ts, NOTICE)
    assert_mapped(caught.value, SlackUnavailable, "http_502")
    await poster.update("C0001", ts, Message("Failed 2 times"))
    assert slack.message("C0001", ts)["text"] == "Failed 2 times"  # type: ignore[index]


# ----------------------------------------------------------- no usable answer


async def test_a_429_left_after_the_clients_retries_is_rate_limited(slack: SlackStandIn) -> None:
    poster = poster_for(slack.base_url,
                        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    slack.fail_next("chat.postMessage", times=2, status=429, retry_after=0)
    with pytest.raises(RateLimited) as caught:
        await poster.post("C0001", NOTICE)
    assert_mapped(caught.value, RateLimited, "ratelimited")
    assert isinstance(caught.value, SlackUnavailable) and not caught.value.maybe_taken
    assert (caught.value.status, caught.value.retry_after) == (429, 0)
    assert len(slack.calls_to("chat.postMessage")) == 2


async def test_a_429_says_when_to_try_again(slack: SlackStandIn, poster: SlackPoster) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(RateLimited) as caught:
        await poster.post("C0001", NOTICE)
    assert caught.value.retry_after == 7


async def test_a_post_carries_its_key_and_is_found_by_it(slack: SlackStandIn,
                                                         poster: SlackPoster) -> None:
    ts = await poster.post("C0001", NOTICE, key="notice:C0001:run-1")
    reply = await poster.post("C0001", NOTICE, thread_ts=ts, key="repeat:C0001:run-2")
    stored = slack.message("C0001", ts)
    assert stored is not None and stored["metadata"] == {
        "event_type": "cde_bot_notice", "event_payload": {"key": "notice:C0001:run-1"}}
    assert await poster.find_tagged("C0001", "notice:C0001:run-1", oldest=0) == ts
    assert await poster.find_tagged("C0001", "repeat:C0001:run-2", oldest=0, thread_ts=ts) == reply
    assert await poster.find_tagged("C0001", "notice:C0001:run-9", oldest=0) is None
    assert await poster.find_tagged("C0001", "notice:C0001:run-1", oldest=float(ts) + 1) is None


async def test_history_without_its_scope_is_refused_by_name(slack: SlackStandIn,
                                                            poster: SlackPoster) -> None:
    slack.scopes = ["commands", "chat:write"]
    with pytest.raises(PostRefused) as caught:
        await poster.find_tagged("C0001", "notice:C0001:run-1", oldest=0)
    assert caught.value.code == "missing_scope"


async def test_a_5xx_is_unavailable_whatever_its_body(slack: SlackStandIn, poster: SlackPoster) -> None:
    slack.fail_next("chat.postMessage", status=503, error="service_unavailable", retry_after=None)
    with pytest.raises(SlackUnavailable) as caught:
        await poster.post("C0001", NOTICE)
    assert_mapped(caught.value, SlackUnavailable, "service_unavailable")

    slack.fail_next_html("chat.postMessage", status=500)
    with pytest.raises(SlackUnavailable) as caught:
        await poster.post("C0001", NOTICE)
    assert_mapped(caught.value, SlackUnavailable, "http_500")
    assert caught.value.status == 500


@pytest.mark.parametrize(("status", "content_type", "body", "code"), [
    (503, "text/plain", f"upstream unavailable (token {TOKEN})", "http_503"),
    (502, "application/json", "{not json", "http_502"),
    (200, "text/plain", "OK", "not_slack_json"),
], ids=["text-plain-503", "broken-json", "text-plain-200"])
async def test_a_body_that_is_not_slack_json_is_unavailable(
    serve: Callable[[Handler], Awaitable[str]], status: int, content_type: str, body: str, code: str,
) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body.encode(), content_type=content_type)

    poster = poster_for(await serve(answer))
    with pytest.raises(SlackUnavailable) as caught:
        await poster.post("C0001", NOTICE)
    assert_mapped(caught.value, SlackUnavailable, code)


async def test_an_ok_answer_without_a_ts_is_unavailable(serve: Callable[[Handler], Awaitable[str]]) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    poster = poster_for(await serve(answer))
    with pytest.raises(SlackUnavailable) as caught:
        await poster.post("C0001", NOTICE)
    assert caught.value.code == "no_ts"


async def test_a_timeout_is_unavailable(serve: Callable[[Handler], Awaitable[str]]) -> None:
    gave_up = asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        # Slack answers only once the poster has stopped waiting. The server's shutdown
        # waits for handlers still running, so the answer is released as the test ends.
        await gave_up.wait()
        return web.json_response({"ok": True, "ts": "1.0"})

    poster = poster_for(await serve(answer), timeout=1)
    try:
        with pytest.raises(SlackUnavailable) as caught:
            await poster.post("C0001", NOTICE)
    finally:
        gave_up.set()
    assert_mapped(caught.value, SlackUnavailable, "TimeoutError")
    assert isinstance(caught.value.__cause__, TimeoutError)


async def test_a_refused_connection_is_unavailable() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    poster = poster_for(f"http://127.0.0.1:{port}/api/")
    with pytest.raises(SlackUnavailable) as caught:
        await poster.post("C0001", NOTICE)
    assert caught.value.code == "ClientConnectorError"
    assert isinstance(caught.value.__cause__, OSError)
