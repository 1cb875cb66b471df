"""What every listener shares: how it answers through the `response_url`, and how an
answer is logged and counted.

Every answer through the `response_url` is redacted of the configured secrets: the
`redact_answers` middleware gives each request a `RedactingRespond` in place of Bolt's
`respond`, so a listener cannot send a secret there even by calling `respond()` itself.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from slack_bolt.async_app import AsyncBoltContext, AsyncRespond, AsyncSay
from slack_sdk.models.attachments import Attachment
from slack_sdk.models.blocks import Block
from slack_sdk.webhook import WebhookResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient
from typing_extensions import override

from bot.logs import current_reference
from bot.query import canonical_subcommand
from bot.redact import Redactor
from bot.slack.client import redacting
from bot.slack.message import Message, number_out_of_range, store_unavailable
from bot.store.base import MAX_ID, IdOutOfRangeError, StoreError

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)
_received: contextvars.ContextVar[float] = contextvars.ContextVar("received", default=0.0)


class RedactingRespond(AsyncRespond):
    """Bolt's `respond()`, with every string of the answer (text, blocks, attachments,
    metadata) redacted before it is sent to the `response_url`, over `session` when one is
    given (Bolt's own makes a session, and a connection, per answer).
    """

    def __init__(self, redactor: Redactor, *, response_url: str | None,
                 session: aiohttp.ClientSession | None = None, **kwargs: Any) -> None:
        super().__init__(response_url=response_url, **kwargs)
        self.redactor = redactor
        self.session = session

    @override
    async def __call__(  # the same parameters as Bolt's, each redacted
        self, text: str | dict[Any, Any] = "", blocks: Sequence[dict[Any, Any] | Block] | None = None,
        attachments: Sequence[dict[Any, Any] | Attachment] | None = None,
        response_type: str | None = None, replace_original: bool | None = None,
        delete_original: bool | None = None, unfurl_links: bool | None = None,
        unfurl_media: bool | None = None, thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WebhookResponse:
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        clean = self.redactor.value
        # As Bolt builds it: `text` may be the whole message; empty lists of blocks or
        # attachments, and unset fields, are left out; `text` is always there.
        fields: dict[str, Any] = dict(text) if isinstance(text, dict) else {
            "text": text, "blocks": blocks, "attachments": attachments,
            "response_type": response_type, "replace_original": replace_original,
            "delete_original": delete_original, "unfurl_links": unfurl_links,
            "unfurl_media": unfurl_media, "thread_ts": thread_ts, "metadata": metadata,
        }
        for key in ("blocks", "attachments"):
            fields[key] = _plain(fields.get(key)) or None
        message = {"text": fields.pop("text", "")}
        message.update((key, value) for key, value in fields.items() if value is not None)
        client = AsyncWebhookClient(url=self.response_url, proxy=self.proxy, ssl=self.ssl,
                                    session=self.session)
        return await client.send_dict(clean(message))


def _plain(items: Sequence[dict[Any, Any] | Block | Attachment] | None) -> list[Any] | None:
    """Block Kit objects as the dicts they stand for, so that their strings can be redacted."""
    if items is None:
        return None
    return [item if isinstance(item, dict) else item.to_dict() for item in items]


def redact_answers(redactor: Redactor) -> Callable[[AsyncBoltContext, Callable[[], Awaitable[None]]],
                                                   Awaitable[None]]:
    """Middleware: the request's `client` (and `say()`, built on it) and `respond` redact
    what they send with `redactor`, the app's own (`bot.redact.for_settings`).

    Not the redactor of `context.client`: that is a plain client Bolt makes per request,
    which redacts nothing (see `bot.slack.client.redacting`).
    """

    async def redact(context: AsyncBoltContext, next: Callable[[], Awaitable[None]]) -> None:
        client = redacting(context.client, redactor)
        context["client"] = client
        # `say()` may be made already, on the plain client: it sends through ours instead.
        say = context.get("say")
        if isinstance(say, AsyncSay):
            say.client = client
        if context.response_url is not None:
            context["respond"] = RedactingRespond(redactor, response_url=context.response_url,
                                                  session=client.session, proxy=client.proxy,
                                                  ssl=client.ssl)
        await next()

    return redact



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


async def store_failed(error: StoreError, respond: AsyncRespond | None, services: Services | None,
                       command: str) -> None:
    """Tell the person that the bot's database failed them, and log why: a database that is
    locked, gone or broken is an outage, not a bug, so its reason is logged without a
    traceback, and the answer says to try again (and where admins look) instead of "something
    went wrong".
    """
    reference = current_reference()
    out_of_range = isinstance(error, IdOutOfRangeError)
    log.error("The store failed [ref %s] answering %s: %s", reference, command, error)
    answered(services, command, "user_error" if out_of_range else "store_error")
    if respond is not None and respond.response_url:
        answer = number_out_of_range(MAX_ID, reference) if out_of_range else store_unavailable(reference)
        await reply(respond, answer, replace_original=False)


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
