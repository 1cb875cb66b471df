"""The `/cde` command language: text in, a typed command or a precise error out (pure).

    /cde [help [topic]]             usage
    /cde runs [key:value ...]       list runs, e.g. `/cde runs site:1001 state:failed`
    /cde run <run-id>               one run

Every error names the word that is wrong and shows the right form, so the person can fix
the command without reading the help. Nothing invalid ever reaches the API.
"""

from __future__ import annotations

import difflib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.cde.models import KNOWN_STATES, RunFilter
from bot.notices.models import NoticeFilter

COMMAND = "/cde"
DEFAULT_LIMIT = 10
# The most runs one message shows: each run takes two blocks of Slack's fifty (render.py).
MAX_LIMIT = 20
MAX_OFFSET = 1_000_000_000
MAX_TEXT = 1000
# The hidden key of an anchored list (see `Anchor`); accepted, never advertised.
ANCHOR_KEY = "as-of"
EXAMPLE_UUID = "019e16f3-bfa8-7390-9e63-3354f9aa2939"
# The failed run of the API reference's example (and of the demo).
EXAMPLE_RUN = "019e16f3-bfb8-7ed8-8d26-b7d40818d146"

_VERSION_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_~-]{0,63}$")
_STATE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Quotes and backticks people paste around values (Slack turns "x" into “x”).
_QUOTES = "`'\"“”‘’"


@dataclass(frozen=True)
class Help:
    """Show usage; `topic` narrows it to one sub-command."""

    topic: str | None = None


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
class ListRuns:
    """`/cde runs`: one page of runs matching a filter; `offset` counts from the anchor's
    newest run when there is one.
    """

    run_filter: RunFilter = field(default_factory=RunFilter)
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    anchor: Anchor | None = None

    def to_text(self) -> str:
        """The canonical command text; parsing it gives this command back."""
        words = ["runs", *describe_filter(self.run_filter)]
        if self.offset:
            words.append(f"from:{self.offset}")
        if self.limit != DEFAULT_LIMIT:
            words.append(f"limit:{self.limit}")
        if self.anchor is not None:
            words.append(self.anchor.to_word())
        return " ".join(words)

    def page(self, offset: int) -> ListRuns:
        """The same list at another offset."""
        return ListRuns(self.run_filter, max(0, offset), self.limit, self.anchor)

    def anchored(self, anchor: Anchor | None) -> ListRuns:
        """The same page, anchored at `anchor` (or not anchored at all)."""
        return ListRuns(self.run_filter, self.offset, self.limit, anchor)

    def fresh(self) -> ListRuns:
        """The first page of the list as it is now: the newest runs, no anchor."""
        return ListRuns(self.run_filter, 0, self.limit)


@dataclass(frozen=True)
class ShowRun:
    """`/cde run <id>`: every field of one run."""

    run_id: str


@dataclass(frozen=True)
class Subscribe:
    """`/cde subscribe [filters]`: follow failed runs matching the filter in this channel.

    An empty filter follows everything, so it needs `everything=True`,
    which the confirmation button sends.
    """

    notice_filter: NoticeFilter = field(default_factory=NoticeFilter)
    everything: bool = False


@dataclass(frozen=True)
class ListSubscriptions:
    """`/cde subscriptions`: this channel's subscriptions."""


@dataclass(frozen=True)
class Unsubscribe:
    """`/cde unsubscribe <id>` or `/cde unsubscribe all` (subscription_id None)."""

    subscription_id: int | None


Command = Help | ListRuns | ShowRun | Subscribe | ListSubscriptions | Unsubscribe


@dataclass(frozen=True)
class QueryError:
    """Why the text is not a command, and the form that would be."""

    message: str
    usage: str | None = None


# ---------------------------------------------------------------------------------------
# Filter keys


@dataclass(frozen=True)
class FilterKey:
    """One `key:value` filter: its short name, aliases, API field and value check."""

    name: str
    field: str
    aliases: tuple[str, ...]
    example: str
    check: Callable[[str, str], str | int]
    meaning: str


class _BadValue(ValueError):
    pass


def _uuid(name: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _BadValue(f"{name} must be a UUID, e.g. `{name}:{EXAMPLE_UUID}`") from None


def _site(name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or int(value) <= 0 or len(value) > 18:
        raise _BadValue(f"{name} must be a {name} id, a positive whole number, e.g. `{name}:1001`")
    return int(value)


def _version(name: str, value: str) -> str:
    if not _VERSION_RE.match(value):
        raise _BadValue(f"{name} must be a connector version, e.g. `{name}:1.0.1`")
    return value


def _state(name: str, value: str) -> str:
    state = value.lower()
    if state in KNOWN_STATES:
        return state
    # A strict cutoff: `faild` is a typo, but `killed` or `finishing` may be real states.
    close = difflib.get_close_matches(state, KNOWN_STATES, n=1, cutoff=0.8)
    if close:
        raise _BadValue(f"unknown state; did you mean `{name}:{close[0]}`?")
    if not _STATE_RE.match(state):
        raise _BadValue(f"{name} must be a single word such as `{name}:failed`")
    # Only `failed` and `finished` are documented; others pass through to the API.
    return state


FILTER_KEYS: tuple[FilterKey, ...] = (
    FilterKey("id", "id", ("run", "run-id"), f"id:{EXAMPLE_UUID}", _uuid, "run id"),
    FilterKey("site", "site_id", ("site-id",), "site:1001", _site, "site id"),
    FilterKey("state", "state", ("status",), "state:failed", _state,
              "run state (failed, finished, …)"),
    FilterKey("connector", "connector_id", ("connector-id",), f"connector:{EXAMPLE_UUID}",
              _uuid, "connector id"),
    FilterKey("version", "connector_version", ("connector-version",), "version:1.0.1", _version,
              "connector version"),
    FilterKey("process", "process_id", ("process-id",), f"process:{EXAMPLE_UUID}", _uuid,
              "process id"),
)
_KEYS_BY_WORD = {word: key for key in FILTER_KEYS for word in (key.name, *key.aliases)}
PAGING_KEYS = (
    FilterKey("limit", "limit", (), f"limit:{DEFAULT_LIMIT}", lambda _, v: _paging_value("limit", v),
              "runs per page"),
    FilterKey("from", "offset", (), "from:0", lambda _, v: _paging_value("from", v),
              "start at this item"),
)
_ANCHOR = FilterKey(ANCHOR_KEY, "anchor", (), f"{ANCHOR_KEY}:{EXAMPLE_UUID}/37",
                    lambda _, v: _anchor_value(v), "the list a page belongs to")
_RUNS_KEYS_BY_WORD = _KEYS_BY_WORD | {key.name: key for key in (*PAGING_KEYS, _ANCHOR)}
# Keys that only subscriptions know: the API cannot list runs by them.
_SUBSCRIPTION_ONLY = ("project", "project-id", "account", "account-id")

# What a subscription can follow: the run's own fields, matched locally (not API filters).
SUBSCRIPTION_KEYS: tuple[FilterKey, ...] = (
    *(key for key in FILTER_KEYS if key.name in ("site", "connector", "version", "process")),
    FilterKey("project", "project_id", ("project-id",), "project:650", _site, "project id"),
    FilterKey("account", "account_id", ("account-id",), "account:748", _site, "account id"),
)
_SUBSCRIPTION_KEYS_BY_WORD = {
    word: key for key in SUBSCRIPTION_KEYS for word in (key.name, *key.aliases)
}


def describe_filter(run_filter: RunFilter) -> list[str]:
    """The filter as `key:value` words, in the order of FILTER_KEYS."""
    values = run_filter.model_dump(exclude_none=True)
    return [f"{key.name}:{values[key.field]}" for key in FILTER_KEYS if key.field in values]


# ---------------------------------------------------------------------------------------
# Parsing

USAGE = {
    "runs": f"`{COMMAND} runs [site:1001] [state:failed] [connector:<uuid>] [version:1.0.1] "
    f"[process:<uuid>] [id:<uuid>] [limit:{DEFAULT_LIMIT}] [from:0]`",
    "run": f"`{COMMAND} run <run-id>`, e.g. `{COMMAND} run {EXAMPLE_RUN}`",
    "subscribe": f"`{COMMAND} subscribe [site:1001] [connector:<uuid>] [version:1.0.1] "
    "[process:<uuid>] [project:650] [account:748]`, or `subscribe all`",
    "subscriptions": f"`{COMMAND} subscriptions`",
    "unsubscribe": f"`{COMMAND} unsubscribe <id>` or `{COMMAND} unsubscribe all`",
    "help": f"`{COMMAND} help`",
}
SUBCOMMANDS = tuple(USAGE)


def parse(text: str) -> Command | QueryError:
    """Turn the text after `/cde` into a command, or say precisely what is wrong."""
    if len(text) > MAX_TEXT:
        return QueryError(f"That command is too long ({len(text)} characters; at most {MAX_TEXT}).")
    words = _words(text)
    if not words:
        return Help()
    verb, args = words[0].lower(), words[1:]
    parser = _PARSERS.get(verb)
    if parser is not None:
        return parser(args)
    suggestion = difflib.get_close_matches(verb, SUBCOMMANDS, n=1, cutoff=0.6)
    hint = f" Did you mean `{COMMAND} {suggestion[0]}`?" if suggestion else ""
    return QueryError(
        f"`{_shown(words[0])}` is not a {COMMAND} command.{hint} "
        f"Try `{COMMAND} help` for the list.",
    )


def _parse_help(args: list[str]) -> Help:
    return Help(args[0].lower() if args else None)


def _parse_subscriptions(args: list[str]) -> ListSubscriptions | QueryError:
    if args:
        return QueryError(f"`{COMMAND} subscriptions` takes no arguments.", USAGE["subscriptions"])
    return ListSubscriptions()


def _words(text: str) -> list[str]:
    """Split on white space, strip pasted quotes, and join `key: value` into one word."""
    # Slack escapes these three in command text; undo it so the words are what was typed.
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    raw = [word.strip(_QUOTES) for word in text.split()]
    words: list[str] = []
    for word in raw:
        if not word:
            continue
        if words and words[-1].endswith((":", "=")) and ":" not in words[-1][:-1]:
            words[-1] += word
        else:
            words.append(word)
    return words


def _parse_run(args: list[str]) -> ShowRun | QueryError:
    usage = USAGE["run"]
    if not args:
        return QueryError("Which run? Give its id.", usage)
    if len(args) > 1:
        return QueryError(f"`{COMMAND} run` takes one run id, not {len(args)} words.", usage)
    word = args[0]
    value = word.split(":", 1)[1] if word.lower().startswith(("id:", "run:")) else word
    try:
        return ShowRun(_uuid("run id", value))
    except _BadValue:
        return QueryError(f"`{_shown(word)}` is not a run id: a run id is a UUID.", usage)


def _parse_runs(args: list[str]) -> ListRuns | QueryError:
    values = _parse_pairs(args, _RUNS_KEYS_BY_WORD, USAGE["runs"], _not_a_filter, _unknown_key)
    if isinstance(values, QueryError):
        return values
    offset = int(values.pop("offset", 0))
    limit = int(values.pop("limit", DEFAULT_LIMIT))
    anchor = _parse_anchor(str(values.pop("anchor"))) if "anchor" in values else None
    return ListRuns(RunFilter(**values), offset=offset, limit=limit, anchor=anchor)


def _parse_subscribe(args: list[str]) -> Subscribe | QueryError:
    if [word.lower() for word in args] == ["all"]:
        # Following everything is always confirmed with a click, typed `all` or not.
        return Subscribe(NoticeFilter())
    values = _parse_pairs(args, _SUBSCRIPTION_KEYS_BY_WORD, USAGE["subscribe"],
                          _not_a_subscription_filter, _unknown_subscription_key)
    if isinstance(values, QueryError):
        return values
    return Subscribe(NoticeFilter.from_dict(values))


def _parse_pairs(
    args: list[str], keys: dict[str, FilterKey], usage: str,
    not_a_pair: Callable[[str], str], unknown: Callable[[str, str], str],
) -> dict[str, str | int] | QueryError:
    """`key:value` words checked against `keys`: the values by field, or the first error."""
    values: dict[str, str | int] = {}
    for word in args:
        key_word, sep, value = _split_pair(word)
        if not sep:
            return QueryError(not_a_pair(word), usage)
        if not value:
            return QueryError(f"`{_shown(word)}` has no value after the `:`.", usage)
        key = keys.get(key_word.lower().replace("_", "-"))
        if key is None:
            return QueryError(unknown(key_word, word), usage)
        if key.field in values:
            return QueryError(f"`{key.name}` is given twice; give each filter once.", usage)
        try:
            values[key.field] = key.check(key.name, value)
        except _BadValue as exc:
            return QueryError(f"`{_shown(word)}`: {exc}", usage)
    return values


def _unknown_subscription_key(key_word: str, word: str) -> str:
    name = key_word.lower()
    if name in ("state", "status"):
        return f"Subscriptions always follow failed runs; leave out `{_shown(word)}`."
    close = difflib.get_close_matches(name, list(_SUBSCRIPTION_KEYS_BY_WORD), n=1, cutoff=0.6)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    if name in ("id", "run", "run-id"):
        hint = (" A subscription follows failures still to come, not one run; to see a run, "
                f"use `{COMMAND} run <run-id>`.")
    known = ", ".join(f"`{k.name}`" for k in SUBSCRIPTION_KEYS)
    return f"`{_shown(key_word)}` is not a subscription filter.{hint} Filters: {known}."


def _not_a_subscription_filter(word: str) -> str:
    try:
        ident = str(uuid.UUID(word))
    except ValueError:
        return (f"`{_shown(word)}` is not a filter: filters look like `key:value`, "
                "e.g. `site:1001` or `project:650`.")
    return (f"`{_shown(word)}` needs a key: to follow a connector, use `connector:{ident}` "
            f"(or `process:{ident}` for a process).")


def _parse_unsubscribe(args: list[str]) -> Unsubscribe | QueryError:
    usage = USAGE["unsubscribe"]
    if len(args) != 1:
        return QueryError("Which subscription? Give its id (see `/cde subscriptions`) or `all`.",
                          usage)
    word = args[0].lstrip("#")
    if word.lower() == "all":
        return Unsubscribe(None)
    if word.isascii() and word.isdigit() and len(word) <= 12:
        return Unsubscribe(int(word))
    return QueryError(f"`{_shown(args[0])}` is not a subscription id; ids are numbers shown by "
                      f"`{COMMAND} subscriptions`.", usage)


# Each sub-command (and its other spellings) and how its arguments are read.
_PARSERS: dict[str, Callable[[list[str]], Command | QueryError]] = {
    "help": _parse_help, "-h": _parse_help, "--help": _parse_help, "?": _parse_help,
    "runs": _parse_runs,
    "run": _parse_run,
    "subscribe": _parse_subscribe,
    "subscriptions": _parse_subscriptions, "subs": _parse_subscriptions,
    "unsubscribe": _parse_unsubscribe,
}


def subscription_words(notice_filter: NoticeFilter) -> list[str]:
    """A subscription filter as `key:value` words."""
    values = notice_filter.as_dict()
    return [f"{key.name}:{values[key.field]}" for key in SUBSCRIPTION_KEYS if key.field in values]


def _split_pair(word: str) -> tuple[str, str, str]:
    for sep in (":", "="):
        key, found, value = word.partition(sep)
        if found:
            return key, found, value.strip(_QUOTES)
    return word, "", ""


def _paging_value(name: str, value: str) -> int:
    """`limit` (1 to MAX_LIMIT) or `from` (0 or more); every refusal names the range."""
    if name == "limit":
        low, high, allowed, example = 1, MAX_LIMIT, f"from 1 to {MAX_LIMIT}", DEFAULT_LIMIT
    else:
        low, high, allowed, example = 0, MAX_OFFSET, "0 or more", 0
    digits = value[1:] if value[:1] in "+-" else value
    if not digits.isascii() or not digits.isdigit():
        raise _BadValue(f"{name} must be a whole number {allowed}, e.g. `{name}:{example}`")
    number = int(value) if len(digits) <= 10 else high + 1
    if number > high and name == "from":
        raise _BadValue(f"from must be at most {high}, e.g. `from:{example}`")
    if not low <= number <= high:
        raise _BadValue(f"{name} must be {allowed}, e.g. `{name}:{example}`")
    return number


def _anchor_value(value: str) -> str:
    if _parse_anchor(value) is None:
        # Only buttons write this word; a damaged one is refused like any other value.
        raise _BadValue(f"this page marker is damaged; run `{COMMAND} runs` again")
    return value


def _parse_anchor(value: str) -> Anchor | None:
    run_id, _, total = value.partition("/")
    try:
        run_id = str(uuid.UUID(run_id))
    except ValueError:
        return None
    if not total.isascii() or not total.isdigit() or len(total) > 10:
        return None
    return Anchor(run_id, int(total))


def _not_a_filter(word: str) -> str:
    try:
        run_id = str(uuid.UUID(word))
    except ValueError:
        return (f"`{_shown(word)}` is not a filter: filters look like `key:value`, "
                f"e.g. `site:1001` or `state:failed`.")
    return f"To show one run, use `{COMMAND} run {run_id}` (or filter with `id:{run_id}`)."


def _unknown_key(key_word: str, word: str = "") -> str:
    name = key_word.lower().replace("_", "-")
    if name in _SUBSCRIPTION_ONLY:
        return _subscription_only(name.removesuffix("-id"), word)
    choices = [*_KEYS_BY_WORD, "from", "limit"]
    close = difflib.get_close_matches(key_word.lower(), choices, n=1, cutoff=0.6)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    known = ", ".join(f"`{key.name}`" for key in FILTER_KEYS)
    return f"`{_shown(key_word)}` is not a filter.{hint} Filters: {known}, `limit`, `from`."


def _subscription_only(name: str, word: str) -> str:
    """`runs project:650`: the API has no such filter, but notices can follow one."""
    value = _split_pair(word)[2]
    example = {"project": "650", "account": "748"}[name]
    if value.isascii() and value.isdigit() and len(value) <= 18:
        example = value
    return (f"`{COMMAND} runs` cannot filter by {name}: the CDE API does not list runs by "
            f"{name}. Failure notices can follow one: `{COMMAND} subscribe {name}:{example}`.")


def _shown(word: str, limit: int = 60) -> str:
    """A user's word as it may be echoed inside a code span: short and without backticks."""
    word = word.replace("`", "'")
    return word if len(word) <= limit else word[: limit - 1] + "…"
