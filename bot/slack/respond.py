"""What every listener shares: how it answers through the `response_url`, and how an
answer is logged and counted.
"""

from __future__ import annotations

import contextvars
import logging
import time
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncRespond

from bot.query import canonical_subcommand
from bot.slack.message import Message

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)
_received: contextvars.ContextVar[float] = contextvars.ContextVar("received", default=0.0)



def mark_received() -> None:
    """Start the clock of the request being handled (a context variable, so the listener's
    task, started from the request's context, sees it).
    """
    _received.set(time.monotonic())


def answered(services: Services | None, command: str, outcome: str) -> None:
    """Log how long the answer took and count it by command and outcome."""
    log.info("answered %s: %s in %.0f ms", command, outcome, (time.monotonic() - _received.get()) * 1000)
    if services is not None and services.metrics is not None:
        services.metrics.command_answered(command, outcome)


async def reply(respond: AsyncRespond, answer: Message, *, response_type: str = "ephemeral",
                replace_original: bool | None = None) -> None:
    """Answer through the response_url. Slack refusing the answer (blocks it rejects, an
    expired URL) is logged, and a refused rich answer is tried once more as plain text, so
    the person is not left with nothing.
    """
    result = await respond(**answer.as_kwargs(), response_type=response_type,
                           replace_original=replace_original)
    if result.status_code == 200:
        return
    log.error("Slack refused an answer (HTTP %d: %s)", result.status_code, result.body[:200])
    if result.status_code in (400, 500) and answer.blocks:
        retry = await respond(text=answer.text, response_type=response_type,
                              replace_original=replace_original)
        if retry.status_code != 200:
            log.error("Slack refused the plain-text answer too (HTTP %d)", retry.status_code)


def command_name(text: str) -> str:
    """The sub-command `text` asks for, as a metric label (bounded: never the text itself);
    anything else typed is counted as asking for help."""
    return canonical_subcommand(text) or "help"


def channel_of(body: dict[str, Any]) -> str:
    """The channel a command was typed in or a button was clicked in."""
    channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
    return str(channel or (body.get("container") or {}).get("channel_id"))


def channel_name_of(body: dict[str, Any]) -> str:
    """The name Slack gives the conversation: `directmessage` for a DM, `mpdm-...` for a
    group DM, the channel's name otherwise (empty when the payload has none).
    """
    name = body.get("channel_name") or (body.get("channel") or {}).get("name")
    return str(name or "")
