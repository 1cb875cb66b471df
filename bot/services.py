"""The bot's services as the listeners see them: what a listener calls, each plain Python,
testable without Slack.

Listeners receive `Services` by name: `bot.slack.app.register` puts it into Bolt's request
context as `services`, and Bolt passes any context key to a listener that names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.access import Access
from bot.lookups.service import Lookups
from bot.notices.oncall import OnCall
from bot.notices.subscriptions import Subscriptions
from bot.ops.metrics import Metrics


@dataclass(frozen=True)
class Services:
    """What the listeners call; each is plain Python, testable without Slack."""

    lookups: Lookups
    subscriptions: Subscriptions
    oncall: OnCall
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    metrics: Metrics | None = None
    # Who may change what, where the bot answers, which sites it shows (unbounded by default).
    access: Access = field(default_factory=Access)
