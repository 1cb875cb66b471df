"""Pure builders for the lookup answers: models in, `Message` (blocks and fallback text) out.

Every outside string passes through `mrkdwn.escape` (directly or via `code`/`link`).
"""

from __future__ import annotations

import json

from bot.cde.errors import (
    CdeBadRequest,
    CdeError,
    CdeForbidden,
    CdeNotFound,
    CdeProtocolError,
    CdeRateLimited,
    CdeTimeout,
    CdeUnauthorized,
    CdeUnavailable,
)
from bot.cde.models import FAILED, FINISHED, Run, RunFilter, RunPage
from bot.lookups.paging import STILL, Drift
from bot.lookups.runs import (
    LinkBuilder,
    connector_text,
    lookup_button,
    mask_secrets,
    named,
    no_links,
    recent_runs_button,
    state_marker,
)
from bot.query import (
    COMMAND,
    FILTER_KEYS,
    SUBSCRIPTION_KEYS,
    USAGE,
    Help,
    ListRuns,
    QueryError,
    describe_filter,
)
from bot.slack.actions import ACTION_OPEN, ACTION_PAGE, ACTION_SHARE
from bot.slack.blocks import Block, Element, actions, button, field_section
from bot.slack.blocks import header as header_block
from bot.slack.message import (
    MAX_FIELD_TEXT,
    MAX_HEADER,
    MAX_SECTION_TEXT,
    Message,
    context,
    fields,
    message,
    plain,
    section,
)
from bot.slack.mrkdwn import clip, code, date, duration, escape, link, plural

# ---------------------------------------------------------------------------------------
# Lookups


def filter_words(run_filter: RunFilter) -> str:
    words = describe_filter(run_filter)
    return " ".join(code(word) for word in words) if words else "all runs"


def runs_list(
    page: RunPage, query: ListRuns, *, links: LinkBuilder = no_links, shared_by: str | None = None,
    drift: Drift = STILL,
) -> Message:
    """A page of runs: what was asked, where we are, each run, and paging buttons.

    `drift.newer` counts the runs that arrived after the list's anchor (they are skipped,
    and a button offers them); `drift.moved` says the anchor was lost, so this page may
    overlap another.
    """
    # The API's maximum page size is undocumented; never show more than was asked for.
    page = page.model_copy(update={"runs": page.runs[: query.limit]})
    if not page.runs and not page.unreadable:
        return _no_runs(page, query)
    asked = filter_words(query.run_filter)
    total = page.total
    first, last = query.offset + 1, query.offset + _shown(page, query)
    blocks: list[Block] = [section(f"*CDE runs* · {asked}")]
    failed = sum(run.failed for run in page.runs)
    blocks.append(context(_summary(f"Showing {first}–{last} of {total}", failed, drift, shared_by)))
    for run in page.runs:
        blocks.extend(_run_summary(run, links))
    if page.unreadable:
        blocks.append(context(
            f":warning: {plural(len(page.unreadable), 'entry', 'entries')} of this page could not "
            "be read at all (no usable run id); the bot's log names them."))
    text = (f"CDE runs {' '.join(describe_filter(query.run_filter)) or '(all)'}: "
            f"showing {first}–{last} of {total}"
            + (f", {failed} failed" if failed else ""))
    buttons = _paging_buttons(page, query)
    if drift.newer:
        buttons.append(button("See newer runs", f"{ACTION_PAGE}_newer",
                                     value=query.fresh().to_text()))
    if not shared_by:
        buttons.append(button("Share in channel", ACTION_SHARE,
                                     value=query.to_text()))
    if buttons:
        blocks.append(actions(buttons, block_id="runs_actions"))
    return message(text, blocks)


def _summary(summary: str, failed: int, drift: Drift, shared_by: str | None) -> str:
    if drift.newer:
        summary += f" · {plural(drift.newer, 'newer run')} since this list"
    if failed:
        summary += f" · {plural(failed, 'failed run')} on this page"
    if drift.moved:
        summary += " · the list changed since its first page, so runs may repeat or be skipped"
    if shared_by:
        summary += f" · shared by <@{escape(shared_by)}>"
    return summary


def _no_runs(page: RunPage, query: ListRuns) -> Message:
    """Nothing on this page: either nothing matches, or the page is past the end. Nothing
    to share or page through; past the end, the way back.
    """
    words = " ".join(describe_filter(query.run_filter))
    asked = filter_words(query.run_filter)
    blocks: list[Block] = [section(f"*CDE runs* · {asked}")]
    total = page.total
    if total and query.offset >= total:
        last = (total - 1) // query.limit * query.limit
        matching = f" matching {asked}" if words else ""
        blocks.append(context(
            f"There {'is' if total == 1 else 'are'} {plural(total, 'run')}{matching}; "
            f"`from:{query.offset}` is past the end. The last page starts at `from:{last}`."))
        way_back = [button("◀ Last page", f"{ACTION_PAGE}_last",
                                  value=query.page(last).to_text())]
        if last:
            way_back.append(button("⏮ First page", f"{ACTION_PAGE}_first",
                                          value=query.page(0).to_text()))
        blocks.append(actions(way_back, block_id="runs_actions"))
        text = f"CDE runs {words or '(all)'}: from:{query.offset} is past the end ({total} runs)"
    elif words:
        blocks.append(context(f"No runs match. Try fewer filters, or `{COMMAND} help`."))
        text = f"No CDE runs match {words}"
    else:
        blocks.append(context("The CDE API lists no runs the bot can see yet."))
        text = "No CDE runs yet"
    return message(text, blocks)


def _run_summary(run: Run, links: LinkBuilder) -> list[Block]:
    lines = [
        f"{state_marker(run.state)} · {code(run.id)}"
        + (f" · exit code {escape(run.exit_code)}" if run.exit_code is not None else ""),
        f"*Site* {named(run.site_name, run.site_id)} · *Project* "
        f"{named(run.project_name, run.project_id)} · *Account* "
        f"{named(run.account_name, run.account_id)}",
        f"*Connector* {connector_text(run)}",
    ]
    when = [f"Started {date(run.started_at)}"]
    if run.finished_at:
        when.append(f"finished {date(run.finished_at)}")
    if run.duration is not None:
        when.append(f"took {duration(run.duration)}")
    url = links(run)
    if url:
        when.append(link(url, "Open in CDE"))
    if run.problems:
        when.append(":warning: unreadable: " + ", ".join(
            escape(problem.split(":", 1)[0]) for problem in run.problems))
    return [section("\n".join(lines)), context(" · ".join(when))]


def _shown(page: RunPage, query: ListRuns) -> int:
    """How far this page moves through the listing: runs read or not, never past the limit."""
    return min(page.size, query.limit)


def _problems(run: Run) -> Block:
    listed = "\n".join(f"• {escape(problem)}" for problem in run.problems)
    return context(":warning: The CDE API sent fields this bot could not fully read:\n"
                   f"{listed}")


def _paging_buttons(page: RunPage, query: ListRuns) -> list[Element]:
    buttons = []
    if query.offset > 0:
        buttons.append(button("◀ Previous", f"{ACTION_PAGE}_prev",
            value=query.page(query.offset - query.limit).to_text(),
        ))
    if page.size and query.offset + _shown(page, query) < page.total:
        buttons.append(button("Next ▶", f"{ACTION_PAGE}_next",
            value=query.page(query.offset + _shown(page, query)).to_text(),
        ))
    return buttons


def run_detail(run: Run, *, links: LinkBuilder = no_links, shared_by: str | None = None) -> Message:
    """Every field of one run."""
    header = clip(run_title(run), MAX_HEADER)
    blocks: list[Block] = [
        header_block(header),
        section(f"{state_marker(run.state)} · {code(run.id)}"
                 + (f" · shared by <@{escape(shared_by)}>" if shared_by else "")),
        field_section(fields(
            ("Site", named(run.site_name, run.site_id)),
            ("Project", named(run.project_name, run.project_id)),
            ("Account", named(run.account_name, run.account_id)),
            ("Connector", connector_text(run)),
            ("Process", code(run.process_id) if run.process_id else "—"),
            ("Exit code", escape(run.exit_code) if run.exit_code is not None else "—"),
            ("Started", date(run.started_at)),
            ("Finished", date(run.finished_at)),
            ("Duration", duration(run.duration)),
            ("Created", date(run.created_at)),
        )),
    ]
    container = [
        ("Docker image", code(run.container_api_docker_image)
         if run.container_api_docker_image else "—"),
        ("Container API version", escape(run.container_api_version_constraint)
         if run.container_api_version_constraint else "—"),
        ("CLI command", _json_code(run.cli_command)),
        # Secrets and authentications are counted, never shown: the answer may be shared.
        ("Registered secrets", _count(run.registered_secrets)),
        ("Authentications", _count(run.authentications)),
    ]
    blocks.append(field_section(fields(*container)))
    if run.problems:
        blocks.append(_problems(run))
    if run.connector_setup_config is not None:
        blocks.append(section("*Connector setup config*\n" + _json_block(run.connector_setup_config)))
    buttons: list[Element | None] = [recent_runs_button(
        run, "Recent runs of this connector on this site", f"{ACTION_PAGE}_recent")]
    url = links(run)
    if url:
        buttons.append(button("Open in CDE", ACTION_OPEN, url=url))
    if not shared_by:
        buttons.append(lookup_button("Share in channel", ACTION_SHARE, f"run {run.id}"))
    offered: list[Element] = [b for b in buttons if b is not None]
    if offered:
        blocks.append(actions(offered, block_id="run_actions"))
    text = (f"CDE run {run.id}: {run.state or 'no state'}"
            f" on {run.site_name or 'unknown site'}"
            + (f" (exit code {run.exit_code})" if run.exit_code is not None else ""))
    return message(text, blocks)


def run_title(run: Run) -> str:
    """A run's state as a title, not a command's outcome: `🔴 Failed run on Site 2`."""
    site = f"on {run.site_name}" if run.site_name else (
        f"on site {run.site_id}" if run.site_id is not None else "on an unknown site")
    if run.state == FAILED:
        return f"🔴 Failed run {site}"
    if run.state == FINISHED:
        return f"🟢 Finished run {site}"
    # Undocumented states (a run still going, say) are named as they are, neutrally.
    return f"⚪ Run {site} · {run.state or 'no state'}"


def _count(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, list | dict):
        return f"{plural(len(value), 'entry', 'entries')} (not shown)"
    return "set (not shown)"


def _json_code(value: object) -> str:
    if value is None:
        return "—"
    value = mask_secrets(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return code(clip(text, MAX_FIELD_TEXT - 40))


def _json_block(value: object) -> str:
    text = json.dumps(mask_secrets(value), indent=2, ensure_ascii=False, sort_keys=True)
    body = clip(escape(text.replace("```", "ˋˋˋ")), MAX_SECTION_TEXT - 80)
    return f"```{body}```"


def run_not_found(run_id: str) -> Message:
    return message(
        f"Run {run_id} not found",
        [section(f":mag: Run {code(run_id)} was not found. Check the id, or list runs with "
                  f"`{COMMAND} runs`.")],
        error=True,
    )


# ---------------------------------------------------------------------------------------
# Help and errors


def help_message(command: Help) -> Message:
    """Usage with examples; `/cde help runs` shows just that command's filters."""
    filters = "\n".join(
        f"• `{key.name}:` {escape(key.meaning)} — e.g. `{escape(key.example)}`"
        for key in FILTER_KEYS
    )
    runs = (f"*List runs* — {escape(USAGE['runs'])}\n"
            f"Examples: `{COMMAND} runs site:1001 state:failed` · "
            f"`{COMMAND} runs version:1.0.1 limit:20`\n"
            f"Filters:\n{filters}\n"
            f"• `limit:` runs per page, 1–20 (default 10) · `from:` start at this item")
    run = (f"*Show one run* — {escape(USAGE['run'])}\n"
           "Every field of the run; copy the id from a runs list.")
    notices = (f"*Failure notices in this channel* — {escape(USAGE['subscribe'])}\n"
               f"Example: `{COMMAND} subscribe site:1001` · filters: "
               + ", ".join(f"`{key.name}:`" for key in SUBSCRIPTION_KEYS) + "\n"
               f"`{COMMAND} subscriptions` lists them · {escape(USAGE['unsubscribe'])}\n"
               "Notices offer *Acknowledge*, *Mute* and *Recent runs*; repeats and recoveries "
               "follow in the notice's thread.\n"
               f"*Audit trail* — {escape(USAGE['audit'])}: who subscribed, unsubscribed, muted, "
               "unmuted or acknowledged what, when and where.")
    topics = {"runs": [runs], "run": [run], "subscribe": [notices], "subscriptions": [notices],
              "unsubscribe": [notices], "notices": [notices], "audit": [notices]}
    sections = topics.get(command.topic or "", [runs, run, notices])
    blocks: list[Block] = [header_block("cde-bot: CDE runs in Slack")]
    blocks += [section(text) for text in sections]
    blocks.append(context("Answers are visible only to you; use *Share in channel* to show "
                           "one to the channel. Dates show in your own time zone."))
    return message(f"{COMMAND} help: {COMMAND} runs [filters], {COMMAND} run <id>, "
                   f"{COMMAND} subscribe [filters]", blocks)


def query_error(error: QueryError) -> Message:
    text = f":warning: {escape(error.message)}"
    if error.usage:
        text += f"\nUsage: {escape(error.usage)}"
    return message(plain(text), [section(text)], escaped=True, error=True)


# The API's parameter names mapped back to the words a person typed.
_USER_WORDS = {"from": "from", "limit": "limit"} | {
    key.field.replace("_", "-"): key.name for key in FILTER_KEYS
}


def api_error(error: CdeError, *, reference: str | None = None) -> Message:
    """A short, specific message for an API error; `reference` is findable in the logs."""
    ref = f" Reference: {code(reference)}." if reference else ""
    if isinstance(error, CdeUnauthorized):
        text = (":lock: The CDE API rejected the bot's credentials. An admin must set a valid "
                "`CDE_API_TOKEN`.")
    elif isinstance(error, CdeForbidden):
        text = ":no_entry: Access denied: the bot's CDE account may not see these runs."
    elif isinstance(error, CdeBadRequest):
        problems = [
            f"`{escape(_USER_WORDS.get(name, name))}`: {escape(message)}"
            for name, message in sorted(error.field_errors.items())
        ] or [escape(str(error))]
        text = ":warning: The CDE API did not accept the query:\n" + "\n".join(
            f"• {p}" for p in problems)
    elif isinstance(error, CdeNotFound):
        text = (":mag: The CDE API has no runs list at the address the bot uses; an admin "
                "should check `CDE_API_URL`.")
    elif isinstance(error, CdeRateLimited):
        text = (":hourglass: The CDE API is busy and asked the bot to slow down. "
                f"Try again in a minute.{ref}")
    elif isinstance(error, CdeTimeout):
        text = f":hourglass: The CDE API did not answer in time. Try again in a minute.{ref}"
    elif isinstance(error, CdeUnavailable):
        text = f":warning: The CDE API is unavailable right now. Try again in a minute.{ref}"
    elif isinstance(error, CdeProtocolError):
        text = f":warning: The CDE API gave an answer the bot cannot read.{ref}"
    else:
        text = f":warning: The CDE lookup failed.{ref}"
    return message(plain(text), [section(text)], escaped=True, error=True)
