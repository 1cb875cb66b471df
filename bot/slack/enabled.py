"""Channels outside `CDE_ALLOWED_CHANNELS`: whatever is asked there, the one answer is a
short ephemeral saying the bot is not enabled in this channel.

These listeners are attached before every other, and match only outside the allowed
channels, so no other listener ever sees such a request (Bolt runs the first that matches).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from bot.access import not_enabled_here
from bot.query import COMMAND
from bot.slack.message import Message
from bot.slack.respond import answered, channel_of, command_name, reply

if TYPE_CHECKING:
    from bot.services import Services

_ANY_ACTION = re.compile(".*")


def register(app: AsyncApp) -> None:
    """Attach the not-enabled answers to `app`; call before any other group's `register`."""
    app.command(COMMAND, matchers=[outside_allowed_channels])(command_not_enabled)
    app.action(_ANY_ACTION, matchers=[outside_allowed_channels])(click_not_enabled)


async def outside_allowed_channels(body: dict[str, Any], context: AsyncBoltContext) -> bool:
    services: Services | None = context.get("services")
    return services is not None and not services.access.may_answer_in(channel_of(body))


async def command_not_enabled(ack: AsyncAck, command: dict[str, Any], services: Services) -> None:
    await ack(text=not_enabled_here(), response_type="ephemeral")
    answered(services, command_name(str(command.get("text", ""))), "user_error")


async def click_not_enabled(ack: AsyncAck, respond: AsyncRespond, services: Services) -> None:
    await ack()
    # Beside the message clicked, never in its place: it may be everyone's.
    await reply(respond, Message(not_enabled_here(), error=True), replace_original=False)
    answered(services, "button", "user_error")
