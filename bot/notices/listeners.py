"""Path 2's listeners: the subscription sub-commands of `/cde` and the buttons on notices.

`/cde subscribe`, `/cde subscriptions`, `/cde unsubscribe` and `/cde audit` are routed here
by a Bolt matcher on the parsed text, so each group owns its sub-commands the way it owns
its action ids. Errors are not caught here: `bot.slack.app`'s one error handler answers
them, but for the store's (see `_store_failures`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond

from bot.access import Verdict, refusal
from bot.notices import render as render_notices
from bot.notices.models import Incident, NoticeRef
from bot.notices.subscriptions import Conversation, audit_answer
from bot.query import COMMAND, Audit, ListSubscriptions, Subscribe, Unsubscribe, parse
from bot.slack import actions
from bot.slack.message import Message
from bot.slack.mrkdwn import escape
from bot.slack.respond import (
    answered,
    channel_name_of,
    channel_of,
    command_name,
    reply,
    store_failed,
)
from bot.store.base import MAX_ID, StoreError

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)


def register(app: AsyncApp) -> None:
    """Attach the subscription and notice listeners to `app`."""
    app.command(COMMAND, matchers=[is_subscription_command])(subscription_command)
    app.action(actions.ACTION_SUBSCRIBE_ALL)(subscribe_all)
    app.action(actions.ACTION_ACK)(acknowledge)
    app.action(actions.ACTION_MUTE)(mute)


async def is_subscription_command(command: dict[str, Any]) -> bool:
    """Whether `/cde` was given `subscribe`, `subscriptions`, `unsubscribe` or `audit` (well
    formed)."""
    return isinstance(parse(command.get("text", "")), Subscribe | ListSubscriptions | Unsubscribe | Audit)


async def subscription_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond,
                               context: AsyncBoltContext, services: Services) -> None:
    """Subscribe this channel, list its subscriptions, remove them, or show the audit trail."""
    await ack()
    text = command.get("text", "")
    parsed = parse(text)
    assert isinstance(parsed, Subscribe | ListSubscriptions | Unsubscribe | Audit)  # routed by the matcher
    async with _store_failures(respond, services, command_name(text)):
        if isinstance(parsed, Audit):
            shown = await _audit(parsed, command, respond, services)
            answered(services, command_name(text), "ok" if shown else "user_error")
            return
        if not isinstance(parsed, ListSubscriptions):
            refused = await _refused(services, command.get("user_id"),
                                     "subscribe" if isinstance(parsed, Subscribe) else "unsubscribe")
            if refused is not None:
                await reply(respond, refused)
                answered(services, command_name(text), "user_error")
                return
        answer = await services.subscriptions.answer(
            parsed, channel_id=command["channel_id"], user_id=command["user_id"],
            now=services.clock(), where=_conversation(command, context),
        )
        if answer is not None:
            await reply(respond, answer)
        # No API behind these: a refusal is about what was asked, not an outage.
        answered(services, command_name(text), "user_error" if answer and answer.error else "ok")


async def subscribe_all(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                        context: AsyncBoltContext, services: Services) -> None:
    """The confirmation button of `/cde subscribe` without filters: follow everything."""
    await ack()
    refused = await _refused(services, body["user"]["id"], "subscribe")
    if refused is not None:
        await reply(respond, refused, replace_original=True)
        answered(services, "button", "user_error")
        return
    async with _store_failures(respond, services, "button"):
        answer = await services.subscriptions.answer(
            Subscribe(everything=True), channel_id=channel_of(body), user_id=body["user"]["id"],
            now=services.clock(), where=_conversation(body, context),
        )
        if answer is None:
            await respond(delete_original=True)
        else:
            await reply(respond, answer, replace_original=True)
        answered(services, "button", "user_error" if answer and answer.error else "ok")


async def acknowledge(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond,
                      services: Services) -> None:
    """Acknowledge: the clicker takes every open incident of the notice."""
    await ack()
    user = body["user"]["id"]
    async with _store_failures(respond, services, "button"):
        taken = await services.oncall.acknowledge(_notice_of(body), user, services.clock())
        incidents = taken.incidents
        if not incidents:
            await reply(respond, _not_tracked(), replace_original=False)
            return
        if not taken.redrawn:
            await reply(respond, _not_redrawn("Your acknowledgement is saved"), replace_original=False)
            return
        others = _taken_by_others(incidents, user)
        if others is not None:
            await reply(respond, others, replace_original=False)


async def mute(ack: AsyncAck, action: dict[str, Any], body: dict[str, Any], respond: AsyncRespond,
               services: Services) -> None:
    """The mute menu of a notice (or of one pair on a digest)."""
    await ack()
    value = str((action.get("selected_option") or {}).get("value", ""))
    choice = _mute_choice(value)
    if choice is None:
        # The bot draws every menu value itself: another one was forged or damaged.
        log.warning("refused a mute choice the bot never offers: %r", value[:100])
        await reply(respond, render_notices.plain_answer(
            ":warning: That mute choice is not one the bot offers."), replace_original=False)
        return
    incident_id, hours = choice
    refused = await _refused(services, body["user"]["id"], "mute or unmute notices")
    if refused is not None:
        await reply(respond, refused, replace_original=False)
        return
    async with _store_failures(respond, services, "button"):
        muted = await services.oncall.mute(_notice_of(body), body["user"]["id"], hours,
                                            services.clock(), incident_id=incident_id)
        if muted is None:
            await reply(respond, _not_tracked(), replace_original=False)
        elif not muted.redrawn:
            await reply(respond, _not_redrawn("The mute is set" if hours else "The mute is lifted"),
                        replace_original=False)


@contextlib.asynccontextmanager
async def _store_failures(respond: AsyncRespond, services: Services,
                          command: str) -> AsyncIterator[None]:
    """Answer a store failure here, after the ack, instead of raising it to Bolt: its runner
    loses the ack of a listener that fails within 10 ms of acking (a broken database fails
    that fast), and Slack then gets a 404 after 3 s instead of the answer.
    """
    try:
        yield
    except StoreError as exc:
        await store_failed(exc, respond, services, command)


async def _audit(parsed: Audit, command: dict[str, Any], respond: AsyncRespond,
                 services: Services) -> bool:
    """With CDE_ADMINS set, the audit trail is the admins', of every channel; without, anyone
    may see it, of this channel only (other channels may be private). Whether it was shown."""
    admins_only = services.access.admins_only
    if admins_only:
        refused = await _refused(services, command.get("user_id"), "see the audit trail")
        if refused is not None:
            await reply(respond, refused)
            return False
    answer = await audit_answer(services.subscriptions.store, parsed, command["channel_id"],
                                every_channel=admins_only)
    await reply(respond, answer)
    return True


async def _refused(services: Services, user: str | None, what: str) -> Message | None:
    """The refusal when `CDE_ADMINS` does not include `user`; None when they may."""
    verdict = await services.access.may_change(user)
    if verdict is Verdict.ALLOWED:
        return None
    return render_notices.plain_answer(refusal(services.access.policy, verdict, what), error=True)


def _conversation(body: dict[str, Any], context: AsyncBoltContext) -> Conversation:
    """The kind of conversation and the bot's user id (Bolt's `auth.test` answer)."""
    return Conversation(channel_name_of(body), context.bot_user_id)


def _taken_by_others(incidents: list[Incident], user: str) -> Message | None:
    """Who already has the notice, when it is not `user` (else nothing to say)."""
    others = sorted({who for i in incidents if (who := i.acknowledged_by) not in (None, user) and who})
    if not others or any(i.acknowledged_by == user for i in incidents):
        return None
    return render_notices.plain_answer(
        "Already acknowledged by " + ", ".join(f"<@{escape(u)}>" for u in others) + ".")


def _mute_choice(value: str) -> tuple[int | None, int] | None:
    """A mute menu's value: `hours` on a notice, `incident:hours` on a digest; None for a
    value the bot never draws (other digits than ASCII, an incident id no store can hold).
    """
    incident, _, hours = value.rpartition(":")
    offered = {str(h) for h in (0, *render_notices.MUTE_HOURS)}
    if hours not in offered:
        return None
    if not incident:
        return (None, int(hours))
    if not (incident.isascii() and incident.isdigit()) or len(incident) > len(str(MAX_ID)) \
            or int(incident) > MAX_ID:
        return None
    return (int(incident), int(hours))


def _notice_of(body: dict[str, Any]) -> NoticeRef:
    """The message whose button was clicked."""
    container = body.get("container") or {}
    ts = container.get("message_ts") or (body.get("message") or {}).get("ts", "")
    return NoticeRef(channel_of(body), str(ts))


def _not_redrawn(done: str) -> Message:
    """What the clicker is told when the change is stored but the notice could not be
    updated to show it (chat.update failed): the next redraw shows it."""
    return render_notices.plain_answer(
        f":warning: {done}, but Slack did not let me update the notice, so it does not show "
        "it yet; it will the next time the notice is updated.", error=True)


def _not_tracked() -> Message:
    return render_notices.plain_answer(
        "This notice is no longer tracked (it may be older than the look-back window).")
