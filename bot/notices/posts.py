"""What is to be posted: outbox entries, recorded before Slack sees them.

An entry names its channel, its kind, the message it posts (or that it is drawn from the
store when sent), the thread it replies in or the message it redraws, and a stable `key`
naming what it tells. The key is unique in the store (recording the same news twice keeps
the first), and it travels with the post as Slack message metadata, so that after a crash
the bot can look in the channel for what it may already have posted.

A message that is not posted yet has no ts; the entry's `ref` (derived from its key)
stands for it meanwhile: incidents record it as their `message_ts`, and later entries name
it as their thread. When Slack takes the post, the store swaps the ref for the real ts.
Pure data and naming; the I/O is `bot.notices.outbox`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from bot.slack.message import Message

REF_PREFIX = "outbox:"
MAX_KEY = 255

# Entry states. `sending`: an attempt started and its fate is unknown (the bot died or
# timed out while Slack had it), so Slack's history is looked at before posting again.
PENDING, SENDING, DELIVERED, FAILED = "pending", "sending", "delivered", "failed"
UNSETTLED = (PENDING, SENDING)

# Kinds. A redraw draws the message `thread` names again (chat.update).
NOTICE, DIGEST, DIGEST_LIST, REPEAT, RECOVERY, MUTE_ENDED, REDRAW = (
    "notice", "digest", "digest_list", "repeat", "recovery", "mute_ended", "redraw")


def ref_of(key: str) -> str:
    """The stand-in ts of the message of the entry with this key (fits a ts column)."""
    return REF_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:40]


def is_ref(message_ts: str | None) -> bool:
    """True when `message_ts` names a message not posted yet (an outbox entry's ref)."""
    return bool(message_ts) and str(message_ts).startswith(REF_PREFIX)


def make_key(kind: str, channel_id: str, *parts: object) -> str:
    """A stable key: the kind, the channel and what the post tells (hashed when long)."""
    key = ":".join([kind, channel_id, *(str(part) for part in parts)])
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"{kind}:{channel_id}:{digest}"


def digest_of(items: list[str]) -> str:
    """A short stable name for a set of items (the runs one post tells)."""
    return hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class OutboxEntry:
    """One post (or redraw) to carry out; see the module."""

    key: str
    channel_id: str
    kind: str
    message: Message
    # The thread's parent (a reply) or the message to draw again (a redraw): a ts, or the
    # ref of an entry not yet posted. None for a top-level post.
    thread: str | None = None
    # Drawn from the store when sent (the incidents of its message), `message` standing in
    # when there are none: parents and redraws show the state as it is then.
    draw: bool = False
    id: int = 0
    state: str = PENDING
    ts: str | None = None
    attempts: int = 0
    error: str | None = None
    created_at: datetime | None = None
    attempt_started_at: datetime | None = None
    next_attempt_at: datetime | None = None

    @property
    def ref(self) -> str:
        return ref_of(self.key)

    @property
    def fate_unknown(self) -> bool:
        """An attempt began and nobody knows whether Slack took it."""
        return self.state == SENDING


def entry(kind: str, channel_id: str, message: Message, *parts: object,
          thread: str | None = None, draw: bool = False) -> OutboxEntry:
    """An entry whose key is made of its kind, channel and `parts`."""
    return OutboxEntry(make_key(kind, channel_id, *parts), channel_id, kind, message,
                       thread=thread, draw=draw)


def redraw(channel_id: str, message_ts: str, at: datetime) -> OutboxEntry:
    """Draw the message `message_ts` (a ts or a ref) again from the store. Redraws of one
    message asked at the same instant share a key, so they are one.
    """
    return entry(REDRAW, channel_id, Message(text=""), message_ts, at.isoformat(),
                 thread=message_ts, draw=True)
