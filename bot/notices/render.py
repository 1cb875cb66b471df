"""Pure builders for failure notices, digests, thread replies and subscription answers.

A notice is drawn from its incident alone (plus an active mute), so that any click or
later failure can draw it again with `chat.update` exactly as it would be drawn anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.cde.models import Run
from bot.lookups.runs import LinkBuilder, connector_text, named, no_links, recent_runs_button
from bot.notices.models import (
    ACKNOWLEDGED,
    MUTED,
    SUBSCRIBED,
    TAKEN_BACK,
    UNMUTED,
    UNSUBSCRIBED,
    AuditEntry,
    Incident,
    Mute,
    NoticeFilter,
    Subscription,
)
from bot.notices.triage import incident_run
from bot.slack.actions import ACTION_ACK, ACTION_MUTE, ACTION_OPEN, ACTION_RECENT, ACTION_SUBSCRIBE_ALL
from bot.slack.blocks import (
    MAX_OPTION_VALUE,
    Block,
    Element,
    actions,
    button,
    field_section,
    option,
    static_select,
)
from bot.slack.message import MAX_BLOCKS, Message, context, fields, message, pack_lines, section
from bot.slack.mrkdwn import code, date, duration, escape, plural

MUTE_HOURS = (1, 4, 24)
DIGEST_GROUP_LINES = 15
DIGEST_SECTIONS_PER_REPLY = 5
DIGEST_MUTE_HOURS = 4
MAX_OPTIONS = 100


def ordinal(number: int) -> str:
    teens = 10 <= number % 100 <= 20
    return f"{number}{'th' if teens else {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th')}"


def where(run: Run) -> str:
    return f"{named(run.site_name, run.site_id)}"


def what(run: Run) -> str:
    return f"connector {connector_text(run)}"


def _plain_what(run: Run) -> str:
    version = f" v{run.connector_version}" if run.connector_version else ""
    site = run.site_name or "unknown site"
    site += f" ({run.site_id})" if run.site_id is not None else ""
    return f"connector {run.connector_id or 'unknown'}{version} on {site}"


# ---------------------------------------------------------------------------------------
# Notices


def notice(incident: Incident, *, mute: Mute | None = None, links: LinkBuilder = no_links) -> Message:
    """The parent message of one incident: what failed, where, and what is being done."""
    run = incident_run(incident)
    if incident.resolved_by_run:
        headline = f":large_green_circle: *Recovered:* {what(run)} on {where(run)}"
    elif incident.resolved_at:
        headline = f":white_circle: *Closed:* {what(run)} on {where(run)}"
    else:
        headline = f":red_circle: *Failed:* {what(run)} on {where(run)}"
    blocks: list[Block] = [
        section(headline),
        section_fields(run),
        context(*_status(incident, mute)),
    ]
    buttons = _notice_buttons(incident, run, links, mute=mute)
    if buttons:
        blocks.append(actions(buttons, block_id="incident_actions"))
    state = ("Recovered" if incident.resolved_by_run else "Closed" if incident.resolved_at
             else "Failed")
    exit_code = f", exit code {run.exit_code}" if run.exit_code is not None else ""
    count = f" ({ordinal(incident.failures)} time)" if incident.failures > 1 else ""
    return message(f"{state}: {_plain_what(run)}{exit_code}{count}", blocks)


def section_fields(run: Run) -> Block:
    return field_section(fields(
        ("Project", named(run.project_name, run.project_id)),
        ("Account", named(run.account_name, run.account_id)),
        ("Exit code", escape(run.exit_code) if run.exit_code is not None else "—"),
        ("Duration", duration(run.duration)),
        ("Started", date(run.started_at)),
        ("Finished", date(run.finished_at)),
        ("Run", code(run.id)),
        ("Process", code(run.process_id) if run.process_id else "—"),
    ))


def _status(incident: Incident, mute: Mute | None) -> list[str]:
    parts = []
    if incident.failures > 1:
        span = incident.last_failed_at - incident.first_failed_at
        text = f"Failed {plural(incident.failures, 'time')} in {duration(span)}"
    else:
        text = f"Failed {date(incident.last_failed_at)}"
    if incident.muted_failures:
        text += f" ({incident.muted_failures} while muted)"
    parts.append(text)
    if incident.acknowledged_by:
        parts.append(f":eyes: <@{escape(incident.acknowledged_by)}> is on it "
                     f"(since {date(incident.acknowledged_at)})")
    if mute is not None and incident.is_open:
        parts.append(f":mute: Muted by <@{escape(mute.muted_by)}> until {date(mute.until)}")
    if incident.resolved_by_run:
        parts.append(f"Recovered {date(incident.resolved_at)}: run {code(incident.resolved_by_run)} "
                     "finished")
    elif incident.resolved_at:
        parts.append("Closed: no failure for a whole look-back window")
    return [" · ".join(parts)]


def _notice_buttons(incident: Incident, run: Run, links: LinkBuilder, *,
                    mute: Mute | None) -> list[Element]:
    buttons: list[Element] = []
    if incident.is_open:
        if not incident.acknowledged_by:
            # Clicks name their message (channel and ts); the buttons carry no ids.
            buttons.append(button("Acknowledge", ACTION_ACK, value="ack", style="primary"))
        buttons.append(static_select(
            "Unmute…" if mute else "Mute…", ACTION_MUTE,
            [option(f"Mute for {plural(hours, 'hour')}", str(hours)) for hours in MUTE_HOURS]
            + ([option("Unmute", "0")] if mute else []),
        ))
    recent = recent_runs_button(run, "Recent runs", ACTION_RECENT)
    if recent is not None:
        buttons.append(recent)
    url = links(run)
    if url:
        buttons.append(button("Open in CDE", ACTION_OPEN, url=url))
    return buttons


def repeat_reply(incident: Incident, runs: Sequence[Run]) -> Message:
    """The thread reply for more failures of an open incident (all of one poll's at once)."""
    span = duration(incident.last_failed_at - incident.first_failed_at)
    last = runs[-1]
    about = f" — {what(last)} on {where(last)}" if incident.in_digest else ""
    if len(runs) == 1:
        head = f":repeat: *Failed again*{about} — {ordinal(incident.failures)} time in {span}"
        fallback = f"Failed again ({ordinal(incident.failures)} time): {_plain_what(last)}"
    else:
        head = (f":repeat: *Failed again, {len(runs)} more times*{about} — "
                f"{incident.failures} failures in {span}")
        fallback = f"Failed again {len(runs)} more times: {_plain_what(last)}"
    lines = [
        f"Run {code(run.id)} · exit code "
        f"{escape(run.exit_code) if run.exit_code is not None else '—'} · finished {date(run.finished_at)}"
        for run in runs
    ]
    texts = pack_lines([head, *lines])
    blocks: list[Block] = [section(text) for text in texts[: MAX_BLOCKS - 1]]
    if len(texts) > MAX_BLOCKS - 1:
        blocks.append(context("…more runs than fit in one message; `/cde runs` lists them all."))
    return message(fallback, blocks)


def recovered_reply(incident: Incident, run: Run) -> Message:
    failed = plural(incident.failures, "failure")
    about = f" — {what(run)} on {where(run)}" if incident.in_digest else ""
    text = (f":large_green_circle: *Recovered*{about}: run {code(run.id)} finished "
            f"{date(run.finished_at)} after {failed}.")
    return message(f"Recovered: {_plain_what(run)}", [section(text)])


def muted_notice_reply(hours: int, user: str, until: datetime) -> Message:
    if hours == 0:
        return message("Unmuted", [section(f":bell: <@{escape(user)}> unmuted this connector on this site.")])
    text = (f":mute: <@{escape(user)}> muted this connector on this site for "
            f"{plural(hours, 'hour')} (until {date(until)}). Failures meanwhile are counted, not posted.")
    return message(f"Muted for {plural(hours, 'hour')}", [section(text)])


def mute_ended(held_back: int) -> Message:
    counted = (f"{plural(held_back, 'failure was', 'failures were')} counted while it lasted"
               if held_back else "nothing failed while it lasted")
    return message(f"Mute ended: {counted}", [section(f":bell: *Mute ended*: {counted}.")])


# ---------------------------------------------------------------------------------------
# Digests


def digest(incidents: Sequence[Incident]) -> Message:
    """One message for a burst: how many failed, grouped by site and connector."""
    lines = []
    for incident in incidents[:DIGEST_GROUP_LINES]:
        run = incident_run(incident)
        state = (":large_green_circle: recovered" if incident.resolved_by_run
                 else ":white_circle: closed" if incident.resolved_at
                 else f":red_circle: {plural(incident.failures, 'failure')}")
        ack = f" · :eyes: <@{escape(incident.acknowledged_by)}>" if incident.acknowledged_by else ""
        lines.append(f"• {where(run)} · {what(run)} — {state}{ack}")
    failed = sum(i.failures for i in incidents)
    pairs = plural(len(incidents), "site and connector pair", "site and connector pairs")
    blocks: list[Block] = [section(f":rotating_light: *{plural(failed, 'run')} failed* across {pairs}")]
    blocks += [section(text) for text in pack_lines(lines)[:3]]
    notes = []
    if len(incidents) > DIGEST_GROUP_LINES:
        notes.append(f"…and {plural(len(incidents) - DIGEST_GROUP_LINES, 'more pair')}.")
    notes.append("Each failure is listed in the thread; repeats and recoveries follow there.")
    blocks.append(context(" ".join(notes)))
    controls: list[Element] = []
    open_ones = [i for i in incidents if i.is_open]
    if any(not i.acknowledged_by for i in open_ones):
        controls.append(button("Acknowledge all", ACTION_ACK, value="ack", style="primary"))
    mute_options = [option(_pair_label(i), f"{i.id}:{DIGEST_MUTE_HOURS}") for i in open_ones if i.id]
    if mute_options:
        controls.append(static_select(f"Mute a pair for {DIGEST_MUTE_HOURS} h…", ACTION_MUTE,
                                      mute_options[:MAX_OPTIONS]))
    recent = [(i, recent_runs_button(incident_run(i), "Recent runs", ACTION_RECENT)) for i in incidents]
    recent_options = [option(_pair_label(i), found["value"]) for i, found in recent
                      if found is not None and len(found.get("value", "")) <= MAX_OPTION_VALUE]
    if recent_options:
        controls.append(static_select("Recent runs of…", ACTION_RECENT, recent_options[:MAX_OPTIONS]))
    if controls:
        blocks.append(actions(controls, block_id="digest_actions"))
    return message(f"{plural(failed, 'run')} failed across {pairs}", blocks)


def _pair_label(incident: Incident) -> str:
    run = incident_run(incident)
    site = run.site_name or f"site {run.site_id}"
    return f"{site} · {(run.connector_id or 'unknown')[:13]}… v{run.connector_version or '?'}"


def digest_list(runs: Sequence[Run]) -> list[Message]:
    """Thread replies listing every failure of a digest, packed so none is cut off."""
    lines = [
        f"• {code(run.id)} · {where(run)} · {what(run)} · exit code "
        f"{escape(run.exit_code) if run.exit_code is not None else '—'} · {date(run.finished_at)}"
        for run in runs
    ]
    texts = pack_lines(lines)
    replies = []
    for start in range(0, len(texts), DIGEST_SECTIONS_PER_REPLY):
        chunk = texts[start: start + DIGEST_SECTIONS_PER_REPLY]
        shown = sum(text.count("\n") + 1 for text in chunk)
        replies.append(message(f"{plural(shown, 'failed run')} of {len(runs)}",
                               [section(text) for text in chunk]))
    return replies


# ---------------------------------------------------------------------------------------
# Subscriptions and operations


def describe(notice_filter: NoticeFilter) -> str:
    """A subscription filter in words (mrkdwn, escaped)."""
    if notice_filter.is_empty:
        return "every failed run the bot's CDE account can see"
    parts = ["failed runs"]
    if notice_filter.connector_id:
        parts.append(f"of connector {code(notice_filter.connector_id)}")
    if notice_filter.connector_version:
        parts.append(f"version {escape(notice_filter.connector_version)}")
    if notice_filter.site_id is not None:
        parts.append(f"on site {escape(notice_filter.site_id)}")
    if notice_filter.project_id is not None:
        parts.append(f"in project {escape(notice_filter.project_id)}")
    if notice_filter.account_id is not None:
        parts.append(f"for account {escape(notice_filter.account_id)}")
    if notice_filter.process_id:
        parts.append(f"of process {code(notice_filter.process_id)}")
    return " ".join(parts)


def subscribed(subscription: Subscription) -> Message:
    text = (f":bell: <@{escape(subscription.created_by)}> subscribed this channel to "
            f"{describe(subscription.notice_filter)}. "
            f"(`/cde subscriptions` lists them; `/cde unsubscribe {subscription.id}` stops this one.)")
    return message(f"Subscribed this channel (#{subscription.id})", [section(text)])


def confirm_subscribe_all() -> Message:
    text = (":warning: With no filter, this channel will be told about *every* failed run the "
            "bot's CDE account can see. Narrow it with filters such as `site:1001` or "
            f"{escape('`connector:<uuid>`')}, or confirm:")
    return message("Subscribe this channel to every failed run?", [
        section(text),
        actions([
            button("Subscribe to all failures", ACTION_SUBSCRIBE_ALL, value="subscribe all",
                   style="danger"),
        ], block_id="subscribe_confirm"),
    ])


# How many of a channel's latest changes `/cde subscriptions` shows under the list.
RECENT_CHANGES = 5


def subscription_list(subscriptions: Sequence[Subscription],
                      recent: Sequence[AuditEntry] = ()) -> Message:
    """A channel's subscriptions, and under them its `recent` changes (newest first)."""
    changes: list[Block] = []
    if recent:
        changes = [section("*Recent changes here:*\n" + "\n".join(audit_line(e) for e in recent)),
                   context(escape("`/cde audit` shows more."))]
    if not subscriptions:
        return message("This channel has no subscriptions", [section(
            "This channel follows no failures yet. Start with `/cde subscribe site:1001` "
            "(filters: site, connector, version, process, project, account)."), *changes])
    lines = [
        f"`{s.id}` · {describe(s.notice_filter)} · by <@{escape(s.created_by)}> {date(s.created_at)}"
        for s in subscriptions
    ]
    texts = pack_lines(lines)
    blocks: list[Block] = [
        section(f"*This channel follows {plural(len(subscriptions), 'subscription')}:*"),
        *(section(text) for text in texts[: MAX_BLOCKS - 3]),
    ]
    if len(texts) > MAX_BLOCKS - 3 - len(changes):
        blocks = blocks[: MAX_BLOCKS - 2 - len(changes)]
        blocks.append(context("…more than fit in one message; unsubscribe some to see the rest."))
    blocks.append(context(escape("`/cde unsubscribe <id>` stops one; `/cde unsubscribe all` stops all.")))
    blocks += changes
    return message(f"This channel has {plural(len(subscriptions), 'subscription')}", blocks)


def audit_trail(entries: Sequence[AuditEntry], *, every_channel: bool) -> Message:
    """`/cde audit`: the latest changes, newest first; with the channel of each when they
    are every channel's."""
    where = "in every channel" if every_channel else "in this channel"
    if not entries:
        return message(f"No changes {where} yet", [section(
            f"No subscription, mute or acknowledgement has been changed {where} yet.")])
    lines = [audit_line(e, with_channel=every_channel) for e in entries]
    texts = pack_lines(lines)
    blocks: list[Block] = [section(f"*The last {plural(len(entries), 'change')} {where}, newest first:*"),
                           *(section(text) for text in texts[: MAX_BLOCKS - 2])]
    if len(texts) > MAX_BLOCKS - 2:
        blocks.append(context("…more than fit in one message; ask for fewer."))
    return message(f"The last {plural(len(entries), 'change')} {where}", blocks)


def audit_line(entry: AuditEntry, *, with_channel: bool = False) -> str:
    """One change in words (mrkdwn): every stored string is escaped."""
    line = f"{date(entry.at)} · <@{escape(entry.user_id)}> {_change_words(entry)}"
    if with_channel:
        line += f" in <#{escape(entry.channel_id)}>"
    return line


def _change_words(entry: AuditEntry) -> str:
    target, details = escape(entry.target), entry.details
    if entry.action == SUBSCRIBED:
        notice_filter = details.get("filter")
        following = ""
        if isinstance(notice_filter, dict):
            try:
                following = f": {describe(NoticeFilter.from_dict(notice_filter))}"
            except (TypeError, ValueError):
                following = f": {escape(str(notice_filter))}"
        return f"subscribed ({target}){following}"
    if entry.action == TAKEN_BACK:
        return f"{target} taken back: could not post here ({code(str(details.get('reason', '?')))})"
    if entry.action == UNSUBSCRIBED:
        count = details.get("count")
        return f"removed {target}" + (f" ({escape(count)})" if count is not None else "")
    if entry.action == MUTED:
        return f"muted {target} for {escape(details.get('hours', '?'))} h"
    verb = {UNMUTED: "unmuted", ACKNOWLEDGED: "acknowledged"}.get(entry.action, escape(entry.action))
    return f"{verb} {target}"


def unsubscribed(user: str, count: int, subscription_id: int | None) -> Message:
    what_text = f"subscription `{subscription_id}`" if subscription_id is not None else (
        f"all {plural(count, 'subscription')}")
    return message(f"Unsubscribed {what_text}", [section(
        f":no_bell: <@{escape(user)}> removed {what_text} from this channel.")])


def plain_answer(text: str, *, error: bool = False) -> Message:
    """A one-section answer whose text is already mrkdwn (escaped by the caller); `error`
    when it refuses what was asked.
    """
    return message(text, [section(text)], escaped=True, error=error)


def outage_alert(since: datetime, error: str, now: datetime) -> Message:
    text = (f":warning: *The CDE API has been unreachable for {duration(now - since)}* "
            f"(since {date(since)}): {escape(error)}. Failure notices are delayed and will be "
            "sent when it is back.")
    return message(f"The CDE API has been unreachable for {duration(now - since)}", [section(text)])


def outage_over(since: datetime, now: datetime) -> Message:
    text = (f":white_check_mark: *The CDE API is reachable again* after {duration(now - since)}. "
            "Delayed failure notices are being sent.")
    return message(f"The CDE API is reachable again after {duration(now - since)}", [section(text)])


def scans_cut_short(scans: Sequence[str], pages: int) -> Message:
    listed = "; ".join(escape(scan) for scan in scans[:5])
    more = f" and {len(scans) - 5} more" if len(scans) > 5 else ""
    text = (f":warning: *Some failures may not be told*: scans of the CDE API stopped at their "
            f"budget of {plural(pages, 'page')} before the end of the look-back window "
            f"({listed}{more}). Runs further on are not seen until the scans fit again. "
            "Raise `CDE_SCAN_MAX_PAGES` or shorten `CDE_LOOKBACK_HOURS`.")
    return message("Some failures may not be told: CDE scans stop short of the window",
                   [section(text)])


def scans_cover_again(since: datetime, now: datetime) -> Message:
    text = (f":white_check_mark: *Scans of the CDE API cover the look-back window again*, "
            f"after {duration(now - since)} cut short.")
    return message("Scans of the CDE API cover the look-back window again", [section(text)])
