"""Path 1's listeners: `/cde runs`, `/cde run`, help, and the buttons on their answers.

Each listener acks at once (Slack shows an error after 3 seconds), calls `Lookups`, and
answers through the `response_url`. Answers that need no API (help, a mistyped command) go
straight into the ack. Errors are not caught here: `bot.slack.app`'s one error handler
answers them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.lookups.service import Lookup
from bot.query import COMMAND, Command, Help, ListRuns, QueryError, ShowRun, parse
from bot.slack import actions
from bot.slack.message import Message
from bot.slack.respond import answered, command_name, reply

if TYPE_CHECKING:
    from bot.services import Services


def register(app: AsyncApp) -> None:
    """Attach the lookup listeners to `app`."""
    app.command(COMMAND, matchers=[is_lookup])(lookup_command)
    app.action(re.compile(rf"^{actions.ACTION_PAGE}"))(page)
    app.action(actions.ACTION_SHARE)(share)
    app.action(actions.ACTION_OPEN)(open_link)
    app.action(actions.ACTION_RECENT)(recent_runs)


async def is_lookup(command: dict[str, Any]) -> bool:
    """Whether `/cde` was given a lookup, help, or text that is no command at all (the
    subscription sub-commands belong to `bot.notices.listeners`).
    """
    return isinstance(parse(command.get("text", "")), Help | ListRuns | ShowRun | QueryError)


async def lookup_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond,
                         services: Services) -> None:
    """`/cde runs ...`, `/cde run <id>`, `/cde help`, or a mistake explained."""
    text = command.get("text", "")
    parsed = parse(text)
    assert isinstance(parsed, Help | ListRuns | ShowRun | QueryError)  # is_lookup routed it here
    if isinstance(parsed, QueryError | Help):
        answer = await services.lookups.answer(parsed)
        await ack(**answer.as_kwargs(), response_type="ephemeral")
    else:
        await ack()  # before the API call, so the ack never waits for the CDE API
        answer = await services.lookups.answer(parsed)
        await reply(respond, answer)
    answered(services, command_name(text), outcome(parsed, answer))


async def page(ack: AsyncAck, action: dict[str, Any], body: dict[str, Any], respond: AsyncRespond,
               services: Services) -> None:
    """Previous / Next on a list of runs."""
    await ack()
    parsed = _button_command(action)
    answer = await services.lookups.answer(parsed)
    # Paging replaces the person's own (ephemeral) list in place. A list shared in the
    # channel is everyone's: the clicker gets a page of their own instead. An error
    # never replaces the list it was asked from.
    in_place = _is_ephemeral(body) and not answer.error
    await reply(respond, answer, replace_original=in_place)
    answered(services, "button", outcome(parsed, answer))


async def share(ack: AsyncAck, action: dict[str, Any], body: dict[str, Any], respond: AsyncRespond,
                services: Services) -> None:
    """Share in channel: the same answer again, visible to everyone, naming who shared it."""
    await ack()
    parsed = _button_command(action)
    user = body.get("user", {}).get("id")
    answer = await services.lookups.answer(parsed, shared_by=user)
    await reply(respond, answer, replace_original=False,
                response_type="ephemeral" if answer.error else "in_channel")
    answered(services, "button", outcome(parsed, answer))


async def open_link(ack: AsyncAck, services: Services) -> None:
    """A link button opens its URL in the client; Slack still sends the click."""
    await ack()
    answered(services, "button", "ok")


async def recent_runs(ack: AsyncAck, action: dict[str, Any], respond: AsyncRespond,
                      services: Services) -> None:
    """Recent runs of a notice's connector on its site."""
    await ack()
    parsed = _button_command(action)
    answer = await services.lookups.answer(parsed)
    # An ephemeral answer beside the notice; the notice itself stays as it is.
    await reply(respond, answer, replace_original=False)
    answered(services, "button", outcome(parsed, answer))


def outcome(parsed: Command | QueryError, answer: Message) -> str:
    """How a lookup went: a mistyped command is the user's; an error answer to a well-formed
    one came from the CDE API (`bot.lookups.service` turns API errors into such answers).
    """
    if isinstance(parsed, QueryError):
        return "user_error"
    return "api_error" if answer.error else "ok"


def _is_ephemeral(body: dict[str, Any]) -> bool:
    return bool((body.get("container") or {}).get("is_ephemeral", True))


def _button_command(action: dict[str, Any]) -> Lookup:
    """A button's (or menu option's) value is command text; it is parsed again, as
    untrusted as typed text.
    """
    value = action.get("value") or (action.get("selected_option") or {}).get("value", "")
    parsed = parse(str(value))
    if not isinstance(parsed, ListRuns | ShowRun | QueryError):
        return QueryError("That button carries no lookup; run the command again.")
    return parsed
