"""The Slack stand-in works with the real slack_sdk clients over loopback."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from urllib.parse import parse_qs

import aiohttp
import pytest
import pytest_asyncio
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_async_handlers
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.standins.slack import (
    SlackStandIn,
    block_actions_payload,
    encode_interaction,
    encode_slash_command,
    sign_request,
    slash_command_payload,
)


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn() as standin:
        yield standin


def web_client(slack: SlackStandIn, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token or slack.bot_token, base_url=slack.base_url)


@pytest.mark.asyncio
async def test_post_message_is_recorded_and_stored(slack: SlackStandIn) -> None:
    client = web_client(slack)

    first = await client.chat_postMessage(
        channel="C0001",
        text="hello",
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": "hello"}},
        ],
    )
    reply = await client.chat_postMessage(channel="C0001", text="in thread", thread_ts=first["ts"])
    await client.chat_update(channel="C0001", ts=first["ts"], text="done")

    assert first["ok"] and first["channel"] == "C0001"
    assert float(reply["ts"]) > float(first["ts"])
    call = slack.calls_to("chat.postMessage")[0]
    assert call.params["text"] == "hello"
    assert call.headers["Authorization"] == "Bearer xoxb-test"
    [parent] = slack.messages("C0001")
    assert parent["text"] == "done" and "edited" in parent
    assert parent["blocks"][0]["block_id"]  # kept from the post, id filled in like Slack
    assert parent["reply_count"] == 1
    assert [m["text"] for m in slack.replies("C0001", first["ts"])] == ["in thread"]


@pytest.mark.asyncio
async def test_auth_test_answers_like_slack_and_other_methods_are_unknown(slack: SlackStandIn) -> None:
    client = web_client(slack)

    auth = await client.auth_test()

    assert auth["user_id"] == "U0BOT" and auth["bot_id"] == "B0001"
    assert slack.calls_to("auth.test", ok=True)
    with pytest.raises(SlackApiError) as err:
        await client.api_call("chat.nonsense")
    assert err.value.response["error"] == "unknown_method"


@pytest.mark.asyncio
async def test_bad_token_gives_invalid_auth(slack: SlackStandIn) -> None:
    with pytest.raises(SlackApiError) as err:
        await web_client(slack, token="xoxb-wrong").chat_postMessage(channel="C0001", text="x")

    assert err.value.response["error"] == "invalid_auth"
    assert slack.calls_to("chat.postMessage", ok=False)
    assert slack.messages("C0001") == []


@pytest.mark.asyncio
async def test_invalid_blocks_are_refused(slack: SlackStandIn) -> None:
    blocks = [{"type": "divider"}] * 51
    with pytest.raises(SlackApiError) as err:
        await web_client(slack).chat_postMessage(channel="C0001", text="x", blocks=blocks)

    assert err.value.response["error"] == "invalid_blocks"


@pytest.mark.asyncio
async def test_rate_limit_twice_then_delivered_once(
    slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The handler sleeps Retry-After + random.random(); drop the jitter to stay fast.
    monkeypatch.setattr(builtin_async_handlers, "random", SimpleNamespace(random=lambda: 0.0))
    slack.fail_next("chat.postMessage", times=2, status=429, retry_after=0)
    client = web_client(slack)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))

    result = await client.chat_postMessage(channel="C0001", text="eventually")

    assert result["ok"]
    calls = slack.calls_to("chat.postMessage")
    assert [(c.status, c.injected) for c in calls] == [(429, True), (429, True), (200, False)]
    assert len(slack.messages("C0001")) == 1


@pytest.mark.asyncio
async def test_rate_limit_without_retry_raises_with_retry_after(slack: SlackStandIn) -> None:
    slack.fail_next("chat.update", retry_after=7)
    with pytest.raises(SlackApiError) as err:
        await web_client(slack).chat_update(channel="C0001", ts="1.0", text="x")

    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"


@pytest.mark.asyncio
async def test_html_500_is_an_error(slack: SlackStandIn) -> None:
    slack.fail_next_html("chat.postMessage")
    with pytest.raises(SlackApiError) as err:
        await web_client(slack).chat_postMessage(channel="C0001", text="x")

    assert err.value.response.status_code == 500
    assert slack.calls_to("chat.postMessage")[0].injected


@pytest.mark.asyncio
async def test_response_url_takes_five_posts_then_used_url(slack: SlackStandIn) -> None:
    url = slack.new_response_url()
    client = AsyncWebhookClient(url=url)

    statuses = [(await client.send(text=f"update {i}")).status_code for i in range(6)]

    assert statuses == [200] * 5 + [404]
    assert [r["text"] for r in await slack.wait_for_response(url, count=5)] == [
        f"update {i}" for i in range(5)
    ]
    [rejected] = [post for post in slack.response_posts(url) if not post.accepted]
    assert rejected.answer == "used_url" and rejected.body["text"] == "update 5"


@pytest.mark.asyncio
async def test_response_url_replace_original_updates_the_message(slack: SlackStandIn) -> None:
    posted = await web_client(slack).chat_postMessage(channel="C0001", text="pending")
    url = slack.new_response_url(channel_id="C0001", message_ts=posted["ts"])

    response = await AsyncWebhookClient(url=url).send(text="approved", replace_original=True)

    assert response.status_code == 200 and response.body == "ok"
    assert slack.messages("C0001")[0]["text"] == "approved"


@pytest.mark.asyncio
async def test_wait_for_response_times_out_clearly(slack: SlackStandIn) -> None:
    url = slack.new_response_url()
    with pytest.raises(AssertionError, match=r"expected 1 accepted post"):
        await slack.wait_for_response(url, timeout=0.05)


@pytest.mark.asyncio
async def test_socket_mode_client_connects_and_acks(slack: SlackStandIn) -> None:
    received: list[SocketModeRequest] = []

    async def on_request(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        received.append(req)
        await client.send_socket_mode_response(
            SocketModeResponse(envelope_id=req.envelope_id, payload={"text": "on it"})
        )

    client = SocketModeClient(slack.app_token, web_client=web_client(slack))
    client.socket_mode_request_listeners.append(on_request)
    try:
        await client.connect()  # type: ignore[no-untyped-call]  # slack_sdk leaves it unannotated
        await slack.wait_connected(timeout=5)
        assert slack.calls_to("apps.connections.open", ok=True)
        assert slack.socket_received == []  # the app has not sent anything yet

        result, response_url = await slack.send_slash_command("deploy web")

        assert result.ack_payload == {"text": "on it"}
        assert result.ack_seconds < 3
        assert received[0].type == "slash_commands"
        assert received[0].payload["text"] == "deploy web"
        assert received[0].payload["response_url"] == response_url

        posted = await web_client(slack).chat_postMessage(
            channel="C0001",
            text="x",
            blocks=[
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "approve",
                            "value": "42",
                            "text": {"type": "plain_text", "text": "Approve"},
                        },
                    ],
                }
            ],
        )
        click, _ = await slack.send_block_action("approve", message=posted["message"])

        action = received[1].payload["actions"][0]
        assert (action["value"], action["text"]["text"]) == ("42", "Approve")
        assert action["block_id"] == posted["message"]["blocks"][0]["block_id"]
        assert click.ack_payload == {"text": "on it"}
    finally:
        await client.close()  # type: ignore[no-untyped-call]  # slack_sdk leaves it unannotated


@pytest.mark.asyncio
async def test_send_envelope_without_ack_fails_clearly(slack: SlackStandIn) -> None:
    async with aiohttp.ClientSession() as session:
        opened = await web_client(slack, token=slack.app_token).apps_connections_open(
            app_token=slack.app_token
        )
        async with session.ws_connect(opened["url"]) as ws:
            hello = await ws.receive_json(timeout=2)
            assert hello["type"] == "hello"
            assert hello["connection_info"]["app_id"] == "A0001"
            with pytest.raises(AssertionError, match="no ack"):
                await slack.send_envelope("interactive", {"type": "block_actions"}, timeout=0.1)


@pytest.mark.asyncio
async def test_http_mode_helpers_are_signed_like_slack(slack: SlackStandIn) -> None:
    url = slack.new_response_url()
    bodies = [
        encode_slash_command(slash_command_payload("status", response_url=url)),
        encode_interaction(block_actions_payload("approve", "1", response_url=url)),
    ]
    verifier = SignatureVerifier(slack.signing_secret)

    for body in bodies:
        headers = sign_request(slack.signing_secret, body)
        assert verifier.is_valid(
            body,
            headers["X-Slack-Request-Timestamp"],
            headers["X-Slack-Signature"],
        )
    old = sign_request(slack.signing_secret, bodies[0], timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(bodies[0], old)
    form = parse_qs(bodies[1].decode())
    assert json.loads(form["payload"][0])["type"] == "block_actions"
    assert parse_qs(bodies[0].decode())["command"] == ["/cde"]
