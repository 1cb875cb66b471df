"""The Bolt app and its listeners. Listeners are thin: ack at once, call, render, respond.

Slack shows an error when a command or click is not acknowledged within 3 seconds, so every
listener acks before any API call and answers later through `respond()` (`response_url`).
Answers that need no API (help, a mistyped command) go straight into the ack.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import render, render_notices
from bot.config import Settings
from bot.logs import request_id
from bot.lookups import Lookups, current_reference, new_reference
from bot.notices import Notices
from bot.query import (
    COMMAND,
    Help,
    ListRuns,
    ListSubscriptions,
    QueryError,
    ShowRun,
    Subscribe,
    Unsubscribe,
    parse,
)
from bot.render import Message
from bot.subscribe import Subscriptions

log = logging.getLogger(__name__)


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
    notices: Notices
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def register(app: AsyncApp, services: Services) -> None:
    """Attach every listener to `app`."""
    lookups = services.lookups

    @app.middleware
    async def tag_request(body: dict[str, Any], next: Any) -> None:
        request_id.set(new_reference())
        await next()

    @app.command(COMMAND)
    async def on_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        parsed = parse(command.get("text", ""))
        if isinstance(parsed, QueryError | Help):
            await ack(**(await lookups.answer(parsed)).as_kwargs(), response_type="ephemeral")
            return
        await ack()
        if isinstance(parsed, Subscribe | ListSubscriptions | Unsubscribe):
            answer = await services.subscriptions.answer(
                parsed, channel_id=command["channel_id"], user_id=command["user_id"],
                now=services.clock(),
            )
            if answer is not None:
                await _respond(respond, answer)
            return
        await _respond(respond, await lookups.answer(parsed))

    @app.action(re.compile(rf"^{render.ACTION_PAGE}"))
    async def on_page(ack: AsyncAck, action: dict[str, Any], body: dict[str, Any],
                      respond: AsyncRespond) -> None:
        await ack()
        answer = await lookups.answer(_button_command(action))
        # Paging replaces the person's own (ephemeral) list in place. A list shared in the
        # channel is everyone's: the clicker gets a page of their own instead. An error
        # never replaces the list it was asked from.
        in_place = _is_ephemeral(body) and not answer.error
        await _respond(respond, answer, replace_original=in_place)

    @app.action(render.ACTION_SHARE)
    async def on_share(
        ack: AsyncAck, action: dict[str, Any], body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        parsed = _button_command(action)
        user = body.get("user", {}).get("id")
        answer = await lookups.answer(parsed, shared_by=user)
        await _respond(respond, answer, replace_original=False,
                       response_type="ephemeral" if answer.error else "in_channel")

    @app.action(render.ACTION_OPEN)
    async def on_open(ack: AsyncAck) -> None:
        # A link button opens its URL in the client; Slack still sends the click.
        await ack()

    @app.action(render_notices.ACTION_RECENT)
    async def on_recent(ack: AsyncAck, action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        answer = await lookups.answer(_button_command(action))
        # An ephemeral answer beside the notice; the notice itself stays as it is.
        await _respond(respond, answer, replace_original=False)

    @app.action(render_notices.ACTION_SUBSCRIBE_ALL)
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

    @app.action(render_notices.ACTION_ACK)
    async def on_acknowledge(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        channel, ts = _message_of(body)
        changed = await services.notices.acknowledge(channel, ts, body["user"]["id"], services.clock())
        if not changed:
            await _respond(respond, _not_tracked(), replace_original=False)

    @app.action(render_notices.ACTION_MUTE)
    async def on_mute(ack: AsyncAck, action: dict[str, Any], body: dict[str, Any],
                      respond: AsyncRespond) -> None:
        await ack()
        value = str((action.get("selected_option") or {}).get("value", ""))
        if not value.isdigit() or int(value) not in (0, *render_notices.MUTE_HOURS):
            await _respond(respond, render_notices.plain_answer(
                ":warning: That mute choice is not one the bot offers."), replace_original=False)
            return
        channel, ts = _message_of(body)
        mute = await services.notices.mute(channel, ts, body["user"]["id"], int(value),
                                           services.clock())
        if mute is None:
            await _respond(respond, _not_tracked(), replace_original=False)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], respond: AsyncRespond) -> None:
        reference = current_reference()
        log.error("Unhandled error [ref %s] in %s", reference, _kind(body), exc_info=error)
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


def _is_ephemeral(body: dict[str, Any]) -> bool:
    return bool((body.get("container") or {}).get("is_ephemeral", True))


def _channel_of(body: dict[str, Any]) -> str:
    return str((body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id"))


def _message_of(body: dict[str, Any]) -> tuple[str, str]:
    """The channel and ts of the message whose button was clicked."""
    container = body.get("container") or {}
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts", "")
    return _channel_of(body), str(ts)


def _not_tracked() -> Message:
    return render_notices.plain_answer(
        "This notice is no longer tracked (it may be older than the look-back window).")


def _button_command(action: dict[str, Any]) -> ListRuns | ShowRun | QueryError:
    """A button's value is command text; it is parsed again, as untrusted as typed text."""
    parsed = parse(str(action.get("value", "")))
    if not isinstance(parsed, ListRuns | ShowRun | QueryError):
        return QueryError("That button carries no lookup; run the command again.")
    return parsed


def _kind(body: dict[str, Any]) -> str:
    if "command" in body:
        return f"command {body.get('command')}"
    return str(body.get("type", "request"))
