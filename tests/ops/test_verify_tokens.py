"""bot/slack/client.py's verify_tokens: what start-up says when Slack refuses a token (the
same mapping `check` shows, without the URL unless it is given)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.slack.client import TokenCheckFailed, verify_tokens, web_client
from tests.standins.slack import SlackStandIn

BOT_TOKEN = "xoxb-unit-verify-bot-secret-0001"
APP_TOKEN = "xapp-unit-verify-app-secret-0001"


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    async with SlackStandIn(bot_token=BOT_TOKEN, app_token=APP_TOKEN,
                            signing_secret="unit-verify-signing-0001") as standin:
        yield standin


def settings(slack: SlackStandIn, bot_token: str = BOT_TOKEN) -> Settings:
    return Settings(_env_file=None, slack_bot_token=SecretStr(bot_token),
                    slack_app_token=SecretStr(APP_TOKEN), slack_api_url=slack.base_url,
                    cde_api_token=SecretStr("cde-unit-verify-0001"))


async def test_good_tokens_give_the_identity(slack: SlackStandIn) -> None:
    identity = await verify_tokens(web_client(settings(slack)), APP_TOKEN)
    assert identity["team"] == "Test" and identity["user"] == "cde-bot"


async def test_a_refused_bot_token_says_which_and_how_to_fix_it(slack: SlackStandIn) -> None:
    with pytest.raises(TokenCheckFailed) as caught:
        await verify_tokens(web_client(settings(slack, "xoxb-revoked-00000")))
    assert caught.value.detail == "Slack rejected SLACK_BOT_TOKEN (invalid_auth)"
    assert str(caught.value).startswith(
        "Slack rejected SLACK_BOT_TOKEN (invalid_auth): set SLACK_BOT_TOKEN to ")
    assert "Bot User OAuth Token" in caught.value.fix


async def test_a_refused_app_token(slack: SlackStandIn) -> None:
    with pytest.raises(TokenCheckFailed) as caught:
        await verify_tokens(web_client(settings(slack)), "xapp-revoked-00000")
    assert caught.value.detail == "Slack rejected SLACK_APP_TOKEN (invalid_auth)"
    assert "connections:write" in caught.value.fix


async def test_not_slack_names_the_setting_and_the_url_only_when_given(slack: SlackStandIn) -> None:
    slack.fail_next_html("auth.test", status=502)
    client = web_client(settings(slack))
    client.retry_handlers = []
    with pytest.raises(TokenCheckFailed) as caught:
        await verify_tokens(client)
    assert caught.value.detail == "SLACK_API_URL does not answer like Slack's Web API (HTTP 502)"
    slack.fail_next_html("auth.test", status=502)
    with pytest.raises(TokenCheckFailed) as caught:
        await verify_tokens(client, shown_url="http://slack.example/api")
    assert caught.value.detail.startswith("SLACK_API_URL http://slack.example/api does not answer")
