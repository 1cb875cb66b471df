"""A local stand-in for Slack: Web API, response_url, Socket Mode and request signing.

It is a real aiohttp server on 127.0.0.1 (random free port), so the real slack_sdk
clients (``AsyncWebClient``, ``AsyncWebhookClient``, ``SocketModeClient``) and Bolt talk
to it over loopback exactly as they would talk to slack.com.

Typical use::

    async with SlackStandIn() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.base_url)
        await client.chat_postMessage(channel="C0001", text="hi")
        assert slack.messages("C0001")[0]["text"] == "hi"

Modules: ``payloads`` (what Slack sends an app, and its signature), ``blockkit`` (the
limits Slack enforces), ``records`` (what the stand-in saw), ``state`` (its world),
``web_api``, ``response_urls`` and ``socket_mode`` (the three ways in), ``server`` (all of
them on one port).
"""

from __future__ import annotations

from tests.standins.slack.blockkit import block_kit_errors
from tests.standins.slack.payloads import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    BOT_USER_NAME,
    TEAM_ID,
    block_actions_payload,
    encode_interaction,
    encode_slash_command,
    sign_request,
    slash_command_payload,
)
from tests.standins.slack.records import ApiCall, EnvelopeResult, ResponsePost
from tests.standins.slack.server import SlackStandIn

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "BOT_USER_NAME",
    "TEAM_ID",
    "ApiCall",
    "EnvelopeResult",
    "ResponsePost",
    "SlackStandIn",
    "block_actions_payload",
    "block_kit_errors",
    "encode_interaction",
    "encode_slash_command",
    "sign_request",
    "slash_command_payload",
]
