"""The Bolt app and its listeners. Listeners are thin: ack at once, call, render, respond.

Slack shows an error when a command or click is not acknowledged within 3 seconds, so every
listener acks before any API call and answers later through `respond()` (`response_url`).
Answers that need no API (help, a mistyped command) go straight into the ack.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.logs import current_reference, new_reference, request_id
from bot.lookups import render
from bot.lookups.service import Lookups
from bot.notices import render as render_notices
from bot.notices.oncall import OnCall
from bot.notices.subscriptions import Subscriptions
from bot.ops.metrics import Metrics
from bot.query import (
    COMMAND,
    Command,
    Help,
    ListRuns,
    ListSubscriptions,
    QueryError,
    ShowRun,
    Subscribe,
    Unsubscribe,
    parse,
)
from bot.slack import actions
from bot.slack.message import Message
from bot.slack.mrkdwn import escape

log = logging.getLogger(__name__)
_received: contextvars.ContextVar[float] = contextvars.ContextVar("received", default=0.0)


def build_app(settings: Settings, client: AsyncWebClient) -> AsyncApp:
    """An AsyncApp for one workspace. Request signatures are always verified in HTTP mode;
    Bolt skips the check only for Socket Mode envelopes, which arrive over our own
    authenticated WebSocket.
    """
    secret = settings.slack_signing_secret
    return AsyncApp(
        client=client,
        signing_secret=secret.get_secret_value() if secret else "",
        request_verification_enabled=True,
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )


@dataclass(frozen=True)
class Services:
    """What the listeners call; each is plain Python, testable without Slack."""

    lookups: Lookups
    subscriptions: Subscriptions
    notices: OnCall
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    metrics: Metrics | None = None


def register(app: AsyncApp, services: Services) -> None:
    """Attach every listener to `app`."""
    lookups = services.lookups

    def answered(command: str, outcome: str) -> None:
        log.info("answered %s: %s in %.0f ms", command, outcome,
                 (time.monotonic() - _received.get()) * 1000)
        if services.metrics is not None:
            services.metrics.command_answered(command, outcome)

    @app.middleware
    async def tag_request(body: dict[str, Any], next: Any) -> None:
        # Every log line of this request carries its id; the id is the reference users see.
        request_id.set(new_reference())
        _received.set(time.monotonic())
        user = body.get("user_id") or (body.get("user") or {}).get("id")
        log.info("received %s from %s in %s", _kind(body), user, _channel_of(body))
        await next()

    @app.command(COMMAND)
    async def on_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        text = command.get("text", "")
        parsed = parse(text)
        if isinstance(parsed, QueryError | Help):
            answer = await lookups.answer(parsed)
            await ack(**answer.as_kwargs(), response_type="ephemeral")
            answered(_command_name(text), _outcome(parsed, answer))
            return
        await ack()
        if isinstance(parsed, Subscribe | ListSubscriptions | Unsubscribe):
            reply = await services.subscriptions.answer(
                parsed, channel_id=command["channel_id"], user_id=command["user_id"],
                now=services.clock(),
            )
            if reply is not None:
                await _respond(respond, reply)
            # No API behind these: a refusal is about what was asked, not an outage.
            answered(_command_name(text), "user_error" if reply and reply.error else "ok")
            return
        answer = await lookups.answer(parsed)
        await _respond(respond, answer)
        answered(_command_name(text), _outcome(parsed, answer))

    @app.action(re.compile(rf"^{actions.ACTION_PAGE}"))
    async def on_page(ack: AsyncAck, action: dict[str, Any], body: dict[str, Any],
                      respond: AsyncRespond) -> None:
        await ack()
        parsed = _button_command(action)
        answer = await lookups.answer(parsed)
        # Paging replaces the person's own (ephemeral) list in place. A list shared in the
        # channel is everyone's: the clicker gets a page of their own instead. An error
        # never replaces the list it was asked from.
        in_place = _is_ephemeral(body) and not answer.error
        await _respond(respond, answer, replace_original=in_place)
        answered("button", _outcome(parsed, answer))

    @app.action(actions.ACTION_SHARE)
    async def on_share(
        ack: AsyncAck, action: dict[str, Any], body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        parsed = _button_command(action)
        user = body.get("user", {}).get("id")
        answer = await lookups.answer(parsed, shared_by=user)
        await _respond(respond, answer, replace_original=False,
                       response_type="ephemeral" if answer.error else "in_channel")
        answered("button", _outcome(parsed, answer))

    @app.action(actions.ACTION_OPEN)
    async def on_open(ack: AsyncAck) -> None:
        # A link button opens its URL in the client; Slack still sends the click.
        await ack()
        answered("button", "ok")

    @app.action(actions.ACTION_RECENT)
    async def on_recent(ack: AsyncAck, action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        parsed = _button_command(action)
        answer = await lookups.answer(parsed)
        # An ephemeral answer beside the notice; the notice itself stays as it is.
        await _respond(respond, answer, replace_original=False)
        answered("button", _outcome(parsed, answer))

    @app.action(actions.ACTION_SUBSCRIBE_ALL)
    async def on_subscribe_all(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        answer = await services.subscriptions.answer(
            Subscribe(everything=True), channel_id=_channel_of(body), user_id=body["user"]["id"],
            now=services.clock(),
        )
        if answer is None:
            await respond(delete_original=True)
        else:
            await _respond(respond, answer, replace_original=True)
        answered("button", "user_error" if answer and answer.error else "ok")

    @app.action(actions.ACTION_ACK)
    async def on_acknowledge(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        channel, ts = _message_of(body)
        user = body["user"]["id"]
        incidents = await services.notices.acknowledge(channel, ts, user, services.clock())
        if not incidents:
            await _respond(respond, _not_tracked(), replace_original=False)
            return
        others = sorted({i.acknowledged_by for i in incidents if i.acknowledged_by not in (None, user)})
        if others and not any(i.acknowledged_by == user for i in incidents):
            await _respond(respond, render_notices.plain_answer(
                "Already acknowledged by " + ", ".join(f"<@{escape(u)}>" for u in others) + "."),
                replace_original=False)

    @app.action(actions.ACTION_MUTE)
    async def on_mute(ack: AsyncAck, action: dict[str, Any], body: dict[str, Any],
                      respond: AsyncRespond) -> None:
        await ack()
        choice = _mute_choice(str((action.get("selected_option") or {}).get("value", "")))
        if choice is None:
            await _respond(respond, render_notices.plain_answer(
                ":warning: That mute choice is not one the bot offers."), replace_original=False)
            return
        incident_id, hours = choice
        channel, ts = _message_of(body)
        mute = await services.notices.mute(channel, ts, body["user"]["id"], hours, services.clock(),
                                           incident_id=incident_id)
        if mute is None:
            await _respond(respond, _not_tracked(), replace_original=False)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], respond: AsyncRespond) -> None:
        reference = current_reference()
        log.error("Unhandled error [ref %s] in %s", reference, _kind(body), exc_info=error)
        answered(_command_name(str(body.get("text", ""))) if "command" in body else "button",
                 "internal_error")
        if respond is not None and respond.response_url:
            await _respond(respond, render.internal_error(reference), replace_original=False)


async def _respond(respond: AsyncRespond, answer: Message, *, response_type: str = "ephemeral",
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


# Metric labels of the sub-commands; anything else typed is counted as asking for help.
_COMMAND_NAMES = {"runs": "runs", "run": "run", "subscribe": "subscribe", "subscriptions": "subscriptions",
                  "subs": "subscriptions", "unsubscribe": "unsubscribe"}


def _command_name(text: str) -> str:
    """The sub-command `text` asks for, as a metric label (bounded: never the text itself)."""
    words = text.split()
    return _COMMAND_NAMES.get(words[0].lower(), "help") if words else "help"


def _outcome(parsed: Command | QueryError, answer: Message) -> str:
    """How a lookup went: a mistyped command is the user's; an error answer to a well-formed
    one came from the CDE API (`bot.lookups.service` turns API errors into such answers).
    """
    if isinstance(parsed, QueryError):
        return "user_error"
    return "api_error" if answer.error else "ok"


def _is_ephemeral(body: dict[str, Any]) -> bool:
    return bool((body.get("container") or {}).get("is_ephemeral", True))


def _mute_choice(value: str) -> tuple[int | None, int] | None:
    """A mute menu's value: `hours` on a notice, `incident:hours` on a digest."""
    incident, _, hours = value.rpartition(":")
    if not hours.isdigit() or int(hours) not in (0, *render_notices.MUTE_HOURS):
        return None
    if incident and not incident.isdigit():
        return None
    return (int(incident) if incident else None, int(hours))


def _channel_of(body: dict[str, Any]) -> str:
    channel = body.get("channel_id") or (body.get("channel") or {}).get("id")
    return str(channel or (body.get("container") or {}).get("channel_id"))


def _message_of(body: dict[str, Any]) -> tuple[str, str]:
    """The channel and ts of the message whose button was clicked."""
    container = body.get("container") or {}
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts", "")
    return _channel_of(body), str(ts)


def _not_tracked() -> Message:
    return render_notices.plain_answer(
        "This notice is no longer tracked (it may be older than the look-back window).")


def _button_command(action: dict[str, Any]) -> ListRuns | ShowRun | QueryError:
    """A button's (or menu option's) value is command text; it is parsed again, as
    untrusted as typed text.
    """
    value = action.get("value") or (action.get("selected_option") or {}).get("value", "")
    parsed = parse(str(value))
    if not isinstance(parsed, ListRuns | ShowRun | QueryError):
        return QueryError("That button carries no lookup; run the command again.")
    return parsed


def _kind(body: dict[str, Any]) -> str:
    """What a request is, for the log: one line however odd the text typed."""
    if "command" in body:
        return f"command {body.get('command')} {str(body.get('text', ''))[:200]!r}"
    actions = body.get("actions") or [{}]
    if body.get("type") == "block_actions":
        return f"click on {str(actions[0].get('action_id', '?'))[:100]!r}"
    return str(body.get("type", "request"))
