"""The Bolt app: its middleware, its one error handler, and `register()`, which attaches
each group's listeners (`bot.lookups.listeners`, `bot.notices.listeners`).

Slack shows an error when a command or click is not acknowledged within 3 seconds, so every
listener acks before any API call and answers later through `respond()` (`response_url`).
Listeners do not catch errors: whatever one raises reaches `on_error`, which logs it with
its traceback and tells the person something short, with a reference to find it in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext, AsyncRespond
from slack_bolt.logger import get_bolt_logger
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.middleware.request_verification import RequestVerification
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.logs import current_reference, new_reference, request_id
from bot.lookups import listeners as lookup_listeners
from bot.notices import listeners as notice_listeners
from bot.redact import for_settings
from bot.services import Services
from bot.slack import enabled
from bot.slack.gate import BoltLogRedaction
from bot.slack.message import internal_error
from bot.slack.respond import (
    answered,
    channel_of,
    command_name,
    mark_received,
    redact_answers,
    reply,
    store_failed,
)
from bot.store.base import StoreError

__all__ = ["build_app", "register"]

log = logging.getLogger(__name__)


def build_app(settings: Settings, client: AsyncWebClient) -> AsyncApp:
    """An AsyncApp for one workspace, with the request middleware and the error handler.
    Request signatures are always verified in HTTP mode; Bolt skips the check only for
    Socket Mode envelopes, which arrive over our own authenticated WebSocket.
    """
    secret = settings.slack_signing_secret
    # The logger Bolt's app warns on (adding a filter already there is a no-op).
    get_bolt_logger(AsyncApp).addFilter(_TOKEN_UNUSED)
    # Bolt logs request bodies (Slack's verification token, `response_url`) on these two.
    for logger in (get_bolt_logger(AsyncApp), get_bolt_logger(RequestVerification)):
        logger.addFilter(_REDACTION)
    app = AsyncApp(
        # Named, because without a name Bolt calls `inspect.stack()` to name the app after
        # the caller's file: it reads the source of every frame on the stack, some 50 ms of
        # start-up for a name used only in Bolt's own log lines.
        name="cde-bot",
        client=client,
        signing_secret=secret.get_secret_value() if secret else "",
        request_verification_enabled=True,
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )
    app.middleware(tag_request)
    app.middleware(redact_answers(for_settings(settings)))
    app.error(on_error)
    return app


class _TokenUnusedFilter(logging.Filter):
    """Drops Bolt's warning that a token goes unused when a client is given as well.

    Bolt reads SLACK_BOT_TOKEN from the environment by itself and, given a client too, warns
    on every start that the token goes unused; the client carries that very token (from the
    settings). Compared with Bolt's own message, so only that warning is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_TOKEN_UNUSED = _TokenUnusedFilter()
_REDACTION = BoltLogRedaction()


def register(app: AsyncApp, services: Services) -> None:
    """Give every listener `services` (as the context key Bolt injects by name) and attach
    each group's listeners.
    """

    async def provide_services(context: AsyncBoltContext, next: Callable[[], Awaitable[None]]) -> None:
        context["services"] = services
        await next()

    app.middleware(provide_services)
    # First: outside the allowed channels nothing else may answer.
    enabled.register(app)
    lookup_listeners.register(app)
    notice_listeners.register(app)


async def tag_request(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> None:
    """Give the request an id, start its clock and log what arrived. Every log line of the
    request carries the id; the id is the reference users see.
    """
    request_id.set(new_reference())
    mark_received()
    user = body.get("user_id") or (body.get("user") or {}).get("id")
    log.info("received %s from %s in %s", _kind(body), user, channel_of(body))
    await next()


async def on_error(error: Exception, body: dict[str, Any], respond: AsyncRespond | None,
                   context: AsyncBoltContext) -> None:
    """The one error handler: the traceback in the log, a short answer with its reference;
    a store failure is answered as what it is (see `store_failed`)."""
    command = command_name(str(body.get("text", ""))) if "command" in body else "button"
    if isinstance(error, StoreError):
        await store_failed(error, respond, context.get("services"), command)
        return
    reference = current_reference()
    log.error("Unhandled error [ref %s] in %s", reference, _kind(body), exc_info=error)
    answered(context.get("services"), command, "internal_error")
    if respond is not None and respond.response_url:
        await reply(respond, internal_error(reference), replace_original=False)


def _kind(body: dict[str, Any]) -> str:
    """What a request is, for the log: one line however odd the text typed."""
    if "command" in body:
        return f"command {body.get('command')} {str(body.get('text', ''))[:200]!r}"
    actions = body.get("actions") or [{}]
    if body.get("type") == "block_actions":
        return f"click on {str(actions[0].get('action_id', '?'))[:100]!r}"
    return str(body.get("type", "request"))
