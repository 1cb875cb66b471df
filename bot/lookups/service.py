"""Answering lookups: a parsed command in, a rendered `Message` out.

The one place that turns CDE errors into answers, so Slack listeners (and any other
front end) stay thin. The only I/O is the `CdeClient` passed in.
"""

from __future__ import annotations

import logging

from bot.access import UNBOUNDED, AccessPolicy
from bot.cde.client import CdeClient
from bot.cde.errors import CdeError, CdeNotFound, CdeRejected
from bot.cde.models import RunPage
from bot.logs import current_reference
from bot.lookups import paging, render, sites
from bot.lookups.runs import LinkBuilder, no_links
from bot.query import Help, ListRuns, QueryError, ShowRun
from bot.slack.message import Message

Lookup = Help | ListRuns | ShowRun | QueryError

log = logging.getLogger(__name__)


class Lookups:
    """Runs lookup commands against the CDE API and renders the answers."""

    def __init__(self, cde: CdeClient, links: LinkBuilder = no_links, *,
                 sites: AccessPolicy = UNBOUNDED) -> None:
        self._cde = cde
        self._links = links
        self._sites = sites

    async def answer(self, command: Lookup, *, shared_by: str | None = None) -> Message:
        """The message that answers `command`; API errors become explanations, not exceptions."""
        if isinstance(command, QueryError):
            return render.query_error(command)
        if isinstance(command, Help):
            return render.help_message(command)
        try:
            return await self._look_up(command, shared_by)
        except CdeError as exc:
            return _explain(exc, command)

    async def _look_up(self, command: ListRuns | ShowRun, shared_by: str | None) -> Message:
        if isinstance(command, ListRuns):
            query = sites.bounded(command, self._sites)
            if isinstance(query, QueryError):
                return render.query_error(query)
            if query is None:  # a site outside CDE_ALLOWED_SITES: nothing to ask the API
                return render.runs_list(RunPage(runs=()), command, links=self._links)
            listed = await paging.list_page(self._cde, query)
            return render.runs_list(sites.visible(listed.page, self._sites), listed.query,
                                    links=self._links, shared_by=shared_by, drift=listed.drift)
        run = await self._cde.get_run(command.run_id)
        if not sites.may_show(run, self._sites):
            # As if the API had answered 404: whether such a run exists is not told.
            return render.run_not_found(command.run_id)
        return render.run_detail(run, links=self._links, shared_by=shared_by)


def _explain(exc: CdeError, command: ListRuns | ShowRun) -> Message:
    """The answer to a lookup the CDE API did not serve, logged as befits its cause."""
    if isinstance(exc, CdeNotFound):
        if isinstance(command, ShowRun):
            return render.run_not_found(command.run_id)
        # The list itself is missing: most likely CDE_API_URL points at the wrong place.
        log.error("CDE answered 404 for the runs list; check CDE_API_URL: %s", exc)
        return render.api_error(exc)
    if isinstance(exc, CdeRejected):
        log.warning("CDE refused %s: %s", _describe(command), exc)
        return render.api_error(exc)
    reference = current_reference()
    # Expected outages get one line, not a traceback; the cause says what happened.
    log.error("CDE lookup failed [ref %s] for %s: %s (cause: %s)", reference,
              _describe(command), exc, type(exc.__cause__).__name__ if exc.__cause__ else "-")
    return render.api_error(exc, reference=reference)


def _describe(command: Lookup) -> str:
    if isinstance(command, ListRuns):
        return command.to_text()
    if isinstance(command, ShowRun):
        return f"run {command.run_id}"
    return "help"
