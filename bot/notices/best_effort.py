"""How a best-effort follow-up fails: a post or redraw after the news was told (or an alert
beside the notices) must never fail what it follows.

Slack refusing it is logged with Slack's error code (a warning unless the caller says
otherwise); anything else (the database, a bug) with its traceback. Nothing is raised.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from bot.slack.poster import SlackError
from bot.store.base import LeaseLost


@dataclass
class Attempt:
    """Whether the follow-up failed; read after its block."""

    failed: bool = False


@contextlib.contextmanager
def best_effort(log: logging.Logger, what: str, *args: object,
                level: int = logging.WARNING) -> Iterator[Attempt]:
    """Run the block as a follow-up that may fail: `could not <what>` is logged (`what` a
    %-format of `args`) and the block's error goes no further."""
    attempt = Attempt()
    try:
        yield attempt
    except SlackError as exc:
        attempt.failed = True
        log.log(level, f"could not {what}: %s", *args, exc.code)
    except LeaseLost:
        raise  # not a follow-up's failure: this replica no longer polls, and stops
    except Exception:
        # The last resort of the policy: whatever else stopped the follow-up, with its traceback.
        attempt.failed = True
        log.exception(f"could not {what}", *args)
