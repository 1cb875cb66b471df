"""The CDE runs the end-to-end tests start from: the demo's reference runs and more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.demo.api import SampleCdeApi, reference_runs
from bot.demo.runs import make_run
from tests.helpers.bot_process import APP_TOKEN, BOT_TOKEN, CDE_TOKEN, SIGNING_SECRET
from tests.standins.slack import SlackStandIn

# Site 1001 gets 23 more failed runs, so that a filtered list has three pages of ten.
EXTRA_FAILED = 23


def sample_runs() -> list[dict[str, Any]]:
    """The reference runs, and `EXTRA_FAILED` failed runs of site 1001 seven minutes apart."""
    base = datetime(2025, 10, 28, 8, 0, tzinfo=UTC)
    return reference_runs() + [
        make_run(state="failed", site_id=1001, started_at=base + timedelta(minutes=7 * i),
                 created_at=base + timedelta(minutes=7 * i))
        for i in range(EXTRA_FAILED)
    ]


def new_slack() -> SlackStandIn:
    """A Slack stand-in that knows the test bot's tokens and signing secret."""
    return SlackStandIn(bot_token=BOT_TOKEN, app_token=APP_TOKEN, signing_secret=SIGNING_SECRET)


def new_cde() -> SampleCdeApi:
    """The sample CDE API serving `sample_runs()` to the test bot's token."""
    return SampleCdeApi(sample_runs(), token=CDE_TOKEN)
