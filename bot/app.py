"""The Bolt app and its listeners. Listeners are thin: ack at once, call, render, respond.

Slack shows an error when a command or click is not acknowledged within 3 seconds, so every
listener acks before any API call and answers later through `respond()` (`response_url`).
Answers that need no API (help, a mistyped command) go straight into the ack.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import render
from bot.config import Settings
from bot.logs import request_id
from bot.lookups import Lookups, current_reference, new_reference
from bot.query import COMMAND, Help, ListRuns, QueryError, ShowRun, parse

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


def register(app: AsyncApp, lookups: Lookups) -> None:
    """Attach every listener to `app`."""

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
        answer = await lookups.answer(parsed)
        await respond(**answer.as_kwargs(), response_type="ephemeral")

    @app.action(re.compile(rf"^{render.ACTION_PAGE}"))
    async def on_page(ack: AsyncAck, action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        parsed = _button_command(action)
        answer = await lookups.answer(parsed)
        # Paging replaces the list in place; "recent runs" from a detail view does too.
        await respond(**answer.as_kwargs(), response_type="ephemeral", replace_original=True)

    @app.action(render.ACTION_SHARE)
    async def on_share(
        ack: AsyncAck, action: dict[str, Any], body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        parsed = _button_command(action)
        user = body.get("user", {}).get("id")
        answer = await lookups.answer(parsed, shared_by=user)
        if isinstance(parsed, QueryError):
            await respond(**answer.as_kwargs(), response_type="ephemeral", replace_original=False)
            return
        await respond(**answer.as_kwargs(), response_type="in_channel", replace_original=False)

    @app.action(render.ACTION_OPEN)
    async def on_open(ack: AsyncAck) -> None:
        # A link button opens its URL in the client; Slack still sends the click.
        await ack()

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], respond: AsyncRespond) -> None:
        reference = current_reference()
        log.error("Unhandled error [ref %s] in %s", reference, _kind(body), exc_info=error)
        if respond is not None and respond.response_url:
            await respond(**render.internal_error(reference).as_kwargs(),
                          response_type="ephemeral", replace_original=False)


def _button_command(action: dict[str, Any]) -> ListRuns | ShowRun | QueryError:
    """A button's value is command text; it is parsed again, as untrusted as typed text."""
    parsed = parse(str(action.get("value", "")))
    if isinstance(parsed, Help):
        return QueryError("That button carries no lookup; run the command again.")
    return parsed


def _kind(body: dict[str, Any]) -> str:
    if "command" in body:
        return f"command {body.get('command')}"
    return str(body.get("type", "request"))
