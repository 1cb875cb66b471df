"""The words of the `/cde` command language: its constants, the `key:value` filter keys and
their value checks, the hidden page anchor, and the usage of each sub-command (pure).
"""

from __future__ import annotations

import difflib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from bot.cde.models import KNOWN_STATES, RunFilter
from bot.notices.models import NoticeFilter
from bot.store.base import MAX_ID

COMMAND = "/cde"
DEFAULT_LIMIT = 10
# The most runs one message shows: each run takes two blocks of Slack's fifty (render.py).
MAX_LIMIT = 20
MAX_OFFSET = 1_000_000_000
MAX_TEXT = 1000
# `/cde audit [N]`: how many changes it shows by default, and at most.
DEFAULT_AUDIT = 20
MAX_AUDIT = 100
# The hidden key of an anchored list (see `Anchor`); accepted, never advertised.
ANCHOR_KEY = "as-of"
EXAMPLE_UUID = "019e16f3-bfa8-7390-9e63-3354f9aa2939"
# The failed run of the API reference's example (and of the demo).
EXAMPLE_RUN = "019e16f3-bfb8-7ed8-8d26-b7d40818d146"

_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}$")
_STATE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Quotes and backticks people paste around values (Slack turns "x" into “x”).
QUOTES = "`'\"“”‘’"


@dataclass(frozen=True)
class Anchor:
    """Where a list of runs began: its newest run and how many runs it held then.

    Page buttons carry it (as the `as-of:` word, which nobody types), so that later pages
    skip the runs that arrived since the first one was drawn instead of repeating runs.
    """

    run_id: str
    total: int

    def to_word(self) -> str:
        return f"{ANCHOR_KEY}:{self.run_id}/{self.total}"


@dataclass(frozen=True)
class FilterKey:
    """One `key:value` filter: its short name, aliases, API field and value check."""

    name: str
    field: str
    aliases: tuple[str, ...]
    example: str
    check: Callable[[str, str], str | int]
    meaning: str


class BadValue(ValueError):
    """A value its key does not accept; the message says what would be."""


def uuid_value(name: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise BadValue(f"{name} must be a UUID, e.g. `{name}:{EXAMPLE_UUID}`") from None


def _site(name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or not value.strip("0"):
        raise BadValue(f"{name} must be a {name} id, a positive whole number, e.g. `{name}:1001`")
    number = whole_number(value)
    if number > MAX_ID:
        raise BadValue(f"{name} ids go from 1 to {MAX_ID}, e.g. `{name}:1001`")
    return number


def whole_number(digits: str) -> int:
    """ASCII digits as a number, or MAX_ID + 1 when it has more digits than any id (so that
    a pasted thousand-digit number costs nothing to refuse)."""
    significant = digits.lstrip("0")
    return int(digits) if len(significant) <= len(str(MAX_ID)) else MAX_ID + 1


def _version(name: str, value: str) -> str:
    if not _VERSION_RE.match(value):
        raise BadValue(f"{name} must be a connector version, e.g. `{name}:1.0.1`")
    return value


def _state(name: str, value: str) -> str:
    state = value.lower()
    if state in KNOWN_STATES:
        return state
    # A strict cutoff: `faild` is a typo, but `killed` or `finishing` may be real states.
    close = difflib.get_close_matches(state, KNOWN_STATES, n=1, cutoff=0.8)
    if close:
        raise BadValue(f"unknown state; did you mean `{name}:{close[0]}`?")
    if not _STATE_RE.match(state):
        raise BadValue(f"{name} must be a single word such as `{name}:failed`")
    # Only `failed` and `finished` are documented; others pass through to the API.
    return state


FILTER_KEYS: tuple[FilterKey, ...] = (
    FilterKey("id", "id", ("run", "run-id"), f"id:{EXAMPLE_UUID}", uuid_value, "run id"),
    FilterKey("site", "site_id", ("site-id",), "site:1001", _site, "site id"),
    FilterKey("state", "state", ("status",), "state:failed", _state,
              "run state (failed, finished, …)"),
    FilterKey("connector", "connector_id", ("connector-id",), f"connector:{EXAMPLE_UUID}",
              uuid_value, "connector id"),
    FilterKey("version", "connector_version", ("connector-version",), "version:1.0.1", _version,
              "connector version"),
    FilterKey("process", "process_id", ("process-id",), f"process:{EXAMPLE_UUID}", uuid_value,
              "process id"),
)
KEYS_BY_WORD = {word: key for key in FILTER_KEYS for word in (key.name, *key.aliases)}
PAGING_KEYS = (
    FilterKey("limit", "limit", (), f"limit:{DEFAULT_LIMIT}", lambda _, v: _paging_value("limit", v),
              "runs per page"),
    FilterKey("from", "offset", (), "from:0", lambda _, v: _paging_value("from", v),
              "start at this item"),
)
_ANCHOR = FilterKey(ANCHOR_KEY, "anchor", (), f"{ANCHOR_KEY}:{EXAMPLE_UUID}/37",
                    lambda _, v: _anchor_value(v), "the list a page belongs to")
RUNS_KEYS_BY_WORD = KEYS_BY_WORD | {key.name: key for key in (*PAGING_KEYS, _ANCHOR)}
# Keys that only subscriptions know: the API cannot list runs by them.
SUBSCRIPTION_ONLY = ("project", "project-id", "account", "account-id")

# What a subscription can follow: the run's own fields, matched locally (not API filters).
SUBSCRIPTION_KEYS: tuple[FilterKey, ...] = (
    *(key for key in FILTER_KEYS if key.name in ("site", "connector", "version", "process")),
    FilterKey("project", "project_id", ("project-id",), "project:650", _site, "project id"),
    FilterKey("account", "account_id", ("account-id",), "account:748", _site, "account id"),
)
SUBSCRIPTION_KEYS_BY_WORD = {
    word: key for key in SUBSCRIPTION_KEYS for word in (key.name, *key.aliases)
}


def describe_filter(run_filter: RunFilter) -> list[str]:
    """The filter as `key:value` words, in the order of FILTER_KEYS."""
    values = run_filter.model_dump(exclude_none=True)
    return [f"{key.name}:{values[key.field]}" for key in FILTER_KEYS if key.field in values]


USAGE = {
    "runs": f"`{COMMAND} runs [site:1001] [state:failed] [connector:<uuid>] [version:1.0.1] "
    f"[process:<uuid>] [id:<uuid>] [limit:{DEFAULT_LIMIT}] [from:0]`",
    "run": f"`{COMMAND} run <run-id>`, e.g. `{COMMAND} run {EXAMPLE_RUN}`",
    "subscribe": f"`{COMMAND} subscribe [site:1001] [connector:<uuid>] [version:1.0.1] "
    "[process:<uuid>] [project:650] [account:748]`, or `subscribe all`",
    "subscriptions": f"`{COMMAND} subscriptions`",
    "unsubscribe": f"`{COMMAND} unsubscribe <id>` or `{COMMAND} unsubscribe all`",
    "audit": f"`{COMMAND} audit [N]`: the last N changes (1 to {MAX_AUDIT}, default {DEFAULT_AUDIT})",
    "help": f"`{COMMAND} help`",
}
SUBCOMMANDS = tuple(USAGE)


def subscription_words(notice_filter: NoticeFilter) -> list[str]:
    """A subscription filter as `key:value` words."""
    values = notice_filter.as_dict()
    return [f"{key.name}:{values[key.field]}" for key in SUBSCRIPTION_KEYS if key.field in values]


def split_pair(word: str) -> tuple[str, str, str]:
    """A `key:value` (or `key=value`) word as key, separator and value (the separator empty
    when there is none)."""
    for sep in (":", "="):
        key, found, value = word.partition(sep)
        if found:
            return key, found, value.strip(QUOTES)
    return word, "", ""


def _paging_value(name: str, value: str) -> int:
    """`limit` (1 to MAX_LIMIT) or `from` (0 or more); every refusal names the range."""
    if name == "limit":
        low, high, allowed, example = 1, MAX_LIMIT, f"from 1 to {MAX_LIMIT}", DEFAULT_LIMIT
    else:
        low, high, allowed, example = 0, MAX_OFFSET, "0 or more", 0
    digits = value[1:] if value[:1] in "+-" else value
    if not digits.isascii() or not digits.isdigit():
        raise BadValue(f"{name} must be a whole number {allowed}, e.g. `{name}:{example}`")
    number = int(value) if len(digits) <= 10 else high + 1
    if number > high and name == "from":
        raise BadValue(f"from must be at most {high}, e.g. `from:{example}`")
    if not low <= number <= high:
        raise BadValue(f"{name} must be {allowed}, e.g. `{name}:{example}`")
    return number


def _anchor_value(value: str) -> str:
    if parse_anchor(value) is None:
        # Only buttons write this word; a damaged one is refused like any other value.
        raise BadValue(f"this page marker is damaged; run `{COMMAND} runs` again")
    return value


def parse_anchor(value: str) -> Anchor | None:
    """The anchor an `as-of:` value names; None when it is damaged."""
    run_id, _, total = value.partition("/")
    try:
        run_id = str(uuid.UUID(run_id))
    except ValueError:
        return None
    if not total.isascii() or not total.isdigit() or len(total) > 10:
        return None
    return Anchor(run_id, int(total))
