"""`CDE_ALLOWED_SITES` applied to lookups (pure): a site outside the list is not found,
whatever the CDE token could see.

A list of runs is asked of the API for allowed sites only, so that its pages and totals
stay exact: a list naming an allowed site is asked as it is; one naming no site is asked
for the one allowed site when there is one, and otherwise must name one (the API lists one
site at a time). Runs of other sites that come back all the same are left out.
"""

from __future__ import annotations

from dataclasses import replace

from bot.access import AccessPolicy
from bot.cde.models import Run, RunPage
from bot.query import COMMAND, USAGE, ListRuns, QueryError


def bounded(query: ListRuns, policy: AccessPolicy) -> ListRuns | QueryError | None:
    """The query to ask the API; None when it names a site outside the list (nothing can
    match), a `QueryError` when it must name a site."""
    if not policy.sites:
        return query
    site = query.run_filter.site_id
    if site is not None:
        return query if policy.may_see_site(site) else None
    if len(policy.sites) == 1:
        [only] = policy.sites
        return replace(query, run_filter=query.run_filter.model_copy(update={"site_id": only}))
    listed = ", ".join(f"`site:{s}`" for s in sorted(policy.sites))
    return QueryError(f"Name a site: this bot shows runs of {listed} only, one site at a time, "
                      f"e.g. `{COMMAND} runs site:{min(policy.sites)}`.", USAGE["runs"])


def visible(page: RunPage, policy: AccessPolicy) -> RunPage:
    """The page without runs of sites outside the list (should the API return any)."""
    if not policy.sites or all(policy.may_see_site(run.site_id) for run in page.runs):
        return page
    return page.model_copy(update={"runs": tuple(r for r in page.runs if policy.may_see_site(r.site_id))})


def may_show(run: Run, policy: AccessPolicy) -> bool:
    return policy.may_see_site(run.site_id)
