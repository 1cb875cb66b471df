"""The members of a Slack user group, read with `usergroups.users.list` (scope
`usergroups:read`): the `GroupResolver` behind `CDE_ADMINS`' user groups.

Every failure (Slack's refusal, no answer, an answer that is not Slack's) is mapped here to
`GroupLookupFailed`, named by Slack's error code or the transport's failure, never by an
exception's text.
"""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.access import GroupLookupFailed
from bot.slack.poster import SlackError, mapped_errors


class SlackGroups:
    """User-group members as Slack lists them."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def members(self, group_id: str) -> frozenset[str]:
        try:
            with mapped_errors():
                response = await self._client.usergroups_users_list(usergroup=group_id)
        except SlackError as exc:
            raise GroupLookupFailed(exc.code) from exc
        data = getattr(response, "data", None)
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, list):
            raise GroupLookupFailed("no_users_listed")
        return frozenset(user for user in users if isinstance(user, str))
